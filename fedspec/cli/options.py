"""Options every command group spells the same way.

Help texts are rich markup: a literal ``[default: …]`` inside one is read as a style tag
and vanishes, so defaults that are not plain values go through ``show_default``.
Profile ids, node ids and identities complete in the shell (:mod:`fedspec.cli.completion`).
"""

from __future__ import annotations

from typing import Annotated

import typer

from fedspec.cli.completion import complete_identity, complete_node, complete_org, complete_profile

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output")]
ActAsOption = Annotated[
    str | None,
    typer.Option(
        "--as",
        help="Identity to act as, e.g. org2/admin",
        show_default="first admin",
        autocompletion=complete_identity,
    ),
]
ReadAsOption = Annotated[
    str | None,
    typer.Option(
        "--as",
        help="Identity to read the ledger as, e.g. org2/admin",
        show_default="first admin",
        autocompletion=complete_identity,
    ),
]
ProfileArgument = Annotated[
    str,
    typer.Argument(
        metavar="PROFILE", help="A profile id, e.g. digits-8x8", autocompletion=complete_profile
    ),
]
NodeOption = Annotated[
    str | None,
    typer.Option("--node", help="Only this node, e.g. org2/node0", autocompletion=complete_node),
]
OrgOption = Annotated[
    str | None,
    typer.Option("--org", help="Only this organization's nodes", autocompletion=complete_org),
]
ProfileOption = Annotated[
    str | None,
    typer.Option("--profile", help="Only this profile", autocompletion=complete_profile),
]
