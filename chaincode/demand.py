"""Demand for profiles that do not exist yet: what clients asked for and found no good fit.

A client whose request no active profile fits well records the request's *characteristics*
(``{"modality": "image", "resolution": "16x16"}``): never rows, never a model input. Requests
are grouped by a canonical hash of the normalized characteristics (the *signature*), one
record per requester identity and signature holding that requester's count, so that
requesters never write each other's records (no hot key) and one identity asking again and
again is visible as one requester. Once a signature's demand passes a threshold (requests
and distinct requesters, chosen by whoever reads :func:`list_demand`), a member proposes a
profile for it through the normal vote.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from chaincode import keys
from chaincode.common import parse_int, require_member
from chaincode.context import Tx, canonical
from chaincode.errors import Forbidden
from chaincode.schema import parse_json_argument, validate_characteristics

MAX_DEMAND_BYTES = 8 * 1024
# A profile covers a demand while it may still serve it.
_COVERING = ("proposed", "active")


def normalize(characteristics: Mapping[str, Any]) -> dict[str, Any]:
    """Text trimmed and lower-cased, lists as sorted sets: ``8X8`` and ``8x8``, or
    ``[y, x]`` and ``[x, y]``, are one demand."""
    out: dict[str, Any] = {}
    for key, value in characteristics.items():
        if isinstance(value, str):
            out[key] = value.strip().lower()
        elif isinstance(value, list):
            out[key] = sorted({str(v).strip().lower() for v in value})
        else:
            out[key] = value  # integers and booleans
    return out


def signature(characteristics: Mapping[str, Any]) -> str:
    """The canonical hash of normalized characteristics: the key demand is counted under."""
    return hashlib.sha256(canonical(normalize(characteristics))).hexdigest()


async def record_demand(tx: Tx, characteristics_json: str) -> dict[str, Any]:
    """A member records the characteristics of a request no profile fits well."""
    await require_member(tx)
    if tx.creator.role not in ("admin", "client"):
        raise Forbidden(f"{tx.creator.id} ({tx.creator.role}) may not record demand")
    document = parse_json_argument(characteristics_json, "characteristics", MAX_DEMAND_BYTES)
    wanted = normalize(validate_characteristics(document, "characteristics"))
    sig = signature(wanted)
    key = keys.demand(sig, tx.creator.id)
    existing = await tx.get(key)
    record = {
        "signature": sig,
        "characteristics": wanted,
        "requester": tx.creator.id,
        "org": tx.creator.msp_id,
        "requests": 1 + (int(existing["requests"]) if existing else 0),
        "first_at": existing["first_at"] if existing else tx.timestamp,
        "last_at": tx.timestamp,
    }
    await tx.put(key, record)
    tx.emit(
        "DemandRecorded",
        {
            "signature": sig,
            "characteristics": wanted,
            "requester": tx.creator.id,
            "requests": record["requests"],
        },
    )
    return record


async def list_demand(
    tx: Tx, min_requests_text: str, min_requesters_text: str
) -> list[dict[str, Any]]:
    """Demand per characteristic set, most requested first, with the profiles covering it."""
    await require_member(tx)
    min_requests = parse_int(min_requests_text or "0", "min_requests", minimum=0)
    min_requesters = parse_int(min_requesters_text or "0", "min_requesters", minimum=0)
    groups: dict[str, dict[str, Any]] = {}
    for _, record in await tx.scan("demand"):
        group = groups.setdefault(
            record["signature"],
            {
                "signature": record["signature"],
                "characteristics": record["characteristics"],
                "requests": 0,
                "requesters": [],
                "orgs": [],
                "first_at": record["first_at"],
                "last_at": record["last_at"],
            },
        )
        group["requests"] += int(record["requests"])
        group["requesters"].append(record["requester"])
        if record["org"] not in group["orgs"]:
            group["orgs"].append(record["org"])
        group["first_at"] = min(group["first_at"], record["first_at"])
        group["last_at"] = max(group["last_at"], record["last_at"])
    profiles = [r for _, r in await tx.scan("profile") if r["status"] in _COVERING]
    out = []
    for group in groups.values():
        if group["requests"] < min_requests or len(group["requesters"]) < min_requesters:
            continue
        group["requesters"] = sorted(group["requesters"])
        group["orgs"] = sorted(group["orgs"])
        group["profiles"] = sorted(
            p["id"] for p in profiles if _covers(p["spec"]["characteristics"], group)
        )
        out.append(group)
    return sorted(out, key=lambda g: (-g["requests"], g["signature"]))


def _covers(declared: Mapping[str, Any], group: Mapping[str, Any]) -> bool:
    """Whether a profile declares every demanded characteristic with an equal value."""
    have = normalize(declared)
    for key, want in group["characteristics"].items():
        if key not in have:
            return False
        value = have[key]
        if isinstance(value, list):
            if not (set(want) <= set(value) if isinstance(want, list) else want in value):
                return False
        elif value != want:
            return False
    return True
