"""Feature scaling fixed by the profile, identical on every node, coordinator and server.

Each feature is mapped into [0, 1] by the bounds the profile's ``feature_schema`` declares
(one ``min``/``max`` for all features, or one per column). The bounds are public and part
of the profile, so no node's data decides them (per-node standardization would make nodes
train in different coordinate systems and break averaging), and the served model applies
exactly what training applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import numpy as np

from federated.errors import InvalidInputError
from federated.types import NDArray


def feature_bounds(
    feature_schema: Mapping[str, Any], n_features: int
) -> tuple[NDArray, NDArray] | None:
    """Lower and upper bound per feature, or ``None`` when the schema declares none."""
    columns = feature_schema.get("columns")
    if columns:
        if len(columns) != n_features:
            raise InvalidInputError(
                f"the profile declares {len(columns)} columns, the data has {n_features}"
            )
        if not all("min" in c and "max" in c for c in columns):
            return None
        low = np.array([float(Fraction(c["min"])) for c in columns])
        high = np.array([float(Fraction(c["max"])) for c in columns])
    elif "min" in feature_schema and "max" in feature_schema:
        low = np.full(n_features, float(Fraction(feature_schema["min"])))
        high = np.full(n_features, float(Fraction(feature_schema["max"])))
    else:
        return None
    if np.any(high <= low):
        raise InvalidInputError("every feature's max must exceed its min")
    return low, high


def scale_features(X: Any, feature_schema: Mapping[str, Any]) -> NDArray:
    """``X`` as float32 rows in [0, 1] by the schema's bounds (values outside are clipped)."""
    rows = np.asarray(X, dtype=np.float64)
    rows = rows.reshape(rows.shape[0], -1) if rows.ndim > 2 else np.atleast_2d(rows)
    bounds = feature_bounds(feature_schema, rows.shape[1])
    if bounds is None:
        return rows.astype(np.float32)
    low, high = bounds
    scaled: NDArray = np.clip((rows - low) / (high - low), 0.0, 1.0).astype(np.float32)
    return scaled
