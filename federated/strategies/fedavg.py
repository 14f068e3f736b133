"""FedAvg (McMahan et al., 2017) and FedProx (Li et al., 2020) on the coordinator side."""

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
from federated.strategies.aggregate import weighted_mean
from federated.types import AggregateResult, FitFailure, FitResult, GlobalModel, Scalar


class FedAvg:
    """Average the nodes' weights, each weighted by its number of training examples.

    ``server_state`` passes through unchanged. No results gives a result without a model
    and with a ``reason``; bytes (tree) parameters raise ``IncompatibleModelError``.
    """

    name: ClassVar[str] = "fedavg"

    def node_config(self, server_round: int) -> dict[str, Scalar]:
        """Hyper-parameters every node must train with this round (none for FedAvg)."""
        del server_round
        return {}

    def unwrapped(self) -> FedAvg:
        """Itself: a bare strategy."""
        return self

    def aggregate_fit(
        self,
        server_round: int,
        current: GlobalModel,
        results: Sequence[FitResult],
        failures: Sequence[FitFailure],
    ) -> AggregateResult:
        """The sample-weighted mean of the results' parameters."""
        del server_round
        base = array_parameters(current, self.name)
        if not results:
            return empty_round(self.name, failures)
        updates = array_updates(base, results, self.name)
        averaged = weighted_mean(updates, [r.num_examples for r in results])
        model = GlobalModel(
            family=current.family,
            parameters=like_current(averaged, base),
            server_state=current.server_state,
        )
        return aggregated(model, self.name, results, failures)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class FedProx(FedAvg):
    """FedAvg on the coordinator; the nodes add ``μ/2·‖w − w_global‖²`` to their loss.

    The proximal term lives in the model adapters' local training (their ``proximal_mu``
    hyper-parameter); this strategy only tells the nodes which μ the profile uses.
    """

    name: ClassVar[str] = "fedprox"

    def __init__(self, *, proximal_mu: float = 0.01) -> None:
        if proximal_mu < 0:
            raise ValueError(f"proximal_mu must be >= 0, got {proximal_mu}")
        self.proximal_mu = proximal_mu

    def node_config(self, server_round: int) -> dict[str, Scalar]:
        """``{"proximal_mu": μ}``: merge into every node's hyper-parameters."""
        del server_round
        return {"proximal_mu": self.proximal_mu}

    def __repr__(self) -> str:
        return f"FedProx(proximal_mu={self.proximal_mu})"
