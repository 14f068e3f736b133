"""A profile's privacy settings, the same for every node that trains for the profile."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

from federated.privacy.accountant import NodeBudget, PrivacySpend
from federated.privacy.gaussian import calibrate_sigma

Mechanism = Literal["gaussian-update", "dp-estimator"]
MECHANISMS: tuple[str, ...] = get_args(Mechanism)

# Model families that are differentially private by themselves (diffprivlib estimators).
DP_ESTIMATOR_FAMILIES = frozenset({"dp-logistic-regression"})


@dataclass(frozen=True)
class PrivacyConfig:
    """How nodes protect their data in one profile, and the budget each may spend there.

    ``mechanism``:

    - ``"gaussian-update"``: client-level DP. The node clips its update to L2 norm
      ``clip_norm`` and adds Gaussian noise calibrated to (``epsilon``, ``delta``) per
      round; works for every family whose parameters are arrays.
    - ``"dp-estimator"``: record-level DP. The family itself is a diffprivlib estimator
      (``dp-logistic-regression``) trained with ``epsilon`` per round (δ = 0).

    ``budget_epsilon``/``budget_delta`` cap each node's composed spend in the profile;
    ``slack`` > 0 lets the accountant use advanced composition (paying ``slack`` in δ).
    """

    mechanism: Mechanism
    epsilon: float
    delta: float = 0.0
    clip_norm: float | None = None
    budget_epsilon: float = math.inf
    budget_delta: float = 1.0
    slack: float = 0.0

    def __post_init__(self) -> None:
        if self.mechanism not in MECHANISMS:
            raise ValueError(f"mechanism must be one of {MECHANISMS}, got {self.mechanism!r}")
        if not (self.epsilon > 0 and math.isfinite(self.epsilon)):
            raise ValueError(f"epsilon must be finite and > 0, got {self.epsilon}")
        if self.mechanism == "gaussian-update":
            if not 0.0 < self.delta < 1.0:
                raise ValueError("gaussian-update needs 0 < delta < 1")
            if self.clip_norm is None or not self.clip_norm > 0:
                raise ValueError("gaussian-update needs clip_norm > 0")
        elif self.delta != 0.0:
            raise ValueError("dp-estimator is ε-DP: delta must be 0")
        if not 0.0 <= self.slack <= self.budget_delta:
            raise ValueError("slack must be in [0, budget_delta]")

    @property
    def round_spend(self) -> PrivacySpend:
        """(ε, δ) each node spends in each round it trains."""
        return PrivacySpend(self.epsilon, self.delta)

    def noise_sigma(self) -> float:
        """Per-coordinate σ of the Gaussian noise (``gaussian-update`` only)."""
        if self.mechanism != "gaussian-update" or self.clip_norm is None:
            raise ValueError("noise_sigma applies to the gaussian-update mechanism")
        return calibrate_sigma(self.epsilon, self.delta, self.clip_norm)

    def budget(
        self,
        spent: Iterable[PrivacySpend | tuple[float, float]] = (),
        *,
        node_id: str | None = None,
    ) -> NodeBudget:
        """A node's accountant in this profile, rebuilt from its recorded spends."""
        return NodeBudget(
            self.budget_epsilon, self.budget_delta, spent=spent, slack=self.slack, node_id=node_id
        )

    @classmethod
    def from_profile(cls, privacy: Mapping[str, Any]) -> PrivacyConfig | None:
        """The ledger profile's ``privacy`` object (decimal strings) as a config; ``None`` for mode ``none``.

        The ledger enforces the budget itself (Σε and Σδ, exact decimals); nodes should also
        check the ledger's remaining budget before training, since Σδ is more conservative
        than the 1 − Π(1 − δᵢ) this accountant composes.
        """
        mode = privacy.get("mode", "none")
        if mode == "none":
            return None
        mechanisms = {"client-dp": "gaussian-update", "dp-model": "dp-estimator"}
        if mode not in mechanisms:
            raise ValueError(f"unknown privacy mode {mode!r}")

        def number(key: str, default: float) -> float:
            value = privacy.get(key)
            return default if value is None else float(value)

        mechanism = cast(Mechanism, mechanisms[mode])
        clip = privacy.get("clip_norm")
        return cls(
            mechanism=mechanism,
            epsilon=float(privacy["epsilon_per_round"]),
            delta=number("delta_per_round", 0.0) if mechanism == "gaussian-update" else 0.0,
            clip_norm=None if clip is None else float(clip),
            budget_epsilon=number("epsilon_budget", math.inf),
            budget_delta=number("delta_budget", 1.0) or 1.0,
        )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> PrivacyConfig:
        """Build from a profile's JSON ``privacy`` object (unknown keys raise)."""
        known = {
            "mechanism", "epsilon", "delta", "clip_norm",
            "budget_epsilon", "budget_delta", "slack",
        }  # fmt: skip
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown privacy settings {sorted(unknown)}")
        kwargs = dict(values)
        kwargs["mechanism"] = cast(Mechanism, kwargs.get("mechanism"))
        return cls(**kwargs)
