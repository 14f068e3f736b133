"""The round's model: committed only by the elected coordinator, naming existing updates."""

from __future__ import annotations

from typing import Any

from chaincode import keys
from chaincode.common import (
    check_int_map,
    check_node_id,
    check_sha256,
    load_profile,
    parse_int,
    require_node,
)
from chaincode.context import Tx, canonical
from chaincode.errors import Conflict, FailedPrecondition, Forbidden, InvalidArgument, NotFound
from chaincode.rounds import load_round
from chaincode.schema import parse_json_argument

_FIELDS = {
    "sha256",
    "uri",
    "metrics",
    "inclusion",
    "contributions",
    "excluded",
    "receipt",
    "alias",
}
# The next round trains from the champion; a challenger is recorded but not built on.
_ALIASES = ("champion", "challenger")


def _parse_model(text: str) -> dict[str, Any]:
    doc = parse_json_argument(text, "model", max_bytes=128 * 1024)
    if (
        not isinstance(doc, dict)
        or set(doc) - _FIELDS
        or not {"sha256", "inclusion", "contributions"} <= set(doc)
    ):
        raise InvalidArgument(f"model must be an object with fields {sorted(_FIELDS)}")
    check_sha256(doc["sha256"], "model.sha256")
    uri = doc.get("uri", "")
    if not isinstance(uri, str) or len(uri) > 1000:
        raise InvalidArgument("model.uri must be at most 1000 characters")
    inclusion = doc["inclusion"]
    if not isinstance(inclusion, list) or not 1 <= len(inclusion) <= 1000:
        raise InvalidArgument("model.inclusion must list 1 to 1000 update commitments")
    seen: set[str] = set()
    for item in inclusion:
        if not isinstance(item, dict) or set(item) != {"node", "sha256"}:
            raise InvalidArgument("each inclusion entry is {node, sha256}")
        check_node_id(item["node"], "model.inclusion node")
        check_sha256(item["sha256"], f"model.inclusion[{item['node']}].sha256")
        if item["node"] in seen:
            raise InvalidArgument(f"model.inclusion names {item['node']} twice")
        seen.add(item["node"])
    contributions = check_int_map(doc["contributions"], "model.contributions", max_items=1000)
    if set(contributions) != seen:
        raise InvalidArgument("model.contributions must score exactly the included nodes")
    if any(v < 0 for v in contributions.values()) or sum(contributions.values()) <= 0:
        raise InvalidArgument("model.contributions are non-negative integers with a positive sum")
    excluded = doc.get("excluded", [])
    if (
        not isinstance(excluded, list)
        or len(excluded) > 1000
        or not all(
            isinstance(e, dict)
            and set(e) == {"node", "code", "reason"}
            and all(isinstance(v, str) and len(v) <= 1000 for v in e.values())
            for e in excluded
        )
    ):
        raise InvalidArgument("model.excluded entries are {node, code, reason} strings")
    receipt = doc.get("receipt", {})
    if not isinstance(receipt, dict):
        raise InvalidArgument("model.receipt must be an object")
    alias = doc.get("alias", "champion")
    if alias not in _ALIASES:
        raise InvalidArgument(f"model.alias must be one of {list(_ALIASES)}")
    return {
        "sha256": doc["sha256"],
        "uri": uri,
        "metrics": check_int_map(doc.get("metrics", {}), "model.metrics"),
        "inclusion": sorted(inclusion, key=lambda i: i["node"]),
        "contributions": contributions,
        "excluded": sorted(excluded, key=lambda e: e["node"]),
        "receipt": receipt,
        "alias": alias,
    }


