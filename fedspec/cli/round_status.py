"""``fedspec round status``: one round as the ledger records it.

Phase, deadlines, who joined, revealed and took part, the coordinator, each update
commitment (and which were excluded, by the node's own validation or by the coordinator),
the model committed with its metrics, the model the round started from and why (lineage),
and the tokens it minted; under secure aggregation, who dealt shares, survived, dropped and
had their masks recovered. Reads only: ``GetRound``/``GetRoundStatus``, ``ListUpdates``,
``GetModel`` and, for a profile with ``aggregation.secure``, ``GetSecureAggregation``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fedspec.cli.context import State
from fedspec.cli.options import JsonOption, ProfileArgument, ReadAsOption
from fedspec.console.output import console, emit_json, table

if TYPE_CHECKING:
    from ledger_client import FedspecLedger


def status(
    ctx: typer.Context,
    profile_id: ProfileArgument,
    round_no: Annotated[
        int | None,
        typer.Option("--round", min=1, help="This round", show_default="the latest"),
    ] = None,
    as_identity: ReadAsOption = None,
    json_out: JsonOption = False,
) -> None:
    """A round's phase, deadlines, participants, updates, model, lineage and rewards."""

    state: State = ctx.obj
    ledger = state.ledger(as_identity)
    report = round_report(ledger, profile_id, round_no)
    if json_out:
        emit_json(report)
        return
    _show(report)


def round_report(
    ledger: FedspecLedger, profile_id: str, number: int | None = None
) -> dict[str, Any]:
    """The JSON ``fedspec round status`` prints (docs/cli.md)."""
    # Deferred: the command line starts without it.
    from ledger_client.errors import LedgerError
    from ledger_client.records import from_fixed

    rnd = (
        ledger.round_status(profile_id) if number is None else ledger.get_round(profile_id, number)
    )
    raw = rnd.raw
    updates = [
        {
            "node": u.node,
            "sha256": u.sha256,
            "num_samples": u.num_samples,
            "validation_passed": u.validation.passed,
            "reason": u.validation.reason,
            "privacy": u.privacy.to_json(),
            "metrics": {k: from_fixed(v) for k, v in u.metrics.items()},
        }
        for u in ledger.list_updates(profile_id, rnd.number)
    ]
    excluded = [
        {"node": u["node"], "by": "node", "code": "VALIDATION_FAILED", "reason": u["reason"]}
        for u in updates
        if not u["validation_passed"]
    ]
    model = None
    if rnd.status == "closed":
        try:
            record = ledger.get_model(profile_id, rnd.number)
        except LedgerError:  # a closed round always has one; a reader may still race a commit
            record = None
        if record is not None:
            excluded += [
                {"node": e["node"], "by": "coordinator", "code": e["code"], "reason": e["reason"]}
                for e in record.raw.get("excluded", [])
            ]
            model = {
                "sha256": record.sha256,
                "uri": record.uri,
                "alias": record.alias,
                "coordinator": record.coordinator,
                "metrics": {k: from_fixed(v) for k, v in record.metrics.items()},
                "included": [i["node"] for i in record.inclusion],
                "contributions": dict(record.contributions),
            }
    return {
        "profile": rnd.profile,
        "round": rnd.number,
        "status": rnd.status,
        "phase": rnd.phase,
        "opened_by": raw.get("opened_by", ""),
        "opened_at": raw.get("opened_at"),
        # Transaction timestamps (Unix seconds), as the chaincode compares them.
        "deadlines": {
            "join": rnd.join_deadline,
            "reveal": rnd.reveal_deadline,
            "coordinator": rnd.coordinator_deadline or None,
        },
        "min_nodes": rnd.min_nodes,
        "joined": rnd.joined,
        "revealed": rnd.revealed,
        "participants": rnd.participants,
        "withheld": list(raw.get("withheld", [])),
        "coordinator": rnd.coordinator or None,
        "replaced": list(raw.get("replaced", [])),
        "base": {
            "model": rnd.base_model or None,
            "round": rnd.base_round or None,
            "profile": rnd.base_profile,
            "source": rnd.base_source,
            "reason": rnd.base_reason,
        },
        "updates": updates,
        "excluded": excluded,
        "model": model,
        "failure": rnd.failure,
        "rewards": rnd.rewards,
        "secure_aggregation": _secure_aggregation(ledger, profile_id, rnd.number),
    }


