"""Exceptions of the MLflow layer.

Every error carries a stable ``code`` that flows, scripts and the ledger can rely on, and a
readable message. MLflow's own exceptions are translated at this boundary (``raise … from``),
so callers never need to import mlflow to handle a failure.

Hierarchy::

    RegistryError                 root; code REGISTRY_ERROR
    ├── NotConfiguredError        no tracking URI: call ``registry.configure`` first
    ├── TrackingError             an MLflow call failed (server unreachable, conflicting param…)
    ├── ArtifactMissingError      no artifact at that URI
    ├── ArtifactIntegrityError    downloaded bytes do not have the expected sha256
    ├── ModelNotFoundError        no registered version with that hash, alias or number
    ├── InvalidModelError         bytes or profile cannot make a servable model
    └── EvaluationError           bad evaluation input or an objective metric nobody computes
"""

from __future__ import annotations

from typing import Any


class RegistryError(Exception):
    """Root of every error raised by :mod:`registry`; ``details`` holds structured context."""

    code: str = "REGISTRY_ERROR"

    def __init__(self, message: str, **details: Any) -> None:
        self.message = message
        self.details = details
        super().__init__(f"{self.code}: {message}")


class NotConfiguredError(RegistryError):
    code = "NOT_CONFIGURED"


class TrackingError(RegistryError):
    code = "TRACKING_ERROR"


class ArtifactMissingError(RegistryError):
    code = "ARTIFACT_MISSING"


class ArtifactIntegrityError(RegistryError):
    """The bytes at ``uri`` hash to ``actual``, not the ``expected`` sha256 (hex)."""

    code = "ARTIFACT_INTEGRITY"

    def __init__(self, uri: str, *, expected: str, actual: str) -> None:
        super().__init__(
            f"{uri}: sha256 is {actual}, expected {expected}; refusing to use these bytes",
            uri=uri,
            expected=expected,
            actual=actual,
        )
        self.uri = uri
        self.expected = expected
        self.actual = actual


class ModelNotFoundError(RegistryError):
    code = "MODEL_NOT_FOUND"


class InvalidModelError(RegistryError):
    code = "INVALID_MODEL"


class EvaluationError(RegistryError):
    code = "EVALUATION_ERROR"
