"""The channel's configuration and each process's settings.

``configtx.yaml`` is generated here from the consortium (it is fedspec's own: three raft
orderers, the member organizations with NodeOU-based policies, a majority for lifecycle
and endorsement; the chaincode's endorsement policy is the channel's own, so it follows the
member set a vote changes). The peers and orderers start from Fabric's sample ``core.yaml`` /
``orderer.yaml`` shipped with the binaries and get every per-process value from the
environment, as Fabric's own test networks do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fabric_network.layout import HOST, Layout, NetworkLayout, Orderer, Peer
from ledger_client.channel_update import ORG_POLICY_ROLES

# Short batches for local use: a ledger phase waits up to this long for its block.
BATCH_TIMEOUT = "100ms"
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


def configtx(layout: NetworkLayout) -> dict[str, Any]:
    orderer_org = layout.orderer_org
    orgs: list[dict[str, Any]] = [
        {
            "Name": orderer_org,
            "ID": orderer_org,
            "MSPDir": str(layout.org_dir(orderer_org) / "msp"),
            "Policies": {
                "Readers": _signature(f"OR('{orderer_org}.member')"),
                "Writers": _signature(f"OR('{orderer_org}.member')"),
                "Admins": _signature(f"OR('{orderer_org}.admin')"),
            },
            "OrdererEndpoints": [o.address for o in layout.orderers],
        }
    ]
    for peer in layout.peers:
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
                "AnchorPeers": [{"Host": HOST, "Port": peer.port}],
            }
        )
    consenters = [
        {
            "Host": HOST,
            "Port": o.port,
            "ClientTLSCert": str(layout.orderer_dir(o.name) / "tls" / "server.crt"),
            "ServerTLSCert": str(layout.orderer_dir(o.name) / "tls" / "server.crt"),
        }
        for o in layout.orderers
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
                "MaxMessageCount": 100,
                "AbsoluteMaxBytes": "64 MB",
                "PreferredMaxBytes": "4 MB",
            },
            "Organizations": [orgs[0]],
            "Policies": {**meta, "BlockValidation": _implicit("ANY Writers")},
            "Capabilities": {"V2_0": True},
        },
        "Application": {
            "Organizations": orgs[1:],
            "Policies": {
                **meta,
                "LifecycleEndorsement": _implicit("MAJORITY Endorsement"),
                "Endorsement": _implicit("MAJORITY Endorsement"),
            },
            "Capabilities": {"V2_5": True},
        },
    }
    return {"Organizations": orgs, "Profiles": {PROFILE: profile}}


def write_configtx(layout: NetworkLayout, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "configtx.yaml").write_text(yaml.safe_dump(configtx(layout), sort_keys=False))


def orderer_env(layout: NetworkLayout, o: Orderer) -> dict[str, str]:
    tls = layout.orderer_dir(o.name) / "tls"
    ca = str(tls / "ca.crt")
    return {
        "ORDERER_GENERAL_LISTENADDRESS": HOST,
        "ORDERER_GENERAL_LISTENPORT": str(o.port),
        "ORDERER_GENERAL_LOCALMSPID": layout.orderer_org,
        "ORDERER_GENERAL_LOCALMSPDIR": str(layout.orderer_dir(o.name) / "msp"),
        "ORDERER_GENERAL_TLS_ENABLED": "true",
        "ORDERER_GENERAL_TLS_PRIVATEKEY": str(tls / "server.key"),
        "ORDERER_GENERAL_TLS_CERTIFICATE": str(tls / "server.crt"),
        "ORDERER_GENERAL_TLS_ROOTCAS": f"[{ca}]",
        "ORDERER_GENERAL_CLUSTER_CLIENTCERTIFICATE": str(tls / "server.crt"),
        "ORDERER_GENERAL_CLUSTER_CLIENTPRIVATEKEY": str(tls / "server.key"),
        "ORDERER_GENERAL_CLUSTER_ROOTCAS": f"[{ca}]",
        "ORDERER_GENERAL_BOOTSTRAPMETHOD": "none",
        "ORDERER_CHANNELPARTICIPATION_ENABLED": "true",
        "ORDERER_ADMIN_LISTENADDRESS": f"{HOST}:{o.admin_port}",
        "ORDERER_ADMIN_TLS_ENABLED": "true",
        "ORDERER_ADMIN_TLS_PRIVATEKEY": str(tls / "server.key"),
        "ORDERER_ADMIN_TLS_CERTIFICATE": str(tls / "server.crt"),
        "ORDERER_ADMIN_TLS_ROOTCAS": f"[{ca}]",
        "ORDERER_ADMIN_TLS_CLIENTAUTHREQUIRED": "true",
        "ORDERER_ADMIN_TLS_CLIENTROOTCAS": f"[{ca}]",
        "ORDERER_OPERATIONS_LISTENADDRESS": f"{HOST}:{o.operations_port}",
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