def _secure_aggregation(
    ledger: FedspecLedger, profile_id: str, number: int
) -> dict[str, Any] | None:
    """The round's secure aggregation as the ledger records it, or ``None`` for a profile
    without it: threshold, dealers, survivors, dropped nodes, those whose masks were
    recovered, the survivors that answered and the revealed shares refused."""
    if "secure" not in ledger.get_profile(profile_id).spec["aggregation"]:
        return None
    state = ledger.evaluate("GetSecureAggregation", profile_id, str(number))
    fields = ("threshold", "dealers", "survivors", "dropped", "recovered", "responders")
    return {**{k: state.get(k) for k in fields}, "rejected": state.get("rejected") or []}


def _when(seconds: int | None) -> str:
    if not seconds:
        return "-"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _show(r: dict[str, Any]) -> None:
    say = console.print
    say(f"[bold]{r['profile']}[/] round {r['round']}: {r['phase']}", highlight=False)
    d = r["deadlines"]
    say(
        f"  deadlines: join {_when(d['join'])}, reveal {_when(d['reveal'])}, "
        f"coordinator {_when(d['coordinator'])}",
        highlight=False,
    )
    say(
        f"  joined {len(r['joined'])}, revealed {len(r['revealed'])}, participants "
        f"{', '.join(r['participants']) or '-'} (at least {r['min_nodes']})",
        highlight=False,
    )
    if r["withheld"]:
        say(f"  withheld their reveal: {', '.join(r['withheld'])}", highlight=False)
    coordinator = r["coordinator"] or "not elected yet"
    replaced = f" (replaced {', '.join(r['replaced'])})" if r["replaced"] else ""
    say(f"  coordinator: {coordinator}{replaced}", highlight=False)
    base = r["base"]
    start = (
        f"{base['profile']} round {base['round']} ({base['model'][:12]}…)"
        if base["model"]
        else "initial weights"
    )
    say(
        f"  starts from: {start}, {base['source']}"
        + (f": {base['reason']}" if base["reason"] else ""),
        highlight=False,
        markup=False,
    )
    if r["updates"]:
        table(
            "updates",
            ["node", "samples", "validated", "sha256", "ε", "δ"],
            [
                (
                    u["node"],
                    u["num_samples"],
                    "yes" if u["validation_passed"] else f"no: {u['reason']}",
                    u["sha256"][:12] or "-",
                    u["privacy"]["epsilon"],
                    u["privacy"]["delta"],
                )
                for u in r["updates"]
            ],
        )
    for e in r["excluded"]:
        say(f"  excluded {e['node']} by the {e['by']}: {e['code']} {e['reason']}", markup=False)
    if r["model"] is not None:
        m = r["model"]
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in sorted(m["metrics"].items())) or "-"
        say(f"  model {m['sha256'][:16]}… ({m['alias']}): {metrics}", highlight=False)
    if r["secure_aggregation"] is not None:
        _show_secure(r["secure_aggregation"])
    if r["failure"]:
        say(f"  failed: {r['failure'].get('code')}: {r['failure'].get('reason')}", markup=False)
    if r["rewards"]:
        minted = ", ".join(f"{n} {a}" for n, a in sorted(r["rewards"].items()))
        say(f"  rewards: {minted}", highlight=False)


def _show_secure(sa: dict[str, Any]) -> None:
    def names(nodes: list[str] | None) -> str:
        return ", ".join(nodes) if nodes else "-"

    say = console.print
    say(f"  secure aggregation, threshold {sa['threshold']}:", highlight=False)
    say(f"    dealt shares: {names(sa['dealers'])}", highlight=False)
    say(f"    survivors (in the sum): {names(sa['survivors'])}", highlight=False)
    if sa["dropped"]:
        say(f"    dropped after sharing: {names(sa['dropped'])}", highlight=False)
    if sa["recovered"] is not None:
        say(f"    masks recovered for: {names(sa['recovered'])}", highlight=False)
    for r in sa["rejected"]:
        say(
            f"    refused share: {r['kind']} of {r['dealer']} held by {r['holder']}",
            highlight=False,
        )
