"""Byzantine-robust aggregation: coordinate-wise median, trimmed mean, Multi-Krum.

Each bounds what a minority of arbitrary (poisoned, sign-flipped, scaled) updates can do
to the global model, at some cost in statistical efficiency on clean rounds. Median and
trimmed mean are unweighted per coordinate (a node's claimed sample count is not trusted);
Multi-Krum averages the updates it keeps with FedAvg's sample weights, as in Flower.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from federated.strategies._common import (
    aggregated,
    array_parameters,
    array_updates,
    empty_round,
    like_current,
)
from federated.strategies.aggregate import (
    coordinate_median,
    multi_krum_select,
    pairwise_sq_distances,
    trimmed_mean,
    weighted_mean,
)
from federated.types import AggregateResult, FitFailure, FitResult, GlobalModel, NDArrays, Scalar

KRUM_DROPPED = "KRUM_DROPPED"
"""The code of a node whose update Multi-Krum left out of the average."""

# The combined layers, the results that entered them, extra metrics, the results left out.
_Combined = tuple[NDArrays, Sequence[FitResult], dict[str, Scalar], list[FitFailure]]


class _RobustBase:
    name: ClassVar[str]

    def node_config(self, server_round: int) -> dict[str, Scalar]:
        """Hyper-parameters every node must train with this round (none)."""
        del server_round
        return {}

    def unwrapped(self) -> _RobustBase:
        """Itself: a bare strategy."""
        return self

    def _combine(self, updates: list[NDArrays], results: Sequence[FitResult]) -> _Combined:
        raise NotImplementedError

    def aggregate_fit(
        self,
        server_round: int,
        current: GlobalModel,
        results: Sequence[FitResult],
        failures: Sequence[FitFailure],
    ) -> AggregateResult:
        """The robust combination of the results' parameters; state passes through."""
        del server_round
        base = array_parameters(current, self.name)
        if not results:
            return empty_round(self.name, failures)
        updates = array_updates(base, results, self.name)
        combined, included, extra, dropped = self._combine(updates, results)
        model = GlobalModel(current.family, like_current(combined, base), current.server_state)
        result = aggregated(model, self.name, results, [*failures, *dropped], included)
        # num_failures counts the nodes that failed before aggregation, as for every rule.
        return result.with_metrics({**extra, "num_failures": len(failures)})


class CoordinateMedian(_RobustBase):
    """Coordinate-wise median (Yin et al., 2018): robust to fewer than half bad updates."""

    name: ClassVar[str] = "median"

    def _combine(self, updates: list[NDArrays], results: Sequence[FitResult]) -> _Combined:
        return coordinate_median(updates), results, {}, []

    def __repr__(self) -> str:
        return "CoordinateMedian()"


class TrimmedMean(_RobustBase):
    """Coordinate-wise mean after dropping ``int(proportion·N)`` values at each end.

    Tolerates up to that many bad updates per side; ``proportion`` must exceed the share of
    attackers you expect (0.3 against 30 %).
    """

    name: ClassVar[str] = "trimmed-mean"

    def __init__(self, *, proportion: float = 0.2) -> None:
        if not 0.0 <= proportion < 0.5:
            raise ValueError(f"proportion must be in [0, 0.5), got {proportion}")
        self.proportion = proportion

    def _combine(self, updates: list[NDArrays], results: Sequence[FitResult]) -> _Combined:
        # With too few updates to trim, fall back to the largest cut that leaves one value.
        cut = min(int(self.proportion * len(updates)), (len(updates) - 1) // 2)
        proportion = cut / len(updates) if cut else 0.0
        combined = trimmed_mean(updates, proportion)
        return combined, results, {"trimmed_per_side": cut}, []

    def __repr__(self) -> str:
        return f"TrimmedMean(proportion={self.proportion})"


class MultiKrum(_RobustBase):
    """Multi-Krum (Blanchard et al., 2017): keep the updates closest to their neighbours.

    Each update is scored by the summed squared distances to its ``N − f − 2`` nearest
    others; the ``num_to_keep`` lowest scores (default ``N − f``) are averaged with sample
    weights. Its guarantee needs ``N ≥ 2f + 3``.
    """

    name: ClassVar[str] = "multi-krum"

    def __init__(self, *, num_malicious: int = 0, num_to_keep: int | None = None) -> None:
        if num_malicious < 0:
            raise ValueError(f"num_malicious must be >= 0, got {num_malicious}")
        if num_to_keep is not None and num_to_keep < 1:
            raise ValueError(f"num_to_keep must be >= 1, got {num_to_keep}")
        self.num_malicious = num_malicious
        self.num_to_keep = num_to_keep

    def _combine(self, updates: list[NDArrays], results: Sequence[FitResult]) -> _Combined:
        n = len(updates)
        keep = self.num_to_keep if self.num_to_keep is not None else n - self.num_malicious
        keep = min(max(1, keep), n)
        chosen = multi_krum_select(pairwise_sq_distances(updates), self.num_malicious, keep)
        indices = [int(i) for i in chosen]
        kept = [results[i] for i in indices]
        combined = weighted_mean([updates[i] for i in indices], [r.num_examples for r in kept])
        reason = (
            f"Krum score not among the {keep} lowest of {n} updates "
            f"(num_malicious={self.num_malicious})"
        )
        kept_indices = set(indices)
        dropped = [
            FitFailure(r.node_id, KRUM_DROPPED, reason)
            for i, r in enumerate(results)
            if i not in kept_indices
        ]
        return combined, kept, {"krum_dropped": len(dropped)}, dropped

    def __repr__(self) -> str:
        return f"MultiKrum(num_malicious={self.num_malicious}, num_to_keep={self.num_to_keep})"
