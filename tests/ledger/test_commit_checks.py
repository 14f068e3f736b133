"""The committer's signature and policy checks, now that the submit verifies the signatures.

The submit verifies the creator's and every endorser's signature in the submitting thread; the
committer reuses those verdicts only under the very membership they were taken against, and
applies the policy itself. These tests pin down that nothing got weaker: a forged endorsement
still lands as ENDORSEMENT_POLICY_FAILURE (and `ledger verify`, which trusts nothing, agrees),
and a verdict taken under another membership is never trusted.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec
from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2
from fabric_protos.peer import transaction_pb2

from ledger_client import new_private_key_signer
from ledger_client.embedded import validation
from ledger_client.embedded.channel import Membership
from ledger_client.embedded.peer import EmbeddedLedger, _Pending
from ledger_client.embedded.verify import verify_ledger
from ledger_client.gateway import Transaction
from ledger_client.identity import sha256
from ledger_client.protocol import code_name, parse_transaction

from .conftest import LedgerEnv


def _forge_first_endorsement(transaction: Transaction) -> None:
    """Replace the first endorsement's signature with a well-formed one by an unknown key."""
    envelope = transaction._envelope  # type: ignore[attr-defined]
    payload = common_pb2.Payload.FromString(envelope.payload)
    tx = transaction_pb2.Transaction.FromString(payload.data)
    action = transaction_pb2.ChaincodeActionPayload.FromString(tx.actions[0].payload)
    endorsement = action.action.endorsements[0]
    stranger = new_private_key_signer(ec.generate_private_key(ec.SECP256R1()))
    endorsement.signature = stranger(
        sha256(action.action.proposal_response_payload + endorsement.endorser)
    )
    tx.actions[0].payload = action.SerializeToString()
    payload.data = tx.SerializeToString()
    envelope.payload = payload.SerializeToString()


def _endorsed(env: LedgerEnv, *, forged: bool) -> Transaction:
    transaction = env.ledger("org1/node0").contract.new_proposal("Volunteer", ["digits-8x8"])
    endorsed = transaction.endorse()
    if forged:
        _forge_first_endorsement(endorsed)
    return endorsed


def _signed_envelope(transaction: Transaction) -> bytes:
    """The envelope as the creator signs it at submit (Transaction.submit's first step)."""
    envelope = transaction._envelope  # type: ignore[attr-defined]
    gateway = transaction.proposal.contract.gateway
    envelope.signature = gateway.sign(envelope.payload)
    return bytes(envelope.SerializeToString())


def test_a_forged_endorsement_commits_as_a_policy_failure(env: LedgerEnv) -> None:
    env.bootstrap()
    env.active_profile()
    assert isinstance(env.service, EmbeddedLedger)
    before = env.height()
    status = _endorsed(env, forged=True).submit().get_status()
    assert status.code_name == "ENDORSEMENT_POLICY_FAILURE"
    assert env.height() == before + 1  # ordered and kept, as invalid
    # The transaction changed nothing: the same volunteering, properly endorsed, is valid.
    _endorsed(env, forged=False).submit().get_status().raise_for_failure()
    assert env.ledger_path is not None
    report = verify_ledger(env.ledger_path, jobs=1)
    assert report.ok, report.problem


def _pending(service: EmbeddedLedger, envelope: bytes, checked_by: Membership) -> _Pending:
    tx = parse_transaction(envelope)
    return _Pending(
        envelope,
        tx,
        "org1/node0",
        checked_by=checked_by,
        # A verdict that lies: every organization endorsed, signatures and all.
        endorsed=(validation.VALID, set(service.config.organizations)),
        kv=None,
    )


def _committed_code(service: EmbeddedLedger, tx_id: str) -> str:
    row = (
        service.store.connection()
        .execute("SELECT code FROM txs WHERE tx_id = ?", (tx_id,))
        .fetchone()
    )
    assert row is not None
    return code_name(int(row[0]))


def test_a_verdict_from_another_membership_is_verified_again(env: LedgerEnv) -> None:
    env.bootstrap()
    env.active_profile()
    service = env.service
    assert isinstance(service, EmbeddedLedger)
    envelope = _signed_envelope(_endorsed(env, forged=True))
    # Checked against an equal configuration, but not the membership in force now (as after
    # a configuration block): the committer must not take the submit's word for it.
    stale = Membership(service.config)
    pending = _pending(service, envelope, stale)
    service.commit_block([pending])
    assert _committed_code(service, pending.tx.tx_id) == "ENDORSEMENT_POLICY_FAILURE"
    assert env.ledger_path is not None
    report = verify_ledger(env.ledger_path, jobs=1)
    assert report.ok, report.problem


def test_the_policy_is_applied_at_commit_to_the_verified_organizations(env: LedgerEnv) -> None:
    env.bootstrap()
    env.active_profile()
    service = env.service
    assert isinstance(service, EmbeddedLedger)
    envelope = _signed_envelope(_endorsed(env, forged=False))
    pending = _pending(service, envelope, service.membership)
    # Only one organization's endorsement verified: the policy (a majority of three) fails
    # at commit, whatever the submit saw.
    pending.endorsed = (validation.VALID, {"org1"})
    service.commit_block([pending])
    assert _committed_code(service, pending.tx.tx_id) == "ENDORSEMENT_POLICY_FAILURE"


def test_the_status_of_another_services_transaction_is_found(env: LedgerEnv) -> None:
    env.bootstrap()
    env.active_profile()
    assert env.ledger_path is not None
    other = EmbeddedLedger(env.ledger_path, env.consortium, synchronous="NORMAL")
    try:
        transaction = _endorsed(env, forged=False)
        transaction.submit()
        # Asked of a service that did not queue it (as another process sharing the file
        # would be): found by polling the file, not through the committer's wake-up.
        gateway = transaction.proposal.contract.gateway
        raw = gateway_pb2.CommitStatusRequest(
            transaction_id=transaction.transaction_id,
            channel_id="fedspec",
            identity=gateway.identity.serialize(),
        ).SerializeToString()
        signed = gateway_pb2.SignedCommitStatusRequest(request=raw, signature=gateway.sign(raw))
        response = other.commit_status(signed, 30.0)
        assert code_name(int(response.result)) == "VALID"
    finally:
        other.close()
