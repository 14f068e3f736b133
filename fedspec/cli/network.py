"""``fedspec network``: a Hyperledger Fabric network of native processes for the ledger."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from fedspec.cli.context import State
from fedspec.cli.options import JsonOption
from fedspec.console.output import console, emit_json, stopped_line, table

app = typer.Typer(
    help="Start, stop and inspect a local Hyperledger Fabric network (3 raft orderers, one "
    "peer per organization, the fedspec chaincode as a service).",
    no_args_is_help=True,
)


def _layout(state: State, base_port: int | None = None) -> object:
    # Deferred: the command line starts without it.
    from fabric_network import NetworkLayout
    from fabric_network.layout import DEFAULT_BASE_PORT

    settings = state.settings
    run_dir = settings.home / "network"
    if base_port is None:
        try:  # a network that exists keeps the ports it was created with
            base_port = int(json.loads((run_dir / "network.json").read_text())["base_port"])
        except (OSError, ValueError, KeyError):
            base_port = DEFAULT_BASE_PORT
    return NetworkLayout(run_dir, settings.ledger.consortium_dir, base_port=base_port)


@app.command("up")
def up(
    ctx: typer.Context,
    base_port: Annotated[
        int | None,
        typer.Option(
            "--base-port",
            min=1024,
            max=65000,
            help="First of the network's ports",
            show_default="27050, or the existing network's",
        ),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Create the network (or restart a stopped one), wait until healthy, print endpoints."""
    # Deferred: the command line starts without it.
    from fabric_network import network_up

    layout = _layout(ctx.obj, base_port)
    status = network_up(layout, progress=(lambda _: None) if json_out else _say)  # type: ignore[arg-type]
    if json_out:
        emit_json(status.to_json())
        return
    _print(status)
    console.print(
        "use it: [bold]export FEDSPEC_LEDGER=fabric[/] (peers are read from "
        f"{status.run_dir / 'network.json'})"
    )


@app.command("down")
def down(
    ctx: typer.Context,
    wipe: Annotated[
        bool,
        typer.Option("--wipe", help="Also delete the network's ledgers, logs and configuration"),
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """Stop exactly the processes `network up` started (by PID); --wipe deletes its state."""
    # Deferred: the command line starts without it.
    from fabric_network import network_down

    layout = _layout(ctx.obj)
    stopped = network_down(layout, wipe=wipe)  # type: ignore[arg-type]
    if json_out:
        emit_json({"stopped": stopped, "wiped": wipe})
        return
    console.print(stopped_line(stopped))
    if wipe:
        console.print(f"deleted {layout.run_dir}")  # type: ignore[attr-defined]


@app.command("status")
def status(
    ctx: typer.Context,
    json_out: JsonOption = False,
) -> None:
    """The network's state and each process: running or not."""
    # Deferred: the command line starts without it.
    from fabric_network import network_status

    result = network_status(_layout(ctx.obj))  # type: ignore[arg-type]
    if json_out:
        emit_json(result.to_json())
        return
    _print(result)


def _say(message: str) -> None:
    console.print(f"[dim]network:[/] {message}")


def _print(status: object) -> None:
    # Deferred: the command line starts without it.
    from fabric_network import NetworkStatus

    assert isinstance(status, NetworkStatus)
    console.print(
        f"network [bold]{status.state}[/] in {status.run_dir}"
        + (f" (Fabric {status.version})" if status.version else "")
    )
    if status.processes:
        table(
            "processes",
            ["process", "running"],
            [(n, "yes" if ok else "no") for n, ok in status.processes.items()],
        )
    if status.peers:
        table("endpoints", ["organization", "peer gateway"], sorted(status.peers.items()))
    if status.orderers:
        console.print(f"orderers: {', '.join(status.orderers)}")
