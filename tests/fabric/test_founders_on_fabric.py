"""Founders on their own hosts: every organization starts its own part with `fedspec node up`
from its own home, as its own process tree, on its own loopback address (all of 127/8 reaches
lo on Linux), with TLS certificates its own TLS CA issued for that address; every endpoint
comes from the bundles.

One raft cluster of four orderers from four organizations: the ordering organization's (on
127.0.0.2) and one each that three members run beside their peers (`org init --raft`, on
127.0.0.3-5). One founder makes the genesis block from the bundles (`fedspec node genesis`);
the ordering organization's orderer joins from it, then the three members start at the same
time (their orderers join from the same file and wait for a raft majority, their peers join,
each approves the chaincode for itself, and the approval that makes a majority commits it).
A transaction is then endorsed across members and every member's peer holds the same world
state; with one member killed whole (peer, orderer and chaincode server, by PID, each
process's group), ordering continues on the raft majority (three of four) and transactions on
the endorsement majority (two of three), and the member, restarted with `node up`, catches up
and agrees.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from cryptography import x509

from fabric_network import MemberLayout, OrderingLayout, lifecycle, node_down, steps
from fabric_network.processes import alive, port_in_use, recorded, wait_for
from fedspec.app.bootstrap import Bootstrapped, init_ledger, join_ledger
from fedspec.app.bundles import export_bundle, load_bundle, write_bundle
from fedspec.app.consortium import create_consortium
from fedspec.app.node import member_layout
from fedspec.app.orgs import init_org
from fedspec.app.settings import Settings
from ledger_client import close_services
from ledger_client.errors import EndorseError
from ledger_client.inspect import describe_block
from tests.fabric_support import fabric_binaries_or_skip, free_port_block

pytestmark = [pytest.mark.fabric, pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
MEMBERS = ["org1", "org2", "org3"]
HOSTS = {"ordering": "127.0.0.2", "org1": "127.0.0.3", "org2": "127.0.0.4", "org3": "127.0.0.5"}
NODE_UP_TIMEOUT_S = 500


@dataclass
class Founders:
    root: Path
    bins: Path
    ups: dict[str, dict[str, object]]  # org → its first `node up --json`
    founded: Bootstrapped | None = None

    def found(self) -> Bootstrapped:
        """org1 founds the ledger, once per network: xdist may run this module's tests in
        any order, and on a fresh network after another module's tests, so no test relies on
        another having founded it."""
        if self.founded is None:
            self.founded = init_ledger(self.settings("org1"))
        return self.founded

    def home(self, org: str) -> Path:
        return self.root / org

    def layout(self, org: str) -> MemberLayout:
        layout = member_layout(Settings.load(self.home(org), env={}))
        assert isinstance(layout, MemberLayout)
        return layout

    def settings(self, org: str) -> Settings:
        return Settings.load(self.home(org), env={"FEDSPEC_LEDGER": "fabric"})

    def query(self, org: str, function: str, *args: str) -> str:
        """``peer chaincode query`` as ``org``'s admin, from its own home, on its own peer."""
        layout = self.layout(org)
        return lifecycle.chaincode_query(
            layout, self.bins / "bin", layout.config_dir, org, function, *args
        )


