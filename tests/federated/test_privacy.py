"""Noise calibration, clipping, the server-side check and the budget accountant."""

from __future__ import annotations

import math

import numpy as np
import pytest
from diffprivlib.mechanisms import GaussianAnalytic

from federated.errors import PrivacyBudgetError, PrivacyCheckError
from federated.privacy import (
    NodeBudget,
    PrivacyConfig,
    PrivacySpend,
    calibrate_sigma,
    compose,
    privatize_update,
    released_norm_bounds,
    update_norm,
)
from federated.strategies import FedAvg, PrivacyCheck, guard_strategy
from federated.types import FitResult, GlobalModel


@pytest.mark.parametrize(("epsilon", "delta", "clip"), [(0.5, 1e-5, 1.0), (8.0, 1e-6, 2.5)])
def test_sigma_is_diffprivlibs_analytic_gaussian_scale(epsilon, delta, clip):
    mechanism = GaussianAnalytic(epsilon=epsilon, delta=delta, sensitivity=clip)
    assert calibrate_sigma(epsilon, delta, clip) == pytest.approx(mechanism._scale, rel=1e-12)
    # Linear in the sensitivity, and falling with ε.
    assert calibrate_sigma(epsilon, delta, 2 * clip) == pytest.approx(
        2 * calibrate_sigma(epsilon, delta, clip)
    )
    assert calibrate_sigma(2 * epsilon, delta, clip) < calibrate_sigma(epsilon, delta, clip)


def layers(value: float, dtype=np.float64):
    return [np.full((30, 10), value, dtype=dtype), np.full(7, value, dtype=dtype)]


def test_clipping_without_noise_scales_large_updates_to_the_clip_norm_only():
    base = layers(1.0)
    rng = np.random.default_rng(0)
    far = privatize_update(base, layers(3.0), clip_norm=1.0, sigma=0.0, rng=rng)
    assert update_norm([a - b for a, b in zip(far.parameters, base, strict=True)]) == (
        pytest.approx(1.0)
    )
    near_local = [b + 1e-3 for b in base]
    near = privatize_update(base, near_local, clip_norm=1.0, sigma=0.0, rng=rng)
    for a, b in zip(near.parameters, near_local, strict=True):
        np.testing.assert_allclose(a, b)


def test_noise_has_the_calibrated_spread_keeps_dtypes_and_is_seeded():
    base = [np.zeros(200_000, dtype=np.float32)]
    sigma = calibrate_sigma(2.0, 1e-5, 0.5)
    one = privatize_update(base, base, clip_norm=0.5, sigma=sigma, rng=np.random.default_rng(7))
    two = privatize_update(base, base, clip_norm=0.5, sigma=sigma, rng=np.random.default_rng(7))
    other = privatize_update(base, base, clip_norm=0.5, sigma=sigma, rng=np.random.default_rng(8))
    noise = one.parameters[0].astype(np.float64)
    assert one.parameters[0].dtype == np.float32
    assert noise.std() == pytest.approx(sigma, rel=0.01)
    assert abs(noise.mean()) < 5 * sigma / math.sqrt(noise.size)
    np.testing.assert_array_equal(one.parameters[0], two.parameters[0])
    assert not np.array_equal(one.parameters[0], other.parameters[0])


def test_honest_released_updates_fall_inside_the_norm_bounds():
    dimension, clip, sigma = 5_000, 1.0, 0.3
    lower, upper = released_norm_bounds(dimension, clip_norm=clip, sigma=sigma)
    assert lower < sigma * math.sqrt(dimension) < upper
    rng = np.random.default_rng(1)
    base = [np.zeros(dimension)]
    for scale in (0.0, 0.5, 100.0):  # unchanged, small and clipped updates
        local = [rng.standard_normal(dimension) * scale]
        released = privatize_update(base, local, clip_norm=clip, sigma=sigma, rng=rng)
        assert lower <= update_norm(released.parameters) <= upper


def dp_round(node: str, base, local, *, clip, sigma, seed):
    released = privatize_update(
        base.parameters, local, clip_norm=clip, sigma=sigma, rng=np.random.default_rng(seed)
    )
    return FitResult(node, released.parameters, 10, {"dp_epsilon": 1.0, "dp_delta": 1e-5})


def test_privacy_check_refuses_unclipped_or_noiseless_updates_as_failures():
    config = PrivacyConfig("gaussian-update", epsilon=1.0, delta=1e-5, clip_norm=0.5)
    sigma = config.noise_sigma()
    base = GlobalModel("torch-mlp", [np.zeros((50, 20)), np.zeros(20)])
    local = [np.full((50, 20), 0.3), np.full(20, 0.3)]
    honest = [dp_round(f"h{i}", base, local, clip=0.5, sigma=sigma, seed=i) for i in range(3)]
    # Unclipped, this update's norm is 30·σ: far above the noise's own spread (see docs).
    unclipped = dp_round("big", base, [a * 6.0 for a in local], clip=1e3, sigma=sigma, seed=9)
    noiseless = dp_round("bare", base, local, clip=0.5, sigma=0.0, seed=9)
    strategy = guard_strategy(FedAvg(), min_nodes=2, privacy=config)
    out = strategy.aggregate_fit(1, base, [*honest, unclipped, noiseless], [])
    new, metrics = out.model, out.metrics
    assert new is not None
    assert out.included == ("h0", "h1", "h2")
    assert [(f.node_id, f.code) for f in out.failures] == [
        ("bare", "PRIVACY_CHECK_FAILED"),
        ("big", "PRIVACY_CHECK_FAILED"),
    ]
    assert "noise missing" in out.failures[0].reason
    assert metrics["privacy_refused"] == 2
    assert metrics["dp_epsilon_max"] == 1.0


