"""Tracking layout: experiment per profile, parent run per round, child runs per node."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from mlflow import MlflowClient

import registry
from federated.exchange import sha256_hex
from registry.tracking import TAG_KIND, TAG_NODE, TAG_PARENT, TAG_ROUND, flatten
from tests.registry.conftest import MLFLOW_WARNINGS, venv_env

pytestmark = MLFLOW_WARNINGS


def _client(store: registry.TrackingConfig) -> MlflowClient:
    return MlflowClient(store.tracking_uri)


def test_round_and_node_runs_nest_and_carry_params_metrics_tags(
    store: registry.TrackingConfig,
) -> None:
    params = {
        "strategy": "fedavg",
        "privacy": {"mode": "client-dp", "epsilon_per_round": "2.0"},
        "participants": ["org1-n1", "org2-n1"],
    }
    with registry.round_run("track-a", 3, params=params, tags={"coordinator": "org1"}) as rid:
        with registry.node_run(rid, "org1-n1", params={"rows": 120}) as nid:
            registry.log_metrics(nid, {"train_loss": 0.5, "train_accuracy": 0.9}, step=3)
        registry.log_metrics(rid, {"accuracy": 0.91}, step=3)
        registry.log_json(rid, "round.json", {"round": 3, "nodes": ["org1-n1"]})
        registry.log_table(rid, "contributions.json", [{"node": "org1-n1", "score": 1.0}])

    client = _client(store)
    parent = client.get_run(rid)
    child = client.get_run(nid)
    experiment = client.get_experiment(parent.info.experiment_id)
    assert experiment.name == "fedspec/track-a"
    assert experiment.artifact_location == f"{store.artifact_root}/track-a"
    assert parent.info.status == "FINISHED" and child.info.status == "FINISHED"
    assert parent.info.run_name == "round-0003"
    assert parent.data.params == {
        "strategy": "fedavg",
        "privacy.mode": "client-dp",
        "privacy.epsilon_per_round": "2.0",
        "participants": '["org1-n1", "org2-n1"]',
    }
    assert parent.data.tags[TAG_KIND] == "round" and parent.data.tags[TAG_ROUND] == "3"
    assert parent.data.tags["coordinator"] == "org1"
    assert parent.data.metrics == {"accuracy": 0.91}
    assert child.data.tags[TAG_PARENT] == rid and child.data.tags[TAG_NODE] == "org1-n1"
    assert child.data.tags[TAG_ROUND] == "3" and child.data.params == {"rows": "120"}
    assert [m.step for m in client.get_metric_history(nid, "train_loss")] == [3]
    names = {a.path for a in client.list_artifacts(rid)}
    assert {"round.json", "contributions.json"} <= names
    assert registry.node_runs(rid) == {"org1-n1": nid}
    assert registry.find_round_run("track-a", 3) == rid


def test_round_params_of_a_profile(
    store: registry.TrackingConfig, base_profile: dict[str, Any]
) -> None:
    # The example profile trains without DP; a private variant shows privacy's flattening.
    private = {**base_profile, "privacy": {"mode": "client-dp", "epsilon_per_round": 2.0,
                                           "clip_norm": 5.0}}  # fmt: skip
    params = registry.round_params(private, ["org2-n1", "org1-n1"])
    with registry.round_run("track-p", 1, params=params) as rid:
        pass
    logged = _client(store).get_run(rid).data.params
    assert logged["strategy"] == "fedavg" and logged["family"] == "torch-mlp"
    assert logged["privacy.mode"] == "client-dp" and logged["privacy.clip_norm"] == "5.0"
    assert logged["hyperparameters.hidden_sizes"] == "[64]"
    assert logged["participants"] == '["org1-n1", "org2-n1"]'
    assert logged["n_participants"] == "2" and logged["min_nodes"] == "2"


def test_restarting_a_round_or_node_reuses_its_run(store: registry.TrackingConfig) -> None:
    rid = registry.start_round_run("track-b", 1, params={"strategy": "fedavg"})
    nid = registry.start_node_run(rid, "n1")
    registry.end_run(nid, status="FAILED")
    registry.end_run(rid, status="FAILED")
    # A retried flow opens the same runs again, running, with the same params accepted.
    assert registry.start_round_run("track-b", 1, params={"strategy": "fedavg"}) == rid
    assert registry.start_node_run(rid, "n1") == nid
    assert _client(store).get_run(rid).info.status == "RUNNING"
    with pytest.raises(registry.TrackingError) as caught:
        registry.log_params(rid, {"strategy": "fedprox"})  # params are immutable
    assert caught.value.code == "TRACKING_ERROR"
    assert registry.find_round_run("track-b", 2) is None


def test_a_failing_body_marks_the_run_failed(store: registry.TrackingConfig) -> None:
    with pytest.raises(RuntimeError), registry.round_run("track-c", 1) as rid:
        raise RuntimeError("aggregation crashed")
    assert _client(store).get_run(rid).info.status == "FAILED"


def test_node_runs_from_many_threads_given_only_the_parent_id(
    store: registry.TrackingConfig,
) -> None:
    rid = registry.start_round_run("track-d", 1)

    def node(i: int) -> str:
        with registry.node_run(rid, f"org{i}-n1", params={"rows": i}) as nid:
            registry.log_metrics(nid, {"loss": 1.0 / (i + 1)}, step=1)
            registry.log_bytes(nid, f"updates/org{i}-n1.bin", bytes([i]) * 100)
        return nid

    with ThreadPoolExecutor(max_workers=6) as pool:
        ids = list(pool.map(node, range(6)))
    registry.end_run(rid)
    assert len(set(ids)) == 6
    assert registry.node_runs(rid) == {f"org{i}-n1": ids[i] for i in range(6)}


CHILD = """
import sys
import registry
from federated.exchange import sha256_hex
uri, parent, node = sys.argv[1:4]
registry.configure(uri)
with registry.node_run(parent, node, params={"rows": 7}) as run_id:
    print(registry.log_bytes(run_id, "updates/" + node + ".bin", b"update from " + node.encode()))
"""


@pytest.mark.integration
def test_a_node_run_from_another_process(store: registry.TrackingConfig) -> None:
    rid = registry.start_round_run("track-e", 1)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, store.tracking_uri, rid, "org2-n1"],
        env=venv_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    uri = done.stdout.strip().splitlines()[-1]
    data = registry.fetch_bytes(uri, sha256=sha256_hex(b"update from org2-n1"))
    assert data == b"update from org2-n1"
    assert list(registry.node_runs(rid)) == ["org2-n1"]


def test_flatten_writes_nested_params_with_dots_and_json_values() -> None:
    assert flatten({"a": {"b": {"c": 1}}, "d": [1, 2], "e": "x", "f": None}) == {
        "a.b.c": "1",
        "d": "[1, 2]",
        "e": "x",
        "f": "null",
    }
    with pytest.raises(registry.TrackingError):
        flatten({"big": "x" * 7000})
    assert json.loads(flatten({"t": {"k": True}})["t.k"]) is True
