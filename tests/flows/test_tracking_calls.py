"""A node's MLflow calls per round, counted on real rounds (issue 17): every call is a
request to the tracking server and a transaction of its store, made by every node every
round. What a node's update records goes in one ``log_batch`` and one ``log_artifacts``;
its run is created with its tags and kept in its private state (no parent read, no search);
and still the run holds what the UI, the coordinator and the ledger read from it."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.mlflow_calls import MlflowCalls, count_mlflow_calls
from tests.registry.conftest import MLFLOW_WARNINGS

from .conftest import NODES, RoundHome

pytestmark = [pytest.mark.integration, pytest.mark.slow, *MLFLOW_WARNINGS]

# A node's own calls every round: create its run; one log_batch (params, metrics, tags) and
# one log_artifacts (validation.json, update.safetensors) of its update; end its run; log
# its local evaluation.
NODE_OWN = Counter(create_run=1, log_batch=2, log_artifacts=1, set_terminated=1)
# No model is fetched: the round's coordinator registered it in this process, which keeps
# the bytes it registered (registry.verified_bytes), and the next round's base model is that
# same model. (A process without the coordinator fetches each model once: test_verified_bytes.)
FIRST_ROUND = LATER_ROUND = Counter[str]()
FETCH_CALLS = ("search_model_versions", "download_artifacts")


def _labelled(monkeypatch: pytest.MonkeyPatch, calls: MlflowCalls) -> None:
    """Each node agent's calls under its node's name; a coordinator's under "coordinator"."""
    from flows.coordinator import Coordinator
    from flows.node_agent import NodeAgent

    agent_run, start_run, evaluate = NodeAgent.run, NodeAgent._start_run, NodeAgent._evaluate
    coordinator_run, finish = Coordinator.run, Coordinator._finish

    # The node's run is created, and the coordinator finishes after its commit, in threads
    # of their own; the coordinator's node evaluates the model inside Coordinator.run:
    # each labelled as the agent it works for.
    def run_agent(self: NodeAgent) -> Any:
        with calls.label(self.env.node):
            return agent_run(self)

    def start_agent_run(self: NodeAgent) -> Any:
        with calls.label(self.env.node):
            return start_run(self)

    def evaluate_as_agent(self: NodeAgent, model_sha256: str) -> Any:
        with calls.label(self.env.node):
            return evaluate(self, model_sha256)

    def run_coordinator(self: Coordinator, rnd: Any, **kwargs: Any) -> Any:
        with calls.label("coordinator"):
            return coordinator_run(self, rnd, **kwargs)

    def finish_coordinator(self: Coordinator, *args: Any) -> Any:
        with calls.label("coordinator"):
            return finish(self, *args)

    monkeypatch.setattr(NodeAgent, "run", run_agent)
    monkeypatch.setattr(NodeAgent, "_start_run", start_agent_run)
    monkeypatch.setattr(NodeAgent, "_evaluate", evaluate_as_agent)
    monkeypatch.setattr(Coordinator, "run", run_coordinator)
    monkeypatch.setattr(Coordinator, "_finish", finish_coordinator)


def test_a_node_makes_five_mlflow_calls_a_round_and_fetches_no_model_its_process_registered(
    round_home: RoundHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows import tracking
    from flows.environment import NodeEnvironment
    from registry import fetch_bytes, node_runs
    from registry.models import VERIFIED
    from registry.tracking import TAG_KIND, TAG_NODE, TAG_PARENT, TAG_ROUND, client

    # Rounds are deterministic: an earlier test of this process may have fetched these very
    # models (same bytes, same hash), which the process keeps. Count from an empty cache.
    VERIFIED.clear()
    calls = count_mlflow_calls(monkeypatch)
    _labelled(monkeypatch, calls)
    profile = round_home.profile_id
    for expected in (FIRST_ROUND, LATER_ROUND):
        round_no, parent = round_home.open_round()
        calls.clear()
        outcomes = round_home.agents(round_no, parent)
        assert {n: o.status for n, o in outcomes.items()} == dict.fromkeys(NODES, "ok")
        assert round_home.ledger().get_round(profile, round_no).status == "closed"
        fetched: Counter[str] = Counter()
        for node in NODES:
            own = Counter(calls.by_label[node])
            fetched += Counter({k: own.pop(k) for k in FETCH_CALLS if k in own})
            assert own == NODE_OWN, node
        assert fetched == expected  # each model once, for every node of this process
        # The round's params when it starts; its evaluation, counts and tags in one call.
        assert calls.by_label["coordinator"]["log_batch"] == 2

    # What the runs hold is what three calls a node wrote before: params, metrics, tags,
    # and the files the ledger's update records point at, with the committed bytes.
    runs = node_runs(parent)
    assert sorted(runs) == sorted(NODES)
    updates = {u.node: u for u in round_home.ledger().list_updates(profile, round_no)}
    mlflow = client()
    for node, run_id in runs.items():
        run = mlflow.get_run(run_id)
        update = updates[node]
        assert run.info.status == "FINISHED" and run.info.run_name == f"node-{node}"
        assert run.data.tags[TAG_KIND] == "node" and run.data.tags[TAG_NODE] == node
        assert run.data.tags[TAG_PARENT] == parent and run.data.tags[TAG_ROUND] == str(round_no)
        assert run.data.params == {
            "node": node,
            "rows": str(update.num_samples),
            "validation_sha256": update.validation.summary_sha256,
        }
        assert run.data.metrics["num_examples"] == update.num_samples
        assert "train_seconds" in run.data.metrics
        assert any(k.startswith("local_valid_") for k in run.data.metrics)
        assert [m.step for m in mlflow.get_metric_history(run_id, "num_examples")] == [0]
        files = {a.path for a in mlflow.list_artifacts(run_id)}
        assert files == {"validation.json", "update.safetensors"}
        assert update.uri == f"runs:/{run_id}/update.safetensors"
        assert fetch_bytes(update.uri, sha256=update.sha256)
        fetch_bytes(f"runs:/{run_id}/validation.json", sha256=update.validation.summary_sha256)

    # A retried node reopens the run it kept in its private state: one call, the same run.
    node = NODES[1]
    kept = NodeEnvironment(node, round_home.settings).read_state(profile, round_no, "run")
    calls.clear()
    again = tracking.start_node_run(parent, profile, round_no, node, kept=kept)
    assert again.run_id == runs[node] and again.kept == kept
    assert calls.by_label["other"] == {"update_run": 1}
    # Under another round's run, the kept run is not that round's: a new one.
    other = tracking.start_node_run(
        round_home.open_round()[1], profile, round_no + 1, node, kept=kept
    )
    assert other.run_id != runs[node]
