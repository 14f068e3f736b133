"""Dataclasses the domain facade speaks: what the contract returns, typed for the rest of fedspec.

Metrics on the ledger are integers in micro-units (:data:`FIXED_POINT`), so consensus never
touches floats; :func:`to_fixed` and :func:`from_fixed` convert at the boundary.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FIXED_POINT = 1_000_000


def to_fixed(value: float) -> int:
    return round(float(value) * FIXED_POINT)


def from_fixed(value: int) -> float:
    return value / FIXED_POINT


def fixed_metrics(metrics: Mapping[str, float]) -> dict[str, int]:
    return {k: to_fixed(v) for k, v in metrics.items()}


def new_seed_secret() -> tuple[str, str]:
    """A fresh 32-byte election secret and its commitment (hex)."""
    secret = os.urandom(32)
    return secret.hex(), hashlib.sha256(secret).hexdigest()


@dataclass(frozen=True)
class Committed:
    """Where a submitted transaction landed."""

    transaction_id: str
    block_number: int


@dataclass(frozen=True)
class Profile:
    id: str
    status: str
    spec: dict[str, Any]
    proposed_by: str
    votes: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Profile:
        return cls(
            doc["id"],
            doc["status"],
            dict(doc["spec"]),
            doc["proposed_by"],
            list(doc.get("votes", [])),
        )


@dataclass(frozen=True)
class Round:
    profile: str
    number: int
    status: str
    phase: str
    coordinator: str
    participants: list[str]
    joined: list[str]
    revealed: list[str]
    base_model: str
    base_round: int
    min_nodes: int
    join_deadline: int
    reveal_deadline: int
    coordinator_deadline: int
    seed: str
    failure: dict[str, str] | None
    rewards: dict[str, int] | None
    raw: dict[str, Any]
    # Whose lineage the base model is in (the parent's, for a child's first round), the
    # source (own, parent, initial) and why, as the ledger decided when the round opened.
    base_profile: str = ""
    base_source: str = ""
    base_reason: str = ""

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Round:
        return cls(
            profile=doc["profile"],
            number=doc["round"],
            status=doc["status"],
            phase=doc.get("phase", doc["status"]),
            coordinator=doc["coordinator"],
            participants=list(doc["participants"]),
            joined=list(doc.get("joined", [])),
            revealed=list(doc.get("revealed", [])),
            base_model=doc["base_model"],
            base_round=doc["base_round"],
            min_nodes=doc["min_nodes"],
            join_deadline=doc["join_deadline"],
            reveal_deadline=doc["reveal_deadline"],
            coordinator_deadline=doc["coordinator_deadline"],
            seed=doc["seed"],
            failure=doc["failure"],
            rewards=doc.get("rewards"),
            raw=dict(doc),
            base_profile=str(doc.get("base_profile") or doc["profile"]),
            base_source=str(doc.get("base_source") or ("own" if doc["base_model"] else "initial")),
            base_reason=str(doc.get("base_reason") or ""),
        )


@dataclass(frozen=True)
class UpdateCommitment:
    """What a node commits for its update; the update itself stays off the ledger."""

    sha256: str
    num_samples: int
    validation_sha256: str
    validation_passed: bool = True
    validation_reason: str = ""
    epsilon: str = "0"
    delta: str = "0"
    metrics: Mapping[str, int] = field(default_factory=dict)
    uri: str = ""
    # What the node's data is (its dataset's characteristics), advertised with the update.
    characteristics: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "sha256": self.sha256,
            "num_samples": self.num_samples,
            "validation": {
                "summary_sha256": self.validation_sha256,
                "passed": self.validation_passed,
                "reason": self.validation_reason,
            },
            "privacy": {"epsilon": self.epsilon, "delta": self.delta},
            "metrics": dict(self.metrics),
            "uri": self.uri,
        }
        if self.characteristics is not None:
            doc["characteristics"] = dict(self.characteristics)
        return doc


@dataclass(frozen=True)
class ModelCommitment:
    sha256: str
    uri: str
    metrics: Mapping[str, int]
    inclusion: Mapping[str, str]  # node → update sha256
    contributions: Mapping[str, int]
    excluded: list[dict[str, str]] = field(default_factory=list)
    receipt: Mapping[str, Any] = field(default_factory=dict)
    alias: str = "champion"  # "challenger": recorded, but the next round trains from the champion

    def to_json(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "sha256": self.sha256,
            "uri": self.uri,
            "metrics": dict(self.metrics),
            "inclusion": [{"node": n, "sha256": h} for n, h in sorted(self.inclusion.items())],
            "contributions": dict(self.contributions),
            "excluded": list(self.excluded),
            "receipt": dict(self.receipt),
        }


@dataclass(frozen=True)
class ModelRecord:
    profile: str
    round: int
    sha256: str
    uri: str
    metrics: dict[str, int]
    coordinator: str
    inclusion: list[dict[str, str]]
    contributions: dict[str, int]
    receipt: dict[str, Any]
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ModelRecord:
        return cls(
            doc["profile"],
            doc["round"],
            doc["sha256"],
            doc["uri"],
            dict(doc["metrics"]),
            doc["coordinator"],
            list(doc["inclusion"]),
            dict(doc["contributions"]),
            dict(doc.get("receipt", {})),
            dict(doc),
        )

    @property
    def alias(self) -> str:
        """``champion`` (the next round trains from it) or ``challenger``."""
        return str(self.raw.get("alias", "champion"))
