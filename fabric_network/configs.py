"""The channel's configuration and each process's settings.

``configtx.yaml`` is generated here from the consortium (it is fedspec's own: the ordering
organization's raft orderers and the members' anchor peers where their bundles declare them,
the member organizations with NodeOU-based policies, a majority for lifecycle
and endorsement; the chaincode's endorsement policy is the channel's own, so it follows the
member set a vote changes). The peers and orderers start from Fabric's sample ``core.yaml`` /
``orderer.yaml`` shipped with the binaries and get every per-process value from the
environment, as Fabric's own test networks do.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from fabric_network.layout import Layout, Orderer, Peer
from ledger_client.channel_update import ORG_POLICY_ROLES

# Short batches for local use: a ledger phase waits up to this long for its block.
BATCH_TIMEOUT = "100ms"
# A block is cut at this many transactions even before the timeout.
BATCH_MAX_MESSAGES = 100
PROFILE = "FedspecChannel"
# The chaincode definition's endorsement policy: the channel's Application Endorsement policy
# (a MAJORITY of the member organizations' Endorsement policies, below). A reference, not a
# list of organizations: when a vote adds or removes a member, the majority is recomputed from
# the channel's configuration, with no new chaincode definition.
ENDORSEMENT_POLICY = "/Channel/Application/Endorsement"


def _signature(rule: str) -> dict[str, str]:
    return {"Type": "Signature", "Rule": rule}


def _implicit(rule: str) -> dict[str, str]:
    return {"Type": "ImplicitMeta", "Rule": rule}


def _any_of(org: str, roles: tuple[str, ...]) -> str:
    return "OR(" + ", ".join(f"'{org}.{role}'" for role in roles) + ")"


def configtx(layout: Layout, orderers: Sequence[Orderer], peers: Sequence[Peer]) -> dict[str, Any]:
    """The founding channel's configuration: ``orderers`` as its raft consenters (each with
    its own TLS certificate, from the consortium folder), ``peers``' organizations as its
    members with those peers as anchors."""
    # The orderer group: the ordering organization, and each member that runs raft orderers
    # of its own (in both groups, with the orderer group's policies there: its orderers sign
    # blocks, BlockValidation's ANY Writers).
    runs = list(dict.fromkeys([layout.orderer_org, *(layout.orderer_org_of(o) for o in orderers)]))
    ordering: list[dict[str, Any]] = [
        {
            "Name": org,
            "ID": org,
            "MSPDir": str(layout.org_dir(org) / "msp"),
            "Policies": {
                "Readers": _signature(f"OR('{org}.member')"),
                "Writers": _signature(f"OR('{org}.member')"),
                "Admins": _signature(f"OR('{org}.admin')"),
            },
            "OrdererEndpoints": [o.address for o in orderers if layout.orderer_org_of(o) == org],
        }
        for org in runs
    ]
    orgs: list[dict[str, Any]] = []
    for peer in peers:
        o = peer.org
        orgs.append(
            {
                "Name": o,
                "ID": o,
                "MSPDir": str(layout.org_dir(o) / "msp"),
                # The same policies as a member voted in later gets (ledger_client.channel_update).
                "Policies": {
                    name: _signature(_any_of(o, roles)) for name, roles in ORG_POLICY_ROLES.items()
                },
                # Gossip finds the other organizations' peers through these (for the
                # Gateway's endorsement plans).
                "AnchorPeers": [{"Host": peer.host, "Port": peer.port}],
            }
        )
    consenters = [
        {
            "Host": o.host,
            "Port": o.port,
            "ClientTLSCert": str(layout.orderer_dir(o.name, o.org) / "tls" / "server.crt"),
            "ServerTLSCert": str(layout.orderer_dir(o.name, o.org) / "tls" / "server.crt"),
        }
        for o in orderers
    ]
    meta = {
        "Readers": _implicit("ANY Readers"),
        "Writers": _implicit("ANY Writers"),
        "Admins": _implicit("MAJORITY Admins"),
    }
    profile = {
        "Policies": meta,
        "Capabilities": {"V3_0": True},
        "Orderer": {
            "OrdererType": "etcdraft",
            "EtcdRaft": {"Consenters": consenters},
            "BatchTimeout": BATCH_TIMEOUT,
            "BatchSize": {
                "MaxMessageCount": BATCH_MAX_MESSAGES,
                "AbsoluteMaxBytes": "64 MB",
                "PreferredMaxBytes": "4 MB",
            },
            "Organizations": ordering,
            "Policies": {**meta, "BlockValidation": _implicit("ANY Writers")},
            "Capabilities": {"V2_0": True},
        },
        "Application": {
            "Organizations": orgs,
            "Policies": {
                **meta,
                "LifecycleEndorsement": _implicit("MAJORITY Endorsement"),
                "Endorsement": _implicit("MAJORITY Endorsement"),
            },
            "Capabilities": {"V2_5": True},
        },
    }
    return {"Organizations": [*ordering, *orgs], "Profiles": {PROFILE: profile}}


def write_configtx(
    layout: Layout, directory: Path, orderers: Sequence[Orderer], peers: Sequence[Peer]
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    doc = configtx(layout, orderers, peers)
    (directory / "configtx.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def orderer_env(layout: Layout, o: Orderer) -> dict[str, str]:
    tls = layout.orderer_dir(o.name, o.org) / "tls"
    ca = str(tls / "ca.crt")
    # The other consenters' organizations' TLS CAs too: raft traffic crosses organizations
    # where members run orderers of their own.
    cas = f"[{ca}, {layout.orderer_tls_cas()}]"
    return {
        "ORDERER_GENERAL_LISTENADDRESS": o.host,
        "ORDERER_GENERAL_LISTENPORT": str(o.port),
        "ORDERER_GENERAL_LOCALMSPID": layout.orderer_org_of(o),
        "ORDERER_GENERAL_LOCALMSPDIR": str(layout.orderer_dir(o.name, o.org) / "msp"),
        "ORDERER_GENERAL_TLS_ENABLED": "true",
        "ORDERER_GENERAL_TLS_PRIVATEKEY": str(tls / "server.key"),
        "ORDERER_GENERAL_TLS_CERTIFICATE": str(tls / "server.crt"),
        "ORDERER_GENERAL_TLS_ROOTCAS": cas,
        "ORDERER_GENERAL_CLUSTER_CLIENTCERTIFICATE": str(tls / "server.crt"),
        "ORDERER_GENERAL_CLUSTER_CLIENTPRIVATEKEY": str(tls / "server.key"),
        "ORDERER_GENERAL_CLUSTER_ROOTCAS": cas,
        "ORDERER_GENERAL_BOOTSTRAPMETHOD": "none",
        "ORDERER_CHANNELPARTICIPATION_ENABLED": "true",
        "ORDERER_ADMIN_LISTENADDRESS": o.admin_address,
        "ORDERER_ADMIN_TLS_ENABLED": "true",
        "ORDERER_ADMIN_TLS_PRIVATEKEY": str(tls / "server.key"),
        "ORDERER_ADMIN_TLS_CERTIFICATE": str(tls / "server.crt"),
        "ORDERER_ADMIN_TLS_ROOTCAS": f"[{ca}]",
        "ORDERER_ADMIN_TLS_CLIENTAUTHREQUIRED": "true",
        "ORDERER_ADMIN_TLS_CLIENTROOTCAS": f"[{ca}]",
        "ORDERER_OPERATIONS_LISTENADDRESS": f"{o.host}:{o.operations_port}",
        "ORDERER_METRICS_PROVIDER": "disabled",
        "ORDERER_FILELEDGER_LOCATION": str(layout.data(o.name) / "ledger"),
        "ORDERER_CONSENSUS_WALDIR": str(layout.data(o.name) / "etcdraft" / "wal"),
        "ORDERER_CONSENSUS_SNAPDIR": str(layout.data(o.name) / "etcdraft" / "snapshot"),
        "FABRIC_LOGGING_SPEC": "INFO",
    }


def peer_env(layout: Layout, p: Peer, builder: Path) -> dict[str, str]:
    tls = layout.peer_dir(p.org) / "tls"
    return {
        "CORE_PEER_ID": f"{p.name}.{p.org}",
        "CORE_PEER_LISTENADDRESS": p.address,
        "CORE_PEER_ADDRESS": p.address,
        "CORE_PEER_CHAINCODELISTENADDRESS": f"{p.host}:{p.chaincode_port}",
        "CORE_PEER_CHAINCODEADDRESS": f"{p.host}:{p.chaincode_port}",
        "CORE_PEER_GOSSIP_BOOTSTRAP": p.address,
        "CORE_PEER_GOSSIP_EXTERNALENDPOINT": p.address,
        "CORE_PEER_LOCALMSPID": p.org,
        "CORE_PEER_MSPCONFIGPATH": str(layout.peer_dir(p.org) / "msp"),
        "CORE_PEER_TLS_ENABLED": "true",
        "CORE_PEER_TLS_CERT_FILE": str(tls / "server.crt"),
        "CORE_PEER_TLS_KEY_FILE": str(tls / "server.key"),
        "CORE_PEER_TLS_ROOTCERT_FILE": str(tls / "ca.crt"),
        "CORE_PEER_FILESYSTEMPATH": str(layout.data(f"{p.org}-{p.name}")),
        "CORE_OPERATIONS_LISTENADDRESS": f"{p.host}:{p.operations_port}",
        "CORE_METRICS_PROVIDER": "disabled",
        # No Docker: chaincode runs as a service, reached through the external builder.
        "CORE_VM_ENDPOINT": "",
        "CORE_CHAINCODE_EXTERNALBUILDERS": f"[{{name: ccaas_builder, path: {builder}}}]",
        "CORE_LEDGER_STATE_STATEDATABASE": "goleveldb",
        "FABRIC_LOGGING_SPEC": "INFO",
    }


def admin_env(layout: Layout, org: str, config_dir: Path) -> dict[str, str]:
    """What the ``peer`` CLI needs to act as ``org``'s admin against its peer."""
    p = layout.peer(org)
    return {
        "FABRIC_CFG_PATH": str(config_dir),
        "CORE_PEER_LOCALMSPID": org,
        "CORE_PEER_MSPCONFIGPATH": str(layout.admin_dir(org) / "msp"),
        "CORE_PEER_ADDRESS": p.address,
        "CORE_PEER_TLS_ENABLED": "true",
        "CORE_PEER_TLS_ROOTCERT_FILE": str(layout.tls_ca(org)),
        "FABRIC_LOGGING_SPEC": "WARNING",
    }
