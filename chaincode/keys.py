"""Composite keys in Fabric's format, one record per entity (no global counters, no hot keys).

Fabric's composite key is ``\\x00`` + object type + ``\\x00`` + each attribute + ``\\x00``; a
partial key is a range prefix. Round numbers are zero-padded so that keys sort numerically.
"""

from __future__ import annotations

from chaincode.errors import InvalidArgument

NS = "\x00"
MAX_RUNE = "\U0010ffff"


def composite(object_type: str, *attributes: str) -> str:
    for part in (object_type, *attributes):
        if NS in part or MAX_RUNE in part or not isinstance(part, str):
            raise InvalidArgument("key attributes may not contain U+0000 or U+10FFFF")
    return NS + object_type + NS + "".join(a + NS for a in attributes)


def split(key: str) -> tuple[str, list[str]]:
    parts = key[1:].split(NS)
    return parts[0], parts[1:-1]


def prefix_range(object_type: str, *attributes: str) -> tuple[str, str]:
    start = composite(object_type, *attributes)
    return start, start + MAX_RUNE


def round_no(n: int) -> str:
    return f"{n:010d}"


CONSORTIUM = composite("consortium")


def node(node_id: str) -> str:
    return composite("node", node_id)


def profile(profile_id: str) -> str:
    return composite("profile", profile_id)


def vote(profile_id: str, action: str, org: str) -> str:
    return composite("vote", profile_id, action, org)


def volunteer(profile_id: str, node_id: str) -> str:
    return composite("vol", profile_id, node_id)


def round_pointer(profile_id: str) -> str:
    return composite("rptr", profile_id)


def round_(profile_id: str, n: int) -> str:
    return composite("round", profile_id, round_no(n))


def join(profile_id: str, n: int, node_id: str) -> str:
    return composite("join", profile_id, round_no(n), node_id)


def reveal(profile_id: str, n: int, node_id: str) -> str:
    return composite("reveal", profile_id, round_no(n), node_id)


def update(profile_id: str, n: int, node_id: str) -> str:
    return composite("update", profile_id, round_no(n), node_id)


def model(profile_id: str, n: int) -> str:
    return composite("model", profile_id, round_no(n))


def model_pointer(profile_id: str) -> str:
    return composite("mptr", profile_id)


def champion_pointer(profile_id: str) -> str:
    return composite("cptr", profile_id)


def budget(node_id: str, profile_id: str) -> str:
    return composite("budget", node_id, profile_id)


def token_entry(node_id: str, ref: str) -> str:
    return composite("tok", node_id, ref)


def penalty(node_id: str, ref: str) -> str:
    return composite("penalty", node_id, ref)


def demand(signature: str, request_id: str) -> str:
    return composite("demand", signature, request_id)


def member_change(org: str, seq: int) -> str:
    """A proposal to add or remove organization ``org``; ``seq`` counts its proposals."""
    return composite("mchange", org, round_no(seq))


def member_vote(org: str, seq: int, voter: str) -> str:
    return composite("mvote", org, round_no(seq), voter)
