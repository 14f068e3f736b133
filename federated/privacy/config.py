"""A profile's privacy settings, the same for every node that trains for the profile."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal, cast, get_args

from federated.errors import PrivacyBudgetError
from federated.privacy.accountant import NodeBudget, PrivacySpend
from federated.privacy.gaussian import calibrate_sigma
from federated.privacy.rdp import dp_sgd_epsilon, steps_per_round

Mechanism = Literal["gaussian-update", "dp-estimator", "dp-sgd"]
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
    - ``"dp-sgd"``: record-level DP for torch families: ⌈``epochs_per_round`` /
      ``sample_rate``⌉ steps of DP-SGD (Poisson sampling, per-sample clip ``clip_norm``,
      ``noise_multiplier``), composed by a Rényi-DP accountant; ``epsilon`` is one round's
      ε at ``delta`` = ``budget_delta``, and the budget composes RDP, not Σε.

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
    noise_multiplier: float | None = None
    sample_rate: float | None = None
    epochs_per_round: float | None = None
    # Distributed noise under secure aggregation (gaussian-update only): each node adds
    # variance σ²/noise_shares, so the unmasked sum of at least ``noise_shares`` nodes (the
    # threshold t) carries the full σ² once, instead of every update carrying it.
    noise_shares: int = 1

    def __post_init__(self) -> None:
        if self.noise_shares < 1 or (self.noise_shares > 1 and self.mechanism != "gaussian-update"):
            raise ValueError("noise_shares must be ≥ 1, and > 1 only for gaussian-update")
        if self.mechanism not in MECHANISMS:
            raise ValueError(f"mechanism must be one of {MECHANISMS}, got {self.mechanism!r}")
        if not (self.epsilon > 0 and math.isfinite(self.epsilon)):
            raise ValueError(f"epsilon must be finite and > 0, got {self.epsilon}")
        if self.mechanism == "gaussian-update":
            if not 0.0 < self.delta < 1.0:
                raise ValueError("gaussian-update needs 0 < delta < 1")
            if self.clip_norm is None or not self.clip_norm > 0:
                raise ValueError("gaussian-update needs clip_norm > 0")
        elif self.mechanism == "dp-sgd":
            if not (
                (self.noise_multiplier or 0) > 0
                and 0 < (self.sample_rate or 0) <= 1
                and (self.epochs_per_round or 0) > 0
                and (self.clip_norm or 0) > 0
            ):
                raise ValueError(
                    "dp-sgd needs noise_multiplier > 0, 0 < sample_rate ≤ 1, "
                    "epochs_per_round > 0 and clip_norm > 0"
                )
            if not 0.0 < self.delta < 1.0 or self.delta != self.budget_delta:
                raise ValueError("dp-sgd states ε at its budget's δ: 0 < delta = budget_delta < 1")
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

    def node_noise_sigma(self) -> float:
        """σ of the noise one node adds: :meth:`noise_sigma` / √``noise_shares``."""
        return self.noise_sigma() / math.sqrt(self.noise_shares)

    @property
    def steps(self) -> int:
        """DP-SGD steps per round (``dp-sgd`` only)."""
        if self.sample_rate is None or self.epochs_per_round is None:
            raise ValueError("steps apply to the dp-sgd mechanism")
        return steps_per_round(self.sample_rate, self.epochs_per_round)

    def check_round(
        self,
        spent: Sequence[PrivacySpend | tuple[float, float]] = (),
        *,
        node_id: str | None = None,
    ) -> None:
        """Raise ``PrivacyBudgetError`` if one more round would exceed the budget.

        Under ``dp-sgd`` each entry of ``spent`` is a past round of this same profile
        (what ``run_simulation`` keeps) and the rounds compose by RDP; a node in a round
        has already checked the ledger's exact, family-wide accountant (flows.node_agent).
        """
        if self.mechanism != "dp-sgd":
            self.budget(spent, node_id=node_id).check(self.round_spend)
            return
        assert self.noise_multiplier is not None
        assert self.sample_rate is not None
        rounds = len(spent) + 1
        total = dp_sgd_epsilon(
            self.noise_multiplier, self.sample_rate, self.steps, self.delta, rounds=rounds
        )
        # Floats: the ledger's exact ε is rounded up at 12 decimals, so a budget set to it
        # must not be refused for a last-bit difference (the ledger decides exactly).
        if total > self.budget_epsilon * (1 + 1e-9):
            raise PrivacyBudgetError(
                f"round {rounds} would bring the record-level spend to ε={total:.4g} at "
                f"δ={self.delta:g}; the budget is ε={self.budget_epsilon:g}",
                node_id=node_id,
                requested=(self.epsilon, self.delta),
                budget=(self.budget_epsilon, self.budget_delta),
            )

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
        mechanisms = {
            "client-level-dp": "gaussian-update",
            "client-dp": "gaussian-update",  # the old name of client-level-dp
            "dp-model": "dp-estimator",
            "dp-sgd": "dp-sgd",
        }
        if mode not in mechanisms:
            raise ValueError(f"unknown privacy mode {mode!r}")

        def number(key: str, default: float) -> float:
            value = privacy.get(key)
            return default if value is None else float(value)

        if mode == "dp-sgd":
            config = cls.dp_sgd(
                noise_multiplier=float(privacy["noise_multiplier"]),
                sample_rate=float(privacy["sample_rate"]),
                epochs_per_round=float(privacy["epochs_per_round"]),
                clip_norm=float(privacy["clip_norm"]),
                budget_epsilon=float(privacy["epsilon_budget"]),
                budget_delta=float(privacy["delta_budget"]),
            )
            # The ledger accounts ⌈epochs / q⌉ on the exact decimals: train exactly that many.
            exact = math.ceil(
                Fraction(privacy["epochs_per_round"]) / Fraction(privacy["sample_rate"])
            )
            if config.steps != exact:
                raise ValueError(
                    f"epochs_per_round / sample_rate gives {exact} steps on the ledger but "
                    f"{config.steps} in floats; write them with fewer digits"
                )
            return config

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
    def dp_sgd(
        cls,
        *,
        noise_multiplier: float,
        sample_rate: float,
        epochs_per_round: float,
        clip_norm: float,
        budget_epsilon: float,
        budget_delta: float,
    ) -> PrivacyConfig:
        """A ``dp-sgd`` config, its per-round ε computed by the RDP accountant."""
        steps = steps_per_round(sample_rate, epochs_per_round)
        return cls(
            mechanism="dp-sgd",
            epsilon=max(dp_sgd_epsilon(noise_multiplier, sample_rate, steps, budget_delta), 1e-12),
            delta=budget_delta,
            clip_norm=clip_norm,
            budget_epsilon=budget_epsilon,
            budget_delta=budget_delta,
            noise_multiplier=noise_multiplier,
            sample_rate=sample_rate,
            epochs_per_round=epochs_per_round,
        )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> PrivacyConfig:
        """Build from a profile's JSON ``privacy`` object (unknown keys raise)."""
        known = {
            "mechanism", "epsilon", "delta", "clip_norm",
            "budget_epsilon", "budget_delta", "slack",
            "noise_multiplier", "sample_rate", "epochs_per_round",
        }  # fmt: skip
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown privacy settings {sorted(unknown)}")
        kwargs = dict(values)
        kwargs["mechanism"] = cast(Mechanism, kwargs.get("mechanism"))
        return cls(**kwargs)
