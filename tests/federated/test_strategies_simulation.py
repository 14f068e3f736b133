"""The simulation harness's node and coordinator steps, on the real adapters."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from federated import simulation
from federated.errors import EmptyPartitionError, IncompatibleModelError
from federated.simulation import (
    aggregate_round,
    initial_model,
    run_simulation,
    scale_update,
    sign_flip,
    train_node,
)
from federated.strategies import FedAvg, FedProx
from federated.strategies.aggregate import global_norm, subtract
from federated.types import FitResult, GlobalModel

LINEAR = {"classes": [0, 1, 2], "n_features": 4, "epochs": 3, "learning_rate": 0.1}


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    return rng.normal(0, 0.3, (n, 4)) + np.eye(3, 4)[y] * 2, y


def test_attacks_flip_or_scale_the_update_around_the_global_model():
    current = GlobalModel("sklearn-linear", [np.array([1.0, 2.0])])
    honest = FitResult("n", [np.array([2.0, 0.0])], 5, {"family": "sklearn-linear"})
    flipped = sign_flip(3.0)(current, honest)
    scaled = scale_update(10.0)(current, honest)
    np.testing.assert_allclose(flipped.parameters[0], [1.0 - 3.0, 2.0 + 6.0])
    np.testing.assert_allclose(scaled.parameters[0], [11.0, -18.0])
    assert flipped.num_examples == 5 and flipped.metrics == honest.metrics


def test_train_node_starts_from_the_global_model_and_reports_train_metrics():
    start = initial_model("sklearn-linear", LINEAR, seed=0)
    assert [np.shape(a) for a in start.parameters] == [(3, 4), (3,)]
    result, spend = train_node(
        start, *blobs(60, 0), family="sklearn-linear", hyperparameters=LINEAR, node_id="a", seed=1
    )
    assert spend is None
    assert result.node_id == "a" and result.num_examples == 60
    assert result.metrics["family"] == "sklearn-linear"
    assert float(result.metrics["train_accuracy"]) > 0.9
    assert [np.shape(a) for a in result.parameters] == [(3, 4), (3,)]
    again, _ = train_node(
        start, *blobs(60, 0), family="sklearn-linear", hyperparameters=LINEAR, node_id="a", seed=1
    )
    for x, y in zip(result.parameters, again.parameters, strict=True):  # seeded
        np.testing.assert_array_equal(x, y)


def test_train_node_refuses_what_it_cannot_train():
    start = initial_model("sklearn-linear", LINEAR, seed=0)
    with pytest.raises(IncompatibleModelError, match="global model is 'sklearn-linear'"):
        train_node(start, *blobs(10, 0), family="torch-mlp", hyperparameters={})
    with pytest.raises(IncompatibleModelError, match=r"federated\.trees"):
        train_node(
            GlobalModel("xgboost-classifier", b""), *blobs(10, 0),
            family="xgboost-classifier", hyperparameters={},
        )  # fmt: skip
    with pytest.raises(EmptyPartitionError):
        train_node(
            start, np.zeros((0, 4)), np.zeros(0, dtype=int), family="sklearn-linear",
            hyperparameters=LINEAR,
        )  # fmt: skip
    with pytest.raises(IncompatibleModelError, match="no weight arrays"):
        initial_model("xgboost-classifier", {})


def test_aggregate_round_times_the_strategy_and_checks_the_family(monkeypatch):
    start = initial_model("sklearn-linear", LINEAR, seed=0)
    results = [
        train_node(start, *blobs(40, i), family="sklearn-linear", hyperparameters=LINEAR,
                   node_id=f"n{i}", seed=i)[0]
        for i in range(3)
    ]  # fmt: skip
    clock = SimpleNamespace(now=100.0)
    clock.perf_counter = lambda: clock.now
    monkeypatch.setattr(simulation, "time", clock)  # the clock aggregate_round reads

    class TakesTwoSeconds(FedAvg):
        def aggregate_fit(self, *args: Any) -> Any:
            clock.now += 2.0
            return super().aggregate_fit(*args)

    out = aggregate_round(TakesTwoSeconds(), start, results, [], server_round=2)
    model = out.model
    assert model is not None and model.family == "sklearn-linear"
    assert out.metrics["aggregate_seconds"] == 2.0  # the strategy's call, and only it
    assert out.included == ("n0", "n1", "n2") and out.failures == ()


def test_fedprox_mu_reaches_the_nodes_and_holds_them_near_the_global_model():
    nodes = {f"n{i}": blobs(80, i) for i in range(3)}
    start = initial_model("sklearn-linear", LINEAR, seed=0)

    def moved(strategy) -> float:
        history = run_simulation(
            nodes, family="sklearn-linear", hyperparameters=LINEAR, strategy=strategy,
            rounds=1, initial=start, seed=0,
        )  # fmt: skip
        assert history.model is not None
        return global_norm(subtract(history.model.parameters, start.parameters))  # type: ignore[arg-type]

    assert moved(FedProx(proximal_mu=10.0)) < 0.5 * moved(FedAvg())
