"""``fedspec rewards``: token balances per node and organization, from the ledger.

Balances are sums of per-node token entries (``tok~{node}~{ref}``), which the chaincode adds
up (``GetBalance``, ``GetBalances``); the per-round history comes from each profile's
lineage (``GetProfileHistory``), which repeats every round's minted amounts. Transfers
between nodes have no per-entry read: they show in a balance's ``by_kind`` only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from fedspec.cli.context import State
from fedspec.cli.options import JsonOption, NodeOption, OrgOption, ReadAsOption
from fedspec.console.output import emit_json, table

if TYPE_CHECKING:
    from ledger_client import FedspecLedger


def rewards(
    ctx: typer.Context,
    node: NodeOption = None,
    org: OrgOption = None,
    history: Annotated[
        bool, typer.Option("--history", help="Also the tokens each round minted, per node")
    ] = False,
    as_identity: ReadAsOption = None,
    json_out: JsonOption = False,
) -> None:
    """Token balances per node and per organization, from the ledger."""
    if node is not None and org is not None:
        raise typer.BadParameter("give --node or --org, not both", param_hint="--node")

    state: State = ctx.obj
    ledger = state.ledger(as_identity)
    report = rewards_report(ledger, node=node, org=org, history=history)
    if json_out:
        emit_json(report)
        return
    table(
        "token balances",
        ["node", "organization", "tokens", "by kind"],
        [
            (
                n["node"],
                n["org"],
                n["balance"],
                ", ".join(f"{k} {v}" for k, v in sorted(n["by_kind"].items())) or "-",
            )
            for n in report["nodes"]
        ],
    )
    table("per organization", ["organization", "tokens"], sorted(report["orgs"].items()))
    if history:
        table(
            "minted per round",
            ["profile", "round", "node", "tokens"],
            [(h["profile"], h["round"], h["node"], h["amount"]) for h in report["history"]],
        )


def rewards_report(
    ledger: FedspecLedger,
    *,
    node: str | None = None,
    org: str | None = None,
    history: bool = False,
) -> dict[str, Any]:
    """The JSON ``fedspec rewards`` prints (see docs/cli.md)."""
    if node is not None:
        # GetNode refuses an unknown node (NOT_FOUND) before anything else is read.
        org = ledger.get_node(node).org
    elif org is not None and org not in ledger.evaluate("GetConsortium")["orgs"]:
        raise typer.BadParameter(f"{org} is not a member organization", param_hint="--org")
    balances = ledger.balances(org or "")
    org_of = {n.id: n.org for n in ledger.list_nodes(org or "")}
    node_ids = [node] if node is not None else sorted(balances.nodes)
    nodes = []
    for node_id in node_ids:
        balance = ledger.balance(node_id)
        nodes.append(
            {
                "node": node_id,
                "org": org_of.get(node_id, ""),
                "balance": balance.balance,
                "by_kind": dict(balance.by_kind),
            }
        )
    orgs = dict(balances.orgs)
    report: dict[str, Any] = {"nodes": nodes, "orgs": orgs, "total": sum(orgs.values())}
    if history:
        report["history"] = _history(ledger, set(node_ids))
    return report


def _history(ledger: FedspecLedger, node_ids: set[str]) -> list[dict[str, Any]]:
    entries = []
    for profile in ledger.list_profiles():
        for r in ledger.profile_history(profile.id).rounds:
            for node_id, amount in sorted((r.rewards or {}).items()):
                if node_id in node_ids:
                    entries.append(
                        {
                            "profile": profile.id,
                            "round": r.number,
                            "node": node_id,
                            "amount": int(amount),
                        }
                    )
    return entries
