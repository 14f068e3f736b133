"""A round of more than sixteen nodes closes, with every node in it, run as a user runs it
(``fedspec round run`` in its own process: the Prefect round flow on its local API).

Sixteen was a wall: the coordinator's contribution scoring had a fixed budget of sixteen
evaluations, too small for one Monte-Carlo permutation of sixteen or more nodes, so every
coordinator failed before committing and the round never closed; and the round flow's
thread pool held sixteen node tasks, so a seventeenth started only after the round ended.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import build

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ORGS = [f"org{i + 1}" for i in range(17)]
# Windows long enough for every node on a loaded machine: the coordinator aggregates as soon
# as all seventeen updates are in, so the test waits no longer than the work takes, and the
# model must hold all seventeen (fewer than sixteen would not reach the old wall).
SCHEDULE = {"join_window_s": 300, "reveal_window_s": 120, "coordinator_window_s": 400}


def test_a_round_of_seventeen_nodes_closes_with_all_of_them(tmp_path: Path) -> None:
    home = build(tmp_path / "home", orgs=ORGS, schedule=SCHEDULE)
    env = {**os.environ, "FEDSPEC_HOME": str(home.home), "PREFECT_HOME": str(tmp_path / "prefect")}
    command = [sys.executable, "-m", "fedspec.cli", "round", "run", home.profile_id, "--json"]
    # Bounded: a round that never closes (the old failure) ends the test instead of hanging it.
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=580, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (summary,) = json.loads(done.stdout)
    assert summary["status"] == "closed", summary["failure"]
    assert sorted(summary["participants"]) == sorted(home.nodes)
    assert {o["status"] for o in summary["outcomes"]} == {"ok"}
    assert len(summary["outcomes"]) == len(home.nodes)
    model = home.ledger().get_model(home.profile_id, summary["round"])
    assert sorted(i["node"] for i in model.inclusion) == sorted(home.nodes)
    assert sorted(summary["rewards"]) == sorted(home.nodes)
    # One node elects once everyone revealed: every node electing at once made all but one
    # lose an MVCC race (benchmarks/scale.py). Before the reveal deadline (after it, every
    # node may elect, in case that one is gone) the ledger holds one election, valid.
    reveal_deadline = home.ledger().get_round(home.profile_id, summary["round"]).reveal_deadline
    with sqlite3.connect(f"file:{home.settings.ledger.ledger_path}?mode=ro", uri=True) as db:
        elections = db.execute(
            "SELECT code, timestamp FROM txs WHERE function = 'ElectCoordinator'"
        ).fetchall()
    if max(t for _, t in elections) < reveal_deadline:  # seconds, as the chaincode compares
        assert [code for code, _ in elections] == [0], elections
