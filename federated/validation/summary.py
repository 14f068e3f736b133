"""A validation result reduced to what the ledger may hold: counts, verdicts, hashes.

Deterministic (same data and suite → same bytes), compact (failed checks only, by name)
and free of feature values: Great Expectations' own result can quote offending values and
stays on the node.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from federated.validation.expectations import canonical_json

SUMMARY_FORMAT = "fedspec-validation-v1"
SUITE_PREFIX = "fedspec-"
_OBSERVED_SAFE = {"expect_column_values_to_be_in_type_list", "expect_table_row_count_to_be_between"}


@dataclass(frozen=True)
class ValidationSummary:
    """Canonical JSON of the summary and its sha256; hashable."""

    success: bool
    rows: int
    worst_unexpected_ppm: int
    canonical_json: str
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.canonical_json)
        return loaded

    @classmethod
    def from_canonical_json(cls, text: str) -> ValidationSummary:
        """Rebuild a summary received as text (from a node, or the ledger); the text must be
        canonical, so its hash is the one the sender computed."""
        try:
            body = json.loads(text)
            valid = canonical_json(body) == text and body.get("format") == SUMMARY_FORMAT
        except (ValueError, AttributeError):
            valid = False
        if not valid:
            raise ValueError("not a canonical fedspec validation summary")
        return cls(
            success=bool(body["success"]),
            rows=int(body["rows"]),
            worst_unexpected_ppm=int(body["worst_unexpected_ppm"]),
            canonical_json=text,
            sha256=hashlib.sha256(text.encode()).hexdigest(),
        )

    @property
    def quality(self) -> float:
        """Share of rows that passed every row-level rule; 0.0 when validation failed."""
        return (1.0 - self.worst_unexpected_ppm / 1_000_000) if self.success else 0.0


def _ppm(unexpected: int, elements: int) -> int:
    # Rounded up, in integers: a single bad row never rounds to zero.
    return 0 if elements <= 0 else (unexpected * 1_000_000 + elements - 1) // elements


def summarize_validation(result: Mapping[str, Any]) -> ValidationSummary:
    """Summary of a Great Expectations suite result (``to_json_dict()`` form)."""
    suite_name = str(result.get("suite_name", ""))
    rows, passed, worst = 0, 0, 0
    failed: list[dict[str, Any]] = []
    checks = list(result.get("results", []))
    for check in checks:
        config = check.get("expectation_config", {})
        kind = str(config.get("type", ""))
        column = str(config.get("kwargs", {}).get("column", ""))
        outcome = check.get("result") or {}
        raised = bool((check.get("exception_info") or {}).get("raised_exception", False))
        ok = bool(check.get("success")) and not raised
        if kind == "expect_table_row_count_to_be_between" and isinstance(
            outcome.get("observed_value"), int
        ):
            rows = int(outcome["observed_value"])
        unexpected = int(outcome.get("unexpected_count") or 0)
        worst = max(worst, _ppm(unexpected, int(outcome.get("element_count") or 0)))
        if ok:
            passed += 1
            continue
        entry: dict[str, Any] = {"expectation": kind, "column": column, "unexpected": unexpected}
        observed = outcome.get("observed_value")
        if kind in _OBSERVED_SAFE and isinstance(observed, int | str):
            entry["observed"] = observed
        if raised:
            entry["error"] = True
        failed.append(entry)
    failed.sort(key=lambda e: (e["expectation"], e["column"]))
    success = bool(result.get("success")) and not failed
    body = {
        "format": SUMMARY_FORMAT,
        "suite_sha256": suite_name.removeprefix(SUITE_PREFIX),
        "success": success,
        "rows": rows,
        "checks": len(checks),
        "passed": passed,
        "worst_unexpected_ppm": worst,
        "failed": failed,
    }
    text = canonical_json(body)
    return ValidationSummary(
        success=success,
        rows=rows,
        worst_unexpected_ppm=worst,
        canonical_json=text,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
    )
