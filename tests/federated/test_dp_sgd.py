"""Record-level DP-SGD on torch models: per-sample clipping holds, training learns, the
float accountant agrees with the ledger's exact one, and a round over budget trains nothing."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from chaincode import rdp as ledger_rdp
from chaincode.schema import decimal_text, dp_sgd_round_rdp, per_round_spend
from federated.datasets import holdout_split, load_digits_8x8
from federated.errors import PrivacyBudgetError
from federated.models import create_model
from federated.models.torch_nets import build_mlp, train_classifier_dp_sgd
from federated.plan import TrainingPlan
from federated.privacy import PrivacyConfig, PrivacySpend
from federated.privacy.rdp import ORDERS, dp_sgd_epsilon, noise_for_epsilon
from federated.simulation import initial_model, train_node
from flows.node_agent import _check_rdp_budget, _declared_spend
from ledger_client import Budget

CLASSES = list(range(10))
MLP = {"classes": CLASSES, "n_features": 64, "hidden_sizes": (32,), "optimizer": "sgd",
       "learning_rate": 1.0}  # fmt: skip


def _step_norm(X: torch.Tensor, y: torch.Tensor, clip: float) -> float:
    """The norm of one noiseless DP-SGD step (lr 1, every row sampled)."""
    torch.manual_seed(0)
    module = build_mlp(64, [32], 10)
    before = [p.detach().clone() for p in module.parameters()]
    train_classifier_dp_sgd(
        module, X, y, noise_multiplier=0.0, max_grad_norm=clip, sample_rate=1.0, steps=1,
        optimizer="sgd", learning_rate=1.0, weight_decay=0.0,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    moved = [
        ((p.detach() - b) ** 2).sum() for p, b in zip(module.parameters(), before, strict=True)
    ]
    return float(torch.sqrt(torch.stack(moved).sum()))


def test_each_row_contributes_at_most_the_clip_norm() -> None:
    generator = torch.Generator().manual_seed(1)
    X = torch.randn(16, 64, generator=generator) * 1000  # gradients far above the clip
    y = torch.randint(0, 10, (16,), generator=generator)
    # One row alone, sampled with certainty and no noise: the step is its clipped gradient.
    assert _step_norm(X[:1], y[:1], clip=0.5) <= 0.5 + 1e-5
    # Every row: the mean of clipped gradients (expected batch = all rows) stays ≤ C …
    assert _step_norm(X, y, clip=0.5) <= 0.5 + 1e-5
    # … and one row changed (however wildly) moves the step by at most 2C / n.
    changed = X.clone()
    changed[3] *= 1e3
    assert _step_norm(changed, y, clip=0.5) <= 0.5 + 1e-5
    # Without clipping the same step is far larger: the bound above is the clipping's doing.
    assert _step_norm(X, y, clip=1e9) > 10


def test_dp_sgd_learns_digits_well_above_chance() -> None:
    dataset = load_digits_8x8()
    pool, test = holdout_split(dataset, test_fraction=0.2, seed=0)
    X = dataset.X / 16.0
    model = create_model("torch-mlp", **MLP, random_state=0)
    model.fit_dp_sgd(
        X[pool], dataset.y[pool], noise_multiplier=1.0, max_grad_norm=1.0,
        sample_rate=0.05, steps=100, noise_seed=0,
    )  # fmt: skip
    # Chance is 0.1; 100 noisy steps (ε ≈ 2.4 at δ = 1e-5) reach well above it.
    assert model.score(X[test], dataset.y[test]) > 0.6


def test_the_float_accountant_uses_the_ledger_s_orders_and_agrees_with_it() -> None:
    assert ORDERS == ledger_rdp.ORDERS
    privacy = {"mode": "dp-sgd", "noise_multiplier": "1.1", "sample_rate": "0.1",
               "epochs_per_round": "1", "clip_norm": "1", "epsilon_budget": "8",
               "delta_budget": "1e-5"}  # fmt: skip
    config = PrivacyConfig.from_profile(privacy)
    assert config is not None and config.mechanism == "dp-sgd" and config.steps == 10
    # The node trains exactly the steps the ledger accounts, whatever the decimals.
    for rate, epochs in [("0.3", "1"), ("0.07", "3.5"), ("0.0625", "1"), ("0.123456789", "2")]:
        odd = PrivacyConfig.from_profile(
            {**privacy, "sample_rate": rate, "epochs_per_round": epochs}
        )
        assert odd is not None
        assert odd.steps == ledger_rdp.steps_per_round(Fraction(rate), Fraction(epochs))
    exact, delta = per_round_spend(privacy)
    assert config.epsilon == pytest.approx(float(exact), rel=1e-9)
    assert config.round_spend == PrivacySpend(config.epsilon, 1e-5) and delta == Fraction("1e-5")
    three = ledger_rdp.epsilon(ledger_rdp.scale(dp_sgd_round_rdp(privacy), 3), delta)
    assert dp_sgd_epsilon(1.1, 0.1, 10, 1e-5, rounds=3) == pytest.approx(float(three), rel=1e-9)
    sigma = noise_for_epsilon(8.0, 1e-5, 0.1, 10, rounds=10)
    assert dp_sgd_epsilon(sigma, 0.1, 10, 1e-5, rounds=10) <= 8.0
    assert dp_sgd_epsilon(sigma - 0.01, 0.1, 10, 1e-5, rounds=10) > 8.0


def test_a_round_over_the_budget_is_refused_before_training() -> None:
    config = PrivacyConfig.dp_sgd(
        noise_multiplier=1.0, sample_rate=0.1, epochs_per_round=1, clip_norm=1.0,
        budget_epsilon=dp_sgd_epsilon(1.0, 0.1, 10, 1e-5, rounds=2) + 1e-9, budget_delta=1e-5,
    )  # fmt: skip
    start = initial_model("torch-mlp", MLP, seed=0)
    X = np.random.default_rng(0).random((40, 64))
    y = np.arange(40) % 10
    result, spend = train_node(start, X, y, family="torch-mlp", hyperparameters=MLP,
                               privacy=config, spent=[config.round_spend], noise_seed=0)  # fmt: skip
    assert spend == config.round_spend and result.metrics["dp_mechanism"] == "dp-sgd"
    # A third round: refused before the data is touched (rows that could not be trained on).
    with pytest.raises(PrivacyBudgetError, match="record-level spend"):
        train_node(start, np.full((3, 5), np.nan), np.zeros(1), family="torch-mlp",
                   hyperparameters=MLP, privacy=config, spent=[config.round_spend] * 2)  # fmt: skip


def _plan(epsilon_budget: str) -> TrainingPlan:
    from tests.ledger.conftest import profile_spec

    privacy = {"mode": "dp-sgd", "noise_multiplier": "1.1", "sample_rate": "0.1",
               "epochs_per_round": "1", "clip_norm": "1", "epsilon_budget": epsilon_budget,
               "delta_budget": "1e-5"}  # fmt: skip
    spec = profile_spec("p1", privacy=privacy)
    spec["model"] = {"family": "torch-mlp", "hyperparameters": MLP}
    return TrainingPlan.from_profile("p1", spec)


def _budget(profile_rounds: int, family_rounds: int) -> Budget:
    """GetBudget's dp-sgd view (the fields the node reads) after some rounds."""
    curve = dp_sgd_round_rdp(dict(_plan("8").spec["privacy"]))
    return Budget.from_json({
        "node": "org1/node0", "profile": "p1", "mode": "dp-sgd", "rounds": profile_rounds,
        "spent": {"epsilon": "0", "delta": "0"}, "budget": {"epsilon": "8", "delta": "0.00001"},
        "remaining": {"epsilon": "8", "delta": "0.00001"},
        "rdp": {
            "profile": ledger_rdp.to_text(ledger_rdp.scale(curve, profile_rounds)),
            "family": ledger_rdp.to_text(ledger_rdp.scale(curve, family_rounds)),
            "other": {"epsilon": "0", "delta": "0"},
        },
    })  # fmt: skip


def test_the_node_checks_the_ledger_s_exact_family_wide_accountant() -> None:
    curve = dp_sgd_round_rdp(dict(_plan("8").spec["privacy"]))
    two = ledger_rdp.epsilon(ledger_rdp.scale(curve, 2), Fraction("1e-5"))
    plan = _plan(format(two, "f"))
    _check_rdp_budget(_budget(1, 1), plan)  # the second round fits exactly
    with pytest.raises(PrivacyBudgetError, match="over the family"):
        _check_rdp_budget(_budget(1, 2), plan)  # one round here, one in another profile
    # The update declares the ledger's digits, not a float's.
    assert plan.privacy is not None
    declared = _declared_spend(plan, repr(plan.privacy.epsilon), "1e-05")
    exact, _ = per_round_spend(dict(plan.spec["privacy"]))
    assert declared == (decimal_text(exact), "0.00001")
