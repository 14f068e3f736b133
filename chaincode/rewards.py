"""Token rewards and balances, with per-node entries instead of a hot balance record.

A round mints a fixed amount R. Node i with integer score s_i receives floor(R·s_i / S),
S = Σ s; the R − Σ floor(…) units left over go one each to the nodes with the largest
remainders (R·s_i mod S), ties broken by node id, so the minted total is exactly R.
A balance is the sum of the node's entries (rewards, transfers in and out).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chaincode import keys
from chaincode.common import check_node_id, check_org, parse_int, require_member, require_node
from chaincode.context import Tx
from chaincode.errors import FailedPrecondition, Forbidden, InvalidArgument, NotFound
from chaincode.rounds import load_round


def split_reward(total: int, scores: Mapping[str, int]) -> dict[str, int]:
    weight = sum(scores.values())
    if total < 0 or weight <= 0 or any(s < 0 for s in scores.values()):
        raise InvalidArgument(
            "rewards need a non-negative total and non-negative scores with a positive sum"
        )
    shares = {node: total * s // weight for node, s in scores.items()}
    remainders = {node: total * s % weight for node, s in scores.items()}
    left = total - sum(shares.values())
    for node in sorted(scores, key=lambda n: (-remainders[n], n))[:left]:
        shares[node] += 1
    return shares


async def mint_rewards(tx: Tx, profile_id: str, round_text: str) -> dict[str, Any]:
    """Mint a closed round's reward; anyone in the round (or an admin) may trigger it, once."""
    await require_member(tx)
    n = parse_int(round_text, "round", minimum=1)
    record = await load_round(tx, profile_id, n)
    if tx.creator.role != "admin" and tx.creator.id not in record["participants"]:
        raise Forbidden(f"{tx.creator.id} is neither a participant of round {n} nor an admin")
    if record["status"] != "closed":
        raise FailedPrecondition(f"round {n} of {profile_id} is {record['status']}, not closed")
    if record.get("rewards") is not None:
        return {"profile": profile_id, "round": n, "amounts": record["rewards"]}  # already minted
    model = await tx.get(keys.model(profile_id, n))
    profile = await tx.get(keys.profile(profile_id))
    if model is None or profile is None:
        raise NotFound(f"round {n} of {profile_id} has no model record")
    total = int(profile["spec"]["reward_per_round"])
    amounts = split_reward(total, model["contributions"])
    ref = f"reward:{profile_id}:{keys.round_no(n)}"
    for node_id, amount in sorted(amounts.items()):
        await tx.put(
            keys.token_entry(node_id, ref),
            {"amount": amount, "kind": "reward", "profile": profile_id, "round": n},
        )
    await tx.put(keys.round_(profile_id, n), {**record, "rewards": amounts})
    event = {"profile": profile_id, "round": n, "total": total, "amounts": amounts}
    tx.emit("RewardsMinted", event)
    return event


async def _balance(tx: Tx, node_id: str) -> dict[str, Any]:
    entries = [r for _, r in await tx.scan("tok", node_id)]
    by_kind: dict[str, int] = {}
    for e in entries:
        by_kind[e["kind"]] = by_kind.get(e["kind"], 0) + int(e["amount"])
    return {
        "node": node_id,
        "balance": sum(by_kind.values()),
        "by_kind": by_kind,
        "entries": len(entries),
    }


async def get_balance(tx: Tx, node_id: str) -> dict[str, Any]:
    """A node's token balance and its entries by kind."""
    check_node_id(node_id)
    if await tx.get(keys.node(node_id)) is None:
        raise NotFound(f"node {node_id} is not registered")
    return await _balance(tx, node_id)


async def get_balances(tx: Tx, org: str) -> dict[str, Any]:
    """Balances per node and per organization (all organizations when ``org`` is empty)."""
    if org:
        check_org(org)
    nodes = [r for _, r in await tx.scan("node") if not org or r["org"] == org]
    per_node = {r["id"]: (await _balance(tx, r["id"]))["balance"] for r in nodes}
    per_org: dict[str, int] = {}
    for r in nodes:
        per_org[r["org"]] = per_org.get(r["org"], 0) + per_node[r["id"]]
    return {"nodes": per_node, "orgs": per_org, "total": sum(per_node.values())}


async def transfer(tx: Tx, to_node: str, amount_text: str) -> dict[str, Any]:
    """A node transfers tokens from its balance to another node."""
    node = await require_node(tx)
    check_node_id(to_node, "recipient")
    amount = parse_int(amount_text, "amount", minimum=1)
    if to_node == node["id"]:
        raise InvalidArgument("a node cannot transfer tokens to itself")
    if await tx.get(keys.node(to_node)) is None:
        raise NotFound(f"recipient {to_node} is not registered")
    # The range read of the sender's entries is validated at commit (phantom protection), so
    # two concurrent transfers cannot both spend the same balance.
    balance = (await _balance(tx, node["id"]))["balance"]
    if amount > balance:
        raise FailedPrecondition(f"{node['id']} has {balance} tokens; cannot transfer {amount}")
    ref = f"xfer:{tx.tx_id}"
    await tx.put(
        keys.token_entry(node["id"], ref), {"amount": -amount, "kind": "transfer", "to": to_node}
    )
    await tx.put(
        keys.token_entry(to_node, ref), {"amount": amount, "kind": "transfer", "from": node["id"]}
    )
    event = {"from": node["id"], "to": to_node, "amount": amount}
    tx.emit("TokensTransferred", event)
    return event
