"""Turn a profile's data description into a plan of checks (pure; no Great Expectations).

The profile gives ``feature_schema`` (``shape`` with one ``min``/``max``, or named
``columns`` each with ``dtype``, ``min``, ``max``, ``nullable``) and ``task`` (``type``,
``labels``, ``min_rows``). Bounds are exact decimal strings on the ledger and become floats
here, on the node, where nothing is agreed by consensus.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np

from federated.datasets.info import DatasetInfo
from federated.errors import DatasetError
from federated.types import NDArray

_FLOAT_TYPES = ("float16", "float32", "float64")
_INT_TYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


@dataclass(frozen=True)
class ValidationPlan:
    """What one node's ``(X, y)`` must satisfy."""

    n_features: int | None
    feature_names: tuple[str, ...] | None
    lower: tuple[float, ...] | None  # per feature; -inf where unbounded
    upper: tuple[float, ...] | None
    nullable: tuple[bool, ...] | None
    matrix_types: tuple[str, ...]
    labels: tuple[int | str, ...] | None
    min_rows: int

    def bounds(self, width: int) -> tuple[NDArray, NDArray, NDArray]:
        """``(lower, upper, nullable)`` arrays for a matrix ``width`` columns wide (a width
        that differs from the plan's gets no bounds: the width check already fails)."""
        if self.lower is None or self.upper is None or self.nullable is None:
            return np.full(width, -np.inf), np.full(width, np.inf), np.zeros(width, dtype=bool)
        if len(self.lower) != width:
            return np.full(width, -np.inf), np.full(width, np.inf), np.zeros(width, dtype=bool)
        return np.array(self.lower), np.array(self.upper), np.array(self.nullable, dtype=bool)


def _decimal(value: Any, default: float) -> float:
    if value is None:
        return default
    try:
        number = float(Decimal(str(value)))
    except (InvalidOperation, ValueError) as exc:
        raise DatasetError(f"schema bound {value!r} is not a decimal") from exc
    if math.isnan(number):
        raise DatasetError(f"schema bound {value!r} is not a number")
    return number


def _from_columns(columns: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    dtypes = {str(c.get("dtype", "float")) for c in columns}
    return {
        "n_features": len(columns),
        "feature_names": tuple(str(c["name"]) for c in columns),
        "lower": tuple(_decimal(c.get("min"), -math.inf) for c in columns),
        "upper": tuple(_decimal(c.get("max"), math.inf) for c in columns),
        "nullable": tuple(bool(c.get("nullable", False)) for c in columns),
        # One matrix holds every column, so a single float column makes the matrix float;
        # integer, boolean and category codes are otherwise stored as integers or floats.
        "matrix_types": _FLOAT_TYPES if "float" in dtypes else _FLOAT_TYPES + _INT_TYPES,
    }


def _from_shape(schema: Mapping[str, Any]) -> dict[str, Any]:
    shape = schema.get("shape")
    width = int(np.prod([int(s) for s in shape])) if shape else None
    low, high = _decimal(schema.get("min"), -math.inf), _decimal(schema.get("max"), math.inf)
    bounded = width is not None
    return {
        "n_features": width,
        "feature_names": None,
        "lower": (low,) * width if bounded and width else None,
        "upper": (high,) * width if bounded and width else None,
        "nullable": (False,) * width if bounded and width else None,
        "matrix_types": _FLOAT_TYPES + _INT_TYPES,
    }


def plan_from_spec(spec: Mapping[str, Any] | DatasetInfo) -> ValidationPlan:
    """Build the plan from a profile (or its data part, or a :class:`DatasetInfo`)."""
    if isinstance(spec, DatasetInfo):
        spec = spec.profile_spec()
    schema = spec.get("feature_schema") or {}
    task = spec.get("task") or {}
    columns = schema.get("columns")
    parts = _from_columns(columns) if columns else _from_shape(schema)
    labels = task.get("labels")
    if task.get("type", "classification") == "regression":
        labels = None
    return ValidationPlan(
        labels=None if labels is None else tuple(labels),
        min_rows=int(task.get("min_rows", 1)),
        **parts,
    )
