"""Automated evaluation: quality metrics as the adapters compute them, latency, size and the
CPU-time proxy; equal for an adapter and its pyfunc, and equal to MLflow's own evaluator."""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes

import registry
from federated.exchange import encode_global_model
from federated.models import create_model
from federated.types import GlobalModel
from registry.profiles import prepare_features
from registry.tracking import ensure_experiment
from tests.registry.conftest import MLFLOW_WARNINGS, Digits, Trained, profile_for

pytestmark = MLFLOW_WARNINGS

QUALITY = ("accuracy", "f1_macro", "log_loss")
TIMINGS = (
    "latency_ms_p50",
    "latency_ms_p95",
    "batch_latency_ms_p50",
    "batch_latency_ms_p95",
    "cpu_s_per_1k_predictions",
)


def test_adapter_evaluation_reports_quality_latency_size_and_cpu(
    base_profile: dict[str, Any], strong: Trained, digits: Digits
) -> None:
    result = registry.evaluate_global_model(
        strong.adapter, digits.X_test, digits.y_test, base_profile, model_bytes=strong.data
    )
    assert all(isinstance(v, float) for v in result.values())
    reference = strong.adapter.metrics(prepare_features(base_profile, digits.X_test), digits.y_test)
    assert {k: result[k] for k in QUALITY} == {k: reference[k] for k in QUALITY}
    assert result["objective"] == result["accuracy"] > 0.8
    assert all(result[k] > 0 for k in TIMINGS)
    assert result["latency_ms_p95"] >= result["latency_ms_p50"]
    assert result["model_size_bytes"] == len(strong.data)
    assert result["n_rows"] == len(digits.y_test)
    assert "roc_auc" not in result  # ten classes


@pytest.mark.filterwarnings("ignore:Hint. Inferred schema contains integer:UserWarning")
def test_pyfunc_evaluation_matches_the_adapter_and_equals_mlflow_evaluate(
    store: registry.TrackingConfig, base_profile: dict[str, Any], strong: Trained, digits: Digits
) -> None:
    profile = profile_for(base_profile, "eval-a")
    with registry.round_run("eval-a", 1) as rid:
        registry.register_global_model(
            profile, 1, strong.data, run_id=rid, input_example=digits.X_test[:5]
        )
    model = registry.load_pyfunc("eval-a", sha256=strong.sha256)
    ours = registry.evaluate_global_model(model, digits.X_test, digits.y_test, profile)
    by_adapter = strong.adapter.metrics(prepare_features(profile, digits.X_test), digits.y_test)
    for key in QUALITY:
        assert ours[key] == pytest.approx(by_adapter[key], abs=1e-12)
    assert ours["model_size_bytes"] == len(strong.data)  # read from the loaded pyfunc

    # MLflow's evaluator on the same pyfunc, in a throwaway run of this test's own.
    frame = pd.DataFrame(digits.X_test, columns=[f"px_{i}" for i in range(64)])
    frame["label"] = digits.y_test
    with mlflow.start_run(experiment_id=ensure_experiment("eval-a")):
        theirs = mlflow.models.evaluate(
            model,
            frame,
            targets="label",
            model_type="classifier",
            evaluators="default",
            evaluator_config={"average": "macro", "log_model_explainability": False},
        ).metrics
    assert ours["accuracy"] == pytest.approx(theirs["accuracy_score"])
    assert ours["f1_macro"] == pytest.approx(theirs["f1_score"])


def test_regression_of_a_tree_model_from_its_exchange_bytes() -> None:
    X, y = load_diabetes(return_X_y=True)
    profile = {
        "id": "diabetes",
        "task": {"type": "regression"},
        "objective": {"metric": "rmse", "direction": "minimize"},
        "feature_schema": {"shape": [10]},
        "model": {"family": "xgboost-regressor"},
    }
    adapter = create_model("xgboost-regressor", num_rounds=20, random_state=0, num_threads=1)
    adapter.fit(X[:340], y[:340])
    data = encode_global_model(GlobalModel("xgboost-regressor", adapter.to_bytes()))
    loaded = registry.load_global_adapter(profile, data)
    np.testing.assert_array_equal(loaded.predict(X[340:]), adapter.predict(X[340:]))
    result = registry.evaluate_global_model(loaded, X[340:], y[340:], profile, model_bytes=data)
    assert result["objective"] == result["rmse"] > 0
    assert {"mae", "r2", *TIMINGS} <= set(result)
    assert "accuracy" not in result


def test_bad_inputs_and_unknown_objectives_are_typed(
    base_profile: dict[str, Any], weak: Trained, digits: Digits
) -> None:
    X, y = digits.X_test, digits.y_test
    with pytest.raises(registry.EvaluationError):
        registry.evaluate_global_model(weak.adapter, X, y[:-1], base_profile)
    with pytest.raises(registry.EvaluationError, match=r"INVALID_INPUT|label"):
        registry.evaluate_global_model(weak.adapter, X, y + 20, base_profile)
    odd = {**base_profile, "objective": {"metric": "brier", "direction": "minimize"}}
    with pytest.raises(registry.EvaluationError, match="brier") as caught:
        registry.evaluate_global_model(weak.adapter, X, y, odd)
    assert caught.value.code == "EVALUATION_ERROR"
