"""Rollback evidence: a member's signed checkpoint catches a ledger cut back or forked.

A consistent rollback is simulated exactly: a copy of the ledger file taken before some
transactions (SQLite's backup API, so the write-ahead log is included) is opened in place of
the ledger that went on. It verifies; only the checkpoint says it was longer.
"""

from __future__ import annotations

import json
import sqlite3
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fedspec.errors import ErrorCode
from ledger_client import Consortium, FedspecLedger, connect
from ledger_client.checkpoints import (
    CheckpointedLedger,
    CheckpointInvalidError,
    LedgerCheckpoint,
    LedgerRolledBackError,
    advance,
    check_folder,
    checkpoint_path,
    compare,
    load_checkpoint,
    save_checkpoint,
)
from ledger_client.embedded.peer import EmbeddedLedger
from ledger_client.embedded.verify import verify_ledger
from ledger_client.identity import sha256

from .conftest import LedgerEnv

ADMIN = "org1/admin"
Reopen = Callable[..., FedspecLedger]  # (ledger file, identity ref) → a facade on it


def _checkpoint(consortium: Consortium, ref: str = ADMIN, height: int = 5) -> LedgerCheckpoint:
    msp = consortium.identity(ref)
    return LedgerCheckpoint(
        channel="fedspec",
        identity=msp.id,
        height=height,
        block_hash="ab" * 32,
        commitment="",
    ).signed(lambda message: msp.signer(sha256(message)))


# ---------------------------------------------------------------- the record alone
def test_a_checkpoint_verifies_against_its_identity_only(consortium: Consortium) -> None:
    cp = _checkpoint(consortium)
    assert cp.verifies(consortium.identity(ADMIN).identity.credentials)
    assert not cp.verifies(consortium.identity("org2/admin").identity.credentials)


def test_a_tampered_checkpoint_is_refused_not_trusted(
    consortium: Consortium, tmp_path: Path
) -> None:
    cert = consortium.identity(ADMIN).identity.credentials
    path = checkpoint_path(tmp_path, "fedspec", "org1/admin")
    save_checkpoint(path, _checkpoint(consortium, height=9))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_checkpoint(path, cert)
    assert loaded is not None and loaded.height == 9

    doc = json.loads(path.read_text())
    doc["height"] = 2  # lowered by someone without the key
    path.write_text(json.dumps(doc))
    with pytest.raises(CheckpointInvalidError) as refused:
        load_checkpoint(path, cert)
    assert refused.value.code == ErrorCode.CHECKPOINT_INVALID

    path.write_text("{not json")
    with pytest.raises(CheckpointInvalidError, match="malformed"):
        load_checkpoint(path, cert)
    assert load_checkpoint(tmp_path / "absent.json", cert) is None


def test_advance_never_lowers_a_checkpoint(consortium: Consortium) -> None:
    from ledger_client.records import ChainInfo

    cp = _checkpoint(consortium, height=10)
    lower = ChainInfo(4, "cd" * 32, "ef" * 32)
    assert advance(cp, lower, None, channel="fedspec", identity=cp.identity, sign=_no_sign) is cp


def _no_sign(message: bytes) -> bytes:
    raise AssertionError("a checkpoint that is not advanced is not signed again")


# ---------------------------------------------------------------- against an embedded ledger
def _snapshot(env: LedgerEnv, to: Path) -> Path:
    """A consistent copy of the ledger file as it is now."""
    assert env.ledger_path is not None
    with sqlite3.connect(env.ledger_path) as src, sqlite3.connect(to) as dst:
        src.backup(dst)
    return to


@pytest.fixture
def reopen(consortium: Consortium) -> Iterator[Reopen]:
    """Opens a ledger file (a restored copy) as a service of its own; ``facade(path, ref)``."""
    services: list[EmbeddedLedger] = []

    def facade(path: Path, ref: str = ADMIN) -> FedspecLedger:
        service = EmbeddedLedger(path, consortium, synchronous="NORMAL")
        services.append(service)
        msp = consortium.identity(ref)
        gateway = connect(service, msp.identity, msp.signer)
        return FedspecLedger(gateway.get_network("fedspec").get_contract("fedspec"))

    yield facade
    for service in services:
        service.close()


def guarded(ledger: FedspecLedger, folder: Path) -> CheckpointedLedger:
    return CheckpointedLedger(ledger.contract, folder)


