"""The one root of every fedspec error, and the stable codes they carry.

This module is the bottom of the layers (docs/architecture.md) and imports nothing of
fedspec's: the chaincode, the learning core, the adapters and the CLI all derive their errors
from :class:`FedspecError`, so a caller catches one class and reads one ``code``.

Hierarchy::

    FedspecError                        root: ``code`` is stable, ``message`` one line,
    │                                   ``details`` structured context
    ├── chaincode.errors.ChaincodeError     what the contract refuses (INVALID_ARGUMENT, …)
    ├── federated.errors.FederatedError     the learning core (INVALID_UPDATE, …)
    ├── ledger_client.errors.LedgerError    the ledger client, typed by the phase that failed
    ├── registry.errors.RegistryError       MLflow tracking, the model registry, model access
    ├── fabric_network.NetworkError         NETWORK_FAILED: a local Fabric network
    │   └── fabric_network.NodeError        NODE_FAILED, NODE_NOT_IN_CHANNEL, NODE_PORT_IN_USE,
    │                                       NODE_GENESIS_MISSING, NODE_NO_RAFT_MAJORITY,
    │                                       NODE_UPGRADE_PENDING, NODE_HOST_NOT_LOCAL,
    │                                       NODE_CERTIFICATE_INVALID: a member's own processes
    │                                       (`fedspec node up | upgrade`)
    ├── flows.virtual_nodes.SimulationError SIMULATION_INVALID; EngineUnavailableError
    │                                       SIMULATION_ENGINE_UNAVAILABLE (`fedspec simulate`)
    ├── fedspec.app.servers.ServerAuthError SERVER_UNAUTHORIZED, SERVER_FORBIDDEN; and
    │   ServerUnreachableError              SERVER_UNREACHABLE: the Prefect and MLflow servers
    ├── ConsortiumError                     CONSORTIUM_INVALID: MSP folders, identities
    ├── ProfileFileError                    PROFILE_INVALID: a profile file
    └── ConfigError                         CONFIG_INVALID: settings, backends, paths

The CLI turns any :class:`FedspecError` into one line ``fedspec: error: CODE: message`` and
exit code 2 (:func:`fedspec.cli.app.main`); programs compare ``error.code`` with
:class:`ErrorCode` members, never with string literals.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Every code a fedspec error can carry. A ``StrEnum``: members equal their strings, so
    codes survive JSON, the ledger's wire format and gRPC details unchanged."""

    INTERNAL = "INTERNAL"
    # The chaincode's refusals (gRPC status names, as Fabric's samples use).
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    FORBIDDEN = "FORBIDDEN"
    CONFLICT = "CONFLICT"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    BUDGET_EXCEEDED = "BUDGET_EXCEEDED"
    # Application: settings, consortium, profile files, the Fabric network.
    CONFIG_INVALID = "CONFIG_INVALID"
    CONSORTIUM_INVALID = "CONSORTIUM_INVALID"
    PROFILE_INVALID = "PROFILE_INVALID"
    NETWORK_FAILED = "NETWORK_FAILED"
    # The Prefect or MLflow server refused a member's credentials (fedspec.app.servers).
    SERVER_UNAUTHORIZED = "SERVER_UNAUTHORIZED"
    SERVER_FORBIDDEN = "SERVER_FORBIDDEN"
    SERVER_UNREACHABLE = "SERVER_UNREACHABLE"
    # A member's own processes on a running network (`fedspec node up`, fabric_network.member).
    NODE_FAILED = "NODE_FAILED"
    NODE_NOT_IN_CHANNEL = "NODE_NOT_IN_CHANNEL"
    NODE_PORT_IN_USE = "NODE_PORT_IN_USE"
    NODE_GENESIS_MISSING = "NODE_GENESIS_MISSING"
    NODE_NO_RAFT_MAJORITY = "NODE_NO_RAFT_MAJORITY"
    NODE_UPGRADE_PENDING = "NODE_UPGRADE_PENDING"
    NODE_HOST_NOT_LOCAL = "NODE_HOST_NOT_LOCAL"
    NODE_CERTIFICATE_INVALID = "NODE_CERTIFICATE_INVALID"
    # `fedspec simulate`: virtual nodes that cannot be made, an engine that cannot be had.
    SIMULATION_INVALID = "SIMULATION_INVALID"
    SIMULATION_ENGINE_UNAVAILABLE = "SIMULATION_ENGINE_UNAVAILABLE"
    # Ledger client, by phase.
    LEDGER_ERROR = "LEDGER_ERROR"
    IDENTITY_INVALID = "IDENTITY_INVALID"
    LEDGER_INVALID = "LEDGER_INVALID"
    LEDGER_TAMPERED = "LEDGER_TAMPERED"
    ENDORSE_FAILED = "ENDORSE_FAILED"
    SUBMIT_FAILED = "SUBMIT_FAILED"
    COMMIT_STATUS_FAILED = "COMMIT_STATUS_FAILED"
    COMMIT_FAILED = "COMMIT_FAILED"
    # A Fabric channel configuration update for a membership change (ledger_client.channel_update).
    CHANNEL_UPDATE_INVALID = "CHANNEL_UPDATE_INVALID"
    CHANNEL_UPDATE_STALE = "CHANNEL_UPDATE_STALE"
    # Rollback evidence: a member's signed checkpoints (ledger_client.checkpoints).
    LEDGER_ROLLED_BACK = "LEDGER_ROLLED_BACK"
    CHECKPOINT_INVALID = "CHECKPOINT_INVALID"
    # Transaction validation codes a commit can end with (Fabric's TxValidationCode names).
    MVCC_READ_CONFLICT = "MVCC_READ_CONFLICT"
    PHANTOM_READ_CONFLICT = "PHANTOM_READ_CONFLICT"
    DUPLICATE_TXID = "DUPLICATE_TXID"
    # The learning core.
    FEDERATED_ERROR = "FEDERATED_ERROR"
    INVALID_UPDATE = "INVALID_UPDATE"
    PRIVACY_CHECK_FAILED = "PRIVACY_CHECK_FAILED"
    INVALID_INPUT = "INVALID_INPUT"
    NOT_FITTED = "NOT_FITTED"
    INCOMPATIBLE_MODEL = "INCOMPATIBLE_MODEL"
    EMPTY_PARTITION = "EMPTY_PARTITION"
    QUORUM_NOT_MET = "QUORUM_NOT_MET"
    DATA_VALIDATION_FAILED = "DATA_VALIDATION_FAILED"
    DATASET_ERROR = "DATASET_ERROR"
    CONTRIBUTION_ERROR = "CONTRIBUTION_ERROR"
    TRAINING_FAILED = "TRAINING_FAILED"
    PLAN_INVALID = "PLAN_INVALID"
    DIVERGENCE_INVALID = "DIVERGENCE_INVALID"
    PREDICTION_FAILED = "PREDICTION_FAILED"
    # Secure aggregation (federated.secagg): masking, shares, unmasking.
    SECAGG_FAILED = "SECAGG_FAILED"
    SECAGG_PARAMETERS_INVALID = "SECAGG_PARAMETERS_INVALID"
    SECAGG_THRESHOLD_INVALID = "SECAGG_THRESHOLD_INVALID"
    SECAGG_OVERFLOW = "SECAGG_OVERFLOW"
    SECAGG_KEY_INVALID = "SECAGG_KEY_INVALID"
    SECAGG_SHARE_INVALID = "SECAGG_SHARE_INVALID"
    SECAGG_VECTOR_INVALID = "SECAGG_VECTOR_INVALID"
    SECAGG_TOO_FEW_RESPONDERS = "SECAGG_TOO_FEW_RESPONDERS"
    SECAGG_PROTOCOL_VIOLATION = "SECAGG_PROTOCOL_VIOLATION"
    # The registry (MLflow) and model access.
    REGISTRY_ERROR = "REGISTRY_ERROR"
    NOT_CONFIGURED = "NOT_CONFIGURED"
    TRACKING_ERROR = "TRACKING_ERROR"
    # The MLflow server refused this member's login (401) or this action to it (403).
    TRACKING_UNAUTHORIZED = "TRACKING_UNAUTHORIZED"
    TRACKING_FORBIDDEN = "TRACKING_FORBIDDEN"
    ARTIFACT_MISSING = "ARTIFACT_MISSING"
    ARTIFACT_INTEGRITY = "ARTIFACT_INTEGRITY"
    MODEL_NOT_FOUND = "MODEL_NOT_FOUND"
    INVALID_MODEL = "INVALID_MODEL"
    EVALUATION_ERROR = "EVALUATION_ERROR"
    QUERY_INVALID = "QUERY_INVALID"
    LEDGER_RECORD_MISSING = "LEDGER_RECORD_MISSING"
    INPUT_INVALID = "INPUT_INVALID"


class FedspecError(Exception):
    """Root of every fedspec error.

    ``code`` is stable and meant for programs (a class default, or given per instance where
    one class carries several, as a ledger commit's validation code); ``message`` is one
    readable line; ``details`` holds structured context (node, transaction, block, …).
    """

    code: str = ErrorCode.INTERNAL

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details


class ConfigError(FedspecError):
    """Settings that name an unknown backend, a bad path or a malformed value."""

    code = ErrorCode.CONFIG_INVALID


class ConsortiumError(FedspecError):
    """A consortium folder, MSP layout or identity that cannot be used."""

    code = ErrorCode.CONSORTIUM_INVALID


class ProfileFileError(FedspecError):
    """A profile file that cannot be read or does not follow the schema."""

    code = ErrorCode.PROFILE_INVALID
