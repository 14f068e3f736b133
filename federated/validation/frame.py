"""The table Great Expectations checks: per-row violation counters (and named features).

Checking each of hundreds of pixel columns with its own expectation costs ~5 ms apiece, so
range, null and width checks run on a handful of per-row counters computed here with numpy
(how many cells of this row are below their column's minimum, above its maximum, missing).
Great Expectations then reports how many *rows* violate each rule, and its result holds
counts rather than feature values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from federated.types import NDArray
from federated.validation.schema import ValidationPlan

LABEL = "__label__"
WIDTH = "__width__"
NONFINITE = "__nonfinite__"
BELOW_MIN = "__below_min__"
ABOVE_MAX = "__above_max__"
ROW_MIN = "__row_min__"  # keeps the matrix's dtype, so one column carries the dtype check
COUNTERS = (WIDTH, NONFINITE, BELOW_MIN, ABOVE_MAX, ROW_MIN)


def feature_columns(plan: ValidationPlan, width: int, names: Sequence[str] | None) -> list[str]:
    """Column names for the features: the node's own names, else the schema's, else x0…"""
    if names is not None:
        return [str(n) for n in names]
    if plan.feature_names is not None and len(plan.feature_names) == width:
        return list(plan.feature_names)
    return [f"x{i}" for i in range(width)]


def _as_matrix(X: NDArray) -> NDArray:
    matrix = np.asarray(X)
    return matrix.reshape(matrix.shape[0], -1) if matrix.ndim != 2 else matrix


def violation_counts(X: NDArray, plan: ValidationPlan) -> dict[str, NDArray]:
    """Per-row counters; numeric matrices only (anything else counts every cell as bad)."""
    matrix = _as_matrix(X)
    n, width = matrix.shape
    if not np.issubdtype(matrix.dtype, np.number) or np.issubdtype(
        matrix.dtype, np.complexfloating
    ):
        every = np.full(n, width, dtype=np.int64)
        return {WIDTH: np.full(n, width), NONFINITE: every, BELOW_MIN: every, ABOVE_MAX: every}
    lower, upper, nullable = plan.bounds(width)
    values = matrix.astype(np.float64, copy=False)
    with np.errstate(invalid="ignore"):
        below = (values < lower).sum(axis=1)
        above = (values > upper).sum(axis=1)
    nonfinite = (~np.isfinite(values[:, ~nullable])).sum(axis=1)
    return {
        WIDTH: np.full(n, width, dtype=np.int64),
        NONFINITE: nonfinite.astype(np.int64),
        BELOW_MIN: below.astype(np.int64),
        ABOVE_MAX: above.astype(np.int64),
    }


def validation_frame(
    X: NDArray, y: NDArray, plan: ValidationPlan, names: Sequence[str] | None = None
) -> pd.DataFrame:
    """The counters and the label, one row per example, preceded by the named feature columns
    when the schema names them (so their names and order are checked); wide unnamed matrices
    (images) are left out, since the counters already cover them."""
    matrix = _as_matrix(X)
    n = matrix.shape[0]
    parts = []
    if plan.feature_names is not None:
        columns = feature_columns(plan, matrix.shape[1], names)
        if len(columns) != matrix.shape[1]:
            columns = [f"x{i}" for i in range(matrix.shape[1])]
        parts.append(pd.DataFrame(matrix, columns=columns))
    extra: dict[str, NDArray] = dict(violation_counts(matrix, plan))
    extra[ROW_MIN] = matrix.min(axis=1) if matrix.shape[1] else np.full(n, np.nan)
    labels = np.asarray(y)
    extra[LABEL] = labels if labels.shape == (n,) else np.full(n, None)
    parts.append(pd.DataFrame(extra))
    return pd.concat(parts, axis=1) if len(parts) > 1 else parts[0]


def diagnose(X: NDArray, plan: ValidationPlan, names: Sequence[str] | None = None) -> str:
    """Which columns break which rule (names and counts only), for an error message."""
    matrix = _as_matrix(X)
    if not np.issubdtype(matrix.dtype, np.number):
        return f"matrix dtype {matrix.dtype} is not numeric"
    width = matrix.shape[1]
    columns = feature_columns(plan, width, names)
    lower, upper, nullable = plan.bounds(width)
    values = matrix.astype(np.float64, copy=False)
    with np.errstate(invalid="ignore"):
        rules = {
            "below min": (values < lower).sum(axis=0),
            "above max": (values > upper).sum(axis=0),
            "missing": np.where(nullable, 0, (~np.isfinite(values)).sum(axis=0)),
        }
    found = []
    for rule, counts in rules.items():
        bad = [f"{columns[i]} ({int(counts[i])} rows)" for i in np.flatnonzero(counts)[:5]]
        if bad:
            more = int(np.count_nonzero(counts)) - len(bad)
            found.append(f"{rule}: " + ", ".join(bad) + (f" and {more} more" if more > 0 else ""))
    return "; ".join(found)
