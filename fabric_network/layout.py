"""Where every process of the network listens and keeps its files.

Every process gets its own ports (Fabric's defaults clash: the orderer's admin and the peer's
operations endpoint are both 9443). A member's own part (:class:`MemberLayout`, its peer, or
:class:`OrderingLayout`, the ordering organization's orderers) listens where its bundle
declares, on its own host; the one-host network (:class:`NetworkLayout`) lays every part out
on 127.0.0.1 from one base port, so that two networks (a test's and a demo's) can run side
by side with different bases, and runs each part with the same steps.
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
    host: str = HOST
    org: str = ""  # its organization: the ordering organization's where empty

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def admin_address(self) -> str:
        return f"{self.host}:{self.admin_port}"

    def ports(self) -> dict[str, int]:
        return {
            self.name: self.port,
            f"{self.name} admin": self.admin_port,
            f"{self.name} operations": self.operations_port,
        }

    @classmethod
    def at(cls, name: str, endpoint: str, org: str = "") -> Orderer:
        """Orderer ``name`` at ``host:port`` (what its organization's bundle declares), its
        admin endpoint on the next port and its operations endpoint on the one after."""
        host, _, port_text = endpoint.rpartition(":")
        port = int(port_text)
        return cls(name, port, port + 1, port + 2, host or HOST, org)


@dataclass(frozen=True)
class Peer:
    org: str
    name: str
    port: int  # endorsement, gateway, deliver, gossip
    chaincode_port: int  # the peer's own chaincode listener (unused by ccaas, but bound)
    operations_port: int
    chaincode_server_port: int  # this organization's fedspec chaincode server
    host: str = HOST

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def chaincode_address(self) -> str:
        return f"{self.host}:{self.chaincode_server_port}"

    def chaincode_address_at(self, sequence: int) -> str:
        """Where the chaincode server of definition ``sequence`` listens: the servers of
        successive definitions alternate between the chaincode server port and the next one,
        so an upgrade's server starts beside the running one and the peer switches to it the
        moment the new definition commits."""
        return f"{self.host}:{self.chaincode_server_port + (sequence - 1) % 2}"

    def ports(self) -> dict[str, int]:
        """Every port this peer and its chaincode server bind, by what binds it."""
        return {
            f"{self.org} peer": self.port,
            f"{self.org} peer chaincode": self.chaincode_port,
            f"{self.org} peer operations": self.operations_port,
            f"{self.org} chaincode server": self.chaincode_server_port,
        }

    @classmethod
    def at(cls, org: str, endpoint: str, name: str = "peer0") -> Peer:
        """``org``'s peer at ``host:port`` (what its bundle declares), its other ports next to
        it as a network lays them out: chaincode listener +1, operations +2, chaincode
        server +3."""
        host, _, port_text = endpoint.rpartition(":")
        port = int(port_text)
        return cls(org, name, port, port + 1, port + 2, port + 3, host or HOST)


@dataclass(frozen=True)
class Layout:
    """What a network and one member's own part of it share: the consortium folder's
    paths, and where the processes keep their files (``run_dir``)."""

    run_dir: Path
    consortium_dir: Path

    @property
    def consortium(self) -> Consortium:
        return Consortium.load(self.consortium_dir)

    @property
    def peers(self) -> list[Peer]:
        raise NotImplementedError

    def peer(self, org: str) -> Peer:
        return next(p for p in self.peers if p.org == org)

    @property
    def orderer_addresses(self) -> list[str]:
        raise NotImplementedError

    # ------------------------------------------------------------------ files
    @property
    def logs(self) -> Path:
        return self.run_dir / "logs"

    @property
    def config_dir(self) -> Path:
        return self.run_dir / "config"

    def data(self, name: str) -> Path:
        return self.run_dir / "data" / name

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

    def orderer_org_of(self, o: Orderer) -> str:
        return o.org or self.orderer_org

    def orderer_dir(self, name: str, org: str = "") -> Path:
        return self.org_dir(org or self.orderer_org) / "orderers" / name

    def orderer_tls_cas(self) -> Path:
        """One PEM file with the TLS CA of every organization that runs orderers (the
        ordering organization's, and those of members that run raft orderers of their own):
        what a client verifies whichever orderer it reaches."""
        consortium = self.consortium
        orgs = [consortium.orderer_org.name] + [o.name for o in consortium.members if o.orderers]
        path = self.config_dir / "orderer-tls-cas.pem"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"".join(self.tls_ca(org).read_bytes() for org in orgs))
        return path

    def peer_dir(self, org: str) -> Path:
        return self.org_dir(org) / "peers" / "peer0"

    def admin_dir(self, org: str) -> Path:
        return self.org_dir(org) / "users" / "admin"


@dataclass(frozen=True)
class MemberLayout(Layout):
    """One member organization's own processes, its peer and its chaincode server, run from
    its own home (``fedspec node up``): its identities from its consortium folder, its peer
    where its bundle says, the ordering service where the ordering organization's bundle
    says."""

    org: str
    own_peer: Peer
    orderer_endpoints: tuple[str, ...]
    channel: str = "fedspec"
    chaincode: str = "fedspec"
    # The founders' peers as their bundles declare them: where this member sends the
    # chaincode definition's commit once a majority approved it.
    channel_peers: tuple[Peer, ...] = ()
    # The raft orderers this member runs itself (`org init --raft`), if any.
    orderers: tuple[Orderer, ...] = ()

    @property
    def peers(self) -> list[Peer]:
        return [self.own_peer]

    def known_peer(self, org: str) -> Peer | None:
        if org == self.org:
            return self.own_peer
        return next((p for p in self.channel_peers if p.org == org), None)

    @property
    def orderer_addresses(self) -> list[str]:
        return list(self.orderer_endpoints)

    def ports(self) -> dict[str, int]:
        out = self.own_peer.ports()
        for o in self.orderers:
            out |= o.ports()
        return out

    @property
    def state_file(self) -> Path:
        return self.run_dir / "node.json"

    @property
    def genesis_block(self) -> Path:
        """This home's copy of the channel's genesis block, as the founders distributed it."""
        return self.run_dir / f"{self.channel}.block"


@dataclass(frozen=True)
class OrderingLayout(Layout):
    """The ordering organization's own part: its raft orderers, where its bundle declares
    them, run from its own home (``fedspec node up`` in the ordering organization's home)."""

    org: str
    orderers: tuple[Orderer, ...]
    channel: str = "fedspec"

    @property
    def peers(self) -> list[Peer]:
        return []

    @property
    def orderer_addresses(self) -> list[str]:
        return [o.address for o in self.orderers]

    def ports(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.orderers:
            out |= o.ports()
        return out

    @property
    def state_file(self) -> Path:
        return self.run_dir / "node.json"

    @property
    def genesis_block(self) -> Path:
        """This home's copy of the channel's genesis block, as the founders distributed it."""
        return self.run_dir / f"{self.channel}.block"


@dataclass(frozen=True)
class NetworkLayout(Layout):
    """Paths and ports of one network, derived from its run directory and base port."""

    base_port: int = DEFAULT_BASE_PORT
    channel: str = "fedspec"
    chaincode: str = "fedspec"

    @property
    def orderer_addresses(self) -> list[str]:
        return [o.address for o in self.orderers]

    def member(self, org: str) -> MemberLayout:
        """``org``'s own part of this network, in the network's run directory."""
        return MemberLayout(
            self.run_dir,
            self.consortium_dir,
            org,
            self.peer(org),
            tuple(self.orderer_addresses),
            self.channel,
            self.chaincode,
            tuple(self.peers),
        )

    def ordering(self) -> OrderingLayout:
        """The ordering organization's part of this network, in the network's run directory."""
        return OrderingLayout(
            self.run_dir, self.consortium_dir, self.orderer_org, tuple(self.orderers), self.channel
        )

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

    def ports(self) -> dict[str, int]:
        """Every port the network binds, by what binds it."""
        out: dict[str, int] = {}
        for o in self.orderers:
            out |= o.ports()
        for p in self.peers:
            out |= p.ports()
        return out

    # ------------------------------------------------------------------ files
    @property
    def state_file(self) -> Path:
        return self.run_dir / "network.json"

    @property
    def genesis_block(self) -> Path:
        return self.run_dir / f"{self.channel}.block"


# The functions that run a member's steps take either: a network's (all members, from one
# folder) or one member's own part (``fedspec node up``).
AnyLayout = NetworkLayout | MemberLayout
# Where orderers run: the network's, the ordering organization's own part, or a member's
# that runs raft orderers of its own.
OrderersLayout = NetworkLayout | OrderingLayout | MemberLayout
