"""Probabilities stay finite and sum to one; a model that cannot produce them raises a typed
error that simulations record instead of crashing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

from federated.errors import PredictionError
from federated.models import create_model
from federated.simulation import run_simulation
from federated.strategies import create_strategy
from federated.types import AggregateResult, FitFailure, FitResult, GlobalModel, Scalar
from fedspec.errors import ErrorCode

CLASSES = list(range(10))
PARAMETRIC = {
    "sklearn-linear": {"classes": CLASSES, "n_features": 64},
    "dp-logistic-regression": {"classes": CLASSES, "n_features": 64, "data_norm": 8.0},
    "torch-mlp": {"classes": CLASSES, "n_features": 64, "hidden_sizes": [16]},
    "torch-cnn": {"classes": CLASSES, "image_size": 8},
}


def _rows() -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 16, size=(40, 64))


def _assert_probabilities(proba: np.ndarray, n_rows: int, n_classes: int) -> None:
    assert proba.shape == (n_rows, n_classes)
    assert np.isfinite(proba).all() and (proba >= 0).all() and (proba <= 1).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-9)


def test_linear_scores_that_underflow_every_class_still_give_probabilities() -> None:
    """scikit-learn's one-vs-rest rule gives 0/0 = NaN rows here (every expit underflows)."""
    for family in ("sklearn-linear", "dp-logistic-regression"):
        model = create_model(family, **PARAMETRIC[family])
        coef = -1e4 * np.ones((10, 64))
        coef[3] *= 1.001  # class 3 has the lowest score: the others share the mass
        model.set_parameters([coef, np.zeros(10)])
        proba = model.predict_proba(_rows())
        _assert_probabilities(proba, 40, 10)
        assert (model.predict(_rows()) != 3).all()
        metrics = model.metrics(_rows(), np.arange(40) % 10)
        assert all(np.isfinite(v) for v in metrics.values())


def test_binary_linear_model_with_huge_weights_is_finite() -> None:
    model = create_model("sklearn-linear", classes=[0, 1], n_features=3)
    model.set_parameters([np.array([[1e300, -1e300, 5e299]]), np.array([0.0])])
    X = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    proba = model.predict_proba(X)
    _assert_probabilities(proba, 3, 2)
    assert proba[0, 1] == 1.0 and proba[1, 0] == 1.0 and proba[2, 1] == 0.5


@pytest.mark.parametrize("family", sorted(PARAMETRIC))
def test_huge_weights_give_finite_probabilities(family: str) -> None:
    model = create_model(family, random_state=0, **PARAMETRIC[family])
    scale = 1e4 if family.startswith("torch") else 1e6  # float32 logits stay finite
    huge = [np.asarray(p) * scale for p in model.get_parameters()]
    if not family.startswith("torch"):
        huge = [np.random.default_rng(1).normal(size=p.shape) * scale for p in huge]
    model.set_parameters(huge)
    _assert_probabilities(model.predict_proba(_rows()), 40, 10)


def test_xgboost_probabilities_are_finite_for_extreme_inputs() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] > 0).astype(np.int64)
    model = create_model(
        "xgboost-classifier", classes=[0, 1], num_rounds=20, max_depth=2, num_threads=1
    ).fit(X, y)
    _assert_probabilities(model.predict_proba(np.full((5, 4), 1e30)), 5, 2)


@pytest.mark.parametrize("family", ["sklearn-linear", "torch-mlp"])
def test_a_nan_model_raises_the_typed_error(family: str) -> None:
    model = create_model(family, random_state=0, **PARAMETRIC[family])
    model.get_parameters()
    if family == "torch-mlp":
        with torch.no_grad():
            for parameter in model.module_.parameters():
                parameter.fill_(float("nan"))
    else:
        model.coef_ = np.full_like(model.coef_, np.nan)
    with pytest.raises(PredictionError) as info:
        model.predict_proba(_rows())
    assert info.value.code == ErrorCode.PREDICTION_FAILED == "PREDICTION_FAILED"
    with pytest.raises(PredictionError):
        model.metrics(_rows(), np.arange(40) % 10)


def test_linear_scores_that_overflow_to_nan_raise_the_typed_error() -> None:
    model = create_model("sklearn-linear", classes=[0, 1], n_features=4)
    model.set_parameters([_OVERFLOWING, np.array([0.0])])
    with pytest.raises(PredictionError):
        model.predict_proba(np.full((3, 4), 10.0))  # inf − inf, in any summation order


_OVERFLOWING = np.array([[1e308, 1e308, -1e308, -1e308]])


@dataclass(frozen=True)
class _Diverging:
    """A strategy whose model's scores overflow: evaluation cannot produce probabilities."""

    def node_config(self, server_round: int) -> dict[str, Scalar]:
        return {}

    def unwrapped(self) -> Any:
        return self

    def aggregate_fit(
        self,
        server_round: int,
        current: GlobalModel,
        results: list[FitResult],
        failures: list[FitFailure],
    ) -> AggregateResult:
        model = GlobalModel("sklearn-linear", [_OVERFLOWING.copy(), np.zeros(1)])
        return AggregateResult(model, {}, included=tuple(r.node_id for r in results))


def test_simulation_records_a_round_whose_model_cannot_predict() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y = (X[:, 0] > 0).astype(np.int64)
    parts = {"a": (X[:30], y[:30]), "b": (X[30:], y[30:])}
    hyperparameters = {"classes": [0, 1], "n_features": 4, "epochs": 1}
    history = run_simulation(
        parts,
        family="sklearn-linear",
        hyperparameters=hyperparameters,
        strategy=_Diverging(),
        rounds=2,
        evaluation=(np.full((4, 4), 10.0), np.array([0, 1, 0, 1])),
    )
    assert [r.error for r in history.rounds] == ["PREDICTION_FAILED"] * 2
    assert all(r.evaluation == {} for r in history.rounds)
    # Nodes that start from that model fail with typed errors (SGD overflows, or training
    # metrics cannot be computed), recorded as failures rather than raised.
    assert {f.code for f in history.rounds[1].failures} <= {"TRAINING_FAILED", "PREDICTION_FAILED"}
    fine = run_simulation(
        parts,
        family="sklearn-linear",
        hyperparameters=hyperparameters,
        strategy=create_strategy("fedavg"),
        rounds=1,
        evaluation=(X, y),
    )
    assert fine.rounds[0].error is None and fine.rounds[0].evaluation["accuracy"] > 0.5
