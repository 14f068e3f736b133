"""Coordinator election from commit-reveal seeds, weighted by reputation.

Every participant commits ``sha256(secret)`` when joining and reveals ``secret`` afterwards.
The seed is the sha256 of every revealed ``(node, secret)`` in node-id order, so no single
participant controls it unless it is the last to reveal, and withholding a reveal excludes
the node and costs reputation, which bounds what that last-revealer choice can buy.
Chaincode sees neither block hashes nor a fair clock, and a transaction id is chosen by its
submitter, so none of those is a usable randomness source.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence


def commitment(secret: bytes) -> str:
    return hashlib.sha256(secret).hexdigest()


def seed_from_reveals(reveals: Mapping[str, str]) -> str:
    h = hashlib.sha256(b"fedspec-election-v1")
    for node_id in sorted(reveals):
        h.update(hashlib.sha256(node_id.encode()).digest())
        h.update(bytes.fromhex(reveals[node_id]))
    return h.hexdigest()


def reseed(seed: str, attempt: int) -> str:
    """The seed for the ``attempt``-th replacement of a coordinator that missed its deadline."""
    return hashlib.sha256(bytes.fromhex(seed) + b"replace" + attempt.to_bytes(4, "big")).hexdigest()


def draw(seed: str, weights: Mapping[str, int], exclude: Sequence[str] = ()) -> str | None:
    """Pick one candidate with probability proportional to its (integer) weight."""
    candidates = sorted(n for n in weights if n not in exclude and weights[n] > 0)
    total = sum(weights[n] for n in candidates)
    if total == 0:
        return None
    ticket = int(seed, 16) % total
    for node_id in candidates:
        ticket -= weights[node_id]
        if ticket < 0:
            return node_id
    raise AssertionError("unreachable: tickets are below the total weight")
