"""Founders on their own hosts (the session's ``founders`` network, tests/fabric/founders.py):
each runs its own part on its own address; a transaction is endorsed across members and every
member's peer holds the same world state; with one member killed whole (peer, orderer and
chaincode server, by PID, each process's group), ordering continues on the raft majority
(three of four) and transactions on the endorsement majority (two of three), and the member,
restarted with `node up`, catches up and agrees; a chaincode upgrade by a majority keeps the
world state.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import psutil
import pytest
from cryptography import x509

from fabric_network import MemberLayout, OrderingLayout, lifecycle, node_down, steps
from fabric_network.processes import alive, port_in_use, recorded, wait_for
from fedspec.app.bootstrap import join_ledger
from fedspec.app.bundles import load_bundle
from fedspec.app.consortium import create_consortium
from fedspec.app.node import member_layout
from fedspec.app.settings import Settings
from ledger_client.inspect import describe_block
from tests.fabric.founders import (
    HOSTS,
    MEMBERS,
    Founders,
    make_homes,
    node,
    once_endorsed,
    up,
    upgrade_together,
)
from tests.fabric_support import fabric_binaries_or_skip

pytestmark = [pytest.mark.fabric, pytest.mark.integration, pytest.mark.slow]


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
    once_endorsed(lambda: join_ledger(founders.settings("org2")))
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
    once_endorsed(lambda: admin.propose_profile(profile_document(profile, profile.load())))
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
    make_homes(tmp_path, hosts)
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
