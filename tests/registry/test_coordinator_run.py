"""Where a coordinator writes its round (flows.tracking.coordinator_run), with one MLflow
login per organization: the round's run is in the experiment of the organization that
scheduled the round, which MLflow lets no other organization write, so a coordinator of
another organization writes a round run of its own experiment, tagged with the round's run.
On the embedded store the login is not checked (tests/fabric/test_distributed_round_on_fabric.py
runs the same against a server that checks it)."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

import registry
from flows.tracking import ROUND_RUN_TAG, coordinator_run
from tests.registry.conftest import MLFLOW_WARNINGS

pytestmark = MLFLOW_WARNINGS


def test_a_coordinator_writes_the_round_run_it_may_write(
    store: registry.TrackingConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = MlflowClient(store.tracking_uri)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "org1")
    parent = registry.start_round_run("coord-run", 1)  # org1's training flow opened it
    node = registry.start_node_run(parent, "org1/node0")
    assert coordinator_run(parent, "coord-run", 1) == parent  # org1 coordinates: its own

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "org3")
    own = coordinator_run(parent, "coord-run", 1)
    run = client.get_run(own)
    assert own != parent and run.data.tags[ROUND_RUN_TAG] == parent
    assert client.get_experiment(run.info.experiment_id).name == "fedspec/coord-run/org3"
    assert coordinator_run(parent, "coord-run", 1) == own  # a retry finds it again
    # The nodes' runs stay under the round's run; reads find the round's run first.
    assert registry.node_runs(parent) == {"org1/node0": node}
    assert registry.find_round_run("coord-run", 1) == parent

    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    assert coordinator_run(parent, "coord-run", 1) == parent  # no logins: one shared layout
    assert coordinator_run(None, "coord-run2", 1) == registry.find_round_run("coord-run2", 1)
