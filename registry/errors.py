"""Exceptions of the MLflow layer.

Every error carries a stable ``code`` that flows, scripts and the ledger can rely on, and a
readable message. MLflow's own exceptions are translated at this boundary (``raise … from``),
so callers never need to import mlflow to handle a failure.

Hierarchy (under :class:`fedspec.errors.FedspecError`, codes from :class:`~fedspec.errors.ErrorCode`)::

    RegistryError                 root; code REGISTRY_ERROR
    ├── NotConfiguredError        no tracking URI: call ``registry.configure`` first
    ├── TrackingError             an MLflow call failed (server unreachable, conflicting param…)
    │   └── TrackingAuthError     the server refused the login (TRACKING_UNAUTHORIZED, 401)
    │                             or the action to this user (TRACKING_FORBIDDEN, 403)
    ├── ArtifactMissingError      no artifact at that URI
    ├── ArtifactIntegrityError    downloaded bytes do not have the expected sha256
    ├── ModelNotFoundError        no registered version with that hash, alias or number
    ├── InvalidModelError         bytes or profile cannot make a servable model
    ├── EvaluationError           bad evaluation input or an objective metric nobody computes
    ├── QueryError                a client's model query that cannot be read (registry.matching)
    ├── LedgerRecordMissingError  the ledger has no such profile, or no model for it
    └── InputError                a client's rows that cannot be read or fed to the model
"""

from __future__ import annotations

from typing import Any

from fedspec.errors import ErrorCode, FedspecError


class RegistryError(FedspecError):
    """Root of every error raised by :mod:`registry`; ``details`` holds structured context."""

    code = ErrorCode.REGISTRY_ERROR

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, **details)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class NotConfiguredError(RegistryError):
    code = ErrorCode.NOT_CONFIGURED


class TrackingError(RegistryError):
    code = ErrorCode.TRACKING_ERROR


class TrackingAuthError(TrackingError):
    """The MLflow server refused this process's login (``TRACKING_UNAUTHORIZED``) or refused
    the action to its user (``TRACKING_FORBIDDEN``); ``details``: ``user``, ``endpoint``,
    ``status``."""

    code = ErrorCode.TRACKING_UNAUTHORIZED

    def __init__(self, message: str, *, forbidden: bool, **details: Any) -> None:
        super().__init__(message, **details)
        if forbidden:
            self.code = ErrorCode.TRACKING_FORBIDDEN


class ArtifactMissingError(RegistryError):
    code = ErrorCode.ARTIFACT_MISSING


class ArtifactIntegrityError(RegistryError):
    """The bytes at ``uri`` hash to ``actual``, not the ``expected`` sha256 (hex)."""

    code = ErrorCode.ARTIFACT_INTEGRITY

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
    code = ErrorCode.MODEL_NOT_FOUND


class InvalidModelError(RegistryError):
    code = ErrorCode.INVALID_MODEL


class EvaluationError(RegistryError):
    code = ErrorCode.EVALUATION_ERROR


class QueryError(RegistryError):
    """A bad model query: a constraint such as ``latency_ms<=abc``, an unknown operator or
    metric, a malformed characteristic (:mod:`registry.matching`)."""

    code = ErrorCode.QUERY_INVALID


class LedgerRecordMissingError(RegistryError):
    """The ledger, the authority on which model a profile serves, has no such profile or no
    committed model for it: nothing is loaded from MLflow alone."""

    code = ErrorCode.LEDGER_RECORD_MISSING


class InputError(RegistryError):
    """A client's rows that cannot be read (unknown file, bad CSV) or that no chosen model
    can take (wrong feature count, missing columns)."""

    code = ErrorCode.INPUT_INVALID
