"""``fedspec node``: this organization's own processes on a Hyperledger Fabric network, from
its own home with its own keys: a member's peer and chaincode server, or the ordering
organization's orderers; and the founders' genesis block (docs/deploy.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fedspec.cli.context import State
from fedspec.cli.options import JsonOption
from fedspec.console.output import console, emit_json, stopped_line, table

if TYPE_CHECKING:
    from fabric_network import NodeLayout, NodeStatus

app = typer.Typer(
    help="This organization's own processes on a Fabric network: a member's peer (joined to "
    "the channel) and chaincode server, or the ordering organization's orderers.",
    no_args_is_help=True,
)


def _member(state: State) -> NodeLayout:
    # Deferred: the command line starts without it.
    from fedspec.app.node import member_layout

    return member_layout(state.settings)


@app.command("up")
def up(
    ctx: typer.Context,
    genesis: Annotated[
        Path | None,
        typer.Option(
            "--genesis",
            help="The channel's genesis block a founder made (`fedspec node genesis`): the "
            "ordering organization's orderers join the channel from it the first time; a "
            "member's peer too where given (else from the ordering service's block 0)",
        ),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Start this organization's own peer, chaincode server or orderers.

    A member's peer and chaincode server (returning once its peer endorses), or the
    ordering organization's orderers. The first time, a member's peer joins the channel and its admin approves the chaincode
    for the organization (committing it when that approval makes a majority); the orderers
    join the channel from the founders' genesis block."""
    # Deferred: the command line starts without it.
    from fabric_network import node_up

    member = _member(ctx.obj)
    status = node_up(member, genesis=genesis, progress=(lambda _: None) if json_out else _say)
    if json_out:
        emit_json(status.to_json())
        return
    _print(status)
    if status.peer:
        console.print(
            "use it: [bold]export FEDSPEC_LEDGER=fabric[/] (this home's commands then go "
            f"through its own peer, {status.peer})"
        )


@app.command("genesis")
def genesis(
    ctx: typer.Context,
    out: Annotated[
        Path,
        typer.Option("--out", help="Where to write the channel's genesis block"),
    ] = Path("fedspec.block"),
    json_out: JsonOption = False,
) -> None:
    """Make the founders' channel genesis block from this home's consortium.

    From the bundles it was founded from: the ordering organization's orderers, each
    member's peer. One founder makes it and hands the file to the others, like a bundle."""
    # Deferred: the command line starts without it.
    from fabric_network import make_genesis

    member = _member(ctx.obj)
    path = make_genesis(member, out.absolute())
    if json_out:
        emit_json({"genesis": str(path), "channel": member.channel})
        return
    console.print(
        f"wrote channel {member.channel}'s genesis block to {path}: hand it to the other "
        "founders (`fedspec node up --genesis FILE`)"
    )


@app.command("upgrade")
def upgrade(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="The chaincode version to move to, e.g. 1.1")],
    wait: Annotated[
        float,
        typer.Option(
            "--wait",
            min=0,
            help="Seconds to wait for a majority of the members to approve the same version",
        ),
    ] = 300.0,
    json_out: JsonOption = False,
) -> None:
    """Move this member's peer to a new version of the fedspec chaincode.

    Packages the version as a service beside the running server, installs it on this
    member's own peer, approves the new definition for this organization and commits it when
    that approval makes a majority; once committed, the old server stops. The world state
    stays; transactions go on throughout. Each member runs it from its own home."""
    # Deferred: the command line starts without it.
    from fabric_network import upgrade_chaincode

    done = upgrade_chaincode(
        _member(ctx.obj), version, wait_s=wait, progress=(lambda _: None) if json_out else _say
    )
    if json_out:
        emit_json(done.to_json())
        return
    approved = sorted(o for o, ok in done.approvals.items() if ok)
    console.print(
        f"{done.org} serves chaincode version {done.version} (sequence {done.sequence}) at "
        f"{done.address}; approved by {', '.join(approved)}"
    )


@app.command("down")
def down(
    ctx: typer.Context,
    wipe: Annotated[
        bool,
        typer.Option("--wipe", help="Also delete the peer's ledger, the logs and the state"),
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """Stop exactly the processes `node up` started (by PID); --wipe deletes their state."""
    # Deferred: the command line starts without it.
    from fabric_network import node_down

    member = _member(ctx.obj)
    stopped = node_down(member, wipe=wipe)
    if json_out:
        emit_json({"stopped": stopped, "wiped": wipe})
        return
    console.print(stopped_line(stopped))
    if wipe:
        console.print(f"deleted {member.run_dir}")


@app.command("status")
def status(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """This member's processes: running or not, and where its peer listens."""
    # Deferred: the command line starts without it.
    from fabric_network import node_status

    result = node_status(_member(ctx.obj))
    if json_out:
        emit_json(result.to_json())
        return
    _print(result)


def _say(message: str) -> None:
    console.print(f"[dim]node:[/] {message}")


def _print(status: NodeStatus) -> None:
    what = f"peer {status.peer}" if status.peer else "orderers"
    console.print(
        f"{status.org}'s node [bold]{status.state}[/] in {status.run_dir} "
        f"({what}, channel {status.channel})"
    )
    if status.processes:
        table(
            "processes",
            ["process", "running"],
            [(n, "yes" if ok else "no") for n, ok in status.processes.items()],
        )
    if status.orderers:
        console.print(f"orderers: {', '.join(status.orderers)}")
