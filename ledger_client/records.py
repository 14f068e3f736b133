"""Dataclasses the domain facade speaks: what the contract returns, typed for the rest of fedspec.

Metrics on the ledger are integers in micro-units (:data:`FIXED_POINT`), so consensus never
touches floats; :func:`to_fixed` and :func:`from_fixed` convert at the boundary.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from fedspec.lazy import LazyProperty

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
class Submitted:
    """A committed transaction: what the contract returned (parsed JSON), and where it landed."""

    result: Any
    commit: Committed


class _Document:
    """A record that keeps the contract's JSON whole in ``raw`` (fields a newer chaincode
    adds survive); :meth:`to_json` gives that JSON back, as ``--json`` prints it."""

    raw: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return dict(self.raw)


@dataclass(frozen=True)
class Profile:
    id: str
    status: str
    spec: dict[str, Any]
    proposed_by: str
    votes: list[dict[str, Any]] = field(default_factory=list)
    # Where the write that returned this record landed (None for a read): metadata, not
    # content, so a write's record and a later read of it compare equal.
    commit: Committed | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], commit: Committed | None = None) -> Profile:
        return cls(
            doc["id"],
            doc["status"],
            dict(doc["spec"]),
            doc["proposed_by"],
            list(doc.get("votes", [])),
            commit,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "spec": self.spec,
            "proposed_by": self.proposed_by,
            "votes": self.votes,
        }


@dataclass(frozen=True)
class Round(_Document):
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
    commit: Committed | None = field(default=None, compare=False)

    # Views that every node agent of a process asks of the one read of the round they share
    # (ledger_client.round_watch), each time an event wakes them: computed once per read,
    # not once per agent and wake-up, which made each event cost O(N) per agent, O(N^2) in
    # all, at N nodes.
    @LazyProperty
    def joined_set(self) -> frozenset[str]:
        return frozenset(self.joined)

    @LazyProperty
    def revealed_set(self) -> frozenset[str]:
        return frozenset(self.revealed)

    @LazyProperty
    def first_joined(self) -> str:
        """The first joined node by id (who reveals first, and elects), or ``""``."""
        return min(self.joined) if self.joined else ""

    @LazyProperty
    def all_revealed(self) -> bool:
        """Joining closed and every joined node revealed: the round can be elected."""
        return (
            bool(self.joined) and self.phase == "revealing" and self.revealed_set == self.joined_set
        )

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], commit: Committed | None = None) -> Round:
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
            commit=commit,
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
class ModelRecord(_Document):
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
    commit: Committed | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], commit: Committed | None = None) -> ModelRecord:
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
            commit,
        )

    @property
    def alias(self) -> str:
        """``champion`` (the next round trains from it) or ``challenger``."""
        return str(self.raw.get("alias", "champion"))


# ---------------------------------------------------------------- consortium and nodes
@dataclass(frozen=True)
class ConsortiumRecord(_Document):
    """The member organizations, as ``InitConsortium`` recorded them."""

    orgs: list[str]
    initialized_by: str
    initialized_at: int
    raw: Mapping[str, Any]
    commit: Committed | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], commit: Committed | None = None) -> ConsortiumRecord:
        return cls(
            list(doc["orgs"]), doc["initialized_by"], doc["initialized_at"], dict(doc), commit
        )


@dataclass(frozen=True)
class Node(_Document):
    """A registered training node (``RegisterNode``, ``GetNode``, ``ListNodes``)."""

    id: str
    org: str
    cert_sha256: str
    registered_at: int
    raw: Mapping[str, Any]
    # 100 minus its penalty points, at least 1: ``GetNode`` reads it, the others leave it out.
    reputation: int | None = None
    commit: Committed | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], commit: Committed | None = None) -> Node:
        reputation = doc.get("reputation")
        return cls(
            doc["id"],
            doc["org"],
            doc["cert_sha256"],
            doc["registered_at"],
            dict(doc),
            None if reputation is None else int(reputation),
            commit,
        )


@dataclass(frozen=True)
class Vote(_Document):
    """An organization's vote on a profile (``VoteProfile``), and where the tally stands."""

    profile: str
    action: str  # activate, retire
    org: str
    approve: bool
    approvals: int
    rejections: int
    members: int
    outcome: str  # pending, or what the vote decided: active, retired, rejected
    status: str  # the profile's status after the vote
    raw: Mapping[str, Any]
    commit: Committed | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], commit: Committed | None = None) -> Vote:
        return cls(
            doc["profile"],
            doc["action"],
            doc["org"],
            doc["approve"],
            doc["approvals"],
            doc["rejections"],
            doc["members"],
            doc["outcome"],
            doc["status"],
            dict(doc),
            commit,
        )


