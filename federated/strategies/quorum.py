"""k-of-n quorum: a round needs at least the profile's minimum number of usable updates."""

from __future__ import annotations

from collections.abc import Sequence

from federated.errors import QuorumNotMetError
from federated.types import AggregateResult, FitFailure, FitResult, GlobalModel, Scalar, Strategy


class Quorum:
    """Wrapper: raise ``QuorumNotMetError`` when fewer than ``min_nodes`` results remain.

    Raising (rather than Flower's quiet ``None``) is deliberate: a round without quorum must
    end as a recorded failure with its reason, and an exception with a stable code cannot be
    mistaken for "no change" by the flow that commits models. Place it inside the wrappers
    that refuse updates (screen, privacy check), so it counts what is actually usable.
    """

    def __init__(self, strategy: Strategy, *, min_nodes: int) -> None:
        if min_nodes < 1:
            raise ValueError(f"min_nodes must be >= 1, got {min_nodes}")
        self.strategy = strategy
        self.min_nodes = min_nodes

    def node_config(self, server_round: int) -> dict[str, Scalar]:
        """The inner strategy's node configuration."""
        return self.strategy.node_config(server_round)

    def unwrapped(self) -> Strategy:
        """The bare strategy inside this wrapper (and any it wraps)."""
        return self.strategy.unwrapped()

    def aggregate_fit(
        self,
        server_round: int,
        current: GlobalModel,
        results: Sequence[FitResult],
        failures: Sequence[FitFailure],
    ) -> AggregateResult:
        """Delegate when the quorum is met; raise ``QuorumNotMetError`` otherwise."""
        if len(results) < self.min_nodes:
            ordered = sorted(failures, key=lambda f: (f.node_id, f.code))
            left_out = "; ".join(f"{f.node_id}: {f.reason}" for f in ordered)
            reasons = f" Left out: {left_out}." if failures else ""
            raise QuorumNotMetError(
                f"round {server_round}: {len(results)} usable updates, the profile needs "
                f"at least {self.min_nodes}.{reasons}",
                round=server_round,
                usable=len(results),
                min_nodes=self.min_nodes,
                failures=[(f.node_id, f.code, f.reason) for f in failures],
            )
        result = self.strategy.aggregate_fit(server_round, current, results, failures)
        return result.with_metrics({"min_nodes": self.min_nodes})

    def __repr__(self) -> str:
        return f"Quorum({self.strategy!r}, min_nodes={self.min_nodes})"
