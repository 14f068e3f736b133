"""Secure aggregation on the ledger: the key directory, and who dealt, survived and dropped.

A round of a profile with ``aggregation.secure`` runs, besides the usual round:

1. ``JoinRoundWithKeys``: each node's two X25519 public keys for the round go into its
   join, signed by its identity (so the ledger authenticates them). A second join with
   other keys, or a key another node of the round registered, is refused.
2. ``SubmitShares``: after the election each participant commits the hash (and MLflow URI)
   of its encrypted share bundle; ``CloseSharing`` (any participant, once every participant
   dealt or at the share deadline) fixes the dealers: everyone masks against exactly them.
3. The masked vector's hash is the node's ``SubmitUpdate`` (:mod:`chaincode.updates`).
4. ``RequestUnmask``: the coordinator fixes the survivors (dealers whose masked vector it
   accepted) once; the other dealers are the dropped nodes. ``SubmitUnmaskShares``: each
   survivor commits the hash of its answer. ``RecordUnmasked``: the coordinator records
   whose masks were recovered, who answered and which revealed shares were refused.

Only hashes, keys and node lists are on the ledger; shares and vectors are in MLflow.
"""

from __future__ import annotations

import re
from typing import Any

from chaincode import keys
from chaincode.common import check_node_id, check_sha256, load_profile, parse_int, require_node
from chaincode.context import Tx
from chaincode.errors import Conflict, FailedPrecondition, Forbidden, InvalidArgument
from chaincode.rounds import _fail, join_with, load_round
from chaincode.schema import parse_json_argument

_KEY = re.compile(r"[0-9a-f]{64}")
KINDS = ("self-mask-seed", "mask-key")


def _record_key(profile_id: str, n: int) -> str:
    return keys.composite("secagg", profile_id, keys.round_no(n))


def _shares_key(profile_id: str, n: int, node_id: str) -> str:
    return keys.composite("sashares", profile_id, keys.round_no(n), node_id)


def _owner_key(profile_id: str, n: int, public_key: str) -> str:
    return keys.composite("sakey", profile_id, keys.round_no(n), public_key)


def _answer_key(profile_id: str, n: int, node_id: str) -> str:
    return keys.composite("saunmask", profile_id, keys.round_no(n), node_id)


async def _secure(tx: Tx, profile_id: str) -> dict[str, Any]:
    profile = await load_profile(tx, profile_id)
    secure: dict[str, Any] | None = profile["spec"]["aggregation"].get("secure")
    if secure is None:
        raise FailedPrecondition(f"profile {profile_id} does not use secure aggregation")
    return {**secure, "window": int(profile["spec"]["schedule"]["coordinator_window_s"])}


def _artifact(text: str, what: str) -> dict[str, str]:
    doc = parse_json_argument(text, what, max_bytes=4096)
    if not isinstance(doc, dict) or set(doc) != {"sha256", "uri"}:
        raise InvalidArgument(f"{what} must be an object with fields sha256 and uri")
    uri = doc["uri"]
    if not isinstance(uri, str) or not 1 <= len(uri) <= 1000:
        raise InvalidArgument(f"{what}.uri must be 1 to 1000 characters")
    return {"sha256": check_sha256(doc["sha256"], f"{what}.sha256"), "uri": uri}


