"""State commitments: an edited ledger file is refused by the peer (endorse and evaluate), on
open, and by `ledger verify`, which never crashes and names the first bad block."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from fabric_protos.common import common_pb2

from fedspec.errors import ErrorCode
from ledger_client import EndorseError, LedgerFileError, ModelCommitment
from ledger_client.embedded.peer import EmbeddedLedger
from ledger_client.embedded.simulator import SimulationStub
from ledger_client.embedded.verify import verify_ledger
from ledger_client.protocol import ParsedProposal

from .conftest import LedgerEnv
from .test_scenarios import NODES, update_for

PROFILE = "digits-8x8"
BUDGET = "instr(key, 'budget') > 0 AND instr(key, 'org1/node0') > 0"


def _model() -> ModelCommitment:
    return ModelCommitment(
        sha256=hashlib.sha256(b"m").hexdigest(),
        uri="u",
        metrics={"accuracy": 1},
        inclusion={r: update_for(r).sha256 for r in NODES},
        contributions=dict.fromkeys(NODES, 1),
    )


def _one_round(env: LedgerEnv) -> None:
    env.bootstrap()
    env.active_profile()
    rnd = env.elected_round(PROFILE, NODES)
    for ref in NODES:
        env.ledger(ref).submit_update(PROFILE, rnd.number, update_for(ref))
    env.ledger(rnd.coordinator).commit_model(PROFILE, rnd.number, _model())
    env.ledger(rnd.coordinator).mint_rewards(PROFILE, rnd.number)


@pytest.fixture
def ledger(env: LedgerEnv) -> Path:
    """A closed ledger holding one complete round."""
    _one_round(env)
    env.service.close()
    assert env.ledger_path is not None
    return env.ledger_path


def _db(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def _edit(path: Path, where: str, old: bytes, new: bytes) -> int:
    """Replace ``old`` by ``new`` in the value of the one state row ``where`` selects;
    returns the block that last wrote it."""
    db = _db(path)
    key, value, block = db.execute(f"SELECT key, value, block FROM state WHERE {where}").fetchone()
    assert old in value
    db.execute("UPDATE state SET value = ? WHERE key = ?", (value.replace(old, new), key))
    db.close()
    return int(block)


def _block(db: sqlite3.Connection, number: int) -> common_pb2.Block:
    return common_pb2.Block.FromString(
        db.execute("SELECT block FROM blocks WHERE number = ?", (number,)).fetchone()[0]
    )


def _last(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT MAX(number) FROM blocks").fetchone()[0])


def _tampered(caught: pytest.ExceptionInfo[EndorseError], block: int) -> None:
    assert caught.value.code == ErrorCode.LEDGER_TAMPERED, caught.value
    assert f"block {block}" in caught.value.message, caught.value.message


# ---------------------------------------------------------------- the running peer
def test_an_edited_budget_is_neither_served_nor_laundered(env: LedgerEnv) -> None:
    """Finding 1: lowering a node's spent budget in the file, then writing that key with a
    normal transaction, must not make the edit part of the ledger."""
    _one_round(env)
    assert env.ledger_path is not None
    block = _edit(env.ledger_path, BUDGET, b'"epsilon":"1"', b'"epsilon":"0"')
    node = env.ledger("org1/node0")
    with pytest.raises(EndorseError) as served:
        node.budget("org1/node0", PROFILE)
    _tampered(served, block)
    rnd = env.elected_round(PROFILE, NODES)  # reads nothing that was edited
    before = env.height()
    with pytest.raises(EndorseError) as laundered:
        node.submit_update(PROFILE, rnd.number, update_for("org1/node0", n=2))
    _tampered(laundered, block)
    assert env.height() == before  # nothing endorsed, nothing committed
    env.service.close()
    report = verify_ledger(env.ledger_path, jobs=1)
    assert not report.ok and report.first_bad_block == block
    assert "budget~org1/node0" in report.problem


def test_an_edited_coordinator_is_refused_at_endorsement(env: LedgerEnv) -> None:
    env.bootstrap()
    env.active_profile()
    rnd = env.elected_round(PROFILE, NODES)
    assert env.ledger_path is not None
    other = next(r for r in NODES if r != rnd.coordinator)
    block = _edit(
        env.ledger_path,
        f"instr(key, 'round') = 2 AND instr(key, '{PROFILE}') > 0",
        f'"coordinator":"{rnd.coordinator}"'.encode(),
        f'"coordinator":"{other}"'.encode(),
    )
    with pytest.raises(EndorseError) as caught:
        env.ledger(other).commit_model(PROFILE, rnd.number, _model())
    _tampered(caught, block)


@pytest.mark.parametrize(
    ("where", "read"),
    [
        ("instr(key, 'profile') = 2", lambda f: f.get_profile(PROFILE)),
        ("instr(key, 'profile') = 2", lambda f: f.list_profiles()),
        ("instr(key, 'tok') = 2 AND instr(key, 'org1/node0') > 0", lambda f: f.balances()),
    ],
    ids=["profile-show", "profile-list", "rewards"],
)
def test_reads_of_tampered_state_report_it(env: LedgerEnv, where: str, read: object) -> None:
    """Finding 5: rewards, profile list/show and budget never serve an edited row, and a row
    made invalid JSON is an integrity failure, not an INTERNAL JSONDecodeError."""
    _one_round(env)
    assert env.ledger_path is not None
    db = _db(env.ledger_path)
    key, block = db.execute(f"SELECT key, block FROM state WHERE {where}").fetchone()
    db.execute("UPDATE state SET value = CAST('{not json' AS BLOB) WHERE key = ?", (key,))
    with pytest.raises(EndorseError) as caught:
        read(env.ledger("org2/node0"))  # type: ignore[operator]
    _tampered(caught, int(block))


def test_an_injected_row_is_refused_by_a_range_read(env: LedgerEnv) -> None:
    _one_round(env)
    assert env.ledger_path is not None
    _db(env.ledger_path).execute(
        "INSERT INTO state (key, value, block, txn) VALUES (?, ?, 7, 0)",
        ("\x00tok\x00org1/node0\x00free\x00", b'{"amount":999}'),
    )
    with pytest.raises(EndorseError) as caught:
        env.ledger("org1/node0").balances()
    _tampered(caught, 7)


# ---------------------------------------------------------------- the check on open
@pytest.mark.parametrize("edit", ["delete", "insert", "version", "text"])
def test_opening_an_edited_ledger_is_refused(ledger: Path, consortium: object, edit: str) -> None:
    db = _db(ledger)
    last = _last(db)
    if edit == "delete":
        db.execute("DELETE FROM state WHERE key = (SELECT MIN(key) FROM state)")
    elif edit == "insert":
        db.execute("INSERT INTO state (key, value, block, txn) VALUES ('x', X'7B7D', 3, 0)")
    elif edit == "version":
        db.execute("UPDATE state SET txn = txn + 1 WHERE key = (SELECT MIN(key) FROM state)")
    else:
        db.execute("UPDATE state SET value = CAST(value AS TEXT) WHERE " + BUDGET)
    db.close()
    with pytest.raises(LedgerFileError) as caught:
        EmbeddedLedger(ledger, consortium)  # type: ignore[arg-type]
    assert caught.value.code == ErrorCode.LEDGER_TAMPERED
    assert caught.value.details["block"] == last and f"block {last}" in caught.value.message
    assert not verify_ledger(ledger, jobs=1).ok


def test_an_untouched_ledger_opens_and_its_commitment_matches(ledger: Path) -> None:
    service = EmbeddedLedger(ledger)  # read-only: no consortium needed to check it
    try:
        assert service.check_state() == _last(service.store.connection())
    finally:
        service.close()
    assert verify_ledger(ledger, jobs=1).ok


def test_a_v1_ledger_is_refused_with_one_line(ledger: Path) -> None:
    _db(ledger).execute(
        "UPDATE meta SET value = CAST('fedspec-ledger-v1' AS BLOB) WHERE key = 'format'"
    )
    with pytest.raises(LedgerFileError, match="re-create it") as caught:
        verify_ledger(ledger)
    assert "\n" not in str(caught.value)


# ---------------------------------------------------------------- re-execution in verify
class _RoguePeer(EmbeddedLedger):
    """A peer (holding the endorsers' keys) that endorses a write its chaincode never made."""

    def _simulate(self, parsed: ParsedProposal) -> tuple[SimulationStub, bytes]:
        stub, result = super()._simulate(parsed)
        if parsed.function == "Volunteer":
            stub.writes["\x00tok\x00org1/node0\x00free\x00"] = b'{"amount":999}'
        return stub, result


def test_a_write_the_chaincode_never_made_is_found_by_reexecution(
    env: LedgerEnv, consortium: object
) -> None:
    env.bootstrap()
    env.active_profile()
    env.service.close()
    assert env.ledger_path is not None
    rogue = _RoguePeer(env.ledger_path, consortium, synchronous="NORMAL")  # type: ignore[arg-type]
    try:
        env.services = dict.fromkeys(env.services, rogue)
        env._facades.clear()
        env.ledger("org1/node0").volunteer(PROFILE)  # committed VALID: signatures are fine
        block = env.height() - 1
    finally:
        rogue.close()
    report = verify_ledger(env.ledger_path, jobs=1)
    assert not report.ok and report.first_bad_block == block
    assert "Volunteer" in report.problem and "tok~org1/node0~free" in report.problem


# ---------------------------------------------------------------- verify never crashes
def _verify_fails_at(path: Path, block: int, *words: str) -> str:
    report = verify_ledger(path, jobs=1)
    assert not report.ok and report.first_bad_block == block, report
    for word in words:
        assert word in report.problem, report.problem
    return report.problem


def test_a_truncated_last_block_is_named(ledger: Path) -> None:
    db = _db(ledger)
    last = _last(db)
    db.execute(
        "UPDATE blocks SET block = substr(block, 1, length(block) - 7) WHERE number = ?", (last,)
    )
    _verify_fails_at(ledger, last, f"block {last}")


def test_an_empty_block_row_is_named(ledger: Path) -> None:
    db = _db(ledger)
    db.execute("UPDATE blocks SET block = X'0A' WHERE number = 4")
    _verify_fails_at(ledger, 4, "truncated or not a block")


def test_a_deleted_last_block_is_named(ledger: Path) -> None:
    """Finding 4: the message names the missing block, not another one."""
    db = _db(ledger)
    last = _last(db)
    db.execute("DELETE FROM blocks WHERE number = ?", (last,))
    _verify_fails_at(ledger, last, f"block {last} is missing")


def test_a_block_deleted_in_the_middle_is_named(ledger: Path) -> None:
    _db(ledger).execute("DELETE FROM blocks WHERE number = 6")
    _verify_fails_at(ledger, 6, "block 6 is missing")


def test_reordered_blocks_are_named(ledger: Path) -> None:
    db = _db(ledger)
    rows = {
        n: (h, b)
        for n, h, b in db.execute(
            "SELECT number, header_hash, block FROM blocks WHERE number IN (5, 6)"
        )
    }
    for n, other in ((5, 6), (6, 5)):
        db.execute(
            "UPDATE blocks SET header_hash = ?, block = ? WHERE number = ?", (*rows[other], n)
        )
    _verify_fails_at(ledger, 5, "block 5")


def test_a_transaction_row_added_at_block_0_is_found(ledger: Path) -> None:
    """Finding 4: rows at block 0 beyond the genesis configuration are checked too."""
    _db(ledger).execute(
        "INSERT INTO txs (tx_id, block, idx, code, function, creator, timestamp) "
        "VALUES ('f00d', 0, 1, 0, 'MintRewards', 'org1/node0', 0)"
    )
    _verify_fails_at(ledger, 0, "transaction index")


@pytest.mark.parametrize(
    ("column", "value"), [("creator", "org2/node0"), ("function", "MintRewards"), ("timestamp", 1)]
)
def test_a_rewritten_transaction_column_is_found(ledger: Path, column: str, value: object) -> None:
    db = _db(ledger)
    (tx_id,) = db.execute("SELECT tx_id FROM txs WHERE block = 8").fetchone()
    db.execute(f"UPDATE txs SET {column} = ? WHERE tx_id = ?", (value, tx_id))
    _verify_fails_at(ledger, 8, "transaction index", column)


def test_a_rewritten_genesis_row_is_found(ledger: Path) -> None:
    _db(ledger).execute("UPDATE txs SET creator = 'org1/admin' WHERE block = 0")
    _verify_fails_at(ledger, 0, "creator")


def test_invalid_json_in_a_state_row_is_found(ledger: Path) -> None:
    db = _db(ledger)
    key, block = db.execute(f"SELECT key, block FROM state WHERE {BUDGET}").fetchone()
    db.execute("UPDATE state SET value = CAST('{oops' AS BLOB) WHERE key = ?", (key,))
    _verify_fails_at(ledger, int(block), "budget~org1/node0")


def test_an_edited_event_is_found(ledger: Path) -> None:
    db = _db(ledger)
    block, idx = db.execute(
        "SELECT block, idx FROM events ORDER BY block LIMIT 1 OFFSET 5"
    ).fetchone()
    db.execute(
        "UPDATE events SET payload = CAST('{}' AS BLOB) WHERE block = ? AND idx = ?", (block, idx)
    )
    _verify_fails_at(ledger, int(block), "event")


def test_edited_tables_columns_are_found(ledger: Path) -> None:
    db = _db(ledger)
    db.execute("UPDATE blocks SET tx_count = 2 WHERE number = 3")
    _verify_fails_at(ledger, 3, "transactions")
    db.execute("UPDATE blocks SET tx_count = 1 WHERE number = 3")
    db.execute("UPDATE meta SET value = X'00' WHERE key = 'state_hash'")
    _verify_fails_at(ledger, _last(db), "state_hash")


def test_unsigned_flags_and_commitment_copies_are_found(ledger: Path) -> None:
    db = _db(ledger)
    (saved,) = db.execute("SELECT block FROM blocks WHERE number = 9").fetchone()
    block = _block(db, 9)
    block.metadata.metadata[common_pb2.COMMIT_HASH] = common_pb2.Metadata(
        value=b"\x00" * 96
    ).SerializeToString()
    db.execute("UPDATE blocks SET block = ? WHERE number = 9", (block.SerializeToString(),))
    _verify_fails_at(ledger, 9, "COMMIT_HASH")
    db.execute("UPDATE blocks SET block = ? WHERE number = 9", (saved,))
    block = _block(db, 10)
    block.metadata.metadata[common_pb2.TRANSACTIONS_FILTER] = bytes([11])  # VALID → MVCC
    db.execute("UPDATE blocks SET block = ? WHERE number = 10", (block.SerializeToString(),))
    _verify_fails_at(ledger, 10, "flags")


def test_a_table_that_is_gone_is_not_a_ledger(ledger: Path) -> None:
    _db(ledger).execute("DROP TABLE events")
    with pytest.raises(LedgerFileError, match="not a fedspec ledger"):
        verify_ledger(ledger)
