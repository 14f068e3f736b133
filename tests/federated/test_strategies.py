"""Strategies in Flower's shape: what they return, what they refuse, where state lives."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from federated.errors import IncompatibleModelError, InvalidUpdateError
from federated.strategies import (
    STRATEGY_NAMES,
    CoordinateMedian,
    FedAdam,
    FedAvg,
    FedProx,
    FedYogi,
    MultiKrum,
    TrimmedMean,
    create_strategy,
)
from federated.types import AggregateResult, FitFailure, FitResult, GlobalModel

SHAPES = [(4, 3), (3,)]


def model(value: float = 0.0, dtype=np.float64) -> GlobalModel:
    return GlobalModel("torch-mlp", [np.full(s, value, dtype=dtype) for s in SHAPES])


def result(node: str, value: float, n: int = 10, dtype=np.float64) -> FitResult:
    return FitResult(node, [np.full(s, value, dtype=dtype) for s in SHAPES], n)


def test_fedavg_is_the_sample_weighted_mean_and_keeps_dtypes_and_state():
    current = GlobalModel("torch-mlp", model(0.0, np.float32).parameters, {"keep": [np.ones(2)]})
    results = [result("a", 1.0, 10, np.float32), result("b", 4.0, 30, np.float32)]
    gone = FitFailure("c", "X", "gone")
    out = FedAvg().aggregate_fit(1, current, results, [gone])
    new, metrics = out.model, out.metrics
    assert new is not None and len(new.parameters) == len(SHAPES)
    for layer in new.parameters:
        assert np.asarray(layer).dtype == np.float32
        np.testing.assert_allclose(layer, (1.0 * 10 + 4.0 * 30) / 40)
    assert new.server_state is current.server_state
    assert metrics["num_results"] == 2 and metrics["num_failures"] == 1
    assert metrics["num_examples"] == 40
    assert out.included == ("a", "b")
    assert out.failures == (gone,)
    assert all(not isinstance(v, str) or k == "strategy" for k, v in metrics.items())


def test_fedavg_aggregates_node_metrics_weighted_by_examples():
    results = [
        FitResult("a", model(1.0).parameters, 10, {"loss": 1.0, "family": "torch-mlp"}),
        FitResult("b", model(1.0).parameters, 30, {"loss": 3.0, "flag": True}),
    ]
    metrics = FedAvg().aggregate_fit(1, model(), results, []).metrics
    assert metrics["fit_loss"] == pytest.approx(2.5)
    assert "fit_flag" not in metrics and "fit_family" not in metrics


def test_no_results_gives_none_and_a_reason():
    late = FitFailure("a", "TIMEOUT", "late")
    out = FedAvg().aggregate_fit(3, model(), [], [late])
    assert out.model is None
    assert out.reason == "no successful updates to aggregate"
    assert out.included == () and out.failures == (late,)
    assert out.metrics["num_results"] == 0 and out.metrics["num_failures"] == 1


@pytest.mark.parametrize(
    "strategy",
    [FedAvg(), FedProx(), FedAdam(), FedYogi(), CoordinateMedian(), TrimmedMean(), MultiKrum()],
    ids=repr,
)
def test_averaging_strategies_refuse_trees(strategy):
    trees = GlobalModel("xgboost-classifier", b"{ubj}")
    with pytest.raises(IncompatibleModelError, match="trees are never averaged"):
        strategy.aggregate_fit(1, trees, [FitResult("a", b"{ubj}", 5)], [])
    with pytest.raises(InvalidUpdateError, match="bytes") as raised:
        strategy.aggregate_fit(1, model(), [result("a", 1.0), FitResult("b", b"x", 5)], [])
    assert raised.value.node_id == "b"


def test_bare_strategies_refuse_wrong_shapes_naming_the_node():
    bad = FitResult("evil", [np.zeros((3, 4)), np.zeros(3)], 5)
    with pytest.raises(InvalidUpdateError, match="layer shapes") as raised:
        FedAvg().aggregate_fit(1, model(), [result("a", 1.0), bad], [])
    assert raised.value.node_id == "evil"


def test_fedprox_aggregates_like_fedavg_and_tells_nodes_mu():
    results = [result("a", 1.0, 10), result("b", 2.0, 30)]
    prox = FedProx(proximal_mu=0.1).aggregate_fit(1, model(), results, []).model
    avg = FedAvg().aggregate_fit(1, model(), results, []).model
    assert prox is not None and avg is not None and len(prox.parameters) == len(SHAPES)
    for a, b in zip(prox.parameters, avg.parameters, strict=True):
        np.testing.assert_array_equal(a, b)
    assert FedProx(proximal_mu=0.1).node_config(1) == {"proximal_mu": 0.1}
    assert FedAvg().node_config(1) == {}
    with pytest.raises(ValueError, match="proximal_mu"):
        FedProx(proximal_mu=-1)


def reference_adam(rounds, eta=0.1, b1=0.9, b2=0.99, tau=1e-3, yogi=False):
    """Reddi et al.'s Algorithm 2 on a scalar, written out by hand."""
    x, m, v = 0.0, 0.0, tau**2
    for target in rounds:
        d = target - x
        m = b1 * m + (1 - b1) * d
        v = v - (1 - b2) * d * d * np.sign(v - d * d) if yogi else b2 * v + (1 - b2) * d * d
        x = x + eta * m / (np.sqrt(v) + tau)
    return x


