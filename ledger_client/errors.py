"""Errors of the ledger client, typed by the phase that failed (as Fabric Gateway does).

Hierarchy (under :class:`fedspec.errors.FedspecError`, codes from :class:`~fedspec.errors.ErrorCode`)::

    LedgerError
    ├── IdentityError          IDENTITY_INVALID     an identity folder is missing or unreadable
    ├── LedgerFileError        LEDGER_INVALID       a file is not a fedspec ledger (or is damaged)
    ├── ConfigurationError     CONFIG_INVALID       settings name an unknown backend or bad path
    ├── LedgerRolledBackError  LEDGER_ROLLED_BACK   shorter than, or diverging from, a checkpoint
    ├── CheckpointInvalidError CHECKPOINT_INVALID   a checkpoint that is unreadable or not signed
    ├── ChannelUpdateError     CHANNEL_UPDATE_INVALID  a Fabric channel update that is not the
    │   │                                           change it cites, or lacks signatures
    │   └── StaleChannelUpdateError CHANNEL_UPDATE_STALE  the channel moved on since it was proposed
    └── GatewayError                                one transaction failed; carries transaction_id
        ├── EndorseError       chaincode's code, or the peer's (ACCESS_DENIED, BAD_SIGNATURE, …)
        ├── SubmitError        SUBMIT_FAILED, DUPLICATE_TXID, BAD_SIGNATURE …
        ├── CommitStatusError  COMMIT_STATUS_FAILED (e.g. timed out waiting)
        └── CommitError        the validation code of a transaction committed as invalid
                               (MVCC_READ_CONFLICT, ENDORSEMENT_POLICY_FAILURE, …)

``code`` is stable and meant for programs; ``str(error)`` is one readable line for people.
An :class:`EndorseError` raised by the contract keeps the contract's code (``FORBIDDEN``,
``BUDGET_EXCEEDED``, …) and its ``details``.
"""

from __future__ import annotations

from typing import Any

from fedspec.errors import ConfigError, ErrorCode, FedspecError


class LedgerError(FedspecError):
    code = ErrorCode.LEDGER_ERROR

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class IdentityError(LedgerError):
    code = ErrorCode.IDENTITY_INVALID


class LedgerFileError(LedgerError):
    code = ErrorCode.LEDGER_INVALID


class ConfigurationError(LedgerError, ConfigError):
    """Also a :class:`fedspec.errors.ConfigError`: one kind of mistake, one class to catch."""

    code = ErrorCode.CONFIG_INVALID


class GatewayError(LedgerError):
    def __init__(
        self, message: str, *, transaction_id: str = "", code: str | None = None, **details: Any
    ) -> None:
        super().__init__(message, code=code, **details)
        self.transaction_id = transaction_id


class EndorseError(GatewayError):
    code = ErrorCode.ENDORSE_FAILED


class SubmitError(GatewayError):
    code = ErrorCode.SUBMIT_FAILED


class CommitStatusError(GatewayError):
    code = ErrorCode.COMMIT_STATUS_FAILED


class CommitError(GatewayError):
    """The transaction was ordered but committed invalid; nothing it wrote was applied."""

    code = ErrorCode.COMMIT_FAILED

    def __init__(self, message: str, *, transaction_id: str, code: str, block_number: int) -> None:
        super().__init__(
            message, transaction_id=transaction_id, code=code, block_number=block_number
        )
        self.block_number = block_number


class LedgerRolledBackError(LedgerError):
    """The ledger is shorter than a member's checkpoint (:mod:`ledger_client.checkpoints`), or differs from it at its block."""

    code = ErrorCode.LEDGER_ROLLED_BACK

    def __init__(self, message: str, *, block: int, identity: str, **details: Any) -> None:
        super().__init__(message, block=block, identity=identity, **details)
        self.block = block
        self.identity = identity


class CheckpointInvalidError(LedgerError):
    """A checkpoint file that cannot be read or whose signature does not verify: not trusted."""

    code = ErrorCode.CHECKPOINT_INVALID


class ChannelUpdateError(LedgerError):
    """A Fabric channel configuration update that must not be signed or cannot be applied:
    it is not the membership change it cites, or it lacks the admins' signatures."""

    code = ErrorCode.CHANNEL_UPDATE_INVALID


class StaleChannelUpdateError(ChannelUpdateError):
    """The channel's configuration moved on since the update was computed (another change was
    applied first): the update can no longer apply, and the change must be proposed again."""

    code = ErrorCode.CHANNEL_UPDATE_STALE


RETRYABLE_COMMIT_CODES = frozenset({ErrorCode.MVCC_READ_CONFLICT, ErrorCode.PHANTOM_READ_CONFLICT})
