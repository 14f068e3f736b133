"""Entry point of the ``fedspec`` command."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="fedspec",
    help="Federated learning of a family of specialized models, audited on a ledger.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Federated learning of a family of specialized models, audited on a ledger."""


@app.command()
def version() -> None:
    """Print fedspec's version."""
    from fedspec import __version__

    typer.echo(__version__)


def main() -> None:
    app()
