"""fedspec's ledger client, in the shape of Hyperledger Fabric's Gateway client.

``connect(service, identity, signer)`` → ``gateway.get_network(channel)`` →
``network.get_contract(chaincode)`` → ``evaluate_transaction`` / ``submit_transaction`` /
``submit_async`` + ``get_status``, with chaincode events and checkpoints; errors are typed by
phase. :class:`FedspecLedger` is the typed domain facade the rest of fedspec uses. Backends
(embedded ledger, Fabric) are chosen by :class:`LedgerConfig`.
"""

from ledger_client.backends import LedgerConfig, close_services, open_ledger, open_service
from ledger_client.consortium import Consortium
from ledger_client.errors import (
    CommitError,
    CommitStatusError,
    ConfigurationError,
    EndorseError,
    GatewayError,
    IdentityError,
    LedgerError,
    LedgerFileError,
    SubmitError,
)
from ledger_client.facade import FedspecLedger
from ledger_client.gateway import (
    ChaincodeEvent,
    Checkpoint,
    Contract,
    FileCheckpoint,
    Gateway,
    Network,
    Status,
    connect,
)
from ledger_client.identity import (
    Identity,
    MspIdentity,
    Signer,
    load_msp_identity,
    new_private_key_signer,
)
from ledger_client.records import (
    FIXED_POINT,
    Committed,
    ModelCommitment,
    ModelRecord,
    Profile,
    Round,
    UpdateCommitment,
    from_fixed,
    new_seed_secret,
    to_fixed,
)

__all__ = [
    "FIXED_POINT",
    "ChaincodeEvent",
    "Checkpoint",
    "CommitError",
    "CommitStatusError",
    "Committed",
    "ConfigurationError",
    "Consortium",
    "Contract",
    "EndorseError",
    "FedspecLedger",
    "FileCheckpoint",
    "Gateway",
    "GatewayError",
    "Identity",
    "IdentityError",
    "LedgerConfig",
    "LedgerError",
    "LedgerFileError",
    "ModelCommitment",
    "ModelRecord",
    "MspIdentity",
    "Network",
    "Profile",
    "Round",
    "Signer",
    "Status",
    "SubmitError",
    "UpdateCommitment",
    "close_services",
    "connect",
    "from_fixed",
    "load_msp_identity",
    "new_private_key_signer",
    "new_seed_secret",
    "open_ledger",
    "open_service",
    "to_fixed",
]
