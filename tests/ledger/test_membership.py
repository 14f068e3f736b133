"""Membership by vote on the embedded ledger shared by independent members: a majority of
member admins adds or removes an organization; the channel follows with a configuration
block that `ledger verify` checks against the approved vote; a removed organization's
transactions are refused; bad input changes nothing."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from fabric_protos.common import common_pb2

from fedspec.app.bootstrap import join_ledger
from fedspec.app.membership import apply_change, propose_member, propose_removal, vote_member
from fedspec.errors import ConsortiumError, ErrorCode
from ledger_client import (
    Consortium,
    LedgerError,
    close_services,
    connect,
    open_ledger,
    open_service,
)
from ledger_client.channel_update import sign_update
from ledger_client.embedded.blocks import build_block, commitment_of
from ledger_client.embedded.channel import ChannelConfig
from ledger_client.embedded.commitment import Commitment, next_write_chain
from ledger_client.embedded.reconfig import CONFIG_BLOCKS, config_envelope
from ledger_client.embedded.verify import verify_ledger
from ledger_client.identity import MspIdentity
from tests.cli_scenario import profile_doc
from tests.member_homes import Members, found, private_key_files

ORGS = ["org1", "org2", "org3"]


@pytest.fixture
def members(tmp_path: Path) -> Iterator[Members]:
    close_services()
    yield found(tmp_path, ORGS)
    close_services()


def _ledger(members: Members, org: str, who: str = "admin"):  # type: ignore[no-untyped-def]
    return open_ledger(members.settings(org).ledger, f"{org}/{who}")


def _height(members: Members) -> int:
    db = sqlite3.connect(members.ledger_path)
    try:
        return int(db.execute("SELECT COUNT(*) FROM blocks").fetchone()[0])
    finally:
        db.close()


def _verified(members: Members) -> None:
    report = verify_ledger(members.ledger_path)
    assert report.ok, report.problem


def test_independent_homes_hold_only_their_own_keys_and_act_as_their_own_admin(
    members: Members,
) -> None:
    for org in ORGS:
        c = Consortium.load(members.settings(org).ledger.consortium_dir)
        assert c.own == [org] and c.default_admin == f"{org}/admin"
        for key in private_key_files(members.home(org)):
            assert key.is_relative_to(members.home(org) / "consortium/peerOrganizations" / org)
    assert sorted(_ledger(members, "org3").consortium_orgs()) == ORGS
    nodes = {n.id for n in _ledger(members, "org2").list_nodes()}
    assert nodes == {f"{o}/node0" for o in ORGS}  # each registered by its own home
    _verified(members)


def test_an_organization_joins_by_majority_vote_and_then_transacts(members: Members) -> None:
    members.make_org("org4")
    change = propose_member(members.settings("org1"), members.bundle("org4"), None)
    assert change.status == "proposed" and change.action == "add" and len(change.fingerprint) == 64
    before = _height(members)
    with pytest.raises(ConsortiumError, match="fingerprint"):
        vote_member(
            members.settings("org2"), "org4", approve=True, fingerprint="00" * 32, as_identity=None
        )
    assert _height(members) == before  # a refused vote writes nothing
    first = vote_member(
        members.settings("org2"),
        "org4",
        approve=True,
        fingerprint=change.fingerprint,
        as_identity=None,
    )
    assert first.vote.status == "proposed" and first.config_block is None
    # Not yet a member: its home cannot join the channel.
    members.create("org4", [*ORGS, "org4"])
    with pytest.raises(ConsortiumError, match="disagree on org4"):
        join_ledger(members.settings("org4"))
    second = vote_member(
        members.settings("org3"), "org4", approve=True, fingerprint=None, as_identity=None
    )
    assert second.vote.status == "approved" and second.config_block is not None
    join_ledger(members.settings("org4"))
    assert sorted(_ledger(members, "org1").consortium_orgs()) == [*ORGS, "org4"]
    # The new member reads and writes like any other: its node registered itself on join.
    assert sorted(_ledger(members, "org4").consortium_orgs()) == [*ORGS, "org4"]
    assert "org4/node0" in {n.id for n in _ledger(members, "org1").list_nodes()}
    _verified(members)
    # The same change is never applied twice.
    height = _height(members)
    with pytest.raises(LedgerError, match="already applied"):
        apply_change(members.settings("org1"), "org4")
    assert _height(members) == height


def test_a_removed_organization_is_refused_and_history_stays_verifiable(
    members: Members,
) -> None:
    _ledger(members, "org1").propose_profile(profile_doc("p1", privacy="none"))
    for org in ("org1", "org2"):
        _ledger(members, org).vote_profile("p1")
    for org in ORGS:
        _ledger(members, org, "node0").volunteer("p1")
    propose_removal(members.settings("org1"), "org2", None)
    vote_member(members.settings("org1"), "org2", approve=True, fingerprint=None, as_identity=None)
    voted = vote_member(
        members.settings("org3"), "org2", approve=True, fingerprint=None, as_identity=None
    )
    assert voted.vote.status == "approved" and voted.config_block is not None
    assert sorted(_ledger(members, "org1").consortium_orgs()) == ["org1", "org3"]
    # Its nodes left the profile's pool: rounds neither wait for them nor elect them.
    assert sorted(_ledger(members, "org3").volunteers("p1")) == ["org1/node0", "org3/node0"]
    for who in ("admin", "node0"):
        with pytest.raises(LedgerError, match="not an organization of channel"):
            _ledger(members, "org2", who).consortium_orgs()
    _verified(members)


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda doc: doc | {"ca": doc["ca"] + "-----BEGIN PRIVATE KEY-----"}, "private key"),
        (
            lambda doc: doc | {"name": "org1", "msp_id": "org1"},
            "not a certificate authority of org1",
        ),
        (lambda doc: "org1", "already a member"),
        (lambda doc: doc | {"kind": "ordering"}, "member organization"),
        (lambda doc: doc | {"ca": "not a certificate"}, "CA"),
    ],
)
def test_the_chaincode_refuses_a_bad_bundle(members: Members, mutate, fragment) -> None:  # type: ignore[no-untyped-def]
    members.make_org("org4")
    doc = json.loads(members.bundle("org4").read_text())
    before = _height(members)
    bundle = mutate(doc)
    if bundle == "org1":  # an existing member's own bundle
        bundle = json.loads(members.bundle("org1").read_text())
    with pytest.raises(LedgerError, match=fragment):
        _ledger(members, "org1").propose_member(bundle)
    assert _height(members) == before


def test_votes_come_once_from_member_admins_only(members: Members) -> None:
    propose_removal(members.settings("org1"), "org3", None)
    ledger = _ledger(members, "org1")
    ledger.vote_member("org3")
    with pytest.raises(LedgerError) as twice:
        ledger.vote_member("org3")
    assert twice.value.code == ErrorCode.ALREADY_EXISTS
    with pytest.raises(LedgerError) as node:
        _ledger(members, "org2", "node0").vote_member("org3")
    assert node.value.code == ErrorCode.FORBIDDEN
    with pytest.raises(LedgerError, match="no change of org9"):
        ledger.vote_member("org9")
    with pytest.raises(LedgerError, match="being voted on"):
        ledger.propose_removal("org3")


def test_a_channel_update_travels_with_the_proposal_and_every_approval_signs_it(
    members: Members,
) -> None:
    """What a vote on Fabric records, checked by the chaincode on any ledger: the proposal
    carries the channel's update, and an approval carries its admin's own signature of exactly
    those bytes (the chaincode does not read the update; each voter decodes it)."""
    members.make_org("org4")
    bundle = json.loads(members.bundle("org4").read_text())
    update = b"\x0a\x07fedspec"  # a ConfigUpdate's bytes, opaque to the chaincode
    change = _ledger(members, "org1").propose_member(bundle, config_update=update)
    assert base64.b64decode(change.raw["config_update"]) == update
    assert change.raw["config_update_sha256"] == hashlib.sha256(update).hexdigest()
    assert "config_update" not in _ledger(members, "org2").member_changes()[0].raw

    def admin(org: str) -> MspIdentity:
        return Consortium.load(members.settings(org).ledger.consortium_dir).identity(f"{org}/admin")

    def signature(org: str, raw: bytes = update) -> bytes:
        msp = admin(org)
        return sign_update(raw, msp.identity, lambda m: msp.signer(hashlib.sha256(m).digest()))

    org2 = _ledger(members, "org2")
    before = _height(members)
    refusals = [
        (lambda: org2.vote_member("org4"), ErrorCode.FAILED_PRECONDITION),  # unsigned approval
        (
            lambda: org2.vote_member("org4", config_signature=signature("org3")),
            ErrorCode.FORBIDDEN,  # another organization's signature
        ),
        (
            lambda: org2.vote_member("org4", config_signature=signature("org2", b"other")),
            ErrorCode.INVALID_ARGUMENT,  # over other bytes
        ),
        (
            lambda: org2.vote_member("org4", config_signature=b"\xff\xfe"),
            ErrorCode.INVALID_ARGUMENT,
        ),
        (
            lambda: org2.vote_member("org4", approve=False, config_signature=signature("org2")),
            ErrorCode.INVALID_ARGUMENT,  # a vote against carries no signature
        ),
    ]
    for vote, code in refusals:
        with pytest.raises(LedgerError) as refused:
            vote()
        assert refused.value.code == code, refused.value
    assert _height(members) == before
    signed = signature("org2")
    assert org2.vote_member("org4", config_signature=signed).status == "proposed"
    [recorded] = _ledger(members, "org1").member_change("org4").votes
    assert recorded["org"] == "org2" and base64.b64decode(recorded["config_signature"]) == signed
    # A change without an update takes no signature.
    propose_removal(members.settings("org1"), "org3", None)
    with pytest.raises(LedgerError) as unsigned:
        org2.vote_member("org3", config_signature=signature("org2"))
    assert unsigned.value.code == ErrorCode.FAILED_PRECONDITION


def test_a_configuration_block_forged_into_the_file_is_found(members: Members) -> None:
    """An org appended to the channel without a vote: the peer refuses the file, verify names
    the block."""
    members.make_org("org9")
    close_services()
    db = sqlite3.connect(members.ledger_path, isolation_level=None)
    genesis = common_pb2.Block.FromString(
        db.execute("SELECT block FROM blocks WHERE number = 0").fetchone()[0]
    )
    env = common_pb2.Envelope.FromString(genesis.data.data[0])
    config = ChannelConfig.from_json(common_pb2.Payload.FromString(env.payload).data)
    forged_change = {
        "id": "org9:0",
        "org": "org9",
        "action": "add",
        "status": "approved",
        "ca": json.loads(members.bundle("org9").read_text())["ca"],
    }
    forged = config.with_change(forged_change)
    signer = Consortium.load(members.settings("org1").ledger.consortium_dir).identity("org1/peer0")
    envelope, tx_id, seconds = config_envelope(forged, signer)
    # Appended as the committer would, with a valid block signature and commitment.

    number, previous, raw = db.execute(
        "SELECT number, header_hash, block FROM blocks ORDER BY number DESC LIMIT 1"
    ).fetchone()
    tip = commitment_of(common_pb2.Block.FromString(raw))
    flags = b"\x00"
    commitment = Commitment(
        tip.state_hash,
        next_write_chain(tip.write_chain, number + 1, flags, []),
        hashlib.sha256(flags).digest(),
    )
    built = build_block(number + 1, bytes(previous), [envelope], [0], signer, commitment)
    db.execute(
        "INSERT INTO blocks VALUES (?, ?, 1, ?)", (number + 1, built.header_hash, built.block_bytes)
    )
    db.execute(
        "INSERT INTO txs VALUES (?, ?, 0, 0, 'config', 'org1/peer0', ?)",
        (tx_id, number + 1, seconds),
    )
    db.execute(
        "INSERT OR REPLACE INTO meta VALUES (?, ?)",
        (CONFIG_BLOCKS, json.dumps([number + 1]).encode()),
    )
    db.close()
    report = verify_ledger(members.ledger_path)
    assert not report.ok and report.first_bad_block == number + 1
    assert "cites no approved membership change" in report.problem
    with pytest.raises(LedgerError) as opened:
        _ledger(members, "org2").consortium_orgs()
    assert opened.value.code == ErrorCode.LEDGER_TAMPERED


def test_no_organization_registers_another_organizations_node(members: Members) -> None:
    """A node is registered by its own certificate, which only its own organization's CA
    issues: an admin cannot register a node, and a certificate presented under another
    organization's MSP id is refused by the channel."""
    with pytest.raises(LedgerError) as admin:
        _ledger(members, "org2").register_node()
    assert admin.value.code == ErrorCode.FORBIDDEN
    own = Consortium.load(members.settings("org2").ledger.consortium_dir).identity("org2/node0")
    claimed = type(own.identity)("org1", own.identity.credentials)  # org2's node as org1's
    service = open_service(members.settings("org2").ledger, org="org2")
    contract = connect(service, claimed, own.signer).get_network("fedspec").get_contract("fedspec")
    before = _height(members)
    with pytest.raises(LedgerError, match="not issued by org1's CA"):
        contract.submit_transaction("RegisterNode")
    assert _height(members) == before
