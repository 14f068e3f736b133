"""Joins that never collide: many nodes join one round in one block (issue 17, point 2).

Each scenario endorses its transactions against the same state, as nodes that join at the
same moment do, then commits them together in one block of the embedded ledger, whose commit
validates read sets as a Fabric peer does (a key read at another version: MVCC read
conflict; a range read that changed: phantom read). Embedded only: the one block is built
with the peer's own ``commit_block``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from ledger_client import EndorseError
from ledger_client.embedded import validation
from ledger_client.embedded.peer import EmbeddedLedger, _Pending
from ledger_client.embedded.simulator import read_kvrwset
from ledger_client.embedded.verify import verify_ledger
from ledger_client.gateway import Transaction
from ledger_client.protocol import code_name, parse_transaction
from ledger_client.records import new_seed_secret

from .conftest import LedgerEnv
from .test_scenarios import TxClock

PROFILE = "digits-8x8"
VOLUNTEERS = ["org1/node0", "org2/node0", "org3/node0"]


@pytest.fixture
def tx_clock(monkeypatch: pytest.MonkeyPatch) -> TxClock:
    from ledger_client import protocol

    clock = TxClock()
    monkeypatch.setattr(protocol, "time", clock)
    return clock


def _endorsed(env: LedgerEnv, ref: str, name: str, *args: str) -> Transaction:
    return env.ledger(ref).contract.new_proposal(name, list(args)).endorse()


def _one_block(env: LedgerEnv, transactions: Sequence[Transaction]) -> list[str]:
    """Sign ``transactions`` as their creators do at submit, commit them as one block in this
    order, and return each one's validation code."""
    service = env.service
    assert isinstance(service, EmbeddedLedger)
    membership = service.membership
    batch = []
    for transaction in transactions:
        envelope: Any = transaction._envelope  # a common_pb2.Envelope
        envelope.signature = transaction.proposal.contract.gateway.sign(envelope.payload)
        tx = parse_transaction(bytes(envelope.SerializeToString()))
        member = membership.identify(tx.msp_id, tx.cert_pem)  # as the peer's submit does
        batch.append(
            _Pending(
                bytes(envelope.SerializeToString()),
                tx,
                f"{member.msp_id}/{member.common_name}",
                checked_by=membership,
                endorsed=validation.endorsing_orgs(tx, membership, membership.config),
                kv=read_kvrwset(tx.results, service.config.chaincode),
            )
        )
    number = service.commit_block(batch)
    db = service.store.connection()
    codes = []
    for item in batch:
        row = db.execute("SELECT block, code FROM txs WHERE tx_id = ?", (item.tx.tx_id,)).fetchone()
        assert row is not None and row[0] == number
        codes.append(code_name(int(row[1])))
    return codes


def _verified(env: LedgerEnv) -> None:
    assert env.ledger_path is not None
    report = verify_ledger(env.ledger_path, jobs=1)
    assert report.ok, report.problem


def _open_round(env: LedgerEnv, volunteers: Sequence[str]) -> int:
    env.bootstrap()
    env.active_profile()
    for ref in volunteers:
        env.ledger(ref).volunteer(PROFILE)
    return env.ledger(volunteers[0]).open_round(PROFILE).number


def test_volunteers_joining_in_one_block_all_commit(env: LedgerEnv) -> None:
    n = _open_round(env, VOLUNTEERS)
    joins = [
        _endorsed(env, ref, "JoinRound", PROFILE, str(n), new_seed_secret()[1])
        for ref in VOLUNTEERS
    ]
    # Before: each join read the (absent) join keys of the volunteers sorted before it, so
    # every join but the first was an MVCC read conflict.
    assert _one_block(env, joins) == ["VALID"] * len(VOLUNTEERS)
    rnd = env.ledger("org1/admin").get_round(PROFILE, n)
    assert rnd.raw["joined"] == sorted(VOLUNTEERS)
    assert rnd.phase == "revealing"  # every volunteer joined
    _verified(env)  # the replay re-executes the joins to the same read sets


