"""``fedspec consortium``: the organizations and their identities."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fedspec.app.settings import usable_path
from fedspec.cli.context import State
from fedspec.cli.options import JsonOption
from fedspec.console.output import console, emit_json

app = typer.Typer(
    help="Found the consortium from its members' bundles (or all at once, on one machine).",
    no_args_is_help=True,
)


@app.command("init")
def init(
    ctx: typer.Context,
    orgs: Annotated[
        str, typer.Option("--orgs", help="Comma-separated organization names, e.g. org1,org2,org3")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder to write", show_default="<home>/consortium")
    ] = None,
    nodes_per_org: Annotated[
        int, typer.Option("--nodes-per-org", min=1, max=64, help="Training nodes per organization")
    ] = 2,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing consortium folder")
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """One machine: `org init` for every organization, then `create`, in one folder.

    The shortcut for the demo and the tests: the folder holds every organization's keys."""
    # Deferred: the command line starts without it.
    from fedspec.app.consortium import init_consortium, parse_orgs
    from ledger_client import Consortium

    state: State = ctx.obj
    names = parse_orgs(orgs)
    target = usable_path(out, "--out") if out is not None else state.settings.ledger.consortium_dir
    root = init_consortium(names, target, nodes_per_org=nodes_per_org, force=force)
    c = Consortium.load(root)
    if json_out:
        emit_json({"path": str(root), "organizations": c.member_ids, "nodes": c.node_refs()})
        return
    console.print(f"consortium of {len(names)} organizations written to [bold]{root}[/]")
    for org in c.members:
        console.print(f"  {org.msp_id}: admin, {org.peers[0]}, nodes {', '.join(org.nodes)}")
    console.print(f"  ordering service: {', '.join(c.orderer_org.orderers)}")
    console.print(f"configuration hash: {c.manifest['config_hash']}")


@app.command("create")
def create(
    ctx: typer.Context,
    members: Annotated[
        list[Path],
        typer.Option(
            "--member",
            help="A bundle of a founding organization (repeatable), its own and the ordering "
            "organization's included",
        ),
    ],
    json_out: JsonOption = False,
) -> None:
    """Found the consortium in this home from public bundles only.

    Prints the configuration hash, the same for every founder given the same bundles."""
    # Deferred: loads cryptography only when used.
    from fedspec.app.bundles import load_bundle, spaced
    from fedspec.app.consortium import create_consortium

    state: State = ctx.obj
    bundles = [load_bundle(usable_path(p, "--member")) for p in members]
    founded = create_consortium(state.settings.ledger.consortium_dir, bundles)
    if json_out:
        emit_json(
            {
                "path": str(founded.path),
                "config_hash": founded.config_hash,
                "members": founded.members,
                "orderer": founded.orderer,
                "own": founded.own,
            }
        )
        return
    console.print(
        f"consortium of {', '.join(founded.members)} (ordering: {founded.orderer}) "
        f"founded in [bold]{founded.path}[/]"
    )
    console.print(f"this home holds the keys of: {', '.join(founded.own) or 'no organization'}")
    console.print(f"configuration hash: {spaced(founded.config_hash)}")
