"""FedAdam and FedYogi: adaptive server optimizers (Reddi et al., 2021, "Adaptive
Federated Optimization", Algorithm 2).

The pseudo-gradient of a round is ``Δ = FedAvg(results) − current``; the server keeps first
and second moments ``m``, ``v`` of Δ and steps ``current + η·m / (√v + τ)``. The moments
are read from and written to ``GlobalModel.server_state`` (keys ``<name>.m`` and
``<name>.v``), never kept in the strategy object: the next round's coordinator is another
node, and it must continue from exactly the moments this round produced. As in the paper,
there is no bias correction and ``v`` starts at ``τ²``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from federated.errors import IncompatibleModelError
from federated.strategies._common import (
    aggregated,
    array_parameters,
    array_updates,
    empty_round,
    like_current,
)
from federated.strategies.aggregate import (
    adam_moments,
    adaptive_step,
    global_norm,
    subtract,
    weighted_mean,
    yogi_moments,
)
from federated.types import AggregateResult, FitFailure, FitResult, GlobalModel, NDArrays, Scalar


class _ServerOptimizer:
    """FedAvg's mean as a pseudo-gradient for an adaptive server optimizer."""

    name: ClassVar[str]

    def __init__(
        self,
        *,
        eta: float = 1e-2,
        beta_1: float = 0.9,
        beta_2: float = 0.99,
        tau: float = 1e-3,
    ) -> None:
        if eta <= 0 or tau <= 0:
            raise ValueError("eta and tau must be > 0")
        if not (0.0 <= beta_1 < 1.0 and 0.0 <= beta_2 < 1.0):
            raise ValueError("beta_1 and beta_2 must be in [0, 1)")
        self.eta = eta
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.tau = tau

    def _moments(self, delta: NDArrays, m: NDArrays, v: NDArrays) -> tuple[NDArrays, NDArrays]:
        raise NotImplementedError

    def node_config(self, server_round: int) -> dict[str, Scalar]:
        """Hyper-parameters every node must train with this round (none)."""
        del server_round
        return {}

    def unwrapped(self) -> _ServerOptimizer:
        """Itself: a bare strategy."""
        return self

    def aggregate_fit(
        self,
        server_round: int,
        current: GlobalModel,
        results: Sequence[FitResult],
        failures: Sequence[FitFailure],
    ) -> AggregateResult:
        """One optimizer step on the pseudo-gradient; returns the new moments in state."""
        del server_round
        base = array_parameters(current, self.name)
        if not results:
            return empty_round(self.name, failures)
        updates = array_updates(base, results, self.name)
        averaged = weighted_mean(updates, [r.num_examples for r in results])
        delta = subtract(averaged, base)
        m, v = self._state(current, base)
        m, v = self._moments(delta, m, v)
        stepped = adaptive_step(base, m, v, eta=self.eta, tau=self.tau)
        state = {**current.server_state, f"{self.name}.m": m, f"{self.name}.v": v}
        model = GlobalModel(current.family, like_current(stepped, base), state)
        result = aggregated(model, self.name, results, failures)
        return result.with_metrics({"pseudo_gradient_norm": global_norm(delta)})

    def _state(self, current: GlobalModel, base: NDArrays) -> tuple[NDArrays, NDArrays]:
        """The moments from ``server_state``, or zeros and ``τ²`` in the first round."""
        m_key, v_key = f"{self.name}.m", f"{self.name}.v"
        state = current.server_state
        if m_key not in state and v_key not in state:
            m = [np.zeros(np.shape(x)) for x in base]
            v = [np.full(np.shape(x), self.tau**2) for x in base]
            return m, v
        if m_key not in state or v_key not in state:
            raise IncompatibleModelError(
                f"{self.name}: server_state has only one of {m_key!r} and {v_key!r}"
            )
        m = [np.asarray(a, dtype=np.float64) for a in state[m_key]]
        v = [np.asarray(a, dtype=np.float64) for a in state[v_key]]
        shapes = [np.shape(x) for x in base]
        if [a.shape for a in m] != shapes or [a.shape for a in v] != shapes:
            raise IncompatibleModelError(
                f"{self.name}: server_state moments do not match the model's layer shapes"
            )
        if any(np.any(a < 0) for a in v):
            raise IncompatibleModelError(f"{self.name}: second moment has negative entries")
        return m, v

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(eta={self.eta}, beta_1={self.beta_1}, "
            f"beta_2={self.beta_2}, tau={self.tau})"
        )


class FedAdam(_ServerOptimizer):
    """Adam on the server: ``v ← β₂v + (1−β₂)Δ²``."""

    name: ClassVar[str] = "fedadam"

    def _moments(self, delta: NDArrays, m: NDArrays, v: NDArrays) -> tuple[NDArrays, NDArrays]:
        return adam_moments(delta, m, v, beta_1=self.beta_1, beta_2=self.beta_2)


class FedYogi(_ServerOptimizer):
    """Yogi on the server: ``v ← v − (1−β₂)Δ²·sign(v − Δ²)``, slower to inflate ``v``."""

    name: ClassVar[str] = "fedyogi"

    def _moments(self, delta: NDArrays, m: NDArrays, v: NDArrays) -> tuple[NDArrays, NDArrays]:
        return yogi_moments(delta, m, v, beta_1=self.beta_1, beta_2=self.beta_2)