def test_reveals_in_one_block_all_commit_and_the_round_elects(env: LedgerEnv) -> None:
    n = _open_round(env, VOLUNTEERS)
    secrets = {}
    for ref in VOLUNTEERS:
        secrets[ref], commitment = new_seed_secret()
        env.ledger(ref).join_round(PROFILE, n, commitment)
    reveals = [
        _endorsed(env, ref, "RevealSeed", PROFILE, str(n), secrets[ref]) for ref in VOLUNTEERS
    ]
    assert _one_block(env, reveals) == ["VALID"] * len(VOLUNTEERS)
    elected = env.ledger(VOLUNTEERS[0]).elect_coordinator(PROFILE, n)
    assert elected.participants == sorted(VOLUNTEERS)
    _verified(env)


def test_a_volunteer_added_after_a_reveal_cannot_join(env: LedgerEnv) -> None:
    """Joining closed (every volunteer then joined) and a seed is revealed; a node that
    volunteers now is refused: its secret could be chosen knowing the revealed one."""
    n = _open_round(env, VOLUNTEERS)
    late = VOLUNTEERS[2]
    env.ledger(late).withdraw(PROFILE)
    secrets = {}
    for ref in VOLUNTEERS[:2]:
        secrets[ref], commitment = new_seed_secret()
        env.ledger(ref).join_round(PROFILE, n, commitment)
    assert env.ledger("org1/admin").get_round(PROFILE, n).phase == "revealing"
    env.ledger(VOLUNTEERS[0]).reveal_seed(PROFILE, n, secrets[VOLUNTEERS[0]])
    env.ledger(late).volunteer(PROFILE)  # not every volunteer has joined any more
    with pytest.raises(EndorseError) as refused:
        env.ledger(late).join_round(PROFILE, n, new_seed_secret()[1])
    assert refused.value.code == "FAILED_PRECONDITION" and "closed" in refused.value.message
    # Joining stays closed for everyone: the phase does not go back, the others reveal and
    # the round elects without waiting for its deadlines.
    assert env.ledger("org1/admin").get_round(PROFILE, n).phase == "revealing"
    env.ledger(VOLUNTEERS[1]).reveal_seed(PROFILE, n, secrets[VOLUNTEERS[1]])
    elected = env.ledger(VOLUNTEERS[0]).elect_coordinator(PROFILE, n)
    assert elected.participants == sorted(VOLUNTEERS[:2])
    _verified(env)


def test_a_join_endorsed_before_a_reveal_commits_after_it_is_invalid(
    env: LedgerEnv, tx_clock: TxClock
) -> None:
    """No volunteers: the join window decides. A join stamped before the deadline, ordered
    after a reveal made once it passed, read the round's reveals as none: a phantom read."""
    env.bootstrap()
    env.active_profile(schedule={"join_window_s": 3})
    rnd = env.ledger("org1/node0").open_round(PROFILE)
    secret, commitment = new_seed_secret()
    env.ledger("org1/node0").join_round(PROFILE, rnd.number, commitment)
    late_join = _endorsed(
        env, "org2/node0", "JoinRound", PROFILE, str(rnd.number), new_seed_secret()[1]
    )
    tx_clock.pass_deadline(rnd.join_deadline)
    reveal = _endorsed(env, "org1/node0", "RevealSeed", PROFILE, str(rnd.number), secret)
    assert _one_block(env, [reveal, late_join]) == ["VALID", "PHANTOM_READ_CONFLICT"]
    assert env.ledger("org1/admin").get_round(PROFILE, rnd.number).raw["joined"] == ["org1/node0"]
    _verified(env)