def test_privacy_check_without_noise_is_the_exact_clip_norm():
    check = PrivacyCheck(FedAvg(), clip_norm=1.0, sigma=0.0)
    base = GlobalModel("torch-mlp", [np.zeros(4)])
    assert check.check(base, FitResult("a", [np.array([0.5, 0.5, 0.5, 0.5])], 1)) == 1.0
    with pytest.raises(PrivacyCheckError, match="more than the 1") as raised:
        check.check(base, FitResult("a", [np.array([0.6, 0.5, 0.5, 0.5])], 1))
    assert raised.value.code == "PRIVACY_CHECK_FAILED"


def test_budget_is_rebuilt_from_recorded_spends_and_refuses_before_exceeding():
    spends = [PrivacySpend(1.0, 1e-6)] * 3
    budget = NodeBudget(4.0, 1e-5, spent=spends, node_id="org1-n1")
    total = budget.total()
    assert total.epsilon == 3.0 and total.delta == pytest.approx(3e-6, rel=1e-6)
    budget.check(PrivacySpend(1.0, 1e-6))
    with pytest.raises(PrivacyBudgetError) as raised:
        budget.check(PrivacySpend(1.5, 1e-6))
    error = raised.value
    assert error.code == "BUDGET_EXCEEDED" and error.node_id == "org1-n1"
    assert "spent so far (ε=3" in error.message
    assert budget.rounds_left(PrivacySpend(0.25, 1e-7)) == 4
    budget.spend(PrivacySpend(1.0, 1e-6))
    assert len(budget.spent) == 4 and budget.rounds_left(PrivacySpend(0.25, 0.0)) == 0


def test_recorded_spends_beyond_the_budget_are_an_error_not_a_reset():
    with pytest.raises(PrivacyBudgetError, match="already exceed"):
        NodeBudget(1.0, 1e-5, spent=[(0.8, 0.0), (0.8, 0.0)])


def test_advanced_composition_beats_basic_for_many_small_rounds():
    spends = [PrivacySpend(0.1, 1e-7)] * 400
    basic = compose(spends)
    advanced = compose(spends, slack=1e-6)
    assert basic.epsilon == pytest.approx(40.0)
    # Dwork–Rothblum–Vadhan: ε' = √(2k ln(1/δ'))·ε + kε(e^ε − 1)/(e^ε + 1) (diffprivlib's form).
    k, e = 400, 0.1
    drv = math.sqrt(2 * k * e**2 * math.log(1 / 1e-6)) + k * e * math.tanh(e / 2)
    assert advanced.epsilon <= drv + 1e-9
    assert advanced.epsilon < basic.epsilon / 2
    assert advanced.delta > basic.delta  # the slack is paid in δ
    profile = PrivacyConfig(
        "gaussian-update", epsilon=0.1, delta=1e-7, clip_norm=1.0,
        budget_epsilon=15.0, budget_delta=1e-4, slack=1e-6,
    )  # fmt: skip
    assert profile.budget(spends[:399]).rounds_left(profile.round_spend) >= 1
    basic_profile = PrivacyConfig(
        "gaussian-update", epsilon=0.1, delta=1e-7, clip_norm=1.0,
        budget_epsilon=15.0, budget_delta=1e-4,
    )  # fmt: skip
    with pytest.raises(PrivacyBudgetError):
        basic_profile.budget(spends[:399])


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"mechanism": "laplace", "epsilon": 1.0}, "mechanism"),
        ({"mechanism": "gaussian-update", "epsilon": 1.0, "delta": 1e-5}, "clip_norm"),
        ({"mechanism": "gaussian-update", "epsilon": 1.0, "clip_norm": 1.0}, "delta"),
        ({"mechanism": "dp-estimator", "epsilon": 1.0, "delta": 1e-5}, "delta must be 0"),
        ({"mechanism": "dp-estimator", "epsilon": 0.0}, "epsilon"),
        ({"mechanism": "dp-estimator", "epsilon": 1.0, "sigma": 2}, "unknown privacy"),
    ],
)
def test_privacy_config_validates_a_profiles_settings(values, problem):
    with pytest.raises(ValueError, match=problem):
        PrivacyConfig.from_mapping(values)


