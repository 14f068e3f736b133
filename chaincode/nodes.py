"""Consortium membership, training nodes, volunteering and reputation."""

from __future__ import annotations

from typing import Any

from chaincode import keys
from chaincode.common import (
    check_node_id,
    check_org,
    check_profile_id,
    check_sha256,
    consortium,
    require_active_profile,
    require_member,
    require_node,
)
from chaincode.context import Tx
from chaincode.errors import AlreadyExists, Conflict, Forbidden, InvalidArgument, NotFound
from chaincode.schema import parse_json_argument

BASE_REPUTATION = 100
MIN_REPUTATION = 1
DATASET_KEYS = frozenset({"sha256", "rows", "schema_sha256"})
MAX_ROWS = 10**12


async def init_consortium(tx: Tx, orgs_json: str) -> dict[str, Any]:
    """Record the member organizations once; only an admin of a listed organization may."""
    orgs = parse_json_argument(orgs_json, "orgs")
    if not isinstance(orgs, list) or not 1 <= len(orgs) <= 64:
        raise InvalidArgument("orgs must be a list of 1 to 64 MSP ids")
    orgs = sorted({check_org(o) for o in orgs})
    tx.creator.require_role("admin")
    if tx.creator.msp_id not in orgs:
        raise Forbidden(f"{tx.creator.msp_id} cannot found a consortium it is not part of")
    existing = await tx.get(keys.CONSORTIUM)
    if existing is not None:
        if existing["orgs"] == orgs:
            return existing
        raise AlreadyExists("the consortium is already initialized")
    record = {"orgs": orgs, "initialized_by": tx.creator.id, "initialized_at": tx.timestamp}
    await tx.put(keys.CONSORTIUM, record)
    tx.emit("ConsortiumInitialized", record)
    return record


async def get_consortium(tx: Tx) -> dict[str, Any]:
    """The consortium's member organizations."""
    return {"orgs": await consortium(tx)}


async def register_node(tx: Tx) -> dict[str, Any]:
    """Register the caller's certificate as a training node of its organization."""
    await require_member(tx)
    tx.creator.require_role("client")
    key = keys.node(tx.creator.id)
    existing = await tx.get(key)
    if existing is not None:
        if existing["cert_sha256"] == tx.creator.cert_sha256:
            return existing  # idempotent: registering twice changes nothing
        raise Conflict(f"{tx.creator.id} is already registered with another certificate")
    record = {
        "id": tx.creator.id,
        "org": tx.creator.msp_id,
        "cert_sha256": tx.creator.cert_sha256,
        "registered_at": tx.timestamp,
    }
    await tx.put(key, record)
    tx.emit("NodeRegistered", record)
    return record


async def get_node(tx: Tx, node_id: str) -> dict[str, Any]:
    """A registered node with its current reputation."""
    record = await tx.get(keys.node(check_node_id(node_id)))
    if record is None:
        raise NotFound(f"node {node_id} is not registered")
    return {**record, "reputation": await reputation(tx, node_id)}


async def list_nodes(tx: Tx, org: str) -> list[dict[str, Any]]:
    """Registered nodes, of one organization or all."""
    records = [r for _, r in await tx.scan("node")]
    if org:
        check_org(org)
        records = [r for r in records if r["org"] == org]
    return records


async def reputation(tx: Tx, node_id: str) -> int:
    """100 minus the penalty points a node earned (withheld reveals, missed deadlines), ≥ 1."""
    points = sum(int(r["points"]) for _, r in await tx.scan("penalty", node_id))
    return max(MIN_REPUTATION, BASE_REPUTATION - points)


async def volunteer(tx: Tx, profile_id: str) -> dict[str, Any]:
    """A node declares it will join the rounds of a profile its data fits."""
    node = await require_node(tx)
    await require_active_profile(tx, profile_id)
    record = {"profile": profile_id, "node": node["id"], "since": tx.timestamp}
    key = keys.volunteer(profile_id, node["id"])
    existing = await tx.get(key)
    if existing is not None:
        return existing
    await tx.put(key, record)
    tx.emit("NodeVolunteered", record)
    return record


async def volunteer_with_data(tx: Tx, profile_id: str, dataset_json: str) -> dict[str, Any]:
    """A node volunteers with the fingerprint of the data it will train on (never rows)."""
    dataset = check_dataset_fingerprint(parse_json_argument(dataset_json, "dataset"))
    node = await require_node(tx)
    await require_active_profile(tx, profile_id)
    key = keys.volunteer(profile_id, node["id"])
    existing = await tx.get(key)
    if existing is not None and existing.get("dataset") == dataset:
        return existing
    # New data replaces the fingerprint; the node has volunteered since its first time.
    since = existing["since"] if existing is not None else tx.timestamp
    record = {"profile": profile_id, "node": node["id"], "since": since, "dataset": dataset}
    record["dataset_at"] = tx.timestamp
    await tx.put(key, record)
    tx.emit("NodeVolunteered", record)
    return record


def check_dataset_fingerprint(value: Any) -> dict[str, Any]:
    """``{"sha256", "rows", "schema_sha256"}`` exactly: hashes and a row count, no data."""
    if not isinstance(value, dict) or set(value) != DATASET_KEYS:
        raise InvalidArgument(f"dataset must be an object with exactly {sorted(DATASET_KEYS)}")
    check_sha256(value["sha256"], "dataset.sha256")
    check_sha256(value["schema_sha256"], "dataset.schema_sha256")
    rows = value["rows"]
    if not isinstance(rows, int) or isinstance(rows, bool) or not 1 <= rows <= MAX_ROWS:
        raise InvalidArgument(f"dataset.rows must be an integer from 1 to {MAX_ROWS}")
    return dict(value)


async def get_volunteer(tx: Tx, profile_id: str, node_id: str) -> dict[str, Any]:
    """A node's volunteer record for a profile (with its data fingerprint, if it gave one)."""
    record = await tx.get(keys.volunteer(check_profile_id(profile_id), check_node_id(node_id)))
    if record is None:
        raise NotFound(f"{node_id:.80} does not volunteer for {profile_id}")
    return record


async def withdraw(tx: Tx, profile_id: str) -> dict[str, Any]:
    """A node stops volunteering for a profile's rounds."""
    node = await require_node(tx)
    key = keys.volunteer(profile_id, node["id"])
    if await tx.get(key) is None:
        raise NotFound(f"{node['id']} does not volunteer for {profile_id}")
    await tx.delete(key)
    record = {"profile": profile_id, "node": node["id"], "withdrawn_at": tx.timestamp}
    tx.emit("NodeWithdrew", record)
    return record


async def list_volunteers(tx: Tx, profile_id: str) -> list[str]:
    """The nodes that volunteer for a profile's rounds."""
    return [attrs[1] for attrs, _ in await tx.scan("vol", profile_id)]


async def add_penalty(tx: Tx, node_id: str, ref: str, points: int, reason: str) -> None:
    await tx.put(
        keys.penalty(node_id, ref), {"points": points, "reason": reason, "at": tx.timestamp}
    )
