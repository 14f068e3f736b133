"""Membership by vote on a real Fabric network: the vote that makes a majority submits a
channel configuration update carrying the approving admins' signatures, each made in that
admin's own home (which holds only its own organization's private keys), and the chaincode's
endorsement policy, a reference to the channel's, follows the new member set.

One four-organization network for the module; each test gets a channel of its own. The
channel's configuration is read back with Fabric's own ``peer channel fetch config``.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fabric_protos.peer import policy_pb2

from fabric_network import (
    MemberLayout,
    NetworkLayout,
    lifecycle,
    network_down,
    network_status,
    network_up,
    node_down,
    processes,
)
from fabric_network.configs import ENDORSEMENT_POLICY, admin_env
from fedspec.app.bootstrap import join_ledger
from fedspec.app.bundles import export_bundle, load_bundle, write_bundle
from fedspec.app.consortium import create_consortium, init_consortium
from fedspec.app.membership import (
    Voted,
    apply_change,
    propose_member,
    propose_removal,
    vote_member,
)
from fedspec.app.node import member_layout
from fedspec.app.orgs import init_org
from fedspec.app.settings import Settings
from fedspec.errors import ErrorCode
from ledger_client import LedgerError, close_services, open_ledger
from ledger_client.channel_update import ORG_POLICY_ROLES, FabricChannelConfig, msp_of
from ledger_client.errors import StaleChannelUpdateError
from ledger_client.inspect import describe_block
from tests.fabric_support import (
    fabric_binaries_or_skip,
    free_base_port,
    free_port_block,
    network_bundles,
    new_channel,
)
from tests.member_homes import private_key_files

pytestmark = [pytest.mark.fabric, pytest.mark.integration, pytest.mark.slow]

ORGS = ["org1", "org2", "org3", "org4"]


@dataclass
class Network:
    layout: NetworkLayout
    bins: Path
    org5_bundle: Path
    org5_keys: Path  # org5's consortium folder after `org init`: its keys, nothing else


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    bins = fabric_binaries_or_skip()
    root = tmp_path_factory.mktemp("fabric-membership")
    consortium = init_consortium(ORGS, root / "operator" / "consortium", nodes_per_org=1)
    # The fifth organization: its own keys in its own home, only its bundle leaves it.
    # Its peer's port is in its bundle (the channel's anchor peer): a free one, for the test
    # that starts that peer.
    org5 = root / "org5" / "consortium"
    init_org(org5, "org5", nodes=1, port=free_port_block())
    write_bundle(export_bundle(org5), root / "org5.bundle")
    layout = NetworkLayout(root / "operator" / "network", consortium, base_port=free_base_port())
    close_services()
    try:
        network_up(layout)
        yield Network(layout, bins, root / "org5.bundle", org5)
    finally:
        close_services()
        network_down(layout)


@dataclass
class Channel:
    network: Network
    name: str
    homes: Path

    def settings(self, org: str) -> Settings:
        peers = ",".join(f"{p.org}={p.address}" for p in self.network.layout.peers)
        return Settings.load(
            self.homes / org, env={"FEDSPEC_LEDGER": "fabric", "FEDSPEC_FABRIC_PEERS": peers}
        )

    def fetched_config(self, org: str) -> FabricChannelConfig:
        """The channel's configuration as ``org``'s peer serves it to Fabric's own CLI."""
        layout = self.network.layout
        out = self.homes / f"config-{org}.block"
        lifecycle.run_tool(
            [
                str(self.network.bins / "bin" / "peer"),
                "channel",
                "fetch",
                "config",
                str(out),
                "-c",
                self.name,
            ],
            admin_env(layout, org, layout.run_dir / "config"),
        )
        return FabricChannelConfig.from_block(out.read_bytes())


