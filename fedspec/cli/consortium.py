"""``fedspec consortium``: the organizations and their identities."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fedspec.app.settings import usable_path
from fedspec.cli.context import State
from fedspec.cli.options import ActAsOption, JsonOption, ReadAsOption
from fedspec.console.output import console, emit_json, table

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


@app.command("propose-member")
def propose_member(
    ctx: typer.Context,
    bundle_file: Annotated[
        Path, typer.Argument(metavar="BUNDLE", help="The new organization's public bundle")
    ],
    as_identity: ActAsOption = None,
    json_out: JsonOption = False,
) -> None:
    """Propose a new member organization by its bundle; member admins then vote."""
    # Deferred: loads cryptography and the ledger client only when used.
    from fedspec.app.bundles import spaced
    from fedspec.app.membership import propose_member as propose

    state: State = ctx.obj
    change = propose(state.settings, usable_path(bundle_file, "BUNDLE"), as_identity)
    if json_out:
        emit_json({k: v for k, v in change.to_json().items() if k != "bundle"})
        return
    console.print(f"{change.org} proposed as a member ({change.id}) by {change.proposed_by}")
    console.print(f"fingerprint: {spaced(change.fingerprint)}")
    console.print(f"next: each member admin runs [bold]fedspec consortium vote {change.org}[/]")


@app.command("remove")
def remove(
    ctx: typer.Context,
    org: Annotated[str, typer.Argument(metavar="ORG", help="The member organization to remove")],
    as_identity: ActAsOption = None,
    json_out: JsonOption = False,
) -> None:
    """Propose removing a member organization; member admins then vote."""
    # Deferred: the command line starts without it.
    from fedspec.app.membership import propose_removal

    state: State = ctx.obj
    change = propose_removal(state.settings, org, as_identity)
    if json_out:
        emit_json(change.to_json())
        return
    console.print(f"removal of {change.org} proposed ({change.id}) by {change.proposed_by}")
    console.print(f"next: each member admin runs [bold]fedspec consortium vote {change.org}[/]")


@app.command("vote")
def vote(
    ctx: typer.Context,
    org: Annotated[
        str, typer.Argument(metavar="ORG", help="The organization whose change is open")
    ],
    reject: Annotated[bool, typer.Option("--reject", help="Vote against the change")] = False,
    fingerprint: Annotated[
        str | None,
        typer.Option(
            "--fingerprint", help="Refuse unless the proposed bundle has this fingerprint"
        ),
    ] = None,
    as_identity: ActAsOption = None,
    json_out: JsonOption = False,
) -> None:
    """Vote on ORG's open membership change; a majority of members decides."""
    # Deferred: the command line starts without it.
    from fedspec.app.membership import vote_member

    state: State = ctx.obj
    voted = vote_member(
        state.settings, org, approve=not reject, fingerprint=fingerprint, as_identity=as_identity
    )
    v = voted.vote
    if json_out:
        emit_json(v.to_json() | {"config_block": voted.config_block})
        return
    console.print(
        f"{v.voter} voted {'for' if v.approve else 'against'} {v.action} of {v.org}: "
        f"{v.approvals} for, {v.rejections} against of {v.members} members → {v.status}"
    )
    if voted.config_block is not None:
        console.print(f"channel configuration updated in block {voted.config_block}")


@app.command("changes")
def changes(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option("--status", help="Only proposed, approved or rejected changes")
    ] = None,
    as_identity: ReadAsOption = None,
    json_out: JsonOption = False,
) -> None:
    """Membership changes proposed on the ledger, with their status."""
    found = ctx.obj.ledger(as_identity).member_changes(status or "")
    if json_out:
        emit_json([c.to_json() for c in found])
        return
    table(
        "membership changes",
        ["change", "action", "status", "proposed by", "fingerprint"],
        [(c.id, c.action, c.status, c.proposed_by, c.fingerprint[:16]) for c in found],
    )


@app.command("apply")
def apply(
    ctx: typer.Context,
    org: Annotated[str, typer.Argument(metavar="ORG", help="The organization whose change passed")],
    as_identity: ActAsOption = None,
    json_out: JsonOption = False,
) -> None:
    """Update the channel for ORG's approved change, if the approving voter's did not."""
    # Deferred: the command line starts without it.
    from fedspec.app.membership import apply_change

    state: State = ctx.obj
    block = apply_change(state.settings, org, as_identity)
    if json_out:
        emit_json({"org": org, "config_block": block})
        return
    console.print(f"channel configuration updated for {org} in block {block}")
