"""``fedspec ledger``: create, verify and read the ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from fedspec.app.settings import usable_path
from fedspec.cli.context import State
from fedspec.cli.options import JsonOption, ReadAsOption
from fedspec.console.output import console, emit_json, fail, progress, table

app = typer.Typer(help="Create, verify and inspect the ledger.", no_args_is_help=True)

AsOption = ReadAsOption


@app.command("init")
def init(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing ledger file")] = False,
    json_out: JsonOption = False,
) -> None:
    """Create the ledger from the consortium folder, record the members, register every node."""
    # Deferred: the command line starts without it.
    from fedspec.app.bootstrap import init_ledger

    state: State = ctx.obj
    result = init_ledger(state.settings, force=force)
    if json_out:
        emit_json(
            {
                "backend": state.settings.ledger.backend,
                "ledger": str(state.settings.ledger.ledger_path),
                "orgs": result.orgs,
                "nodes": result.nodes,
                "height": result.height,
            }
        )
        return
    cfg = state.settings.ledger
    where = f"channel {cfg.channel} on Fabric" if cfg.backend == "fabric" else str(cfg.ledger_path)
    console.print(
        f"ledger [bold]{where}[/] initialized with {len(result.orgs)} "
        f"organizations and {len(result.nodes)} registered nodes ({result.height} blocks)"
    )


@app.command("join")
def join(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """Join a ledger another founder created and register this home's own nodes.

    Refused when the ledger was founded with another configuration than this home's."""
    # Deferred: the command line starts without it.
    from fedspec.app.bootstrap import join_ledger

    state: State = ctx.obj
    result = join_ledger(state.settings)
    if json_out:
        emit_json({"orgs": result.orgs, "nodes": result.nodes, "height": result.height})
        return
    console.print(
        f"joined: {len(result.orgs)} organizations; this home's nodes "
        f"{', '.join(result.nodes) or '(none)'} registered ({result.height} blocks)"
    )


