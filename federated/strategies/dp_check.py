"""Server-side check of client-level DP: every update must look clipped and noised."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from federated.errors import InvalidUpdateError, PrivacyCheckError
from federated.privacy import PrivacyConfig, released_norm_bounds, update_norm
from federated.types import AggregateResult, FitFailure, FitResult, GlobalModel, Scalar, Strategy


class PrivacyCheck:
    """Wrapper: refuse updates whose distance from the global model breaks the profile's DP.

    The coordinator never sees an update before its noise, so it cannot check the clip norm
    ``C`` exactly; it checks what it can: an honest released update ``Δ̃ = clip(Δ) + z`` has
    ``‖z‖ − C ≤ ‖Δ̃‖ ≤ C + ‖z‖`` with ``‖z‖`` concentrated around ``σ√d``. Updates above the
    upper bound were not clipped; with ``require_noise``, updates below the lower bound did
    not carry the noise. Either is refused as ``PrivacyCheckError`` (code
    ``PRIVACY_CHECK_FAILED``). An honest node is refused with probability at most
    ``failure_probability`` per bound. With ``sigma = 0`` the check is the exact clip norm.
    """

    def __init__(
        self,
        strategy: Strategy,
        *,
        clip_norm: float,
        sigma: float,
        require_noise: bool = True,
        failure_probability: float = 1e-9,
    ) -> None:
        if clip_norm <= 0 or sigma < 0:
            raise ValueError("clip_norm must be > 0 and sigma >= 0")
        self.strategy = strategy
        self.clip_norm = clip_norm
        self.sigma = sigma
        self.require_noise = require_noise
        self.failure_probability = failure_probability

    @classmethod
    def from_config(cls, strategy: Strategy, config: PrivacyConfig) -> PrivacyCheck:
        """The check for a profile whose nodes use ``gaussian-update``."""
        if config.mechanism != "gaussian-update" or config.clip_norm is None:
            raise ValueError("PrivacyCheck applies to the gaussian-update mechanism")
        # What each release carries: under secure aggregation, its share of the noise.
        return cls(strategy, clip_norm=config.clip_norm, sigma=config.node_noise_sigma())

    def node_config(self, server_round: int) -> dict[str, Scalar]:
        """The inner strategy's node configuration (the DP settings reach the nodes through
        the profile's privacy object, not as model hyper-parameters)."""
        return self.strategy.node_config(server_round)

    def unwrapped(self) -> Strategy:
        """The bare strategy inside this wrapper (and any it wraps)."""
        return self.strategy.unwrapped()

    def bounds(self, dimension: int) -> tuple[float, float]:
        """Allowed ``(lower, upper)`` distance from the global model for ``dimension`` weights."""
        if self.sigma == 0:
            return 0.0, self.clip_norm
        lower, upper = released_norm_bounds(
            dimension,
            clip_norm=self.clip_norm,
            sigma=self.sigma,
            failure_probability=self.failure_probability,
        )
        return (lower if self.require_noise else 0.0), upper

    def check(self, current: GlobalModel, result: FitResult) -> float:
        """The update's distance from ``current``; raises ``PrivacyCheckError`` if outside."""
        if isinstance(current.parameters, bytes) or isinstance(result.parameters, bytes):
            raise InvalidUpdateError(
                "client-level DP applies to weight arrays, not serialized models",
                node_id=result.node_id,
            )
        if len(result.parameters) != len(current.parameters):
            raise InvalidUpdateError("wrong number of parameter arrays", node_id=result.node_id)
        deltas = [
            np.subtract(w, g, dtype=np.float64)
            for w, g in zip(result.parameters, current.parameters, strict=True)
        ]
        distance = update_norm(deltas)
        dimension = sum(d.size for d in deltas)
        lower, upper = self.bounds(dimension)
        # Casting back to the model's dtype (float32 for torch) moves each weight by up to
        # half an ulp: allow for that rounding, no more.
        slack = 1e-6 * self.clip_norm + _rounding(result)
        if distance > upper + slack:
            raise PrivacyCheckError(
                f"update is {distance:.6g} from the global model, more than the {upper:.6g} "
                f"that clipping to {self.clip_norm:g} plus noise σ={self.sigma:g} allows",
                node_id=result.node_id,
                distance=distance,
                bounds=(lower, upper),
            )
        if distance < lower - slack:
            raise PrivacyCheckError(
                f"update is {distance:.6g} from the global model, less than the {lower:.6g} "
                f"that noise σ={self.sigma:g} over {dimension} weights implies: noise missing",
                node_id=result.node_id,
                distance=distance,
                bounds=(lower, upper),
            )
        return distance

    def aggregate_fit(
        self,
        server_round: int,
        current: GlobalModel,
        results: Sequence[FitResult],
        failures: Sequence[FitFailure],
    ) -> AggregateResult:
        """Refuse updates that fail :meth:`check`; delegate the rest."""
        accepted: list[FitResult] = []
        refused: list[FitFailure] = []
        for result in results:
            try:
                self.check(current, result)
            except InvalidUpdateError as error:
                refused.append(FitFailure(result.node_id, error.code, error.message))
            else:
                accepted.append(result)
        aggregation = self.strategy.aggregate_fit(
            server_round, current, accepted, [*failures, *refused]
        )
        spent = [r.metrics.get("dp_epsilon") for r in accepted]
        extra: dict[str, Scalar] = {"privacy_refused": len(refused)}
        numeric = [float(e) for e in spent if isinstance(e, int | float)]
        if numeric:
            extra["dp_epsilon_max"] = max(numeric)
        return aggregation.with_metrics(extra)

    def __repr__(self) -> str:
        return (
            f"PrivacyCheck({self.strategy!r}, clip_norm={self.clip_norm}, sigma={self.sigma:.4g})"
        )


def _rounding(result: FitResult) -> float:
    """Largest L2 effect of rounding the released weights to their dtype."""
    total = 0.0
    for array in result.parameters:
        a = np.asarray(array)
        if a.dtype.kind == "f" and a.size:
            ulp = float(np.finfo(a.dtype).eps) * float(np.max(np.abs(a)))
            total += (0.5 * ulp) ** 2 * a.size
    return float(np.sqrt(total))
