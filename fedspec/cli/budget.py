"""``fedspec budget``: each node's privacy budget per profile, spent and left, from the ledger.

Modes are shown by what they protect: ``client-level DP`` (the whole update of a node;
needs hundreds of nodes to train anything useful), ``dp-model`` and ``dp-sgd`` (each record).
Under ``dp-sgd`` the ledger's RDP accountant states ε at the profile's δ: spent in this
profile, spent over the family (every profile the node trains in: the same records may
train several), what is left of the budget and how many more rounds fit.

``GetBudget`` does the arithmetic on the ledger with exact decimals (the same numbers that
``SubmitUpdate`` refuses against): this command only lists them. Decimals stay strings in
``--json`` (``"1e-5"`` is not a float's ``1e-05``, and ``0.1 + 0.2`` must stay ``0.3``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from fedspec.cli.context import State
from fedspec.cli.options import JsonOption, NodeOption, ProfileOption, ReadAsOption
from fedspec.console.output import emit_json, table

if TYPE_CHECKING:
    from ledger_client import FedspecLedger

# Profiles whose rounds may have spent budget: a proposed or rejected one never ran.
_RAN = ("active", "retired")
_MODE_LABELS = {
    "client-dp": "client-level DP (needs many clients)",
    "client-level-dp": "client-level DP (needs many clients)",
    "dp-model": "dp-model (record-level, ε-DP)",
    "dp-sgd": "dp-sgd (record-level, RDP)",
}


def budget(
    ctx: typer.Context,
    node: NodeOption = None,
    profile: ProfileOption = None,
    as_identity: ReadAsOption = None,
    json_out: JsonOption = False,
) -> None:
    """Privacy budget per node and profile: (ε, δ) spent and left against the profile's budget."""

    state: State = ctx.obj
    ledger = state.ledger(as_identity)
    entries = budget_entries(ledger, node=node, profile=profile)
    if json_out:
        emit_json({"budgets": entries})
        return
    table(
        "privacy budgets",
        [
            "node",
            "profile",
            "mode",
            "rounds",
            "spent ε",
            "spent δ",
            "budget ε, δ",
            "left ε",
            "left δ",
            "family ε",
            "rounds left",
        ],
        [
            (
                e["node"],
                e["profile"],
                _MODE_LABELS.get(e["mode"], e["mode"]),
                e["rounds"],
                e["spent"]["epsilon"],
                e["spent"]["delta"],
                "-" if e["budget"] is None else f"{e['budget']['epsilon']}, {e['budget']['delta']}",
                "-" if e["remaining"] is None else e["remaining"]["epsilon"],
                "-" if e["remaining"] is None else e["remaining"]["delta"],
                "-" if e.get("family") is None else e["family"]["epsilon"],
                "-" if e.get("rounds_left") is None else e["rounds_left"],
            )
            for e in entries
        ],
    )


def budget_entries(
    ledger: FedspecLedger, *, node: str | None = None, profile: str | None = None
) -> list[dict[str, Any]]:
    """One entry per (node, profile): what ``fedspec budget --json`` lists (docs/cli.md)."""
    # Unknown names are refused by the ledger (NOT_FOUND) before any budget is read.
    node_ids = [ledger.get_node(node).id] if node else [n.id for n in ledger.list_nodes()]
    if profile:
        profile_ids = [ledger.get_profile(profile).id]
    else:
        profile_ids = [p.id for p in ledger.list_profiles() if p.status in _RAN]
    entries = []
    for profile_id in profile_ids:
        for node_id in sorted(node_ids):
            doc = ledger.budget(node_id, profile_id)
            entries.append(
                {
                    "node": node_id,
                    "profile": profile_id,
                    "mode": doc.mode,
                    "rounds": doc.rounds,
                    "spent": doc.spent.to_json(),
                    # None for a profile without a privacy mode: there is nothing to exhaust.
                    "budget": None if doc.budget is None else doc.budget.to_json(),
                    "remaining": None if doc.remaining is None else doc.remaining.to_json(),
                    "exhausted": doc.exhausted,
                }
            )
            if doc.raw.get("accountant") == "rdp":
                # The RDP accountant's view: ε at the profile's δ over the whole family, the
                # round's own cost, and how many more rounds fit (what the ledger enforces).
                entries[-1].update(
                    accountant="rdp",
                    family=doc.raw["family"],
                    round=doc.raw["round"],
                    rounds_left=doc.raw["rounds_left"],
                    exhausted=doc.raw["rounds_left"] == 0,
                )
    return entries
