"""Typed chaincode errors with stable codes.

A failed transaction is never returned as a success payload: the contract raises, the peer
turns the exception into an error response (so nothing is endorsed or written), and the
client turns the response back into the same typed error. The wire form is a marker followed
by canonical JSON, found anywhere in the peer's message, because Fabric peers wrap chaincode
messages in text of their own.

Hierarchy (under :class:`fedspec.errors.FedspecError`, codes from :class:`~fedspec.errors.ErrorCode`)::

    ChaincodeError                 INTERNAL
    ├── InvalidArgument            INVALID_ARGUMENT   malformed or out-of-range argument
    ├── NotFound                   NOT_FOUND          the named record does not exist
    ├── AlreadyExists              ALREADY_EXISTS     a one-time record exists (second vote, …)
    ├── Forbidden                  FORBIDDEN          the caller may not do this
    ├── Conflict                   CONFLICT           differs from what is already recorded
    ├── FailedPrecondition         FAILED_PRECONDITION wrong phase or deadline
    └── BudgetExceeded             BUDGET_EXCEEDED    privacy budget would be exceeded
"""

from __future__ import annotations

import json
from typing import Any

from fedspec.errors import ErrorCode, FedspecError

ERROR_MARKER = "fedspec-error:"


class ChaincodeError(FedspecError):
    """Root of all chaincode errors."""

    code = ErrorCode.INTERNAL

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, **details)

    def to_wire(self) -> str:
        body = {"code": str(self.code), "message": self.message, "details": self.details}
        return ERROR_MARKER + json.dumps(body, sort_keys=True, separators=(",", ":"))

    def __str__(self) -> str:
        # The contract API sends str(exception) as the response message: keep it parseable.
        return self.to_wire()


class InvalidArgument(ChaincodeError):
    code = ErrorCode.INVALID_ARGUMENT


class NotFound(ChaincodeError):
    code = ErrorCode.NOT_FOUND


class AlreadyExists(ChaincodeError):
    code = ErrorCode.ALREADY_EXISTS


class Forbidden(ChaincodeError):
    code = ErrorCode.FORBIDDEN


class Conflict(ChaincodeError):
    code = ErrorCode.CONFLICT


class FailedPrecondition(ChaincodeError):
    code = ErrorCode.FAILED_PRECONDITION


class BudgetExceeded(ChaincodeError):
    code = ErrorCode.BUDGET_EXCEEDED


_BY_CODE: dict[str, type[ChaincodeError]] = {
    cls.code: cls
    for cls in (
        ChaincodeError,
        InvalidArgument,
        NotFound,
        AlreadyExists,
        Forbidden,
        Conflict,
        FailedPrecondition,
        BudgetExceeded,
    )
}


def parse_wire_error(message: str) -> ChaincodeError | None:
    """Rebuild the typed error from a peer's message, or ``None`` if it holds none."""
    start = message.find(ERROR_MARKER)
    if start < 0:
        return None
    text = message[start + len(ERROR_MARKER) :]
    try:
        body, _ = json.JSONDecoder().raw_decode(text)
        cls = _BY_CODE.get(str(body["code"]), ChaincodeError)
        return cls(str(body["message"]), **dict(body.get("details") or {}))
    except (ValueError, KeyError, TypeError):
        return None