def test_privacy_config_from_a_profile():
    config = PrivacyConfig.from_mapping(
        {"mechanism": "gaussian-update", "epsilon": 2.0, "delta": 1e-5, "clip_norm": 1.0,
         "budget_epsilon": 10.0, "budget_delta": 1e-4}
    )  # fmt: skip
    assert config.round_spend == PrivacySpend(2.0, 1e-5)
    assert config.noise_sigma() == pytest.approx(calibrate_sigma(2.0, 1e-5, 1.0))
    assert config.budget([]).rounds_left(config.round_spend) == 5


def test_a_ledger_profile_maps_to_a_privacy_config() -> None:
    from federated.privacy import PrivacyConfig
    from tests.ledger.conftest import profile_spec

    privacy = profile_spec()["privacy"]
    config = PrivacyConfig.from_profile(privacy)
    assert config is not None
    assert config.mechanism == "gaussian-update" and config.epsilon == 1.0 and config.delta == 1e-5
    assert config.clip_norm == 1.0 and config.budget_epsilon == 3.0 and config.budget_delta == 1e-4
    assert PrivacyConfig.from_profile({"mode": "none"}) is None
    dp_model = PrivacyConfig.from_profile(
        {
            "mode": "dp-model",
            "epsilon_per_round": "0.5",
            "delta_per_round": "0",
            "epsilon_budget": "5",
            "delta_budget": "0",
        }
    )
    assert dp_model is not None and dp_model.mechanism == "dp-estimator" and dp_model.delta == 0.0
    # Client-level DP under its clear name is the same mechanism as under the old one.
    renamed = PrivacyConfig.from_profile({**privacy, "mode": "client-level-dp"})
    assert renamed == config
    with pytest.raises(ValueError, match="unknown privacy mode"):
        PrivacyConfig.from_profile({**privacy, "mode": "client-level"})


def test_a_dp_sgd_config_needs_its_whole_mechanism() -> None:
    with pytest.raises(ValueError, match="dp-sgd needs"):
        PrivacyConfig(mechanism="dp-sgd", epsilon=1.0, delta=1e-5, clip_norm=1.0,
                      budget_delta=1e-5, noise_multiplier=1.0, sample_rate=0.1)  # fmt: skip
    with pytest.raises(ValueError, match="budget's δ"):
        PrivacyConfig(mechanism="dp-sgd", epsilon=1.0, delta=1e-6, clip_norm=1.0,
                      budget_delta=1e-5, noise_multiplier=1.0, sample_rate=0.1,
                      epochs_per_round=1.0)  # fmt: skip


def test_a_recorded_zero_spend_is_nothing_spent_not_an_error():
    budget = NodeBudget(1.0, 1e-5, spent=[PrivacySpend(0.0, 0.0)], node_id="org1-n1")
    assert budget.total().epsilon == 0.0
    budget.check(PrivacySpend(1.0, 1e-6))


def test_noise_shares_split_the_variance_and_only_client_level_dp_has_them() -> None:
    full = PrivacyConfig("gaussian-update", epsilon=8.0, delta=1e-5, clip_norm=1.0)
    shared = PrivacyConfig(
        "gaussian-update", epsilon=8.0, delta=1e-5, clip_norm=1.0, noise_shares=4
    )
    assert shared.noise_sigma() == full.noise_sigma() == full.node_noise_sigma()
    # Four nodes' shares add up to the one σ² the (ε, δ) calibration asks for.
    assert 4 * shared.node_noise_sigma() ** 2 == pytest.approx(full.noise_sigma() ** 2)
    with pytest.raises(ValueError, match="noise_shares"):
        PrivacyConfig("gaussian-update", epsilon=8.0, delta=1e-5, clip_norm=1.0, noise_shares=0)
    with pytest.raises(ValueError, match="noise_shares"):
        PrivacyConfig("dp-estimator", epsilon=1.0, noise_shares=2)


@pytest.mark.parametrize(
    ("privacy", "secure", "shares"),
    [
        ({"mode": "client-level-dp"}, {"threshold": 3}, 3),
        ({"mode": "client-level-dp"}, None, 1),
        ({"mode": "client-dp"}, {"threshold": 5}, 5),
    ],
)
def test_a_secure_profile_shares_client_level_noise_over_its_threshold(
    privacy: dict, secure: dict | None, shares: int
) -> None:
    from federated.plan import TrainingPlan

    numbers = {
        "epsilon_per_round": "8",
        "delta_per_round": "1e-5",
        "epsilon_budget": "80",
        "delta_budget": "1e-4",
        "clip_norm": "1",
    }
    aggregation: dict = {"strategy": "fedavg"}
    if secure is not None:
        aggregation["secure"] = secure
    spec = {
        "characteristics": {},
        "feature_schema": {"shape": [4]},
        "task": {"type": "classification", "labels": [0, 1]},
        "objective": {"metric": "accuracy", "direction": "maximize"},
        "model": {"family": "sklearn-linear", "hyperparameters": {}},
        "aggregation": aggregation,
        "privacy": {**privacy, **numbers},
        "min_nodes": 2,
    }
    plan = TrainingPlan.from_profile("p", spec)
    assert plan.privacy is not None and plan.privacy.noise_shares == shares
