"""A small consortium for round tests: four organizations, one digits node each, short windows.

Everything is real: consortium keys, the embedded ledger, MLflow on SQLite, the demo's
digits data split over the nodes. Windows are short so that a dead node or coordinator is
noticed within seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedspec.app.settings import Settings

ORGS = ["org1", "org2", "org3", "org4"]
NODES = [f"{org}/node0" for org in ORGS]
PROFILE = "digits-8x8"


def faulty_agent(
    *,
    invalid_data: bool = False,
    tamper_update: bool = False,
    stale_update: bool = False,
    poison_update: bool = False,
) -> Any:
    """A node agent class with faults injected through the agent's own extension points
    (``_training_rows``, ``_upload_bytes``, ``_provenance``, ``_fit``); the deployable flows
    have no fault switch. With nothing asked, the production agent itself."""
    from flows.node_agent import NodeAgent
    from flows.updates import TRAINED_ROUND

    if not (invalid_data or tamper_update or stale_update or poison_update):
        return NodeAgent

    class FaultyNodeAgent(NodeAgent):
        def _training_rows(self, X: Any, y: Any) -> tuple[Any, Any]:
            if invalid_data:  # labels outside the profile's label set: validation fails
                y = y.copy()
                y[: max(1, len(y) // 4)] = 10_000
            return X, y

        def _upload_bytes(self, stored: bytes) -> bytes:
            # Bytes that differ from the hash committed on the ledger.
            return stored + b"tampered" if tamper_update else stored

        def _provenance(self, rnd: Any) -> dict[str, Any]:
            provenance = super()._provenance(rnd)
            if stale_update:  # an update made for the previous round, replayed
                provenance[TRAINED_ROUND] = self.round_no - 1
            return provenance

        def _fit(self, rnd: Any, X: Any, y: Any) -> tuple[Any, Any]:
            result, spend = super()._fit(rnd, X, y)
            if poison_update:  # finite, well-formed, committed honestly, and absurdly large
                huge = [np.full_like(w, 3e38) for w in result.parameters]
                result = replace(result, parameters=huge)
            return result, spend

    return FaultyNodeAgent


@dataclass
class RoundHome:
    home: Path
    settings: Settings
    profile_id: str = PROFILE
    nodes: list[str] = field(default_factory=lambda: list(NODES))
    processes: list[subprocess.Popen[str]] = field(default_factory=list)

    def ledger(self, identity: str = "org1/admin") -> Any:
        from ledger_client import open_ledger

        return open_ledger(self.settings.ledger, identity)

    def open_round(self) -> tuple[int, str]:
        """Open the next round and its MLflow parent run, as the round flow does."""
        from flows import tracking

        rnd = self.ledger().open_round(self.profile_id)
        return rnd.number, tracking.start_round_run(self.profile_id, rnd.number)

    def agents(
        self, round_no: int, parent: str, faults: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Every node's agent in its own thread (as the local dispatch runs them); ``faults``
        names, per node, what :func:`faulty_agent` injects into it."""
        from flows.environment import NodeEnvironment

        outcomes: dict[str, Any] = {}

        def run(node: str) -> None:
            agent = faulty_agent(**(faults or {}).get(node, {}))(
                NodeEnvironment(node, self.settings),
                self.profile_id,
                round_no,
                parent_run_id=parent,
            )
            outcomes[node] = agent.run()

        threads = [threading.Thread(target=run, args=(n,)) for n in self.nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert all(not t.is_alive() for t in threads), "a node agent did not finish"
        return outcomes

    def spawn(self, node: str, round_no: int, parent: str) -> subprocess.Popen[str]:
        """A node agent in its own process (``fedspec round node``), killable by PID."""
        command = [sys.executable, "-m", "fedspec.cli", "--home", str(self.home)]
        command += ["round", "node", self.profile_id, "--node", node, "--round", str(round_no)]
        command += ["--parent-run-id", parent, "--json"]
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "FEDSPEC_HOME": str(self.home)},
            start_new_session=True,
        )
        self.processes.append(proc)
        return proc

    # A bound, not a window: it returns the moment the round gets there. Four node processes
    # starting at once (each importing the flows) took over 120 s to reach training on a
    # 2-core machine also running another worker's tests.
    def wait_for(self, round_no: int, predicate: Any, timeout: float = 300) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rnd = self.ledger().get_round(self.profile_id, round_no)
            if predicate(rnd):
                return rnd
            time.sleep(0.2)
        raise AssertionError(f"round {round_no} did not reach the expected state in {timeout} s")

    def stop_all(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            if proc.stdout:
                proc.stdout.close()
            if proc.stderr:
                proc.stderr.close()


# Joining, revealing and training end as soon as every node has done its part: a window only
# runs out when a node is dead (the fault tests wait for that). The coordinator's window is
# what a live node under load must train and commit in: 45 s left two live nodes out of a
# round when the suite ran on two pytest-xdist workers on two cores.
SCHEDULE = {"join_window_s": 90, "reveal_window_s": 60, "coordinator_window_s": 90}


def build(
    home: Path,
    privacy: dict[str, Any] | None = None,
    *,
    new_consortium: bool = True,
    env: dict[str, str] | None = None,
    schedule: dict[str, int] | None = None,
    orgs: list[str] | None = None,
) -> RoundHome:
    from fedspec.demo.setup import PROFILES, setup_consortium
    from flows import tracking
    from registry.tracking import ensure_experiment

    settings = Settings.load(home, env=env or {})
    profile = replace(
        next(p for p in PROFILES if p.id == PROFILE),
        hyperparameters={
            "hidden_sizes": [32],
            "epochs": 2,
            "learning_rate": 0.01,
            "batch_size": 32,
        },
    )
    if privacy is not None:
        profile = replace(profile, privacy=privacy)
    setup_consortium(
        settings,
        orgs or ORGS,
        [profile],
        nodes_per_org=1,
        schedule=schedule or SCHEDULE,
        new_consortium=new_consortium,
    )
    # Create MLflow's tables once, here: node processes must not race to migrate them.
    tracking.configure(settings.mlflow_tracking_uri, settings.home / "mlflow" / "artifacts")
    ensure_experiment(profile.id)
    nodes = [f"{org}/node0" for org in orgs] if orgs else list(NODES)
    return RoundHome(home, settings, profile_id=profile.id, nodes=nodes)


@pytest.fixture
def round_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[RoundHome]:
    monkeypatch.setenv("FEDSPEC_HOME", str(tmp_path / "home"))
    for name in ("MLFLOW_TRACKING_URI", "FEDSPEC_LEDGER", "FEDSPEC_LEDGER_PATH"):
        monkeypatch.delenv(name, raising=False)
    marker = request.node.get_closest_marker("privacy")
    env = build(tmp_path / "home", privacy=marker.args[0] if marker else None)
    try:
        yield env
    finally:
        env.stop_all()
