"""`ledger verify` re-derives everything from the genesis block and names the first wrong block."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from fabric_protos.common import common_pb2

from ledger_client import LedgerFileError, ModelCommitment
from ledger_client.embedded.blocks import data_hash, header_hash
from ledger_client.embedded.verify import verify_ledger

from .conftest import LedgerEnv
from .test_scenarios import NODES, update_for


@pytest.fixture
def ledger_with_round(env: LedgerEnv) -> Path:
    env.bootstrap()
    env.active_profile()
    rnd = env.elected_round("digits-8x8", NODES)
    for ref in NODES:
        env.ledger(ref).submit_update("digits-8x8", rnd.number, update_for(ref))
    env.ledger(rnd.coordinator).commit_model(
        "digits-8x8",
        rnd.number,
        ModelCommitment(
            sha256=hashlib.sha256(b"m").hexdigest(),
            uri="u",
            metrics={"accuracy": 1},
            inclusion={r: update_for(r).sha256 for r in NODES},
            contributions=dict.fromkeys(NODES, 1),
        ),
    )
    env.ledger(rnd.coordinator).mint_rewards("digits-8x8", rnd.number)
    env.service.close()
    assert env.ledger_path is not None
    return env.ledger_path


def _db(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def _block(db: sqlite3.Connection, number: int) -> common_pb2.Block:
    return common_pb2.Block.FromString(
        db.execute("SELECT block FROM blocks WHERE number = ?", (number,)).fetchone()[0]
    )


def _store_block(db: sqlite3.Connection, block: common_pb2.Block, *, rehash: bool = False) -> None:
    if rehash:
        block.header.data_hash = data_hash(block.data.data)
        db.execute(
            "UPDATE blocks SET header_hash = ? WHERE number = ?",
            (header_hash(block.header), block.header.number),
        )
    db.execute(
        "UPDATE blocks SET block = ? WHERE number = ?",
        (block.SerializeToString(), block.header.number),
    )


def test_an_untouched_ledger_verifies(ledger_with_round: Path) -> None:
    report = verify_ledger(ledger_with_round, jobs=1)
    assert report.ok, report.problem
    assert report.blocks > 15 and report.transactions == report.blocks - 1 and report.invalid == 0
    assert report.state_keys > 20


def test_a_changed_state_row_is_detected(ledger_with_round: Path) -> None:
    db = _db(ledger_with_round)
    key, value, block = db.execute(
        "SELECT key, value, block FROM state WHERE instr(key, 'mptr') > 0"
    ).fetchone()
    db.execute(
        "UPDATE state SET value = ? WHERE key = ?", (value.replace(b'"round":1', b'"round":2'), key)
    )
    report = verify_ledger(ledger_with_round, jobs=1)
    assert not report.ok and report.first_bad_block == block
    assert "mptr~digits-8x8" in report.problem


def test_an_injected_state_row_is_detected(ledger_with_round: Path) -> None:
    _db(ledger_with_round).execute(
        "INSERT INTO state (key, value, block, txn) VALUES (?, ?, 7, 0)",
        ("\x00tok\x00org1/node0\x00free\x00", b'{"amount":999}'),
    )
    report = verify_ledger(ledger_with_round, jobs=1)
    assert (
        not report.ok
        and report.first_bad_block == 7
        and "no valid transaction wrote" in report.problem
    )


def test_a_changed_block_payload_is_detected(ledger_with_round: Path) -> None:
    db = _db(ledger_with_round)
    block = _block(db, 9)
    tx = bytearray(block.data.data[0])
    tx[len(tx) // 2] ^= 0x01
    block.data.data[0] = bytes(tx)
    _store_block(db, block)
    report = verify_ledger(ledger_with_round, jobs=1)
    assert not report.ok and report.first_bad_block == 9 and "data hash" in report.problem


def test_a_rewritten_block_with_fixed_hashes_is_still_detected(ledger_with_round: Path) -> None:
    """Recomputing the hashes does not help: the orderer's signature covers the header."""
    db = _db(ledger_with_round)
    block = _block(db, 6)
    env = common_pb2.Envelope.FromString(block.data.data[0])
    env.signature = env.signature[:-1] + bytes([env.signature[-1] ^ 0x01])
    block.data.data[0] = env.SerializeToString()
    _store_block(db, block, rehash=True)
    report = verify_ledger(ledger_with_round, jobs=1)
    assert not report.ok and report.first_bad_block == 6
    assert "signature" in report.problem


