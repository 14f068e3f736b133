"""Membership by vote on a real Fabric network: the vote that makes a majority submits a
channel configuration update carrying the approving admins' signatures, each made in that
admin's own home (which holds only its own organization's private keys), and the chaincode's
endorsement policy, a reference to the channel's, follows the new member set.

One four-organization network for the module; each test gets a channel of its own. The
channel's configuration is read back with Fabric's own ``peer channel fetch config``.
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fabric_protos.peer import policy_pb2

from fabric_network import NetworkLayout, lifecycle, network_down, network_up
from fabric_network.configs import ENDORSEMENT_POLICY, admin_env
from fedspec.app.bundles import export_bundle, write_bundle
from fedspec.app.consortium import init_consortium
from fedspec.app.membership import (
    Voted,
    apply_change,
    propose_member,
    propose_removal,
    vote_member,
)
from fedspec.app.orgs import init_org
from fedspec.app.settings import Settings
from fedspec.errors import ErrorCode
from ledger_client import LedgerError, close_services, open_ledger
from ledger_client.channel_update import ORG_POLICY_ROLES, FabricChannelConfig, msp_of
from ledger_client.errors import StaleChannelUpdateError
from tests.fabric_support import fabric_binaries_or_skip, free_base_port, new_channel
from tests.member_homes import private_key_files

pytestmark = [pytest.mark.fabric, pytest.mark.integration, pytest.mark.slow]

ORGS = ["org1", "org2", "org3", "org4"]


@dataclass
class Network:
    layout: NetworkLayout
    bins: Path
    org5_bundle: Path


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    bins = fabric_binaries_or_skip()
    root = tmp_path_factory.mktemp("fabric-membership")
    consortium = init_consortium(ORGS, root / "operator" / "consortium", nodes_per_org=1)
    # The fifth organization: its own keys in its own home, only its bundle leaves it.
    org5 = root / "org5" / "consortium"
    init_org(org5, "org5", nodes=1)
    write_bundle(export_bundle(org5), root / "org5.bundle")
    layout = NetworkLayout(root / "operator" / "network", consortium, base_port=free_base_port())
    close_services()
    try:
        network_up(layout)
        yield Network(layout, bins, root / "org5.bundle")
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
    layout = channel.network.layout
    out = lifecycle.run_tool(
        [
            str(channel.network.bins / "bin" / "peer"),
            "lifecycle",
            "chaincode",
            "querycommitted",
            "-C",
            channel.name,
            "-n",
            layout.chaincode,
            "-O",
            "json",
        ],
        admin_env(layout, "org1", layout.run_dir / "config"),
    )
    definition = json.loads(out[out.index("{") : out.rindex("}") + 1])
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
