"""Specialization profiles: proposed by a member, activated or retired by consortium vote."""

from __future__ import annotations

from typing import Any

from chaincode import keys
from chaincode.common import (
    check_profile_id,
    load_profile,
    parse_bool,
    require_member,
    require_node,
)
from chaincode.context import Tx, canonical
from chaincode.errors import AlreadyExists, FailedPrecondition, Forbidden, InvalidArgument
from chaincode.schema import parse_json_argument, validate_profile

ACTIONS = {"activate": ("proposed", "active"), "retire": ("active", "retired")}
DEFAULT_REWARD = 1000
DEFAULT_SCHEDULE = {"join_window_s": 60, "reveal_window_s": 60, "coordinator_window_s": 900}


async def propose_profile(tx: Tx, profile_json: str) -> dict[str, Any]:
    """Any member (an admin or a registered node) may propose; proposing changes nothing else."""
    await require_member(tx)
    if tx.creator.role == "client":
        await require_node(tx)
    elif tx.creator.role != "admin":
        raise Forbidden(f"{tx.creator.id} ({tx.creator.role}) may not propose profiles")
    spec = parse_json_argument(profile_json, "profile")
    validate_profile(spec)
    spec.setdefault("reward_per_round", DEFAULT_REWARD)
    spec["schedule"] = {**DEFAULT_SCHEDULE, **spec.get("schedule", {})}
    spec.setdefault("parent", None)
    if spec["parent"] is not None:
        parent = await load_profile(tx, spec["parent"])
        if parent["status"] != "active":
            raise FailedPrecondition(f"parent profile {spec['parent']} is {parent['status']}")
    key = keys.profile(spec["id"])
    existing = await tx.get(key)
    if existing is not None:
        if canonical(existing["spec"]) == canonical(spec):
            return existing  # a retried proposal of the same document
        raise AlreadyExists(f"profile {spec['id']} already exists")
    record = {
        "id": spec["id"],
        "spec": spec,
        "status": "proposed",
        "proposed_by": tx.creator.id,
        "proposed_at": tx.timestamp,
    }
    await tx.put(key, record)
    tx.emit(
        "ProfileProposed",
        {"id": spec["id"], "proposed_by": tx.creator.id, "parent": spec["parent"]},
    )
    return record


async def vote_profile(tx: Tx, profile_id: str, action: str, approve_text: str) -> dict[str, Any]:
    """One vote per organization per action, cast by an admin; a majority of orgs decides."""
    orgs = await require_member(tx)
    tx.creator.require_role("admin")
    if action not in ACTIONS:
        raise InvalidArgument(f"action must be one of {sorted(ACTIONS)}, got {action!r:.40}")
    approve = parse_bool(approve_text, "approve")
    record = await load_profile(tx, check_profile_id(profile_id))
    before, after = ACTIONS[action]
    if record["status"] != before:
        raise FailedPrecondition(
            f"profile {profile_id} is {record['status']}; cannot vote to {action}"
        )
    org = tx.creator.msp_id
    vote_key = keys.vote(profile_id, action, org)
    if await tx.get(vote_key) is not None:
        raise AlreadyExists(f"{org} has already voted to {action} {profile_id}")
    vote = {"org": org, "approve": approve, "by": tx.creator.id, "at": tx.timestamp}
    await tx.put(vote_key, vote)
    # Reads see committed state only, so this transaction's own vote is added by hand.
    votes = [v for _, v in await tx.scan("vote", profile_id, action)] + [vote]
    approvals = sum(1 for v in votes if v["approve"])
    rejections = len(votes) - approvals
    outcome = "pending"
    if 2 * approvals > len(orgs):
        outcome = after
        record = {**record, "status": after, f"{after}_at": tx.timestamp}
        await tx.put(keys.profile(profile_id), record)
    elif action == "activate" and 2 * rejections >= len(orgs):
        outcome = "rejected"  # a majority can no longer approve
        record = {**record, "status": "rejected", "rejected_at": tx.timestamp}
        await tx.put(keys.profile(profile_id), record)
    event = {
        "profile": profile_id,
        "action": action,
        "org": org,
        "approve": approve,
        "approvals": approvals,
        "rejections": rejections,
        "members": len(orgs),
        "outcome": outcome,
    }
    name = {
        "active": "ProfileActivated",
        "retired": "ProfileRetired",
        "rejected": "ProfileRejected",
    }
    tx.emit(name.get(outcome, "ProfileVoted"), event)
    return {**event, "status": record["status"]}


async def get_profile(tx: Tx, profile_id: str) -> dict[str, Any]:
    """A profile with its votes."""
    record = await load_profile(tx, profile_id)
    votes = [v for _, v in await tx.scan("vote", profile_id)]
    return {**record, "votes": votes}


async def list_profiles(tx: Tx, status: str) -> list[dict[str, Any]]:
    """Profiles, optionally only those with a given status."""
    if status and status not in ("proposed", "active", "retired", "rejected"):
        raise InvalidArgument(f"unknown status {status!r:.40}")
    return [r for _, r in await tx.scan("profile") if not status or r["status"] == status]


async def query_profiles(tx: Tx, characteristics_json: str, status: str) -> list[dict[str, Any]]:
    """Profiles whose characteristics include every given key with an equal value."""
    wanted = parse_json_argument(characteristics_json, "characteristics")
    if not isinstance(wanted, dict):
        raise InvalidArgument("characteristics must be a JSON object")
    matches = []
    for record in await list_profiles(tx, status):
        have = record["spec"]["characteristics"]
        if all(k in have and _equal(have[k], v) for k, v in wanted.items()):
            matches.append(record)
    return matches


def _equal(have: Any, want: Any) -> bool:
    if isinstance(have, list):
        if isinstance(want, list):
            return all(w in have for w in want)
        return want in have
    return bool(have == want)