def test_the_checkpoint_is_created_then_advanced_as_blocks_come(
    env: LedgerEnv, tmp_path: Path
) -> None:
    folder = tmp_path / "checkpoints"
    first = guarded(env.ledger(ADMIN), folder).check()
    assert first.height == env.height() == 1 and first.identity == ADMIN
    path = checkpoint_path(folder, "fedspec", ADMIN)
    assert path.is_file() and stat.S_IMODE(path.stat().st_mode) == 0o600

    env.bootstrap()  # several blocks
    second = guarded(env.ledger(ADMIN), folder).check()
    assert second.height == env.height() > first.height
    assert second.block_hash == env.ledger(ADMIN).chain_info().current_block_hash
    assert guarded(env.ledger(ADMIN), folder).check() == second  # nothing new: unchanged

    writer = guarded(env.ledger("org1/node0"), folder)
    writer.check()
    env.active_profile()
    writer.volunteer("digits-8x8")  # a write advances the checkpoint past its own block
    settled = load_checkpoint(
        checkpoint_path(folder, "fedspec", "org1/node0"),
        env.consortium.identity("org1/node0").identity.credentials,
    )
    assert settled is not None and settled.height == env.height()


def test_a_consistent_rollback_is_reported_with_its_block(
    env: LedgerEnv, tmp_path: Path, reopen: Reopen
) -> None:
    folder = tmp_path / "checkpoints"
    env.bootstrap()
    before = _snapshot(env, tmp_path / "before.sqlite")
    env.active_profile()  # more blocks the rollback will remove
    seen = guarded(env.ledger(ADMIN), folder).check()
    path = checkpoint_path(folder, "fedspec", ADMIN)
    kept = path.read_bytes()

    assert verify_ledger(before).ok  # the cut-back ledger verifies on its own
    rolled_back = reopen(before)
    problems = compare(seen, rolled_back)
    assert len(problems) == 1
    assert problems[0].code == ErrorCode.LEDGER_ROLLED_BACK
    assert problems[0].block == seen.height - 1
    assert f"block {seen.height - 1}" in problems[0].message and "shorter" in problems[0].message

    with pytest.raises(LedgerRolledBackError) as raised:
        guarded(rolled_back, folder).check()
    assert raised.value.code == ErrorCode.LEDGER_ROLLED_BACK
    assert raised.value.block == seen.height - 1
    assert path.read_bytes() == kept  # the evidence is not lowered


def test_a_ledger_that_diverges_at_the_same_height_or_beyond_is_reported(
    env: LedgerEnv, tmp_path: Path, reopen: Reopen
) -> None:
    folder = tmp_path / "checkpoints"
    env.bootstrap(register=["org1/node0"])
    fork = _snapshot(env, tmp_path / "fork.sqlite")
    env.ledger("org2/node0").register_node()  # this history …
    seen = guarded(env.ledger(ADMIN), folder).check()

    other = reopen(fork)
    reopen(fork, "org3/node0").register_node()  # … and another one, as long
    assert other.chain_info().height == seen.height
    problems = compare(seen, other)
    assert [p.block for p in problems] == [seen.height - 1]
    assert "diverges" in problems[0].message

    reopen(fork, "org3/node1").register_node()  # longer than the checkpoint, still forked
    reopen(fork, "org2/node1").register_node()
    assert other.chain_info().height > seen.height + 1
    with pytest.raises(LedgerRolledBackError, match=f"diverges .* at block {seen.height - 1}"):
        guarded(other, folder).check()


def test_verify_compares_every_checkpoint_of_the_folder(
    env: LedgerEnv, tmp_path: Path, reopen: Reopen
) -> None:
    folder = tmp_path / "checkpoints"
    env.bootstrap(register=["org1/node0"])
    before = _snapshot(env, tmp_path / "before.sqlite")
    guarded(env.ledger("org2/admin"), folder).check()  # saw only the short ledger
    env.ledger("org2/node0").register_node()
    guarded(env.ledger(ADMIN), folder).check()  # saw one more block

    def cert(ref: str) -> bytes:
        return env.consortium.identity(ref).identity.credentials

    assert check_folder(folder, env.ledger(ADMIN), cert) == []
    problems = check_folder(folder, reopen(before), cert)
    assert [(p.code, p.details["identity"]) for p in problems] == [
        (ErrorCode.LEDGER_ROLLED_BACK, ADMIN)
    ]
