"""What every adapter's ``metrics`` reports, computed by scikit-learn.

``score`` (scikit-learn's single number: accuracy, R²) comes from the estimator mixins.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics

from federated.types import NDArray


def classification_metrics(y_true: NDArray, proba: NDArray, classes: NDArray) -> dict[str, float]:
    """``accuracy``, ``f1_macro`` and ``log_loss``, plus ``roc_auc`` for two classes.

    ``proba`` has one column per declared class, in the order of ``classes``. ``log_loss``
    is taken over all declared classes, so a node missing some labels still gets a value.
    ``f1_macro`` averages over the labels present in ``y_true`` or predicted. ``roc_auc`` is
    left out when ``y_true`` holds a single class, where it is undefined (no NaN is reported).
    """
    y_pred = classes[np.argmax(proba, axis=1)]
    result = {
        "accuracy": float(metrics.accuracy_score(y_true, y_pred)),
        "f1_macro": float(metrics.f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "log_loss": float(metrics.log_loss(y_true, proba, labels=classes)),
    }
    if classes.size == 2 and np.unique(y_true).size == 2:
        result["roc_auc"] = float(metrics.roc_auc_score(y_true, proba[:, 1]))
    return result


def regression_metrics(y_true: NDArray, y_pred: NDArray) -> dict[str, float]:
    """``rmse``, ``mae`` and ``r2`` (``r2`` left out for a single row, where it is undefined)."""
    result = {
        "rmse": float(metrics.root_mean_squared_error(y_true, y_pred)),
        "mae": float(metrics.mean_absolute_error(y_true, y_pred)),
    }
    if y_true.size >= 2:
        result["r2"] = float(metrics.r2_score(y_true, y_pred))
    return result
