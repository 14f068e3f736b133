"""Argument parsing and access checks shared by every transaction."""

from __future__ import annotations

import re
from typing import Any

from chaincode import keys
from chaincode.context import Tx
from chaincode.errors import FailedPrecondition, Forbidden, InvalidArgument, NotFound

_HEX64 = re.compile(r"[0-9a-f]{64}")
_NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}/[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")
_PROFILE_ID = re.compile(r"[a-z0-9][a-z0-9._-]{1,62}")
_ORG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def parse_int(text: str, what: str, *, minimum: int = 0, maximum: int = 10**15) -> int:
    if not isinstance(text, str) or not re.fullmatch(r"-?[0-9]{1,16}", text):
        raise InvalidArgument(f"{what} must be an integer, got {text!r:.40}")
    value = int(text)
    if not minimum <= value <= maximum:
        raise InvalidArgument(f"{what} must be between {minimum} and {maximum}, got {value}")
    return value


def parse_bool(text: str, what: str) -> bool:
    if text not in ("true", "false"):
        raise InvalidArgument(f"{what} must be 'true' or 'false', got {text!r:.40}")
    return text == "true"


def check_sha256(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise InvalidArgument(f"{what} must be 64 lower-case hex characters (a sha256)")
    return value


def check_profile_id(value: Any) -> str:
    if not isinstance(value, str) or not _PROFILE_ID.fullmatch(value):
        raise InvalidArgument(f"profile id {value!r:.80} is not a valid id")
    return value


def check_node_id(value: Any, what: str = "node id") -> str:
    if not isinstance(value, str) or not _NODE_ID.fullmatch(value):
        raise InvalidArgument(f"{what} {value!r:.80} is not of the form <msp>/<name>")
    return value


def check_org(value: Any) -> str:
    if not isinstance(value, str) or not _ORG.fullmatch(value):
        raise InvalidArgument(f"organization {value!r:.80} is not a valid MSP id")
    return value


def check_int_map(value: Any, what: str, *, max_items: int = 64) -> dict[str, int]:
    """Metrics and scores are integers (fixed point) so that consensus never touches floats."""
    if not isinstance(value, dict) or len(value) > max_items:
        raise InvalidArgument(f"{what} must be an object of at most {max_items} entries")
    for name, number in value.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_./@-]{1,200}", name):
            raise InvalidArgument(f"{what}: key {name!r:.60} is not allowed")
        if not isinstance(number, int) or isinstance(number, bool) or abs(number) > 10**18:
            raise InvalidArgument(
                f"{what}.{name} must be an integer (fixed point), got {number!r:.40}"
            )
    return dict(value)


async def consortium(tx: Tx) -> list[str]:
    record = await tx.get(keys.CONSORTIUM)
    if record is None:
        raise FailedPrecondition("the consortium is not initialized (InitConsortium)")
    orgs: list[str] = record["orgs"]
    return orgs


async def require_member(tx: Tx) -> list[str]:
    orgs = await consortium(tx)
    if tx.creator.msp_id not in orgs:
        raise Forbidden(f"{tx.creator.msp_id} is not a member of the consortium")
    return orgs


async def require_node(tx: Tx) -> dict[str, Any]:
    """The caller must be a registered training node (client role)."""
    await require_member(tx)
    tx.creator.require_role("client")
    record = await tx.get(keys.node(tx.creator.id))
    if record is None:
        raise Forbidden(f"{tx.creator.id} is not a registered node (RegisterNode first)")
    if record["cert_sha256"] != tx.creator.cert_sha256:
        raise Forbidden(f"{tx.creator.id} is registered with another certificate")
    return record


async def load_profile(tx: Tx, profile_id: str) -> dict[str, Any]:
    record = await tx.get(keys.profile(check_profile_id(profile_id)))
    if record is None:
        raise NotFound(f"profile {profile_id} does not exist")
    return record


async def require_active_profile(tx: Tx, profile_id: str) -> dict[str, Any]:
    record = await load_profile(tx, profile_id)
    if record["status"] != "active":
        raise FailedPrecondition(f"profile {profile_id} is {record['status']}, not active")
    return record
