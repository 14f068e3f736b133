"""fedspec's ledger client, in the shape of Hyperledger Fabric's Gateway client.

``connect(service, identity, signer)`` → ``gateway.get_network(channel)`` →
``network.get_contract(chaincode)`` → ``evaluate_transaction`` / ``submit_transaction`` /
``submit_async`` + ``get_status``, with chaincode events and checkpoints; errors are typed by
phase. :class:`FedspecLedger` is the typed domain facade the rest of fedspec uses. Backends
(embedded ledger, Fabric) are chosen by :class:`LedgerConfig`.

Names are exported lazily (PEP 562): ``from ledger_client import Consortium`` loads the
consortium module only, not the gRPC, protobuf and chaincode modules the Gateway needs, so
read-only commands such as ``fedspec --help`` start without them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
        Balance,
        Balances,
        Budget,
        ChainInfo,
        Committed,
        ConsortiumRecord,
        DemandGroup,
        DemandRecord,
        EpsilonDelta,
        HistoryRound,
        Minted,
        ModelCommitment,
        ModelRecord,
        ModelSource,
        ModelSummary,
        Node,
        Profile,
        ProfileHistory,
        Round,
        RoundSummary,
        Submitted,
        Transferred,
        UpdateCommitment,
        UpdateRecord,
        UpdateValidation,
        Vote,
        from_fixed,
        new_seed_secret,
        to_fixed,
    )

_EXPORTS = {
    "LedgerConfig": "ledger_client.backends",
    "close_services": "ledger_client.backends",
    "open_ledger": "ledger_client.backends",
    "open_service": "ledger_client.backends",
    "Consortium": "ledger_client.consortium",
    "CommitError": "ledger_client.errors",
    "CommitStatusError": "ledger_client.errors",
    "ConfigurationError": "ledger_client.errors",
    "EndorseError": "ledger_client.errors",
    "GatewayError": "ledger_client.errors",
    "IdentityError": "ledger_client.errors",
    "LedgerError": "ledger_client.errors",
    "LedgerFileError": "ledger_client.errors",
    "SubmitError": "ledger_client.errors",
    "FedspecLedger": "ledger_client.facade",
    "ChaincodeEvent": "ledger_client.gateway",
    "Checkpoint": "ledger_client.gateway",
    "Contract": "ledger_client.gateway",
    "FileCheckpoint": "ledger_client.gateway",
    "Gateway": "ledger_client.gateway",
    "Network": "ledger_client.gateway",
    "Status": "ledger_client.gateway",
    "connect": "ledger_client.gateway",
    "Identity": "ledger_client.identity",
    "MspIdentity": "ledger_client.identity",
    "Signer": "ledger_client.identity",
    "load_msp_identity": "ledger_client.identity",
    "new_private_key_signer": "ledger_client.identity",
    "FIXED_POINT": "ledger_client.records",
    "Balance": "ledger_client.records",
    "Balances": "ledger_client.records",
    "Budget": "ledger_client.records",
    "ChainInfo": "ledger_client.records",
    "Committed": "ledger_client.records",
    "ConsortiumRecord": "ledger_client.records",
    "DemandGroup": "ledger_client.records",
    "DemandRecord": "ledger_client.records",
    "EpsilonDelta": "ledger_client.records",
    "HistoryRound": "ledger_client.records",
    "Minted": "ledger_client.records",
    "ModelCommitment": "ledger_client.records",
    "ModelRecord": "ledger_client.records",
    "ModelSource": "ledger_client.records",
    "ModelSummary": "ledger_client.records",
    "Node": "ledger_client.records",
    "Profile": "ledger_client.records",
    "ProfileHistory": "ledger_client.records",
    "Round": "ledger_client.records",
    "RoundSummary": "ledger_client.records",
    "Submitted": "ledger_client.records",
    "Transferred": "ledger_client.records",
    "UpdateCommitment": "ledger_client.records",
    "UpdateRecord": "ledger_client.records",
    "UpdateValidation": "ledger_client.records",
    "Vote": "ledger_client.records",
    "from_fixed": "ledger_client.records",
    "new_seed_secret": "ledger_client.records",
    "to_fixed": "ledger_client.records",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ledger_client' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "FIXED_POINT",
    "Balance",
    "Balances",
    "Budget",
    "ChainInfo",
    "ChaincodeEvent",
    "Checkpoint",
    "CommitError",
    "CommitStatusError",
    "Committed",
    "ConfigurationError",
    "Consortium",
    "ConsortiumRecord",
    "Contract",
    "DemandGroup",
    "DemandRecord",
    "EndorseError",
    "EpsilonDelta",
    "FedspecLedger",
    "FileCheckpoint",
    "Gateway",
    "GatewayError",
    "HistoryRound",
    "Identity",
    "IdentityError",
    "LedgerConfig",
    "LedgerError",
    "LedgerFileError",
    "Minted",
    "ModelCommitment",
    "ModelRecord",
    "ModelSource",
    "ModelSummary",
    "MspIdentity",
    "Network",
    "Node",
    "Profile",
    "ProfileHistory",
    "Round",
    "RoundSummary",
    "Signer",
    "Status",
    "SubmitError",
    "Submitted",
    "Transferred",
    "UpdateCommitment",
    "UpdateRecord",
    "UpdateValidation",
    "Vote",
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