def _node_list(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or len(value) > 10_000:
        raise InvalidArgument(f"{what} must be a list of node ids")
    nodes = [check_node_id(v, what) for v in value]
    if len(set(nodes)) != len(nodes):
        raise InvalidArgument(f"{what} lists a node twice")
    return sorted(nodes)


def share_deadline(round_record: dict[str, Any], window: int) -> int:
    """When sharing closes without the late dealers: a third of the coordinator's window
    after the election (the nodes deal before they train)."""
    return int(round_record.get("elected_at", 0)) + max(1, window // 3)


async def join_round_with_keys(
    tx: Tx, profile_id: str, round_text: str, commitment: str, keys_json: str
) -> dict[str, Any]:
    """A node joins a secure-aggregation round with its commitment and its public keys."""
    await _secure(tx, profile_id)
    doc = parse_json_argument(keys_json, "keys", max_bytes=1024)
    if not isinstance(doc, dict) or set(doc) != {"mask_key", "cipher_key"}:
        raise InvalidArgument("keys must be an object with fields mask_key and cipher_key")
    for name, value in doc.items():
        if not isinstance(value, str) or not _KEY.fullmatch(value):
            raise InvalidArgument(f"keys.{name} must be 32 bytes as 64 lower-case hex characters")
    if doc["mask_key"] == doc["cipher_key"]:
        raise InvalidArgument("keys.mask_key and keys.cipher_key must differ")
    node = await require_node(tx)
    n = parse_int(round_text, "round", minimum=1)
    # A key another node registered: copying a peer's key would let a node pose as that
    # peer's partner in every pairwise secret. One record per key (point reads, no range
    # scan that every concurrent join would invalidate).
    owners = [_owner_key(profile_id, n, value) for value in doc.values()]
    for key in owners:
        owner = await tx.get(key)
        if owner is not None and owner["node"] != node["id"]:
            raise Conflict(
                f"a key of {node['id']} is already registered by {owner['node']} in round {n}",
                owner=owner["node"],
            )
    entry = await join_with(tx, profile_id, round_text, commitment, dict(sorted(doc.items())))
    for key in owners:
        await tx.put_once(key, {"node": node["id"]}, "a key's owner")
    return entry


async def _training_participant(
    tx: Tx, profile_id: str, round_text: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], int]:
    node = await require_node(tx)
    n = parse_int(round_text, "round", minimum=1)
    record = await load_round(tx, profile_id, n)
    if node["id"] not in record["participants"]:
        raise Forbidden(f"{node['id']} is not a participant of round {n} of {profile_id}")
    return node, record, await _secure(tx, profile_id), n


async def submit_shares(
    tx: Tx, profile_id: str, round_text: str, shares_json: str
) -> dict[str, Any]:
    """A participant commits the hash and URI of its encrypted share bundle."""
    node, record, _, n = await _training_participant(tx, profile_id, round_text)
    entry = {"node": node["id"], **_artifact(shares_json, "shares")}
    key = _shares_key(profile_id, n, node["id"])
    if await tx.get(key) is not None:
        await tx.put_once(key, entry, f"{node['id']}'s shares for round {n}")
        return entry
    state = await tx.get(_record_key(profile_id, n))
    if record["status"] != "training" or (state or {}).get("dealers") is not None:
        raise FailedPrecondition(f"sharing in round {n} of {profile_id} is closed")
    await tx.put(key, entry)
    tx.emit("SharesDealt", {"profile": profile_id, "round": n, "node": node["id"]})
    return entry


async def close_sharing(tx: Tx, profile_id: str, round_text: str) -> dict[str, Any]:
    """Fix the dealers, once every participant dealt or at the share deadline; fails the
    round when fewer than the threshold dealt."""
    _, record, secure, n = await _training_participant(tx, profile_id, round_text)
    state = await tx.get(_record_key(profile_id, n))
    if state is not None:
        return state  # already closed: the same dealers for everyone
    if record["status"] != "training":
        raise FailedPrecondition(f"round {n} of {profile_id} is {record['status']}")
    dealt = sorted(a[2] for a, _ in await tx.scan("sashares", profile_id, keys.round_no(n)))
    deadline = share_deadline(record, secure["window"])
    if set(dealt) != set(record["participants"]) and tx.timestamp < deadline:
        raise FailedPrecondition(
            f"sharing in round {n} closes once every participant dealt or at {deadline}"
        )
    t = int(secure["threshold"])
    if len(dealt) < t:
        await _fail(
            tx,
            record,
            "SECAGG_TOO_FEW_RESPONDERS",
            f"{len(dealt)} participants dealt shares, fewer than the threshold {t}",
        )
        return {"dealers": dealt, "failed": True}
    state = {"profile": profile_id, "round": n, "threshold": t, "dealers": dealt}
    await tx.put(_record_key(profile_id, n), state)
    tx.emit("SharingClosed", {"profile": profile_id, "round": n, "dealers": dealt})
    return state


async def request_unmask(
    tx: Tx, profile_id: str, round_text: str, survivors_json: str
) -> dict[str, Any]:
    """The coordinator names the survivors once; the other dealers are the dropped nodes."""
    node = await require_node(tx)
    n = parse_int(round_text, "round", minimum=1)
    record = await load_round(tx, profile_id, n)
    if record["coordinator"] != node["id"]:
        raise Forbidden(f"only the coordinator {record['coordinator']} may request unmasking")
    if record["status"] != "training":
        raise FailedPrecondition(f"round {n} of {profile_id} is {record['status']}")
    survivors = _node_list(parse_json_argument(survivors_json, "survivors"), "survivors")
    state = await tx.get(_record_key(profile_id, n))
    if state is None:
        raise FailedPrecondition(f"sharing in round {n} of {profile_id} is not closed")
    if "survivors" in state:
        if state["survivors"] != survivors:
            # Answer-once: a replacement coordinator unmasks the same survivors.
            raise Conflict(f"round {n} already unmasks the survivors {state['survivors']}")
        return state
    outside = sorted(set(survivors) - set(state["dealers"]))
    if outside:
        raise InvalidArgument(f"survivors {outside} dealt no shares in round {n}")
    if len(survivors) < state["threshold"]:
        raise InvalidArgument(
            f"{len(survivors)} survivors, fewer than the threshold {state['threshold']}"
        )
    dropped = sorted(set(state["dealers"]) - set(survivors))
    state = {**state, "survivors": survivors, "dropped": dropped, "requested_by": node["id"]}
    await tx.put(_record_key(profile_id, n), state)
    tx.emit(
        "UnmaskRequested",
        {"profile": profile_id, "round": n, "survivors": survivors, "dropped": dropped},
    )
    return state


async def submit_unmask_shares(
    tx: Tx, profile_id: str, round_text: str, answer_json: str
) -> dict[str, Any]:
    """A survivor commits the hash and URI of its unmasking answer."""
    node, record, _, n = await _training_participant(tx, profile_id, round_text)
    state = await tx.get(_record_key(profile_id, n)) or {}
    if node["id"] not in state.get("survivors", []):
        raise FailedPrecondition(f"{node['id']} is not asked to unmask round {n}")
    entry = {"node": node["id"], **_artifact(answer_json, "answer")}
    key = _answer_key(profile_id, n, node["id"])
    if await tx.get(key) is not None:
        await tx.put_once(key, entry, f"{node['id']}'s unmasking answer for round {n}")
        return entry  # a retried answer: the same one
    if record["status"] != "training":
        raise FailedPrecondition(f"round {n} of {profile_id} is {record['status']}")
    await tx.put(key, entry)
    tx.emit("UnmaskAnswered", {"profile": profile_id, "round": n, "node": node["id"]})
    return entry


async def record_unmasked(
    tx: Tx, profile_id: str, round_text: str, result_json: str
) -> dict[str, Any]:
    """The coordinator records the unmasking: the dropped nodes whose masks were recovered,
    the survivors that answered, and any revealed share refused against its commitment."""
    node = await require_node(tx)
    n = parse_int(round_text, "round", minimum=1)
    record = await load_round(tx, profile_id, n)
    if record["coordinator"] != node["id"]:
        raise Forbidden(f"only the coordinator {record['coordinator']} may record unmasking")
    if record["status"] != "training":
        raise FailedPrecondition(f"round {n} of {profile_id} is {record['status']}")
    state = await tx.get(_record_key(profile_id, n)) or {}
    if "survivors" not in state:
        raise FailedPrecondition(f"round {n} of {profile_id} has no unmasking request")
    doc = parse_json_argument(result_json, "unmasking")
    if not isinstance(doc, dict) or set(doc) != {"recovered", "responders", "rejected"}:
        raise InvalidArgument("unmasking must hold recovered, responders and rejected")
    recovered = _node_list(doc["recovered"], "recovered")
    responders = _node_list(doc["responders"], "responders")
    if recovered != state["dropped"]:
        raise InvalidArgument(f"recovered must be the dropped nodes {state['dropped']}")
    if not set(responders) <= set(state["survivors"]):
        raise InvalidArgument("responders must be survivors")
    rejected = doc["rejected"]
    if not isinstance(rejected, list) or len(rejected) > 10_000:
        raise InvalidArgument("rejected must be a list")
    for item in rejected:
        if (
            not isinstance(item, dict)
            or set(item) != {"dealer", "holder", "kind"}
            or item["kind"] not in KINDS
        ):
            raise InvalidArgument("each rejected share names its dealer, holder and kind")
        check_node_id(item["dealer"], "rejected.dealer")
        check_node_id(item["holder"], "rejected.holder")
    state = {
        **state,
        "recovered": recovered,
        "responders": responders,
        "rejected": rejected,
        "unmasked_by": node["id"],
    }
    await tx.put(_record_key(profile_id, n), state)
    tx.emit("Unmasked", {"profile": profile_id, "round": n, "recovered": recovered})
    return state


async def get_secagg(tx: Tx, profile_id: str, round_text: str) -> dict[str, Any]:
    """A round's secure aggregation: keys, dealt shares, dealers, survivors, recovered."""
    n = parse_int(round_text, "round", minimum=1)
    record = await load_round(tx, profile_id, n)
    secure = await _secure(tx, profile_id)
    n8 = keys.round_no(n)
    state = await tx.get(_record_key(profile_id, n)) or {}
    return {
        "profile": profile_id,
        "round": n,
        "threshold": int(secure["threshold"]),
        "share_deadline": share_deadline(record, secure["window"]) if record["participants"] else 0,
        "keys": {
            a[2]: e["secagg_keys"]
            for a, e in await tx.scan("join", profile_id, n8)
            if "secagg_keys" in e
        },
        "shares": {a[2]: e for a, e in await tx.scan("sashares", profile_id, n8)},
        "answers": {a[2]: e for a, e in await tx.scan("saunmask", profile_id, n8)},
        **{
            k: state.get(k)
            for k in ("dealers", "survivors", "dropped", "recovered", "responders", "rejected")
        },
    }
