"""The expectation suite for a plan, as plain data: (Great Expectations class, kwargs).

Kept free of Great Expectations so the suite (and its hash, which names it) is built and
tested without the ~4 s import.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from federated.validation.frame import (
    ABOVE_MAX,
    BELOW_MIN,
    COUNTERS,
    LABEL,
    NONFINITE,
    ROW_MIN,
    WIDTH,
)
from federated.validation.schema import ValidationPlan

Expectation = tuple[str, dict[str, Any]]


def build_expectations(plan: ValidationPlan, *, mostly: float = 1.0) -> list[Expectation]:
    """Table shape, dtype, nulls, value ranges, label set and minimum rows.

    ``mostly`` is the fraction of rows that must pass each row-level rule (1.0: all).
    """
    if not 0.0 < mostly <= 1.0:
        raise ValueError(f"mostly must be in (0, 1], got {mostly}")
    tolerance = {} if mostly == 1.0 else {"mostly": mostly}
    suite: list[Expectation] = [
        ("ExpectTableRowCountToBeBetween", {"min_value": plan.min_rows}),
        (
            "ExpectColumnValuesToBeInTypeList",
            {"column": ROW_MIN, "type_list": list(plan.matrix_types)},
        ),
    ]
    if plan.feature_names is not None:
        ordered = [*plan.feature_names, *COUNTERS, LABEL]
        suite.append(("ExpectTableColumnsToMatchOrderedList", {"column_list": ordered}))
    if plan.n_features is not None:
        suite.append(
            ("ExpectColumnValuesToBeInSet", {"column": WIDTH, "value_set": [plan.n_features]})
        )
    for counter in (NONFINITE, BELOW_MIN, ABOVE_MAX):
        suite.append(
            (
                "ExpectColumnValuesToBeBetween",
                {"column": counter, "min_value": 0, "max_value": 0, **tolerance},
            )
        )
    suite.append(("ExpectColumnValuesToNotBeNull", {"column": LABEL, **tolerance}))
    if plan.labels is not None:
        suite.append(
            (
                "ExpectColumnValuesToBeInSet",
                {"column": LABEL, "value_set": list(plan.labels), **tolerance},
            )
        )
    return suite


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, ASCII: the same bytes on every machine."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def suite_sha256(expectations: list[Expectation]) -> str:
    return hashlib.sha256(canonical_json([[n, k] for n, k in expectations]).encode()).hexdigest()