async def commit_model(tx: Tx, profile_id: str, round_text: str, model_json: str) -> dict[str, Any]:
    """The elected coordinator commits the round's model and closes the round."""
    node = await require_node(tx)
    n = parse_int(round_text, "round", minimum=1)
    record = await load_round(tx, profile_id, n)
    doc = _parse_model(model_json)
    key = keys.model(profile_id, n)
    existing = await tx.get(key)
    if existing is not None:
        mine = {k: existing[k] for k in doc}
        if existing["coordinator"] == node["id"] and canonical(mine) == canonical(doc):
            return existing  # a retried commit
        raise Conflict(f"round {n} of {profile_id} already has a model")
    if record["status"] != "training":
        raise FailedPrecondition(f"round {n} of {profile_id} is {record['status']}")
    if record["coordinator"] != node["id"]:
        raise Forbidden(
            f"only the elected coordinator {record['coordinator']} may commit round {n}"
        )
    for item in doc["inclusion"]:
        update = await tx.get(keys.update(profile_id, n, item["node"]))
        if update is None:
            raise NotFound(
                f"the inclusion set names a missing update: {item['node']}", node=item["node"]
            )
        if update["sha256"] != item["sha256"]:
            raise Conflict(
                f"the inclusion set's hash for {item['node']} differs from its commitment"
            )
        if not update["validation"]["passed"]:
            raise FailedPrecondition(
                f"{item['node']}'s data failed validation; it cannot be included"
            )
    if len(doc["inclusion"]) < record["min_nodes"]:
        raise FailedPrecondition(
            f"{len(doc['inclusion'])} updates included; the profile needs {record['min_nodes']}"
        )
    model = {
        "profile": profile_id,
        "round": n,
        **doc,
        "coordinator": node["id"],
        "base_model": record["base_model"],
        "base_profile": record.get("base_profile", profile_id),
        "committed_at": tx.timestamp,
    }
    await tx.put(key, model)
    await tx.put(
        keys.round_(profile_id, n),
        {**record, "status": "closed", "closed_at": tx.timestamp, "model": doc["sha256"]},
    )
    await tx.put(keys.model_pointer(profile_id), {"round": n, "sha256": doc["sha256"]})
    if doc["alias"] == "champion":
        await tx.put(keys.champion_pointer(profile_id), {"round": n, "sha256": doc["sha256"]})
    tx.emit(
        "ModelCommitted",
        {
            "profile": profile_id,
            "round": n,
            "sha256": doc["sha256"],
            "uri": doc["uri"],
            "coordinator": node["id"],
            "included": [i["node"] for i in doc["inclusion"]],
            "alias": doc["alias"],
        },
    )
    return model


async def get_model(tx: Tx, profile_id: str, round_text: str) -> dict[str, Any]:
    """The model committed by a round."""
    n = parse_int(round_text, "round", minimum=1)
    record = await tx.get(keys.model(profile_id, n))
    if record is None:
        raise NotFound(f"round {n} of {profile_id} has no model")
    return record


async def get_latest_model(tx: Tx, profile_id: str) -> dict[str, Any]:
    """The profile's most recent model."""
    await load_profile(tx, profile_id)
    pointer = await tx.get(keys.model_pointer(profile_id))
    if pointer is None:
        raise NotFound(f"profile {profile_id} has no model yet")
    record = await tx.get(keys.model(profile_id, pointer["round"]))
    if record is None:  # the pointer is only ever written with its model
        raise NotFound(f"profile {profile_id}'s latest model record is missing")
    return record


async def profile_history(tx: Tx, profile_id: str) -> dict[str, Any]:
    """The profile's lineage: every round and every model, oldest first."""
    profile = await load_profile(tx, profile_id)
    rounds = [r for _, r in await tx.scan("round", profile_id)]
    models = {m["round"]: m for _, m in await tx.scan("model", profile_id)}
    history = []
    for r in rounds:
        m = models.get(r["round"])
        history.append(
            {
                "round": r["round"],
                "status": r["status"],
                "coordinator": r["coordinator"],
                "participants": r["participants"],
                "base": {
                    "model": r["base_model"],
                    "profile": r.get("base_profile", profile_id),
                    "source": r.get("base_source", "own" if r["base_model"] else "initial"),
                },
                "failure": r["failure"],
                "model": None
                if m is None
                else {"sha256": m["sha256"], "uri": m["uri"], "metrics": m["metrics"]},
                "rewards": r.get("rewards"),
            }
        )
    return {
        "profile": profile_id,
        "status": profile["status"],
        "parent": profile["spec"]["parent"],
        "rounds": history,
    }