@pytest.fixture
def channel(network: Network, tmp_path: Path) -> Channel:
    """A fresh channel of the four organizations, and each organization's own home: every
    certificate, and only that organization's private keys."""
    name = new_channel(network.layout)
    homes = tmp_path / "homes"
    for org in ORGS:
        home = homes / org
        shutil.copytree(network.layout.consortium_dir, home / "consortium")
        own = home / "consortium" / "peerOrganizations" / org
        for key in private_key_files(home):
            if not key.is_relative_to(own):
                key.unlink()
        manifest = json.loads((home / "consortium" / "consortium.json").read_text())
        (home / "consortium" / "consortium.json").write_text(json.dumps(manifest | {"own": [org]}))
        (home / "fedspec.toml").write_text(f'[ledger]\nchannel = "{name}"\n')
    ch = Channel(network, name, homes)
    open_ledger(ch.settings("org1").ledger, "org1/admin").init_consortium(ORGS)
    return ch


def _vote(ch: Channel, org: str, subject: str, *, approve: bool = True) -> Voted:
    return vote_member(
        ch.settings(org), subject, approve=approve, fingerprint=None, as_identity=None
    )


def test_a_fifth_organization_is_voted_into_the_channel_configuration(channel: Channel) -> None:
    for org in ORGS:  # each home can sign as its own admin only
        assert {
            k.relative_to(channel.homes / org).parts[2]
            for k in private_key_files(channel.homes / org)
        } == {org}
    change = propose_member(channel.settings("org1"), channel.network.org5_bundle, None)
    assert change.raw["config_update"] and change.raw["config_update_sha256"]
    before = channel.fetched_config("org2")
    assert sorted(before.organizations) == ORGS

    first, second = _vote(channel, "org1", "org5"), _vote(channel, "org2", "org5")
    assert first.vote.status == second.vote.status == "proposed"
    assert first.config_block is None and second.config_block is None
    third = _vote(channel, "org3", "org5")
    assert third.vote.status == "approved" and third.config_block is not None
    assert third.config_block > before.block

    # Each approving vote carries its admin's own signature of the same update.
    votes = open_ledger(channel.settings("org4").ledger, "org4/admin").member_change("org5").votes
    assert [v["org"] for v in votes] == ["org1", "org2", "org3"]
    assert all(v["config_signature"] for v in votes)

    # Fabric's own tool, from another organization's peer: org5's MSP with its bundle's CA.
    after = channel.fetched_config("org4")
    assert after.block == third.config_block
    assert sorted(after.organizations) == [*ORGS, "org5"]
    bundle = json.loads(channel.network.org5_bundle.read_text())
    assert after.organizations["org5"] == [bundle["ca"].encode()]
    group = after.application.groups["org5"]
    msp = msp_of(group)
    assert list(msp.tls_root_certs) == [bundle["tls_ca"].encode()]
    assert msp.fabric_node_ous.enable
    assert msp.fabric_node_ous.admin_ou_identifier.certificate == bundle["ca"].encode()
    assert set(group.policies) == set(ORG_POLICY_ROLES) and group.mod_policy == "Admins"
    # The same policies as the founders' (configtxgen's), org5's MSP in place of theirs.
    founder = after.application.groups["org1"]
    for name in ORG_POLICY_ROLES:
        assert group.policies[name].policy.type == founder.policies[name].policy.type
        assert group.policies[name].policy.value == founder.policies[name].policy.value.replace(
            b"\n\x04org1", b"\n\x04org5"
        )

    # The chaincode's endorsement policy is the channel's: nothing to redefine for org5.
    layout = dataclasses.replace(channel.network.layout, channel=channel.name)
    definition = lifecycle.committed_definition(
        layout, channel.network.bins / "bin", layout.config_dir, "org1"
    )
    assert definition is not None
    parameter = definition.get("validation_parameter") or definition["validationParameter"]
    policy = policy_pb2.ApplicationPolicy.FromString(base64.b64decode(parameter))
    assert policy.channel_config_policy_reference == ENDORSEMENT_POLICY
    # A transaction after the change still gets a majority (now 3 of 5) of endorsements.
    assert sorted(open_ledger(channel.settings("org2").ledger, "org2/admin").consortium_orgs()) == [
        *ORGS,
        "org5",
    ]

    # Applying again is refused and changes nothing.
    with pytest.raises(LedgerError, match="already applied") as again:
        apply_change(channel.settings("org4"), "org5")
    assert again.value.code == ErrorCode.FAILED_PRECONDITION
    assert channel.fetched_config("org1").block == after.block


