"""One round's secure-aggregation parameters: context, cohort, threshold, vector shape."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from federated.errors import SecAggParameterError, SecAggProtocolError, ThresholdError
from federated.secagg.context import RoundContext
from federated.secagg.encoding import FixedPoint


def check_threshold(nodes: int, threshold: int) -> None:
    """Refuse a threshold ``t`` unless ``n/2 < t ≤ n`` (and ``t ≥ 2``).

    ``t ≤ n``: at least t nodes must be able to answer. ``t > n/2``: the coordinator decides
    who "dropped". Were ``t ≤ n/2``, it could tell one group of t nodes that node u dropped
    (collecting shares of u's mask-agreement key) and another, disjoint group that u
    survived (collecting shares of u's self-mask seed), and so remove every mask from u's
    vector. With ``t > n/2`` any two groups of t nodes share an honest node, and an honest
    node never reveals both kinds of share of the same peer in a round. ``t ≥ 2``: with
    ``t = 1`` any single share holder could unmask a node on its own.
    """
    if threshold > nodes:
        raise ThresholdError(
            f"threshold {threshold} is larger than the cohort of {nodes}",
            nodes=nodes,
            threshold=threshold,
        )
    if 2 * threshold <= nodes or threshold < 2:
        raise ThresholdError(
            f"threshold {threshold} must be a majority of the cohort of {nodes} "
            f"(at least {max(2, nodes // 2 + 1)})",
            nodes=nodes,
            threshold=threshold,
        )


@dataclass(frozen=True)
class SecAggParams:
    """What every party of one round agrees on before any key is exchanged."""

    context: RoundContext
    cohort: tuple[str, ...]
    threshold: int
    dimension: int
    encoding: FixedPoint = field(default_factory=FixedPoint)

    def __post_init__(self) -> None:
        cohort = tuple(sorted(self.cohort))
        if len(set(cohort)) != len(cohort) or not all(cohort):
            raise SecAggParameterError("cohort node ids must be non-empty and distinct")
        object.__setattr__(self, "cohort", cohort)
        if self.dimension < 1:
            raise SecAggParameterError(f"dimension must be >= 1, got {self.dimension}")
        check_threshold(len(cohort), self.threshold)
        self.encoding.check_capacity(len(cohort))

    @classmethod
    def create(
        cls,
        profile_id: str,
        round_: int,
        cohort: Sequence[str],
        *,
        threshold: int,
        dimension: int,
        encoding: FixedPoint | None = None,
    ) -> SecAggParams:
        """Build from plain values (the context is made here)."""
        return cls(
            RoundContext(profile_id, round_),
            tuple(cohort),
            threshold,
            dimension,
            encoding or FixedPoint(),
        )

    def index(self, node_id: str) -> int:
        """The node's Shamir x-coordinate: its 1-based position in the sorted cohort."""
        try:
            return self.cohort.index(node_id) + 1
        except ValueError:
            raise SecAggProtocolError(
                f"{node_id!r} is not in the round's cohort", node_id=node_id
            ) from None