def node(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDSPEC_")}
    return subprocess.run(
        [sys.executable, "-m", "fedspec.cli", "--home", str(home), "node", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=NODE_UP_TIMEOUT_S,
        cwd=ROOT,
        env=env,
    )


def up(home: Path, *args: str) -> dict[str, object]:
    done = node(home, "up", "--json", *args)
    assert done.returncode == 0, done.stderr
    doc: dict[str, object] = json.loads(done.stdout)
    return doc


def up_together(homes: list[Path], *args: str) -> list[dict[str, object]]:
    """`node up` in every home at once, as founders who each wait for the others' orderers."""
    return together(homes, "up", *args)


def upgrade_together(homes: list[Path], version: str) -> list[dict[str, object]]:
    """`node upgrade VERSION` in every home at once, as members who agreed on it."""
    return together(homes, "upgrade", version)


def together(homes: list[Path], *args: str) -> list[dict[str, object]]:
    """`node ARGS --json` in every home at once; each one's JSON answer."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDSPEC_")}
    running = [
        subprocess.Popen(
            [sys.executable, "-m", "fedspec.cli", "--home", str(h), "node", *args, "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        for h in homes
    ]
    docs = []
    for proc in running:
        out, err = proc.communicate(timeout=NODE_UP_TIMEOUT_S)
        assert proc.returncode == 0, err
        docs.append(json.loads(out))
    return docs


@pytest.fixture(scope="module")
def founders(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Founders]:
    bins = fabric_binaries_or_skip()
    root = tmp_path_factory.mktemp("founders")
    for org, host in HOSTS.items():
        consortium = root / org / "consortium"
        if org == "ordering":
            init_org(consortium, org, orderers=1, host=host, port=free_port_block(3))
        else:
            init_org(consortium, org, nodes=1, host=host, port=free_port_block(13), raft=True)
        write_bundle(export_bundle(consortium), root / f"{org}.bundle")
    # Every founder founds the consortium from the same bundles, in its own home.
    for org in HOSTS:
        bundles = [load_bundle(root / f"{o}.bundle") for o in [*MEMBERS, "ordering"]]
        create_consortium(root / org / "consortium", bundles)
    close_services()
    try:
        made = node(root / "org1", "genesis", "--out", str(root / "fedspec.block"))
        assert made.returncode == 0, made.stderr
        ups = {"ordering": up(root / "ordering", "--genesis", str(root / "fedspec.block"))}
        homes = [root / org for org in MEMBERS]
        together = up_together(homes, "--genesis", str(root / "fedspec.block"))
        ups.update(zip(MEMBERS, together, strict=True))
        yield Founders(root, bins, ups)
    finally:
        close_services()
        for org in HOSTS:
            layout = member_layout(Settings.load(root / org, env={}))
            node_down(layout)


def test_each_founder_runs_its_own_part_on_its_own_address(founders: Founders) -> None:
    ordering = member_layout(Settings.load(founders.home("ordering"), env={}))
    assert isinstance(ordering, OrderingLayout)
    assert founders.ups["ordering"]["role"] == "ordering"
    assert [o.address for o in ordering.orderers] == founders.ups["ordering"]["orderers"]
    assert all(o.host == "127.0.0.2" for o in ordering.orderers)
    # Whichever approval made the majority committed the definition.
    assert any(founders.ups[o]["chaincode_committed"] for o in MEMBERS)
    consenters = [o.address for o in ordering.orderers]
    pids: dict[int, str] = {}
    for org in HOSTS:
        own = recorded(founders.home(org) / "node")
        assert own and all(alive(p) for p in own.values()), org
        for pid in own.values():
            assert pid not in pids  # each home's processes are its own
            pids[pid] = org
            assert os.getpgid(pid) == pid  # each leads its own group: killable whole
    for org in MEMBERS:
        layout = founders.layout(org)
        consenters += [o.address for o in layout.orderers]
        assert [o.host for o in layout.orderers] == [HOSTS[org]]
        assert founders.ups[org]["processes"] == {
            f"peer0.{org}": True,
            f"chaincode.{org}": True,
            "orderer0": True,
        }
    for org in MEMBERS:
        layout = founders.layout(org)
        peer = layout.own_peer
        assert peer.host == HOSTS[org] and port_in_use(peer.port, peer.host)
        # Every endpoint it uses is one a bundle declared: the four consenters.
        assert sorted(layout.orderer_addresses) == sorted(consenters)
        assert len(consenters) == 4
        assert json.loads(layout.state_file.read_text())["peer"] == peer.address
        # Its peer's TLS certificate, from its own TLS CA, names its own address.
        tls = x509.load_pem_x509_certificate(
            (layout.peer_dir(org) / "tls" / "server.crt").read_bytes()
        )
        names = tls.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert HOSTS[org] in {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
        listening = {
            (c.laddr.ip, c.laddr.port)
            for c in psutil.Process(recorded(layout.run_dir)[f"peer0.{org}"]).net_connections()
            if c.status == psutil.CONN_LISTEN
        }
        assert (peer.host, peer.port) in listening


def test_a_transaction_is_endorsed_across_members_and_every_peer_agrees(
    founders: Founders,
) -> None:
    for org in MEMBERS:
        steps.wait_endorsable(founders.layout(org), [org])
    done = founders.found()
    assert done.orgs == MEMBERS and done.nodes
    endorsers = _newest_endorsers(founders, "org2")
    # A majority of the members (two of three) endorsed it, each on its own peer.
    assert len({e.partition("/")[0] for e in endorsers}) >= 2, endorsers
    states = {org: founders.query(org, "GetConsortium") for org in MEMBERS}
    assert len(set(states.values())) == 1, states
    assert sorted(json.loads(states["org1"])["orgs"]) == MEMBERS


def test_a_member_killed_whole_catches_up_after_node_up(founders: Founders) -> None:
    for org in MEMBERS:
        steps.wait_endorsable(founders.layout(org), [org])
    founders.found()  # join_ledger below checks the members the founding recorded
    org3 = founders.layout("org3")
    killed = recorded(org3.run_dir)
    assert sorted(killed) == ["chaincode.org3", "orderer0", "peer0.org3"]
    for pid in killed.values():  # the whole member: its peer, orderer and chaincode server
        os.killpg(pid, signal.SIGKILL)
    for pid in killed.values():
        wait_for(f"process {pid} gone", lambda pid=pid: not alive(pid), timeout=30)
    assert node(founders.home("org3"), "status", "--json").stdout.count('"stopped"') == 1

    # Ordering continues on the raft majority (three orderers of four, one of them the
    # ordering organization's); org1 and org2 (a majority of the members) endorse, once
    # gossip stops offering org3's peer to the Gateway's endorsement plans (its alive
    # messages expire: CORE_PEER_GOSSIP_ALIVEEXPIRATIONTIMEOUT, 25 s by default).
    _once_endorsed(lambda: join_ledger(founders.settings("org2")))
    before = founders.query("org2", "ListNodes", "")  # where its commit was confirmed
    assert "org2/node0" in before

    again = up(founders.home("org3"))
    assert again["state"] == "ready" and again["chaincode_committed"] is True
    assert founders.query("org3", "ListNodes", "") == before
    assert founders.query("org3", "GetConsortium") == founders.query("org1", "GetConsortium")


def test_a_chaincode_upgrade_by_a_majority_keeps_the_world_state_and_transactions_go_on(
    founders: Founders,
) -> None:
    """Two of the three members move to chaincode version 2.0 at once (their approvals make
    the majority, one of them commits the definition); the world state is the one before,
    transactions go on through the new definition, the third member switches after the
    majority did, and its restart serves the new version."""
    from fedspec.demo.setup import PROFILES, profile_document
    from ledger_client import open_ledger

    for org in MEMBERS:
        steps.wait_endorsable(founders.layout(org), [org])
    founders.found()
    before = founders.query("org1", "GetConsortium"), founders.query("org1", "ListNodes", "")

    docs = upgrade_together([founders.home("org1"), founders.home("org2")], "2.0")
    assert [d["version"] for d in docs] == ["2.0", "2.0"]
    org1 = founders.layout("org1")
    definition = lifecycle.committed_definition(
        org1, founders.bins / "bin", org1.config_dir, "org1"
    )
    assert definition is not None and (definition["version"], definition["sequence"]) == ("2.0", 2)
    # Committed on the approvals of the two who upgraded: a majority of the three.
    msp = {o: org1.consortium.org(o).msp_id for o in MEMBERS}
    assert definition["approvals"] == {msp["org1"]: True, msp["org2"]: True, msp["org3"]: False}
    assert docs[0]["approvals"] == definition["approvals"]
    for org, doc in zip(["org1", "org2"], docs, strict=True):
        layout = founders.layout(org)
        # The new server listens on the second chaincode port; the old one is gone.
        assert doc["chaincode_address"] == layout.own_peer.chaincode_address_at(2)
        assert sorted(recorded(layout.run_dir)) == [f"chaincode.{org}", "orderer0", f"peer0.{org}"]
        assert str(doc["package_id"]).startswith("fedspec_2.0:")
    assert (
        founders.query("org2", "GetConsortium"),
        founders.query("org2", "ListNodes", ""),
    ) == before

    # A transaction through the new definition, endorsed by the upgraded majority.
    profile = PROFILES[0]
    admin = open_ledger(founders.settings("org1").ledger, "org1/admin")
    _once_endorsed(lambda: admin.propose_profile(profile_document(profile, profile.load())))
    assert json.loads(founders.query("org2", "GetProfile", profile.id))["status"] == "proposed"

    # The third member upgrades after the majority: it approves the committed definition.
    late = upgrade_together([founders.home("org3")], "2.0")[0]
    assert late["sequence"] == 2
    assert late["approvals"] == dict.fromkeys(msp.values(), True)
    assert json.loads(founders.query("org3", "GetProfile", profile.id))["status"] == "proposed"
    again = node(founders.home("org3"), "upgrade", "2.0")
    assert again.returncode == 2 and "already serves chaincode version 2.0" in again.stderr

    # Restarted, it serves the version it moved to, at its new address.
    assert node(founders.home("org3"), "down").returncode == 0
    assert up(founders.home("org3"))["package_id"] == late["package_id"]
    steps.wait_endorsable(founders.layout("org3"), ["org3"])
    assert founders.query("org3", "GetConsortium") == before[0]


def _once_endorsed(action: Callable[[], object], timeout: float = 120) -> None:
    """``action`` again while its endorsement fails (nothing was ordered then): a plan still
    naming the stopped peer, until gossip drops it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            action()
            return
        except EndorseError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def _newest_endorsers(founders: Founders, org: str) -> list[str]:
    """The endorsers of the newest block's transactions, read by ``org`` from the ordering
    service with Fabric's own ``peer channel fetch``."""
    from fabric_protos.common import common_pb2

    layout = founders.layout(org)
    out = lifecycle.fetch_block(
        layout,
        founders.bins / "bin",
        layout.config_dir,
        org,
        "newest",
        founders.root / "newest.block",
    )
    block = describe_block(common_pb2.Block.FromString(out.read_bytes()))
    return sorted({str(e) for tx in block["transactions"] for e in tx.get("endorsers", [])})


def test_a_founder_whose_orderer_finds_no_raft_majority_is_refused_and_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ordering organization has not started: org1's own orderer is one consenter of
    two, no majority; `node up` says so in one typed error and leaves nothing running."""
    from fabric_network import NoRaftMajorityError, make_genesis, member, node_status, node_up

    fabric_binaries_or_skip()
    hosts = {"org1": "127.0.0.6", "ordering": "127.0.0.7"}
    for org, host in hosts.items():
        consortium = tmp_path / org / "consortium"
        if org == "ordering":
            init_org(consortium, org, orderers=1, host=host, port=free_port_block(3))
        else:
            init_org(consortium, org, nodes=1, host=host, port=free_port_block(13), raft=True)
        write_bundle(export_bundle(consortium), tmp_path / f"{org}.bundle")
    bundles = [load_bundle(tmp_path / f"{o}.bundle") for o in hosts]
    create_consortium(tmp_path / "org1" / "consortium", bundles)
    org1 = member_layout(Settings.load(tmp_path / "org1", env={}))
    assert isinstance(org1, MemberLayout)
    genesis = make_genesis(org1, tmp_path / "fedspec.block")
    monkeypatch.setattr(member, "RAFT_WAIT_S", 3.0)
    try:
        with pytest.raises(NoRaftMajorityError, match="only 1 of the ordering service's 2"):
            node_up(org1, genesis=genesis)
        assert recorded(org1.run_dir) == {}  # its orderer had started: stopped
        assert node_status(org1).state == "absent"  # and the next `up` starts afresh
        assert (org1.logs / "orderer0.log").exists()
    finally:
        node_down(org1)