# ---------------------------------------------------------------- demand
@dataclass(frozen=True)
class DemandRecord(_Document):
    """One requester's demand for one characteristic set (``RecordDemand``)."""

    signature: str  # the hash of the normalized characteristics
    characteristics: dict[str, Any]  # normalized
    requester: str
    org: str
    requests: int  # this requester's, so far
    first_at: int
    last_at: int
    raw: Mapping[str, Any]
    commit: Committed | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], commit: Committed | None = None) -> DemandRecord:
        return cls(
            doc["signature"],
            dict(doc["characteristics"]),
            doc["requester"],
            doc["org"],
            doc["requests"],
            doc["first_at"],
            doc["last_at"],
            dict(doc),
            commit,
        )


@dataclass(frozen=True)
class DemandGroup(_Document):
    """The demand for one characteristic set over every requester (``ListDemand``), with the
    proposed or active profiles that cover it."""

    signature: str
    characteristics: dict[str, Any]
    requests: int
    requesters: list[str]
    orgs: list[str]
    first_at: int
    last_at: int
    profiles: list[str]
    raw: Mapping[str, Any]

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> DemandGroup:
        return cls(
            doc["signature"],
            dict(doc["characteristics"]),
            doc["requests"],
            list(doc["requesters"]),
            list(doc["orgs"]),
            doc["first_at"],
            doc["last_at"],
            list(doc.get("profiles", [])),
            dict(doc),
        )


# ---------------------------------------------------------------- rounds
@dataclass(frozen=True)
class RoundSummary(_Document):
    """A round as ``ListRounds`` lists it: no phase, joins or reveals (:class:`Round` has them)."""

    profile: str
    number: int
    status: str
    coordinator: str
    participants: list[str]
    base_model: str
    join_deadline: int
    reveal_deadline: int
    coordinator_deadline: int
    failure: dict[str, str] | None
    raw: Mapping[str, Any]
    base_profile: str = ""  # whose lineage ``base_model`` is in

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> RoundSummary:
        return cls(
            profile=doc["profile"],
            number=doc["round"],
            status=doc["status"],
            coordinator=doc["coordinator"],
            participants=list(doc["participants"]),
            base_model=doc["base_model"],
            join_deadline=doc["join_deadline"],
            reveal_deadline=doc["reveal_deadline"],
            coordinator_deadline=doc["coordinator_deadline"],
            failure=doc.get("failure"),
            raw=dict(doc),
            base_profile=str(doc.get("base_profile") or doc["profile"]),
        )


# ---------------------------------------------------------------- updates and privacy budgets
@dataclass(frozen=True)
class EpsilonDelta:
    """A privacy amount (ε, δ) as the ledger keeps it: exact decimal strings, never floats."""

    epsilon: str
    delta: str

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> EpsilonDelta:
        return cls(doc["epsilon"], doc["delta"])

    def to_json(self) -> dict[str, str]:
        return {"epsilon": self.epsilon, "delta": self.delta}


@dataclass(frozen=True)
class UpdateValidation:
    """A node's verdict on its own data: the summary's hash, passed or not, and why not."""

    summary_sha256: str
    passed: bool
    reason: str = ""