def test_a_changed_transaction_signature_is_detected(ledger_with_round: Path) -> None:
    db = _db(ledger_with_round)
    block = _block(db, 11)
    env = common_pb2.Envelope.FromString(block.data.data[0])
    env.signature = env.signature[:-2] + bytes([env.signature[-2] ^ 0x10, env.signature[-1]])
    block.data.data[0] = env.SerializeToString()
    _store_block(db, block)
    report = verify_ledger(ledger_with_round, jobs=1)
    assert not report.ok and report.first_bad_block == 11


def test_a_changed_orderer_signature_is_detected(ledger_with_round: Path) -> None:
    db = _db(ledger_with_round)
    block = _block(db, 4)
    md = common_pb2.Metadata.FromString(block.metadata.metadata[common_pb2.SIGNATURES])
    sig = bytearray(md.signatures[0].signature)
    sig[-1] ^= 0x01
    md.signatures[0].signature = bytes(sig)
    block.metadata.metadata[common_pb2.SIGNATURES] = md.SerializeToString()
    _store_block(db, block)
    report = verify_ledger(ledger_with_round, jobs=1)
    assert not report.ok and report.first_bad_block == 4 and "orderer" in report.problem


def test_a_flipped_validation_flag_and_index_are_detected(ledger_with_round: Path) -> None:
    db = _db(ledger_with_round)
    (tx_id,) = db.execute("SELECT tx_id FROM txs WHERE block = 8").fetchone()
    db.execute("UPDATE txs SET code = 11 WHERE tx_id = ?", (tx_id,))
    report = verify_ledger(ledger_with_round, jobs=1)
    assert not report.ok and report.first_bad_block == 8 and "index" in report.problem


def test_a_removed_block_is_detected(ledger_with_round: Path) -> None:
    _db(ledger_with_round).execute("DELETE FROM blocks WHERE number = 5")
    report = verify_ledger(ledger_with_round, jobs=1)
    assert not report.ok and report.first_bad_block == 5


def test_parallel_verification_finds_the_same_block(env: LedgerEnv) -> None:
    env.bootstrap()
    env.active_profile()
    node = env.ledger("org1/node0")
    for _ in range(120):  # enough blocks to use worker processes
        node.volunteer("digits-8x8")
        node.withdraw("digits-8x8")
    env.service.close()
    assert env.ledger_path is not None
    report = verify_ledger(env.ledger_path, jobs=2)
    assert report.ok and report.jobs == 2 and report.blocks > 240, report
    db = _db(env.ledger_path)
    block = _block(db, 201)
    md = common_pb2.Metadata.FromString(block.metadata.metadata[common_pb2.SIGNATURES])
    md.signatures[0].signature = md.signatures[0].signature[:-1] + b"\x00"
    block.metadata.metadata[common_pb2.SIGNATURES] = md.SerializeToString()
    _store_block(db, block)
    bad = verify_ledger(env.ledger_path, jobs=2)
    assert not bad.ok and bad.first_bad_block == 201


def test_a_file_that_is_not_a_ledger_is_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(LedgerFileError, match="not a fedspec ledger"):
        verify_ledger(text)
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)")
    with pytest.raises(LedgerFileError, match="not a fedspec ledger"):
        verify_ledger(other)
    with pytest.raises(LedgerFileError, match="does not exist"):
        verify_ledger(tmp_path / "missing.sqlite")
