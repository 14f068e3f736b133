"""Where every process of the network listens and keeps its files.

Every process gets its own ports on 127.0.0.1 (Fabric's defaults clash: the orderer's admin
and the peer's operations endpoint are both 9443), laid out from one base port so that two
networks (a test's and a demo's) can run side by side with different bases.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ledger_client.consortium import Consortium

HOST = "127.0.0.1"
DEFAULT_BASE_PORT = 27050
ORDERERS = 3


@dataclass(frozen=True)
class Orderer:
    name: str
    port: int  # broadcast / deliver and the raft cluster
    admin_port: int  # channel participation API (osnadmin)
    operations_port: int  # /healthz

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"


@dataclass(frozen=True)
class Peer:
    org: str
    name: str
    port: int  # endorsement, gateway, deliver, gossip
    chaincode_port: int  # the peer's own chaincode listener (unused by ccaas, but bound)
    operations_port: int
    chaincode_server_port: int  # this organization's fedspec chaincode server

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def chaincode_address(self) -> str:
        return f"{HOST}:{self.chaincode_server_port}"


@dataclass(frozen=True)
class NetworkLayout:
    """Paths and ports of one network, derived from its run directory and base port."""

    run_dir: Path
    consortium_dir: Path
    base_port: int = DEFAULT_BASE_PORT
    channel: str = "fedspec"
    chaincode: str = "fedspec"

    @property
    def consortium(self) -> Consortium:
        return Consortium.load(self.consortium_dir)

    @property
    def orgs(self) -> list[str]:
        return [o.name for o in self.consortium.members]

    @property
    def orderers(self) -> list[Orderer]:
        return [
            Orderer(
                f"orderer{i}",
                self.base_port + 10 * i,
                self.base_port + 10 * i + 1,
                self.base_port + 10 * i + 2,
            )
            for i in range(ORDERERS)
        ]

    @property
    def peers(self) -> list[Peer]:
        base = self.base_port + 100
        return [
            Peer(
                org, "peer0", base + 10 * k, base + 10 * k + 1, base + 10 * k + 2, base + 10 * k + 3
            )
            for k, org in enumerate(self.orgs)
        ]

    def peer(self, org: str) -> Peer:
        return next(p for p in self.peers if p.org == org)

    def ports(self) -> dict[str, int]:
        """Every port the network binds, by what binds it."""
        out: dict[str, int] = {}
        for o in self.orderers:
            out |= {
                f"{o.name}": o.port,
                f"{o.name} admin": o.admin_port,
                f"{o.name} operations": o.operations_port,
            }
        for p in self.peers:
            out |= {
                f"{p.org} peer": p.port,
                f"{p.org} peer chaincode": p.chaincode_port,
                f"{p.org} peer operations": p.operations_port,
                f"{p.org} chaincode server": p.chaincode_server_port,
            }
        return out

    # ------------------------------------------------------------------ files
    @property
    def state_file(self) -> Path:
        return self.run_dir / "network.json"

    @property
    def logs(self) -> Path:
        return self.run_dir / "logs"

    def data(self, name: str) -> Path:
        return self.run_dir / "data" / name

    @property
    def genesis_block(self) -> Path:
        return self.run_dir / f"{self.channel}.block"

    def org_dir(self, org: str) -> Path:
        folder = (
            "ordererOrganizations"
            if org == self.consortium.orderer_org.name
            else "peerOrganizations"
        )
        return self.consortium_dir / folder / org

    def tls_ca(self, org: str) -> Path:
        return self.org_dir(org) / "tlsca" / "tlsca-cert.pem"

    @property
    def orderer_org(self) -> str:
        return self.consortium.orderer_org.name

    def orderer_dir(self, name: str) -> Path:
        return self.org_dir(self.orderer_org) / "orderers" / name

    def peer_dir(self, org: str) -> Path:
        return self.org_dir(org) / "peers" / "peer0"

    def admin_dir(self, org: str) -> Path:
        return self.org_dir(org) / "users" / "admin"
