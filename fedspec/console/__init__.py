"""Interface layer, lowest part: how fedspec speaks on a terminal (tables, ``--json``,
one-line errors, round progress, Fabric network printing). Used by the CLI and the demo."""