def test_a_removal_applies_and_a_proposal_it_made_stale_is_proposed_again(
    channel: Channel,
) -> None:
    propose_member(channel.settings("org1"), channel.network.org5_bundle, None)
    propose_removal(channel.settings("org2"), "org4", None)
    for org in ("org1", "org2"):
        assert _vote(channel, org, "org4").config_block is None
    removed = _vote(channel, "org3", "org4")
    assert removed.vote.status == "approved" and removed.config_block is not None
    assert sorted(channel.fetched_config("org1").organizations) == ["org1", "org2", "org3"]

    # org5's update was computed before the removal: no admin signs it, nothing is written.
    with pytest.raises(StaleChannelUpdateError, match="propose it again") as stale:
        _vote(channel, "org3", "org5")
    assert stale.value.code == ErrorCode.CHANNEL_UPDATE_STALE
    ledger = open_ledger(channel.settings("org3").ledger, "org3/admin")
    assert ledger.member_change("org5").votes == []

    # Rejected (no signature needed), then proposed again against the current channel.
    _vote(channel, "org1", "org5", approve=False)
    assert _vote(channel, "org2", "org5", approve=False).vote.status == "rejected"
    propose_member(channel.settings("org3"), channel.network.org5_bundle, None)
    assert _vote(channel, "org3", "org5").config_block is None
    added = _vote(channel, "org1", "org5")  # 2 of the 3 remaining members
    assert added.vote.status == "approved" and added.config_block is not None
    assert sorted(channel.fetched_config("org2").organizations) == ["org1", "org2", "org3", "org5"]


