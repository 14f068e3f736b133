"""Options every command group spells the same way.

Help texts are rich markup: a literal ``[default: …]`` inside one is read as a style tag
and vanishes, so defaults that are not plain values go through ``show_default``.
"""

from __future__ import annotations

from typing import Annotated

import typer

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output")]
ActAsOption = Annotated[
    str | None,
    typer.Option("--as", help="Identity to act as, e.g. org2/admin", show_default="first admin"),
]
ReadAsOption = Annotated[
    str | None,
    typer.Option(
        "--as", help="Identity to read the ledger as, e.g. org2/admin", show_default="first admin"
    ),
]
