"""Checks on what callers hand to a model, each failing with a typed error from :mod:`errors`.

Adapters run these before any library sees the data, so a node's bad partition surfaces as
``EMPTY_PARTITION``, ``INVALID_INPUT`` or ``INCOMPATIBLE_MODEL`` rather than as whatever a
torch, XGBoost or scikit-learn internals happen to raise.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import sparse

from federated.errors import EmptyPartitionError, IncompatibleModelError, InvalidInputError
from federated.types import NDArray


def check_features(X: object, *, n_features: int | None, family: str) -> NDArray:
    """Return ``X`` as a finite 2-D float64 array with ``n_features`` columns when given.

    Raises ``EmptyPartitionError`` for no rows, ``InvalidInputError`` for a sparse, complex,
    non-numeric, non-2-D or non-finite ``X``, and ``IncompatibleModelError`` for a wrong
    column count. Messages contain the phrases scikit-learn's own validation uses.
    """
    if sparse.issparse(X):
        raise InvalidInputError(f"{family}: sparse input is not supported; pass a dense array")
    array = _real_array(X, "X", family)
    if array.ndim != 2:
        raise InvalidInputError(
            f"{family}: X must be 2-D (rows × features), got shape {array.shape}. Reshape your "
            f"data: X.reshape(-1, 1) for a single feature, X.reshape(1, -1) for a single row"
        )
    if array.shape[0] == 0:
        raise EmptyPartitionError(f"{family}: X has no rows")
    if n_features is not None and array.shape[1] != n_features:
        raise IncompatibleModelError(
            f"{family}: X has {array.shape[1]} features, the model expects {n_features}",
            expected=n_features,
            got=array.shape[1],
        )
    if not np.isfinite(array).all():
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise InvalidInputError(f"{family}: X contains {bad} NaN or infinite values")
    return array


def _real_array(values: object, name: str, family: str) -> NDArray:
    """``values`` as float64; complex values raise rather than losing their imaginary part."""
    try:
        array = np.asarray(values)
        if not np.iscomplexobj(array):
            return np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{family}: {name} is not numeric: {exc}") from exc
    raise InvalidInputError(f"{family}: {name}: Complex data not supported")


def check_target(y: object, *, n_rows: int, family: str) -> NDArray:
    """Return ``y`` as a finite 1-D float64 array of ``n_rows`` values."""
    if y is None:
        raise InvalidInputError(f"{family} requires y to be passed, but the target y is None")
    array = _real_array(y, "y", family)
    if array.ndim != 1 or array.shape[0] != n_rows:
        raise InvalidInputError(
            f"{family}: y must be 1-D with one value per row of X ({n_rows}), "
            f"got shape {array.shape}"
        )
    if not np.isfinite(array).all():
        raise InvalidInputError(f"{family}: y contains NaN or infinite values")
    return array


def check_labels(y: object, *, n_rows: int, family: str) -> NDArray:
    """Return ``y`` as a 1-D int64 array of ``n_rows`` integer labels."""
    values = check_target(y, n_rows=n_rows, family=family)
    labels = values.astype(np.int64)
    if not np.array_equal(labels, values):
        raise InvalidInputError(f"{family}: class labels must be integers, got a continuous target")
    return labels


def check_classes(classes: Iterable[int], *, family: str) -> NDArray:
    """Return declared ``classes`` as a sorted int64 array of at least two distinct labels."""
    array = np.asarray(list(classes))
    if array.ndim != 1 or array.size == 0 or not np.issubdtype(array.dtype, np.integer):
        raise InvalidInputError(f"{family}: classes must be a non-empty list of integers")
    unique = np.unique(array.astype(np.int64))
    if unique.size != array.size:
        raise InvalidInputError(f"{family}: classes contain duplicates: {array.tolist()}")
    if unique.size < 2:
        raise InvalidInputError(
            f"{family}: a classifier needs at least two classes, got {unique.size} class"
        )
    return unique


def encode_labels(labels: NDArray, classes: NDArray, *, family: str) -> NDArray:
    """Map labels to their index in the sorted ``classes`` (int64); unknown labels raise."""
    unknown = np.setdiff1d(labels, classes)
    if unknown.size:
        raise InvalidInputError(
            f"{family}: labels {unknown.tolist()[:10]} are not among the declared classes "
            f"{classes.tolist()}",
        )
    return np.searchsorted(classes, labels).astype(np.int64)
