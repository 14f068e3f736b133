"""Data validation with Great Expectations, run by each node before any training.

The suite is derived from a profile's data description (:func:`plan_from_spec`). A failure
raises :class:`~federated.errors.DataValidationError` carrying Great Expectations' result;
success and failure both reduce to a :class:`ValidationSummary` (canonical JSON + sha256)
that the ledger can hold. On failure get it with ``summarize_validation(error.result)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from federated.datasets.info import DatasetInfo
from federated.datasets.store import NodeData
from federated.errors import DataValidationError
from federated.types import NDArray
from federated.validation.expectations import (
    Expectation,
    build_expectations,
    canonical_json,
    suite_sha256,
)
from federated.validation.frame import diagnose, validation_frame
from federated.validation.runner import run_expectations
from federated.validation.schema import ValidationPlan, plan_from_spec
from federated.validation.summary import (
    SUITE_PREFIX,
    ValidationSummary,
    summarize_validation,
)

Spec = Mapping[str, Any] | DatasetInfo


@dataclass(frozen=True)
class ValidationOutcome:
    summary: ValidationSummary
    result: dict[str, Any]


def check_local_data(
    X: NDArray,
    y: NDArray,
    spec: Spec,
    *,
    feature_names: Sequence[str] | None = None,
    mostly: float = 1.0,
) -> ValidationOutcome:
    """Validate without raising: the summary and Great Expectations' full result."""

    plan = plan_from_spec(spec)
    expectations = build_expectations(plan, mostly=mostly)
    frame = validation_frame(X, y, plan, feature_names)
    result = run_expectations(frame, expectations, SUITE_PREFIX + suite_sha256(expectations))
    return ValidationOutcome(summary=summarize_validation(result), result=result)


def validate_local_data(
    X: NDArray,
    y: NDArray,
    spec: Spec,
    *,
    feature_names: Sequence[str] | None = None,
    node_id: str | None = None,
    mostly: float = 1.0,
) -> ValidationSummary:
    """Validate a node's rows; raise :class:`DataValidationError` if any expectation fails."""
    outcome = check_local_data(X, y, spec, feature_names=feature_names, mostly=mostly)
    if not outcome.summary.success:
        raise DataValidationError(
            explain(outcome, X, spec, feature_names), result=outcome.result, node_id=node_id
        )
    return outcome.summary


def explain(
    outcome: ValidationOutcome,
    X: NDArray,
    spec: Spec,
    feature_names: Sequence[str] | None = None,
) -> str:
    """One readable line: which expectations failed, and on which columns and values."""
    failed = ", ".join(
        f"{f['expectation']}({f['column']})" if f["column"] else f["expectation"]
        for f in outcome.summary.as_dict()["failed"]
    )
    detail = diagnose(X, plan_from_spec(spec), feature_names) if np.ndim(X) == 2 else ""
    return f"local data failed {failed}" + (f"; {detail}" if detail else "")


def validate_node_data(node: NodeData, spec: Spec, *, mostly: float = 1.0) -> ValidationSummary:
    """Validate everything a node holds (training and local validation rows)."""
    X = np.concatenate([node.train.X, node.valid.X])
    y = np.concatenate([node.train.y, node.valid.y])
    return validate_local_data(
        X, y, spec, feature_names=node.info.feature_names, node_id=node.node_id, mostly=mostly
    )


__all__ = [
    "Expectation",
    "ValidationOutcome",
    "ValidationPlan",
    "ValidationSummary",
    "build_expectations",
    "canonical_json",
    "check_local_data",
    "explain",
    "plan_from_spec",
    "suite_sha256",
    "summarize_validation",
    "validate_local_data",
    "validate_node_data",
]