@app.command("verify")
def verify(
    ctx: typer.Context,
    ledger: Annotated[
        Path | None, typer.Option("--ledger", help="Ledger file", show_default="from settings")
    ] = None,
    jobs: Annotated[
        int | None, typer.Option("--jobs", min=1, help="Worker processes for signatures")
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Re-check the hash chain and every signature, replay from genesis, compare the state.

    Then compare the ledger with every member checkpoint in the home (rollback evidence)."""
    # Deferred: the command line starts without it.
    from ledger_client.embedded.verify import verify_ledger

    state: State = ctx.obj
    path = (
        usable_path(ledger, "--ledger") if ledger is not None else state.settings.ledger.ledger_path
    )
    with progress("verifying", enabled=not json_out) as update:
        report = verify_ledger(path, jobs=jobs, progress=update)
    checked, rollbacks = _compare_checkpoints(state, path) if report.ok else (0, [])
    if json_out:
        emit_json(
            {
                **report.__dict__,
                "ok": report.ok and not rollbacks,
                "checkpoints": {"checked": checked, "problems": rollbacks},
            }
        )
    elif report.ok and not rollbacks:
        console.print(
            f"[green]ledger verified[/]: {report.blocks} blocks, {report.transactions} transactions "
            f"({report.invalid} recorded invalid), {report.state_keys} state keys, "
            f"{report.blocks / max(report.seconds, 1e-9):,.0f} blocks/s with {report.jobs} process(es)"
            + (f"; {checked} member checkpoint(s) hold" if checked else "")
        )
    if not report.ok:
        fail(
            f"ledger verification failed at block {report.first_bad_block}: {report.problem}",
            code=1,
        )
    if rollbacks:
        first = rollbacks[0]
        more = f" (and {len(rollbacks) - 1} more)" if len(rollbacks) > 1 else ""
        where = "" if first["block"] is None else f" at block {first['block']}"
        fail(
            f"ledger verification failed{where}: {first['code']}: {first['message']}{more}",
            code=1,
        )


def _compare_checkpoints(state: State, path: Path) -> tuple[int, list[dict[str, Any]]]:
    """The home's checkpoints against the verified ledger, when it is the home's ledger:
    how many were compared, and the problems (code, block, message)."""
    # Deferred: the command line starts without it.
    from ledger_client import Consortium, open_ledger
    from ledger_client.checkpoints import check_folder, checkpoints_in

    cfg = state.settings.ledger
    found = checkpoints_in(state.checkpoints)
    if not found or Path(path).resolve() != Path(cfg.ledger_path).resolve():
        return 0, []
    consortium = Consortium.load(cfg.consortium_dir)
    reader = open_ledger(cfg, consortium.default_admin)  # a plain reader: problems are reported
    problems = check_folder(
        state.checkpoints,
        reader,
        lambda ref: consortium.identity(ref).identity.credentials,
    )
    return sum(p.parent.parent.name == cfg.channel for p in found), [
        {"code": str(p.code), "block": p.details.get("block"), "message": p.message}
        for p in problems
    ]


@app.command("status")
def status(ctx: typer.Context, as_identity: AsOption = None, json_out: JsonOption = False) -> None:
    """Height, members, nodes and profiles at a glance."""
    state: State = ctx.obj
    reader = state.ledger(as_identity)
    info = {
        "backend": state.settings.ledger.backend,
        "height": reader.height(),
        "orgs": reader.evaluate("GetConsortium")["orgs"],
        "nodes": [n.id for n in reader.list_nodes()],
        "profiles": {p.id: p.status for p in reader.list_profiles()},
    }
    if json_out:
        emit_json(info)
        return
    console.print(
        f"{info['backend']} ledger, {info['height']} blocks; members {', '.join(info['orgs'])}; "
        f"{len(info['nodes'])} nodes; profiles: "
        + (", ".join(f"{k} ({v})" for k, v in info["profiles"].items()) or "none")
    )


@app.command("blocks")
def blocks(
    ctx: typer.Context,
    start: Annotated[int, typer.Option("--from", min=0, help="First block")] = 0,
    end: Annotated[
        int | None, typer.Option("--to", min=0, help="Last block", show_default="the newest")
    ] = None,
    as_identity: AsOption = None,
    json_out: JsonOption = False,
) -> None:
    """Blocks with their hashes and transactions."""
    # Deferred: the command line starts without it.
    from ledger_client.inspect import describe_block

    state: State = ctx.obj
    reader = state.ledger(as_identity)
    height = reader.height()
    last = height - 1 if end is None else min(end, height - 1)
    if start > last:
        fail(f"the ledger has blocks 0 to {height - 1}; --from {start} is past the end")
    described = []
    # Thousands of blocks take seconds to fetch and decode: a bar then, not for a handful.
    with progress("reading blocks", enabled=not json_out and last - start >= 500) as update:
        for n in range(start, last + 1):
            described.append(describe_block(reader.block(n), state.settings.ledger.chaincode))
            update(n - start + 1, last - start + 1)
    if json_out:
        emit_json(described)
        return
    rows = [
        (
            b["number"],
            b["hash"][:16],
            len(b["transactions"]),
            ", ".join(
                f"{t.get('function', t.get('type'))}{'' if t['code'] == 'VALID' else ' [' + t['code'] + ']'}"
                for t in b["transactions"]
            ),
        )
        for b in described
    ]
    table(f"blocks {start}–{last} of {height}", ["block", "hash", "txs", "transactions"], rows)


@app.command("tx")
def tx(
    ctx: typer.Context,
    transaction_id: Annotated[str, typer.Argument(help="The transaction id (hex)")],
    as_identity: AsOption = None,
    json_out: JsonOption = False,
) -> None:
    """One transaction: caller, arguments, endorsers, reads and writes, validation code."""
    # Deferred: the command line starts without it.
    from ledger_client.errors import GatewayError
    from ledger_client.inspect import describe_transaction

    state: State = ctx.obj
    reader = state.ledger(as_identity)
    try:
        processed = reader.transaction(transaction_id)
    except GatewayError:
        fail(f"no transaction {transaction_id} on the ledger")
    info = describe_transaction(
        processed.transactionEnvelope.SerializeToString(),
        processed.validationCode,
        state.settings.ledger.chaincode,
    )
    if json_out:
        emit_json(info)
        return
    for key, value in info.items():
        console.print(
            f"[bold]{key:>12}[/] {', '.join(value) if isinstance(value, list) else value}",
            highlight=False,
        )


@app.command("events")
def events(
    ctx: typer.Context,
    start: Annotated[int, typer.Option("--from", min=0, help="First block")] = 0,
    name: Annotated[str | None, typer.Option("--name", help="Only events with this name")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many events")] = 200,
    as_identity: AsOption = None,
    json_out: JsonOption = False,
) -> None:
    """Chaincode events of committed transactions (one per state change)."""
    state: State = ctx.obj
    reader = state.ledger(as_identity)
    height = reader.height()
    if start >= height:
        fail(f"the ledger has blocks 0 to {height - 1}; --from {start} is past the end")
    network = reader.contract.network
    found: list[dict[str, Any]] = []
    for event in network.get_chaincode_events(
        state.settings.ledger.chaincode, start_block=start, timeout=0.2
    ):
        if name is None or event.name == name:
            found.append(
                {
                    "block": event.block_number,
                    "tx_id": event.transaction_id,
                    "name": event.name,
                    "payload": event.json(),
                }
            )
            if len(found) >= limit:
                break
    if json_out:
        emit_json(found)
        return
    table(
        "chaincode events",
        ["block", "event", "tx", "payload"],
        [(e["block"], e["name"], e["tx_id"][:12], str(e["payload"])[:80]) for e in found],
    )
