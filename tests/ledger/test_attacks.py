"""Attacks are refused with the right error, and nothing is written (the chain does not grow)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from fedspec.app.consortium import init_consortium
from ledger_client import (
    Consortium,
    EndorseError,
    FedspecLedger,
    ModelCommitment,
    SubmitError,
    connect,
    new_private_key_signer,
)
from ledger_client.records import new_seed_secret

from .conftest import LedgerEnv
from .test_scenarios import NODES, update_for


@pytest.fixture
def running(env: LedgerEnv) -> LedgerEnv:
    env.bootstrap()
    env.active_profile()
    return env


def _refused(env: LedgerEnv, call, code: str, error=EndorseError) -> None:  # type: ignore[no-untyped-def]
    before = env.height()
    with pytest.raises(error) as caught:
        call()
    assert caught.value.code == code, str(caught.value)
    assert caught.value.transaction_id
    assert env.height() == before, "a refused transaction must not add a block"


def test_a_forged_signature_is_refused(running: LedgerEnv) -> None:
    victim = running.consortium.identity("org1/node0")
    forger = new_private_key_signer(ec.generate_private_key(ec.SECP256R1()))
    gateway = connect(
        running.service, victim.identity, forger
    )  # org1/node0's certificate, another key
    contract = gateway.get_network("fedspec").get_contract("fedspec")
    _refused(
        running, lambda: contract.submit_transaction("Volunteer", "digits-8x8"), "BAD_SIGNATURE"
    )
    _refused(
        running, lambda: contract.evaluate_transaction("GetProfile", "digits-8x8"), "BAD_SIGNATURE"
    )


def test_an_identity_from_outside_the_consortium_is_refused(
    running: LedgerEnv, tmp_path: Path
) -> None:
    outsider = Consortium.load(
        init_consortium(["org1", "org2", "org3"], tmp_path / "other", nodes_per_org=1)
    )
    msp = outsider.identity(
        "org1/node0"
    )  # same MSP id and name, but a CA the channel does not trust
    contract = (
        connect(running.service, msp.identity, msp.signer)
        .get_network("fedspec")
        .get_contract("fedspec")
    )
    _refused(running, lambda: contract.submit_transaction("RegisterNode"), "ACCESS_DENIED")
    _refused(running, lambda: contract.evaluate_transaction("ListNodes", ""), "ACCESS_DENIED")


def test_only_the_elected_coordinator_commits_a_model(running: LedgerEnv) -> None:
    rnd = running.elected_round("digits-8x8", NODES)
    for ref in NODES:
        running.ledger(ref).submit_update("digits-8x8", rnd.number, update_for(ref))
    impostor = next(r for r in NODES if r != rnd.coordinator)
    model = ModelCommitment(
        sha256=hashlib.sha256(b"evil").hexdigest(),
        uri="x",
        metrics={},
        inclusion={ref: update_for(ref).sha256 for ref in NODES},
        contributions=dict.fromkeys(NODES, 1),
    )
    _refused(
        running,
        lambda: running.ledger(impostor).commit_model("digits-8x8", rnd.number, model),
        "FORBIDDEN",
    )
    # An admin is not the coordinator either.
    _refused(
        running,
        lambda: running.ledger("org1/admin").commit_model("digits-8x8", rnd.number, model),
        "FORBIDDEN",
    )


def test_an_organization_votes_once(running: LedgerEnv) -> None:
    running.ledger("org1/admin").propose_profile({**_spec("second")})
    running.ledger("org3/admin").vote_profile("second")
    _refused(running, lambda: running.ledger("org3/admin").vote_profile("second"), "ALREADY_EXISTS")
    # A node cannot vote for its organization.
    _refused(running, lambda: running.ledger("org2/node0").vote_profile("second"), "FORBIDDEN")


def test_an_update_from_a_node_that_did_not_join_is_refused(running: LedgerEnv) -> None:
    rnd = running.elected_round("digits-8x8", NODES[:2])
    outsider = running.ledger("org3/node1")
    _refused(
        running,
        lambda: outsider.submit_update("digits-8x8", rnd.number, update_for("org3/node1")),
        "FORBIDDEN",
    )


def test_a_replayed_transaction_is_refused(running: LedgerEnv) -> None:
    contract = running.ledger("org1/node0").contract
    transaction = contract.new_proposal("Volunteer", ["digits-8x8"]).endorse()
    transaction.submit().get_status().raise_for_failure()
    _refused(running, transaction.submit, "DUPLICATE_TXID", SubmitError)
    # Replaying the same signed proposal for endorsement is refused as well.
    proposal = contract.new_proposal("Volunteer", ["digits-8x8"])
    proposal.endorse().submit().get_status().raise_for_failure()
    _refused(running, proposal.endorse, "DUPLICATE_TXID")


def test_a_resigned_envelope_from_another_identity_is_refused(running: LedgerEnv) -> None:
    contract = running.ledger("org1/node0").contract
    transaction = contract.new_proposal("Volunteer", ["digits-8x8"]).endorse()
    # Someone else signs the endorsed transaction: the signature no longer matches its creator.
    other = running.consortium.identity("org2/node0")
    transaction.proposal.contract.gateway._signer = other.signer  # type: ignore[attr-defined]
    _refused(running, transaction.submit, "BAD_SIGNATURE", SubmitError)


def test_an_inclusion_set_naming_a_missing_update_is_refused(running: LedgerEnv) -> None:
    rnd = running.elected_round("digits-8x8", NODES)
    for ref in NODES[:2]:
        running.ledger(ref).submit_update("digits-8x8", rnd.number, update_for(ref))
    model = ModelCommitment(
        sha256=hashlib.sha256(b"m").hexdigest(),
        uri="x",
        metrics={},
        inclusion={ref: update_for(ref).sha256 for ref in NODES},
        contributions=dict.fromkeys(NODES, 1),
    )
    _refused(
        running,
        lambda: running.ledger(rnd.coordinator).commit_model("digits-8x8", rnd.number, model),
        "NOT_FOUND",
    )
    wrong_hash = ModelCommitment(
        sha256=hashlib.sha256(b"m").hexdigest(),
        uri="x",
        metrics={},
        inclusion={NODES[0]: "00" * 32, NODES[1]: update_for(NODES[1]).sha256},
        contributions=dict.fromkeys(NODES[:2], 1),
    )
    _refused(
        running,
        lambda: running.ledger(rnd.coordinator).commit_model("digits-8x8", rnd.number, wrong_hash),
        "CONFLICT",
    )


def test_bad_arguments_are_typed_errors(running: LedgerEnv) -> None:
    node: FedspecLedger = running.ledger("org1/node0")
    _refused(running, lambda: node.submit("OpenRound", "NOT A PROFILE"), "INVALID_ARGUMENT")
    _refused(
        running, lambda: node.submit("JoinRound", "digits-8x8", "one", "ab"), "INVALID_ARGUMENT"
    )
    _refused(running, lambda: node.submit("NoSuchTransaction"), "INVALID_ARGUMENT")
    _refused(running, lambda: node.submit("ProposeProfile", "{not json"), "INVALID_ARGUMENT")
    _refused(running, lambda: node.submit("ProposeProfile", '{"id": "x"}'), "INVALID_ARGUMENT")
    _refused(running, lambda: node.submit("Volunteer"), "INVALID_ARGUMENT")
    _, commitment = new_seed_secret()
    _refused(running, lambda: node.submit("JoinRound", "digits-8x8", "7", commitment), "NOT_FOUND")


def test_a_transaction_for_another_channel_or_chaincode_is_refused(running: LedgerEnv) -> None:
    msp = running.consortium.identity("org1/node0")
    gateway = connect(running.service, msp.identity, msp.signer)
    other_channel = gateway.get_network("elsewhere").get_contract("fedspec")
    _refused(running, lambda: other_channel.submit_transaction("RegisterNode"), "NOT_FOUND")
    other_chaincode = gateway.get_network("fedspec").get_contract("basic")
    _refused(running, lambda: other_chaincode.submit_transaction("RegisterNode"), "NOT_FOUND")


def test_a_proposal_from_the_past_is_refused(running: LedgerEnv) -> None:
    """Deadlines use transaction timestamps, so the peer bounds how far they may drift."""
    from fabric_protos.gateway import gateway_pb2
    from fabric_protos.peer import proposal_pb2

    from ledger_client import protocol
    from ledger_client.service import GatewayServiceError

    msp = running.consortium.identity("org1/node0")
    built = protocol.build_proposal(
        msp.identity, "fedspec", "fedspec", "Volunteer", [b"digits-8x8"], timestamp=1_000_000_000.0
    )
    signed = proposal_pb2.SignedProposal(
        proposal_bytes=built.proposal_bytes,
        signature=msp.signer(hashlib.sha256(built.proposal_bytes).digest()),
    )
    with pytest.raises(GatewayServiceError) as caught:
        running.service.endorse(
            gateway_pb2.EndorseRequest(
                transaction_id=built.transaction_id,
                channel_id="fedspec",
                proposed_transaction=signed,
            ),
            5,
        )
    assert caught.value.code == "BAD_TIMESTAMP"


def _spec(profile_id: str) -> dict[str, object]:
    from .conftest import profile_spec

    return profile_spec(profile_id)