@pytest.mark.parametrize(("cls", "yogi"), [(FedAdam, False), (FedYogi, True)])
def test_server_optimizer_state_travels_in_the_model_not_the_strategy(cls, yogi):
    # A different coordinator (a fresh strategy object) aggregates every round.
    targets = [1.0, 0.5, 2.0]
    current = model(0.0)
    for server_round, target in enumerate(targets, start=1):
        coordinator = cls(eta=0.1)
        before = copy.deepcopy(vars(coordinator))
        current_state = copy.deepcopy(dict(current.server_state))
        out = coordinator.aggregate_fit(
            server_round, current, [result("a", target), result("b", target)], []
        )
        new, metrics = out.model, out.metrics
        assert vars(coordinator) == before  # nothing kept in the object
        for key, arrays in current_state.items():  # the input state was not mutated
            for a, b in zip(arrays, current.server_state[key], strict=True):
                np.testing.assert_array_equal(a, b)
        assert new is not None
        assert set(new.server_state) == {f"{cls.name}.m", f"{cls.name}.v"}
        assert metrics["pseudo_gradient_norm"] > 0
        current = new
    expected = reference_adam(targets, yogi=yogi)
    assert len(current.parameters) == len(SHAPES)
    for layer in current.parameters:
        np.testing.assert_allclose(layer, expected, rtol=1e-12)


def test_server_optimizer_refuses_state_that_does_not_fit_the_model():
    broken = GlobalModel("torch-mlp", model().parameters, {"fedadam.m": [np.zeros(2)]})
    with pytest.raises(IncompatibleModelError, match="only one of"):
        FedAdam().aggregate_fit(1, broken, [result("a", 1.0)], [])
    wrong = GlobalModel(
        "torch-mlp",
        model().parameters,
        {"fedadam.m": [np.zeros(2)], "fedadam.v": [np.zeros(2)]},
    )
    with pytest.raises(IncompatibleModelError, match="layer shapes"):
        FedAdam().aggregate_fit(1, wrong, [result("a", 1.0)], [])


