"""Automated evaluation of a global model on held-out data, for a round's promotion decision.

Returns a plain ``dict[str, float]``:

- quality: ``accuracy``, ``f1_macro``, ``log_loss`` (+ ``roc_auc`` for two classes), or
  ``rmse``, ``mae``, ``r2`` for regression, computed exactly as the adapters' ``metrics``;
- ``objective``: the value of the profile's ``objective.metric`` (any key of this dict);
- ``latency_ms_p50`` / ``latency_ms_p95``: one-row ``predict`` calls on this machine;
  ``batch_latency_ms_p50`` / ``batch_latency_ms_p95``: per row, within batches of
  ``batch_size``;
- ``cpu_s_per_1k_predictions``: an energy proxy, process CPU time (``time.process_time``,
  all threads) per 1,000 rows predicted in batches. CPU used meanwhile by other threads of
  the process (concurrent Prefect tasks) is counted too: evaluate when the process is idle,
  or read it as an upper bound;
- ``model_size_bytes``: length of the exchange file (given, or held by a fedspec pyfunc);
- ``n_rows`` and ``evaluation_seconds``.

Why not ``mlflow.models.evaluate`` for the quality metrics: it always logs into the calling
thread's active run (starting a new run when there is none), which breaks the explicit
parent/child layout and is not thread-safe under Prefect's task runners; it took 0.8 s warm
(2 s cold) for 400 digits rows versus ~10 ms here, draws matplotlib plots, averages
multiclass F1 by support (``weighted``) unless configured, and cannot reach probabilities
through a pyfunc for log loss or ROC-AUC. scikit-learn computes the same standard metrics;
``tests/registry/test_evaluation.py`` checks they equal MLflow's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from federated.errors import FederatedError
from federated.models.metrics import classification_metrics, regression_metrics
from federated.types import NDArray
from registry.errors import EvaluationError
from registry.profiles import objective_of, prepare_features, task_type_of

Predict = Callable[[NDArray], Any]


def evaluate_global_model(
    model: Any,
    X: NDArray,
    y: NDArray,
    profile: Mapping[str, Any],
    *,
    model_bytes: bytes | None = None,
    latency_rows: int = 50,
    batch_size: int = 32,
    min_predictions: int = 1000,
) -> dict[str, float]:
    """Metrics of ``model`` (a ``federated.models`` adapter or an MLflow ``PyFuncModel``)
    on held-out ``(X, y)`` under ``profile``'s task and objective.

    ``X`` holds **raw** feature rows, as clients send them: an adapter gets them scaled by
    the profile (``registry.profiles.prepare_features``), as training scaled them and as
    the pyfunc scales them itself; latency includes that scaling, as serving does.

    ``latency_rows`` one-row calls are timed; batches are predicted until at least
    ``min_predictions`` rows have been, for the CPU-time proxy. About 0.1 s for 400 digits
    rows with a small MLP. Raises ``EvaluationError`` for empty or mismatched data, labels
    the model does not know, or an objective metric this function does not compute.
    """
    started = time.perf_counter()
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[0] != y.shape[0]:
        raise EvaluationError(f"need matching non-empty X (2-D) and y, got {X.shape} and {y.shape}")
    task = task_type_of(profile)
    objective = objective_of(profile)
    predict, predict_proba = _predictors(model, profile)
    try:
        if task == "classification":
            proba, classes = predict_proba(X)
            result = classification_metrics(y, proba, classes.astype(y.dtype, copy=False))
        else:
            result = regression_metrics(
                y.astype(np.float64), np.asarray(predict(X), dtype=np.float64)
            )
        result.update(_timings(predict, X, latency_rows, batch_size, min_predictions))
    except (FederatedError, ValueError) as exc:
        raise EvaluationError(f"evaluation failed: {type(exc).__name__}: {exc}") from exc
    size = model_bytes if model_bytes is not None else _pyfunc_bytes(model)
    if size is not None:
        result["model_size_bytes"] = float(len(size))
    result["n_rows"] = float(X.shape[0])
    if objective.metric not in result:
        raise EvaluationError(
            f"objective metric {objective.metric!r} is not computed; known: {sorted(result)}",
            metric=objective.metric,
        )
    result["objective"] = result[objective.metric]
    result["evaluation_seconds"] = time.perf_counter() - started
    return result


def _predictors(
    model: Any, profile: Mapping[str, Any]
) -> tuple[Predict, Callable[[NDArray], tuple[NDArray, NDArray]]]:
    """``predict`` and ``(probabilities, classes)`` of raw rows, for an adapter or a pyfunc."""
    if hasattr(model, "unwrap_python_model"):  # an MLflow PyFuncModel

        def pyfunc_proba(X: NDArray) -> tuple[NDArray, NDArray]:
            frame = model.predict(X, params={"output": "proba"})
            return np.asarray(frame, dtype=np.float64), np.asarray(list(frame.columns))

        return model.predict, pyfunc_proba

    def adapter_predict(X: NDArray) -> Any:
        return model.predict(prepare_features(profile, X))

    def adapter_proba(X: NDArray) -> tuple[NDArray, NDArray]:
        return np.asarray(model.predict_proba(prepare_features(profile, X))), np.asarray(
            model.classes_
        )

    return adapter_predict, adapter_proba


def _timings(
    predict: Predict, X: NDArray, latency_rows: int, batch_size: int, min_predictions: int
) -> dict[str, float]:
    n = X.shape[0]
    predict(X[:1])  # warm-up: first calls pay one-off costs (allocation, lazy imports)
    predict(X[:batch_size])
    single = []
    for i in range(min(latency_rows, n)):
        t0 = time.perf_counter()
        predict(X[i : i + 1])
        single.append((time.perf_counter() - t0) * 1000.0)
    per_row: list[float] = []
    predicted = 0
    cpu0 = time.process_time()
    while not per_row or predicted < min_predictions:  # at least one pass over X
        for start in range(0, n, batch_size):
            batch = X[start : start + batch_size]
            t0 = time.perf_counter()
            predict(batch)
            per_row.append((time.perf_counter() - t0) * 1000.0 / len(batch))
            predicted += len(batch)
    cpu = time.process_time() - cpu0
    return {
        "latency_ms_p50": float(np.percentile(single, 50)),
        "latency_ms_p95": float(np.percentile(single, 95)),
        "batch_latency_ms_p50": float(np.percentile(per_row, 50)),
        "batch_latency_ms_p95": float(np.percentile(per_row, 95)),
        "cpu_s_per_1k_predictions": cpu * 1000.0 / predicted,
    }


def _pyfunc_bytes(model: Any) -> bytes | None:
    if not hasattr(model, "unwrap_python_model"):
        return None
    try:
        inner = model.unwrap_python_model()
    except Exception:  # not a python_function model with a PythonModel inside
        return None
    data = getattr(inner, "model_bytes", None)
    return data if isinstance(data, bytes) else None
