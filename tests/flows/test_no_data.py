"""A round whose every node lost its data ends at once, with each node's reason on the
ledger and one line from the command, never a traceback or a wait for the coordinator's
window (issue 11, point 8)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from .conftest import NODES, RoundHome

pytestmark = pytest.mark.integration


def test_a_round_without_any_fitting_data_fails_at_once_with_the_reasons(
    round_home: RoundHome,
) -> None:
    shutil.rmtree(round_home.settings.data_dir / "nodes")  # the volunteers' data is gone
    command = [sys.executable, "-m", "fedspec.cli", "--home", str(round_home.home)]
    proc = subprocess.run(
        [*command, "round", "run", round_home.profile_id],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        # A Prefect home of its own: the command's temporary API migrates a fresh database,
        # which raced another server starting on this worker's ("duplicate column name").
        env={
            **os.environ,
            "FEDSPEC_HOME": str(round_home.home),
            "PREFECT_HOME": str(round_home.home / "prefect"),
        },
    )
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert "failed" in proc.stdout, proc.stdout  # the round's row in the table, with its reason
    rnd = round_home.ledger().get_round(round_home.profile_id, 1)
    assert rnd.status == "failed" and rnd.failure is not None
    # Failed by the elected coordinator once every update was in, not by a replacement
    # after its window ran out.
    assert rnd.failure["code"] == "QUORUM_NOT_MET", rnd.failure
    assert rnd.raw.get("replaced", []) == [], rnd.raw
    for node in NODES:
        assert f"{node}: DATASET_ERROR" in rnd.failure["reason"], rnd.failure["reason"]
    updates = round_home.ledger().list_updates(round_home.profile_id, 1)
    assert {u.node for u in updates} == set(NODES)
    assert all(not u.validation.passed and "no local data" in u.validation.reason for u in updates)