def _fedspec(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The `fedspec` command in ``home``, as the member would type it."""
    env = {k: v for k, v in os.environ.items() if k not in HOME_SETTINGS}
    return subprocess.run(
        [sys.executable, "-m", "fedspec.cli", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


HOME_SETTINGS = (
    "FEDSPEC_HOME",
    "FEDSPEC_LEDGER",
    "FEDSPEC_LEDGER_PATH",
    "FEDSPEC_CONSORTIUM",
    "FEDSPEC_FABRIC_PEERS",
)


def _org5_home(channel: Channel) -> Path:
    """org5's own home: its keys (`org init`), and the consortium it founds from the members'
    and the ordering organization's public bundles (`consortium create`), nothing else."""
    net = channel.network
    home = channel.homes / "org5"
    shutil.copytree(net.org5_keys, home / "consortium")
    bundles = network_bundles(net.layout)
    create_consortium(
        home / "consortium",
        [
            *(bundles[o] for o in ORGS),
            load_bundle(net.org5_bundle),
            bundles[net.layout.orderer_org],
        ],
    )
    (home / "fedspec.toml").write_text(f'[ledger]\nchannel = "{channel.name}"\n')
    assert {k.relative_to(home).parts[2] for k in private_key_files(home)} == {"org5"}
    return home


def _heights(channel: Channel, member: MemberLayout, wait_s: float = 30) -> tuple[int, int]:
    """org5's peer's height and org1's, once they agree (or after ``wait_s``)."""
    tools = channel.network.bins / "bin"
    founders = dataclasses.replace(channel.network.layout, channel=channel.name)
    deadline = time.monotonic() + wait_s
    while True:
        mine = lifecycle.peer_height(member, tools, member.config_dir, "org5")
        theirs = lifecycle.peer_height(founders, tools, founders.config_dir, "org1")
        if mine == theirs or time.monotonic() > deadline:
            return mine, theirs
        time.sleep(0.5)


def _node_registers_itself(home: Path, member: MemberLayout) -> dict[str, Any]:
    """org5's node registers itself (`ledger join`) through org5's own peer (the home's
    settings find it in `<home>/node`); its committed transaction."""
    settings = Settings.load(home, env={"FEDSPEC_LEDGER": "fabric"})
    assert settings.ledger.fabric_peers == {"org5": member.own_peer.address}
    joined = join_ledger(settings)
    assert joined.nodes == ["org5/node0"]
    reader = open_ledger(settings.ledger, "org5/admin")
    (tx,) = describe_block(reader.block(joined.height - 1))["transactions"]
    assert (tx["function"], tx["creator"], tx["code"]) == ("RegisterNode", "org5/node0", "VALID")
    return dict(tx)


def test_the_new_member_runs_its_own_peer_from_its_own_home(channel: Channel) -> None:
    """After the vote, org5 starts its peer and chaincode server from its own home (its own
    keys; the others' certificates and endpoints from their public bundles): the peer joins
    and catches up, its chaincode answers, and org5's node registers itself through it with
    org5's peer among the endorsers. `node down` stops exactly org5's processes; `node up`
    again restarts them on their ledger, which catches up with what it missed."""
    net = channel.network
    home = _org5_home(channel)
    node_dir = home / "node"

    # Not voted in yet: one line, and nothing left running or half-made.
    early = _fedspec(home, "node", "up")
    assert early.returncode == 2, early.stderr
    assert early.stderr.strip().count("\n") == 0, early.stderr
    assert "NODE_NOT_IN_CHANNEL" in early.stderr and "vote" in early.stderr
    assert not processes.recorded(node_dir) and not (node_dir / "data").exists()

    propose_member(channel.settings("org1"), net.org5_bundle, None)
    for org in ("org1", "org2", "org3"):
        voted = _vote(channel, org, "org5")
    assert voted.config_block is not None

    member = member_layout(Settings.load(home, env={}))
    try:
        up = _fedspec(home, "node", "up", "--json")
        assert up.returncode == 0, up.stderr
        status = json.loads(up.stdout)
        assert status["state"] == "ready" and status["peer"] == member.own_peer.address
        assert status["processes"] == {"peer0.org5": True, "chaincode.org5": True}
        pids = processes.recorded(node_dir)
        assert sorted(pids) == ["chaincode.org5", "peer0.org5"]

        # Caught up: org5's peer holds what a founder's peer holds.
        tools = net.bins / "bin"
        mine, theirs = _heights(channel, member)
        assert mine == theirs

        # The chaincode on org5's peer answers its admin.
        answer = lifecycle.chaincode_query(
            member, tools, member.config_dir, "org5", "GetMemberChange", "org5"
        )
        assert json.loads(answer)["status"] == "approved"

        # The home's commands now go through org5's own peer.
        tx = _node_registers_itself(home, member)
        endorsers = {e.partition("/")[0] for e in tx["endorsers"]}
        assert "org5" in endorsers and len(endorsers) >= 3, tx["endorsers"]

        down = _fedspec(home, "node", "down", "--json")
        assert down.returncode == 0, down.stderr
        assert sorted(json.loads(down.stdout)["stopped"]) == ["chaincode.org5", "peer0.org5"]
        assert not any(processes.alive(pid) for pid in pids.values())
        assert network_status(net.layout).state == "ready"  # the founders' processes run on
        assert json.loads(_fedspec(home, "node", "status", "--json").stdout)["state"] == "stopped"

        # Up again: the same peer ledger and package, caught up with what it missed.
        propose_removal(channel.settings("org2"), "org4", None)
        again = _fedspec(home, "node", "up", "--json")
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["package_id"] == status["package_id"]
        mine, theirs = _heights(channel, member)
        assert mine == theirs
        assert sorted(node_down(member)) == ["chaincode.org5", "peer0.org5"]
    finally:
        close_services()
        node_down(member)
