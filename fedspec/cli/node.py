"""``fedspec node``: this member's own processes (its peer, its chaincode server) on a
running Hyperledger Fabric network, from its own home with its own keys."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from fedspec.cli.context import State
from fedspec.cli.options import JsonOption
from fedspec.console.output import console, emit_json, table

if TYPE_CHECKING:
    from fabric_network import MemberLayout, NodeStatus

app = typer.Typer(
    help="This member's own processes on a running Fabric network: its peer (joined to the "
    "channel) and its chaincode server.",
    no_args_is_help=True,
)


def _member(state: State) -> MemberLayout:
    # Deferred: the command line starts without it.
    from fedspec.app.node import member_layout

    return member_layout(state.settings)


@app.command("up")
def up(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """Start this member's peer and chaincode server; return once its peer endorses.

    The first time, its peer joins the channel and its admin approves the chaincode for the
    organization."""
    # Deferred: the command line starts without it.
    from fabric_network import node_up

    member = _member(ctx.obj)
    status = node_up(member, progress=(lambda _: None) if json_out else _say)
    if json_out:
        emit_json(status.to_json())
        return
    _print(status)
    console.print(
        "use it: [bold]export FEDSPEC_LEDGER=fabric[/] (this home's commands then go through "
        f"its own peer, {status.peer})"
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
    console.print(
        f"stopped {len(stopped)} processes" + (f" ({', '.join(stopped)})" if stopped else "")
    )
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
    console.print(
        f"{status.org}'s node [bold]{status.state}[/] in {status.run_dir} "
        f"(peer {status.peer}, channel {status.channel})"
    )
    if status.processes:
        table(
            "processes",
            ["process", "running"],
            [(n, "yes" if ok else "no") for n, ok in status.processes.items()],
        )
    if status.orderers:
        console.print(f"orderers: {', '.join(status.orderers)}")