@dataclass(frozen=True)
class UpdateRecord(_Document):
    """A node's committed update (``SubmitUpdate``, ``GetUpdate``, ``ListUpdates``): its hash,
    its validation verdict and its privacy spend; the update itself stays off the ledger."""

    profile: str
    round: int
    node: str
    sha256: str  # "" when the node's data failed validation: nothing was trained
    num_samples: int
    validation: UpdateValidation
    privacy: EpsilonDelta
    metrics: dict[str, int]  # fixed point
    uri: str
    characteristics: dict[str, Any] | None  # what the node advertised about its data
    raw: Mapping[str, Any]
    commit: Committed | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], commit: Committed | None = None) -> UpdateRecord:
        validation = doc["validation"]
        characteristics = doc.get("characteristics")
        return cls(
            doc["profile"],
            doc["round"],
            doc["node"],
            doc.get("sha256", ""),
            doc["num_samples"],
            UpdateValidation(
                validation["summary_sha256"], validation["passed"], validation.get("reason", "")
            ),
            EpsilonDelta.from_json(doc.get("privacy") or {"epsilon": "0", "delta": "0"}),
            dict(doc.get("metrics") or {}),
            doc.get("uri", ""),
            None if characteristics is None else dict(characteristics),
            dict(doc),
            commit,
        )


@dataclass(frozen=True)
class Budget(_Document):
    """A node's privacy spend on a profile and what is left of it (``GetBudget``), exact."""

    node: str
    profile: str
    mode: str  # the profile's privacy mode; "none": nothing is spent, nothing runs out
    spent: EpsilonDelta
    rounds: int  # rounds that spent any of it
    budget: EpsilonDelta | None  # None without a privacy mode
    remaining: EpsilonDelta | None  # None without a privacy mode
    raw: Mapping[str, Any]

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Budget:
        budget, remaining = doc.get("budget"), doc.get("remaining")
        return cls(
            doc["node"],
            doc["profile"],
            doc["mode"],
            EpsilonDelta.from_json(doc["spent"]),
            int(doc["rounds"]),
            None if budget is None else EpsilonDelta.from_json(budget),
            None if remaining is None else EpsilonDelta.from_json(remaining),
            dict(doc),
        )

    @property
    def exhausted(self) -> bool:
        """Nothing left of ε or of δ: the ledger refuses any update that spends."""
        return self.remaining is not None and (
            Fraction(self.remaining.epsilon) == 0 or Fraction(self.remaining.delta) == 0
        )


# ---------------------------------------------------------------- lineage
@dataclass(frozen=True)
class ModelSource:
    """The model a round trained from: its hash (``""``: seeded initial weights), the profile
    whose lineage holds it, and where it came from (own, parent, initial)."""

    model: str
    profile: str
    source: str


@dataclass(frozen=True)
class ModelSummary:
    """A round's committed model, as a profile's lineage lists it."""

    sha256: str
    uri: str
    metrics: dict[str, int]  # fixed point


@dataclass(frozen=True)
class HistoryRound:
    """One round of a profile's lineage."""

    number: int
    status: str
    coordinator: str
    participants: list[str]
    base: ModelSource
    failure: dict[str, str] | None
    model: ModelSummary | None  # None: the round committed no model
    rewards: dict[str, int] | None  # None: nothing minted (yet)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> HistoryRound:
        base, model = doc["base"], doc.get("model")
        return cls(
            doc["round"],
            doc["status"],
            doc["coordinator"],
            list(doc["participants"]),
            ModelSource(base["model"], base["profile"], base["source"]),
            doc.get("failure"),
            None
            if model is None
            else ModelSummary(model["sha256"], model["uri"], dict(model["metrics"])),
            doc.get("rewards"),
        )


@dataclass(frozen=True)
class ProfileHistory(_Document):
    """A profile's lineage (``GetProfileHistory``): every round and its model, oldest first."""

    profile: str
    status: str
    parent: str | None
    rounds: list[HistoryRound]
    raw: Mapping[str, Any]

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ProfileHistory:
        return cls(
            doc["profile"],
            doc["status"],
            doc.get("parent"),
            [HistoryRound.from_json(r) for r in doc["rounds"]],
            dict(doc),
        )