def test_median_and_trimmed_mean_ignore_a_minority_of_outliers():
    results = [result(f"h{i}", 1.0 + 0.01 * i) for i in range(7)]
    results += [result(f"x{i}", 1e6) for i in range(3)]
    med = CoordinateMedian().aggregate_fit(1, model(), results, []).model
    out = TrimmedMean(proportion=0.3).aggregate_fit(1, model(), results, [])
    trimmed, metrics = out.model, out.metrics
    plain = FedAvg().aggregate_fit(1, model(), results, []).model
    assert med is not None and trimmed is not None and plain is not None
    assert np.all(np.abs(med.parameters[0] - 1.0) < 0.1)
    assert np.all(np.abs(trimmed.parameters[0] - 1.0) < 0.1)
    assert np.all(plain.parameters[0] > 1e5)
    assert metrics["trimmed_per_side"] == 3
    assert out.included == tuple(sorted(r.node_id for r in results)) and out.failures == ()


def test_trimmed_mean_with_few_nodes_keeps_at_least_one_value():
    out = TrimmedMean(proportion=0.45).aggregate_fit(
        1, model(), [result("a", 1.0), result("b", 3.0)], []
    )
    new = out.model
    assert new is not None and out.metrics["trimmed_per_side"] == 0
    np.testing.assert_allclose(new.parameters[0], 2.0)


def test_multi_krum_drops_the_outliers_and_reports_them():
    rng = np.random.default_rng(0)
    results = [FitResult(f"h{i}", [rng.normal(0, 0.01, s) for s in SHAPES], 10) for i in range(7)]
    results += [FitResult(f"x{i}", [np.full(s, 50.0) for s in SHAPES], 10) for i in range(3)]
    late = FitFailure("late", "TIMEOUT", "no answer")
    out = MultiKrum(num_malicious=3).aggregate_fit(1, model(), results, [late])
    new = out.model
    assert new is not None
    assert out.metrics["krum_dropped"] == 3 and out.metrics["num_failures"] == 1
    assert out.included == tuple(f"h{i}" for i in range(7))
    assert [(f.node_id, f.code) for f in out.failures] == [
        ("late", "TIMEOUT"), ("x0", "KRUM_DROPPED"), ("x1", "KRUM_DROPPED"), ("x2", "KRUM_DROPPED")
    ]  # fmt: skip
    assert "not among the 7 lowest of 10" in out.failures[1].reason
    assert np.all(np.abs(new.parameters[0]) < 0.05)


def test_create_strategy_builds_every_name_profiles_use():
    assert set(STRATEGY_NAMES) == {
        "fedavg", "fedprox", "fedadam", "fedyogi", "median", "trimmed-mean", "multi-krum",
        "scaffold", "xgb-bagging", "xgb-histogram",
    }  # fmt: skip
    assert isinstance(create_strategy("fedprox", proximal_mu=0.5), FedProx)
    assert create_strategy("trimmed-mean", proportion=0.3).proportion == 0.3  # type: ignore[attr-defined]
    assert isinstance(create_strategy("multi-krum", num_malicious=2), MultiKrum)
    for name in ("xgb-bagging", "xgb-histogram"):
        tree = create_strategy(name)
        assert type(tree).__module__.startswith("federated.trees")
    with pytest.raises(IncompatibleModelError, match="unknown strategy 'fedsgd'"):
        create_strategy("fedsgd")
    with pytest.raises(IncompatibleModelError, match="unknown parameters"):
        create_strategy("fedavg", eta=1.0)


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_every_strategy_declares_what_callers_use(name):
    strategy = create_strategy(name)
    assert strategy.unwrapped() is strategy
    assert strategy.node_config(1) == ({"proximal_mu": 0.01} if name == "fedprox" else {})


def test_aggregate_result_keeps_nodes_and_failures_in_canonical_order():
    b, a = FitFailure("b", "X", "late; twice, really"), FitFailure("a", "Y", "gone")
    out = AggregateResult(None, included=("c", "a"), failures=(b, a), reason="none")
    assert out.included == ("a", "c") and out.failures == (a, b)
    extended = out.with_metrics({"k": 1})
    assert extended.metrics == {"k": 1} and out.metrics == {}
    assert extended.failures == (a, b) and extended.reason == "none"
