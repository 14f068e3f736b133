"""What a step records goes to MLflow in as few calls as its API allows (issue 17): params,
metrics and tags in one ``log_batch``, files in one ``log_artifacts``, a new run's tags in
its ``create_run``, experiment ids cached per process. Counted on a real SQLite store."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

import registry
from federated.exchange import sha256_hex
from registry.artifacts import fetch_bytes, log_bytes, log_files
from registry.tracking import (
    TAG_KIND,
    TAG_NODE,
    TAG_PARENT,
    TAG_PROFILE,
    TAG_ROUND,
    create_node_run,
    ensure_experiment,
    log_batch,
)
from tests.mlflow_calls import count_mlflow_calls
from tests.registry.conftest import MLFLOW_WARNINGS

pytestmark = MLFLOW_WARNINGS


def test_params_metrics_and_tags_of_a_step_go_in_one_call(
    store: registry.TrackingConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    rid = registry.start_round_run("batch-a", 1)
    calls = count_mlflow_calls(monkeypatch)
    log_batch(
        rid,
        params={"rows": 120, "privacy": {"mode": "none"}},
        metrics={"loss": 0.25, "num_examples": 120},
        tags={"fedspec.excluded": "why"},
        step=4,
    )
    log_batch(rid)  # nothing to write: no call
    assert calls.by_label["other"] == {"log_batch": 1}
    run = MlflowClient(store.tracking_uri).get_run(rid)
    assert run.data.params == {"rows": "120", "privacy.mode": "none"}
    assert run.data.metrics == {"loss": 0.25, "num_examples": 120.0}
    assert run.data.tags["fedspec.excluded"] == "why"
    history = MlflowClient(store.tracking_uri).get_metric_history(rid, "loss")
    assert [m.step for m in history] == [4]


def test_a_batch_over_mlflows_limits_is_split_and_every_value_lands(
    store: registry.TrackingConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    rid = registry.start_round_run("batch-b", 1)
    params = {f"p{i:03d}": i for i in range(150)}  # 100 a call
    tags = {f"t{i:03d}": str(i) for i in range(50)}
    metrics = {f"m{i:04d}": float(i) for i in range(1900)}  # 1,000 entities a call
    calls = count_mlflow_calls(monkeypatch)
    log_batch(rid, params=params, metrics=metrics, tags=tags)
    # 100 params + 50 tags + 850 metrics, 50 params + 950 metrics, 100 metrics.
    assert calls.by_label["other"] == {"log_batch": 3}
    run = MlflowClient(store.tracking_uri).get_run(rid)
    assert run.data.params == {k: str(v) for k, v in params.items()}
    assert run.data.metrics == metrics
    assert {k: run.data.tags[k] for k in tags} == tags


def test_a_node_run_created_knowing_its_round_is_tagged_as_a_found_one_in_one_call(
    store: registry.TrackingConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    rid = registry.start_round_run("batch-c", 7)
    searched = registry.start_node_run(rid, "org1/node0")
    calls = count_mlflow_calls(monkeypatch)
    created = create_node_run(rid, "org2/node0", profile_id="batch-c", round_no=7)
    assert calls.by_label["other"] == {"create_run": 1}  # the experiment id was cached
    client = MlflowClient(store.tracking_uri)
    tags = client.get_run(created).data.tags
    assert tags[TAG_PARENT] == rid and tags[TAG_NODE] == "org2/node0"
    assert tags[TAG_KIND] == "node" and tags[TAG_PROFILE] == "batch-c" and tags[TAG_ROUND] == "7"
    assert client.get_run(created).info.experiment_id == client.get_run(searched).info.experiment_id
    assert client.get_run(created).info.run_name == "node-org2/node0"
    assert registry.node_runs(rid) == {"org1/node0": searched, "org2/node0": created}


def test_a_new_round_run_carries_its_extra_tags_from_its_creation(
    store: registry.TrackingConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    ensure_experiment("batch-d")
    calls = count_mlflow_calls(monkeypatch)
    rid = registry.start_round_run("batch-d", 1, params={"strategy": "fedavg"}, tags={"x": 1})
    assert calls.by_label["other"] == {"search_runs": 1, "create_run": 1, "log_batch": 1}
    run = MlflowClient(store.tracking_uri).get_run(rid)
    assert run.data.tags["x"] == "1" and run.data.tags[TAG_KIND] == "round"
    assert run.data.params == {"strategy": "fedavg"}
    calls.clear()  # found again: reopened, params and tags in one call
    assert registry.start_round_run("batch-d", 1, params={"strategy": "fedavg"}, tags={"x": 2})
    assert calls.by_label["other"] == {"search_runs": 1, "update_run": 1, "log_batch": 1}
    assert MlflowClient(store.tracking_uri).get_run(rid).data.tags["x"] == "2"


def test_several_files_go_in_one_call_with_the_bytes_and_uris_of_one_by_one(
    store: registry.TrackingConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    rid = registry.start_round_run("batch-e", 1)
    files = {"validation.json": b'{"ok": true}', "update.safetensors": bytes(range(256)) * 40}
    calls = count_mlflow_calls(monkeypatch)
    uris = log_files(rid, files)
    assert log_files(rid, {}) == {}
    assert calls.by_label["other"] == {"log_artifacts": 1}
    one = registry.start_round_run("batch-e", 2)
    for path, data in files.items():
        assert uris[path] == f"runs:/{rid}/{path}"
        assert fetch_bytes(uris[path], sha256=sha256_hex(data)) == data
        assert log_bytes(one, path, data) == f"runs:/{one}/{path}"  # the same layout
    root = MlflowClient(store.tracking_uri)
    assert {a.path for a in root.list_artifacts(rid)} == {a.path for a in root.list_artifacts(one)}
    with pytest.raises(registry.RegistryError):
        log_files(rid, {"../escape.json": b"{}"})


def test_configuring_the_same_store_again_keeps_experiment_ids(
    store: registry.TrackingConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    ensure_experiment("batch-f")
    calls = count_mlflow_calls(monkeypatch)
    registry.configure(store.tracking_uri, artifact_root=store.artifact_root)
    ensure_experiment("batch-f")
    assert calls.by_label["other"] == {}  # every node agent of a process configures again
    registry.configure(store.tracking_uri, artifact_root=f"{store.artifact_root}-other")
    ensure_experiment("batch-f")  # another configuration: looked up again
    assert calls.by_label["other"] == {"get_experiment_by_name": 1}