def test_a_node_that_does_not_volunteer_joins_until_every_volunteer_has(env: LedgerEnv) -> None:
    volunteers = VOLUNTEERS[:2]
    n = _open_round(env, volunteers)
    env.ledger("org3/node0").join_round(PROFILE, n, new_seed_secret()[1])  # accepted
    env.ledger(volunteers[0]).join_round(PROFILE, n, new_seed_secret()[1])
    # Endorsed while the second volunteer has not joined; ordered after its join, which
    # closes joining: the outsider's read of that join key is stale (exact, as before).
    last = _endorsed(env, volunteers[1], "JoinRound", PROFILE, str(n), new_seed_secret()[1])
    outsider = _endorsed(env, "org1/node1", "JoinRound", PROFILE, str(n), new_seed_secret()[1])
    assert _one_block(env, [last, outsider]) == ["VALID", "MVCC_READ_CONFLICT"]
    assert env.ledger("org1/admin").get_round(PROFILE, n).phase == "revealing"
    with pytest.raises(EndorseError) as refused:
        env.ledger("org2/node1").join_round(PROFILE, n, new_seed_secret()[1])
    assert refused.value.code == "FAILED_PRECONDITION" and "closed" in refused.value.message
    _verified(env)


def _keys_read(transaction: Transaction, env: LedgerEnv) -> int:
    """Keys a transaction's read set holds: point reads and the keys of its range reads."""
    tx = parse_transaction(bytes(transaction._envelope.SerializeToString()))
    kv = read_kvrwset(tx.results, env.service.config.chaincode)
    return len(kv.reads) + sum(len(q.raw_reads.kv_reads) for q in kv.range_queries_info)


def test_a_reveal_after_a_committed_one_reads_one_key_not_every_join(env: LedgerEnv) -> None:
    """Joining closed because every volunteer joined: the first reveal proves it by scanning
    the volunteers and the joins; the others name that reveal (RevealSeedAfter) and read it,
    so their read sets stay the same size however many nodes joined."""
    n = _open_round(env, VOLUNTEERS)
    secrets = {}
    for ref in VOLUNTEERS:
        secrets[ref], commitment = new_seed_secret()
        env.ledger(ref).join_round(PROFILE, n, commitment)
    first, second, third = VOLUNTEERS
    scanning = _endorsed(env, first, "RevealSeed", PROFILE, str(n), secrets[first])
    assert _one_block(env, [scanning]) == ["VALID"]
    after = [
        _endorsed(env, ref, "RevealSeedAfter", PROFILE, str(n), secrets[ref], first)
        for ref in (second, third)
    ]
    # Fewer keys than the scan: the proof is one reveal, not the volunteers and their joins.
    assert max(_keys_read(t, env) for t in after) < _keys_read(scanning, env)
    assert _one_block(env, after) == ["VALID", "VALID"]  # concurrent: no conflict
    elected = env.ledger(first).elect_coordinator(PROFILE, n)
    assert elected.participants == sorted(VOLUNTEERS)
    _verified(env)


def test_a_reveal_naming_a_node_that_has_not_revealed_proves_nothing(env: LedgerEnv) -> None:
    volunteers = VOLUNTEERS[:2]
    n = _open_round(env, VOLUNTEERS)  # the third volunteer never joins: joining stays open
    secrets = {}
    for ref in volunteers:
        secrets[ref], commitment = new_seed_secret()
        env.ledger(ref).join_round(PROFILE, n, commitment)
    ledger = env.ledger(volunteers[1])
    with pytest.raises(EndorseError) as refused:
        ledger.reveal_seed(PROFILE, n, secrets[volunteers[1]], after=volunteers[0])
    assert refused.value.code == "FAILED_PRECONDITION" and "joining closes" in refused.value.message
    with pytest.raises(EndorseError) as bad:
        ledger.reveal_seed(PROFILE, n, secrets[volunteers[1]], after="nobody")
    assert bad.value.code == "INVALID_ARGUMENT" and "revealed_node" in bad.value.message
    assert env.ledger("org1/admin").get_round(PROFILE, n).raw["revealed"] == []