# ---------------------------------------------------------------- rewards
@dataclass(frozen=True)
class Minted(_Document):
    """A closed round's reward (``MintRewards``): tokens per node, summing to the total."""

    profile: str
    round: int
    amounts: dict[str, int]
    total: int
    raw: Mapping[str, Any]
    commit: Committed | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], commit: Committed | None = None) -> Minted:
        amounts = {str(k): int(v) for k, v in doc["amounts"].items()}
        # A repeated mint returns the amounts only; the split is exact, so they sum to it.
        total = int(doc.get("total", sum(amounts.values())))
        return cls(doc["profile"], doc["round"], amounts, total, dict(doc), commit)


@dataclass(frozen=True)
class Balance(_Document):
    """A node's tokens (``GetBalance``): the sum of its entries, and that sum by kind."""

    node: str
    balance: int
    by_kind: dict[str, int]  # reward, transfer
    entries: int
    raw: Mapping[str, Any]

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Balance:
        return cls(
            doc["node"],
            int(doc["balance"]),
            {str(k): int(v) for k, v in doc["by_kind"].items()},
            int(doc["entries"]),
            dict(doc),
        )


@dataclass(frozen=True)
class Balances(_Document):
    """Tokens per node and per organization (``GetBalances``)."""

    nodes: dict[str, int]
    orgs: dict[str, int]
    total: int
    raw: Mapping[str, Any]

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Balances:
        return cls(
            {str(k): int(v) for k, v in doc["nodes"].items()},
            {str(k): int(v) for k, v in doc["orgs"].items()},
            int(doc["total"]),
            dict(doc),
        )


@dataclass(frozen=True)
class Transferred(_Document):
    """Tokens moved from one node to another (``Transfer``)."""

    from_node: str
    to_node: str
    amount: int
    raw: Mapping[str, Any]
    commit: Committed | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], commit: Committed | None = None) -> Transferred:
        return cls(doc["from"], doc["to"], int(doc["amount"]), dict(doc), commit)


# ---------------------------------------------------------------- the chain itself
@dataclass(frozen=True)
class ChainInfo:
    """The channel's height and the hashes of its last two blocks, as one peer reports them."""

    height: int
    current_block_hash: str  # hex
    previous_block_hash: str  # hex

    def to_json(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "current_block_hash": self.current_block_hash,
            "previous_block_hash": self.previous_block_hash,
        }


@dataclass(frozen=True)
class MemberChange(_Document):
    """A proposal to add or remove an organization (``ProposeMember``, ``ProposeRemoval``)."""

    id: str  # "<org>:<seq>"
    org: str
    action: str  # add, remove
    status: str  # proposed, approved, rejected
    fingerprint: str  # the bundle's, for an addition
    proposed_by: str
    votes: list[dict[str, Any]]
    raw: Mapping[str, Any]
    commit: Committed | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], commit: Committed | None = None) -> MemberChange:
        return cls(
            doc["id"],
            doc["org"],
            doc["action"],
            doc["status"],
            doc.get("fingerprint", ""),
            doc["proposed_by"],
            list(doc.get("votes", [])),
            dict(doc),
            commit,
        )


@dataclass(frozen=True)
class MemberVote(_Document):
    """An organization's vote on a membership change (``VoteMember``) and the tally."""

    change: str
    org: str
    action: str
    voter: str
    approve: bool
    approvals: int
    rejections: int
    members: int
    status: str  # the change's status after the vote: proposed, approved, rejected
    raw: Mapping[str, Any]
    commit: Committed | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], commit: Committed | None = None) -> MemberVote:
        return cls(
            doc["change"],
            doc["org"],
            doc["action"],
            doc["voter"],
            doc["approve"],
            doc["approvals"],
            doc["rejections"],
            doc["members"],
            doc["status"],
            dict(doc),
            commit,
        )
