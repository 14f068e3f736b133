"""A dataset's fingerprint: what the ledger may hold about a node's data (hashes and a count).

``sha256`` covers the rows as a node stores them (training rows, then local validation
rows), as float64 little-endian with their shapes, so anyone holding the directory can
recompute it; ``schema_sha256`` covers the profile's ``feature_schema`` and ``task``, the
contract the rows were mapped onto. Never a row, a value or a column statistic.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from federated.types import NDArray

FORMAT = "fedspec-dataset-v1"


def schema_sha256(spec: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of the profile's ``feature_schema`` and ``task``."""
    part = {"feature_schema": spec.get("feature_schema") or {}, "task": spec.get("task") or {}}
    text = json.dumps(part, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def dataset_fingerprint(X: NDArray, y: NDArray, spec: Mapping[str, Any]) -> dict[str, Any]:
    """``{"sha256", "rows", "schema_sha256"}`` of rows ``X`` and labels ``y`` under ``spec``."""
    rows = np.ascontiguousarray(np.asarray(X, dtype="<f8"))
    labels = np.ascontiguousarray(np.asarray(y, dtype="<f8"))
    digest = hashlib.sha256(f"{FORMAT} X{rows.shape} y{labels.shape}\n".encode())
    digest.update(rows.tobytes())
    digest.update(labels.tobytes())
    return {
        "sha256": digest.hexdigest(),
        "rows": int(rows.shape[0]),
        "schema_sha256": schema_sha256(spec),
    }
