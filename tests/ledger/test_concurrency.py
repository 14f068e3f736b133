"""Several processes share one embedded ledger: nothing is lost, a killed writer breaks nothing."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ledger_client import CommitError, ModelCommitment
from ledger_client.embedded.peer import EmbeddedLedger
from ledger_client.embedded.verify import verify_ledger

from .conftest import LedgerEnv
from .test_scenarios import update_for

RING = ["org1/node0", "org2/node0", "org3/node0", "org1/node1"]
ROOT = Path(__file__).resolve().parents[2]


def _fund(env: LedgerEnv) -> None:
    env.bootstrap()
    env.active_profile()
    rnd = env.elected_round("digits-8x8", RING)
    for ref in RING:
        env.ledger(ref).submit_update("digits-8x8", rnd.number, update_for(ref))
    env.ledger(rnd.coordinator).commit_model(
        "digits-8x8",
        rnd.number,
        ModelCommitment(
            sha256=hashlib.sha256(b"m").hexdigest(),
            uri="u",
            metrics={},
            inclusion={r: update_for(r).sha256 for r in RING},
            contributions=dict.fromkeys(RING, 1),
        ),
    )
    env.ledger(rnd.coordinator).mint_rewards("digits-8x8", rnd.number)


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.ledger._worker", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_concurrent_processes_lose_nothing(env: LedgerEnv, consortium_dir: Path) -> None:
    _fund(env)
    assert env.ledger("org1/node0").balances().nodes == {r: 250 for r in RING} | {
        r: 0 for r in ["org2/node1", "org3/node1"]
    }
    count = 15
    procs = [
        _spawn(
            "transfer",
            str(env.ledger_path),
            str(consortium_dir),
            ref,
            RING[(i + 1) % len(RING)],
            str(count),
        )
        for i, ref in enumerate(RING)
    ]
    results = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=240)
            assert p.returncode == 0, err[-2000:]
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert all(r["done"] == count for r in results)
    balances = env.ledger("org1/node0").balances()
    assert balances.total == 1000
    assert all(balances.nodes[r] == 250 for r in RING)  # each sent and received `count`
    for ref in RING:
        assert env.ledger("org1/node0").balance(ref).entries == 1 + 2 * count
    report = verify_ledger(env.ledger_path, jobs=1)  # type: ignore[arg-type]
    assert report.ok, report.problem
    print(
        "conflicts retried by the workers:",
        sum(r["retried"] for r in results),
        "invalid txs:",
        report.invalid,
    )


def test_a_conflict_is_reported_and_a_retry_succeeds(env: LedgerEnv) -> None:
    _fund(env)
    a = env.ledger("org1/node0").contract
    b = env.ledger("org2/node0").contract
    # Both transactions read the other's token range; whichever commits second read stale state.
    first = a.new_proposal("Transfer", ["org2/node0", "1"]).endorse()
    second = b.new_proposal("Transfer", ["org1/node0", "1"]).endorse()
    first.submit().get_status().raise_for_failure()
    status = second.submit().get_status()
    assert not status.successful and status.code_name == "PHANTOM_READ_CONFLICT"
    with pytest.raises(CommitError) as caught:
        status.raise_for_failure()
    assert (
        caught.value.code == "PHANTOM_READ_CONFLICT"
        and caught.value.block_number == status.block_number
    )
    # The facade's retry path: a fresh endorsement.
    moved = env.ledger("org2/node0").transfer("org1/node0", 1)
    assert (moved.from_node, moved.to_node, moved.amount) == ("org2/node0", "org1/node0", 1)
    assert moved.commit is not None and moved.commit.block_number > status.block_number
    assert env.ledger("org1/node0").balance("org1/node0").balance == 250


def test_a_writer_killed_mid_commit_leaves_a_consistent_ledger(
    env: LedgerEnv, consortium_dir: Path
) -> None:
    env.bootstrap()
    env.active_profile()
    env.service.close()
    for delay in (0.3, 0.7, 1.1):
        proc = _spawn(
            "churn", str(env.ledger_path), str(consortium_dir), "org3/node1", "digits-8x8"
        )
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            time.sleep(delay)  # only varies where among the writes the kill lands
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        report = verify_ledger(env.ledger_path, jobs=1)  # type: ignore[arg-type]
        assert report.ok, report.problem
    # The ledger still accepts writes after the kills.
    service = EmbeddedLedger(env.ledger_path, env.consortium)  # type: ignore[arg-type]
    try:
        from ledger_client import FedspecLedger, connect

        msp = env.consortium.identity("org2/node1")
        ledger = FedspecLedger(
            connect(service, msp.identity, msp.signer)
            .get_network("fedspec")
            .get_contract("fedspec")
        )
        ledger.volunteer("digits-8x8")
    finally:
        service.close()
    assert verify_ledger(env.ledger_path, jobs=1).ok  # type: ignore[arg-type]
