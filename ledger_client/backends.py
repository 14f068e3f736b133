"""Choosing a ledger backend by configuration: the code above this module never knows which.

``embedded`` (the default) opens the local ledger file; ``fabric`` connects to a Fabric
peer's Gateway over gRPC. Both return a :class:`~ledger_client.service.GatewayService`.
"""

from __future__ import annotations

import threading
from pathlib import Path

from ledger_client.config import BACKENDS, LedgerConfig
from ledger_client.consortium import Consortium
from ledger_client.errors import ConfigurationError, LedgerError
from ledger_client.facade import FedspecLedger
from ledger_client.gateway import connect
from ledger_client.service import GatewayService, GatewayServiceError

_services: dict[tuple[str, str, str], GatewayService] = {}
_lock = threading.Lock()


def open_service(config: LedgerConfig, *, org: str | None = None) -> GatewayService:
    """One service per ledger in this process, shared: per consortium folder for the
    embedded ledger (the folder decides which peers it endorses with, whoever signs), per
    organization and endpoints for Fabric (each organization talks to its own peer)."""
    if config.backend not in BACKENDS:
        raise ConfigurationError(
            f"unknown ledger backend {config.backend!r}; choose one of {', '.join(BACKENDS)}"
        )
    if config.backend == "embedded":
        where = str(Path(config.consortium_dir).absolute())
    else:
        # Endpoints too: two Fabric networks one after the other (a test's, then another's)
        # must not share a connection to the first one's peer.
        where = f"{org or ''}@" + ",".join(
            f"{k}={v}" for k, v in sorted(config.fabric_peers.items())
        )
    key = (config.backend, str(Path(config.ledger_path).absolute()), where)
    with _lock:
        service = _services.get(key)
        if service is None:
            service = _create(config, org)
            _services[key] = service
        return service


def _create(config: LedgerConfig, org: str | None) -> GatewayService:
    if config.backend == "embedded":
        # Deferred: the embedded peer loads the chaincode, needed only for this backend.
        from ledger_client.embedded.peer import EmbeddedLedger

        consortium = (
            Consortium.load(config.consortium_dir) if Path(config.consortium_dir).exists() else None
        )
        return EmbeddedLedger(config.ledger_path, consortium)
    # Deferred: grpc and Fabric's protobuf modules load only for a Fabric backend.
    from ledger_client.fabric import FabricGatewayService

    return FabricGatewayService.from_config(config, org)


def open_ledger(config: LedgerConfig, identity: str) -> FedspecLedger:
    """The domain facade for ``identity`` (e.g. ``org1/node0``) on the configured ledger."""
    consortium = Consortium.load(config.consortium_dir)
    msp = consortium.identity(identity)
    service = open_service(config, org=msp.identity.msp_id)
    gateway = connect(service, msp.identity, msp.signer)
    return FedspecLedger(gateway.get_network(config.channel).get_contract(config.chaincode))


def apply_member_change(config: LedgerConfig, org: str, identity: str | None = None) -> int:
    """Bring the channel's configuration in line with ``org``'s approved membership change;
    returns the number of the configuration block that does it. On the embedded ledger the
    block is appended here; on Fabric ``identity`` (default: this home's admin) submits the
    channel update with the signatures the votes recorded, and the ordering service cuts the
    block (:func:`ledger_client.channel_update.apply_change`)."""
    if config.backend == "fabric":
        # Deferred: the channel update's messages are needed for a Fabric backend only.
        from ledger_client.channel_update import apply_change

        admin = identity or Consortium.load(config.consortium_dir).default_admin
        return apply_change(open_ledger(config, admin), org)
    service = open_service(config)
    apply = getattr(service, "apply_member_change", None)
    if apply is None:
        raise ConfigurationError(f"the {config.backend} ledger cannot apply membership changes")
    try:
        return int(apply(org))
    except GatewayServiceError as exc:
        raise LedgerError(exc.message, code=exc.code) from None


def channel_organizations(config: LedgerConfig) -> dict[str, list[str]] | None:
    """The embedded channel's current member organizations and their root CAs (None on
    Fabric, whose channel configuration the peers hold)."""
    service = open_service(config)
    organizations = getattr(service, "channel_organizations", None)
    return dict(organizations) if organizations is not None else None


def close_services() -> None:
    with _lock:
        for service in _services.values():
            service.close()
        _services.clear()


__all__ = [
    "BACKENDS",
    "LedgerConfig",
    "apply_member_change",
    "channel_organizations",
    "close_services",
    "open_ledger",
    "open_service",
]
