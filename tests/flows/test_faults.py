"""Faults in a round, each with the outcome the issue asks for, on real components.

A node with invalid data and a node whose uploaded update does not match its commitment are
left out with their reasons on the ledger and in MLflow while the round completes; a node
killed mid-round (SIGKILL by PID) leaves a k-of-n round; a coordinator killed mid-round is
replaced after its deadline and the round completes.
"""

from __future__ import annotations

import json
import os
import signal

import pytest

from fedspec.errors import FedspecError

from .conftest import NODES, RoundHome

pytestmark = pytest.mark.integration


def _tags(run_id: str) -> dict[str, str]:
    from registry.tracking import client

    return dict(client().get_run(run_id).data.tags)


def test_invalid_data_and_tampered_or_stale_updates_are_left_out_and_the_round_completes(
    round_home: RoundHome,
) -> None:
    from registry import champion, find_version, node_runs
    from registry.tracking import client

    round_no, parent = round_home.open_round()
    invalid, tampered, stale = NODES[1], NODES[2], NODES[3]
    faults = {
        invalid: {"invalid_data": True},
        tampered: {"tamper_update": True},
        stale: {"stale_update": True},
    }
    # Four nodes, three faulty, min_nodes 3: the round fails, naming every faulty node...
    outcomes = round_home.agents(round_no, parent, faults)
    rnd = round_home.ledger().get_round(round_home.profile_id, round_no)
    assert rnd.status == "failed" and rnd.failure is not None
    assert rnd.failure["code"] == "QUORUM_NOT_MET"
    reason = rnd.failure["reason"]
    assert f"{invalid}: DATA_VALIDATION_FAILED" in reason
    assert f"{tampered}: " in reason and "refusing to use these bytes" in reason
    assert f"{stale}: trained for round 0, not round 1" in reason
    assert outcomes[invalid].status == "excluded"
    assert outcomes[invalid].reason.startswith("DATA_VALIDATION_FAILED")

    updates = {u.node: u for u in round_home.ledger().list_updates(round_home.profile_id, 1)}
    assert updates[invalid].validation.passed is False
    assert "DATA_VALIDATION_FAILED" in updates[invalid].validation.reason
    assert updates[invalid].sha256 == ""  # nothing trained, nothing spent
    runs = node_runs(parent)
    assert "DATA_VALIDATION_FAILED" in _tags(runs[invalid])["fedspec.excluded"]
    assert client().get_run(runs[invalid]).info.status == "FAILED"

    # ...and with one faulty node only, the same round machinery completes k-of-n.
    round_no, parent = round_home.open_round()
    outcomes = round_home.agents(round_no, parent, {invalid: {"invalid_data": True}})
    rnd = round_home.ledger().get_round(round_home.profile_id, round_no)
    assert rnd.status == "closed"
    model = round_home.ledger().get_model(round_home.profile_id, round_no)
    assert sorted(i["node"] for i in model.inclusion) == sorted(set(NODES) - {invalid})
    excluded = {e["node"]: e for e in model.raw["excluded"]}
    assert excluded[invalid]["code"] == "DATA_VALIDATION_FAILED"
    assert _tags(parent)["fedspec.excluded"] == invalid
    version = find_version(round_home.profile_id, model.sha256)
    assert version is not None and version.tags["ledger_block"].isdigit()
    # The first model of the profile is its champion, on the ledger and in the registry.
    current = champion(round_home.profile_id)
    assert model.alias == "champion" and current is not None and current.sha256 == model.sha256
    assert float(version.tags["metric.accuracy"]) == pytest.approx(
        model.metrics["accuracy"] / 1e6, abs=1e-6
    )
    assert {o.status for n, o in outcomes.items() if n != invalid} == {"ok"}


def test_a_tampered_update_is_refused_with_the_hash_mismatch_as_reason(
    round_home: RoundHome,
) -> None:
    round_no, parent = round_home.open_round()
    outcomes = round_home.agents(round_no, parent, {NODES[2]: {"tamper_update": True}})
    assert outcomes[NODES[2]].status == "ok"  # it does not know: the coordinator finds out
    model = round_home.ledger().get_model(round_home.profile_id, round_no)
    assert NODES[2] not in {i["node"] for i in model.inclusion}
    excluded = {e["node"]: e for e in model.raw["excluded"]}
    assert excluded[NODES[2]]["code"] == "ARTIFACT_INTEGRITY"
    committed = next(
        u for u in round_home.ledger().list_updates(round_home.profile_id, round_no)
        if u.node == NODES[2]
    )  # fmt: skip
    assert committed.sha256 in excluded[NODES[2]]["reason"]


def test_a_model_that_cannot_predict_fails_the_round_with_evaluation_failed(
    round_home: RoundHome,
) -> None:
    """One node's honest-looking update (finite, well-formed, matching its commitment) of
    absurd magnitude drags FedAvg's mean past what the MLP can evaluate (inf activations,
    NaN probabilities): the coordinator fails the round with the reason, commits no model."""
    round_no, parent = round_home.open_round()
    round_home.agents(round_no, parent, {NODES[1]: {"poison_update": True}})
    rnd = round_home.ledger().get_round(round_home.profile_id, round_no)
    assert rnd.status == "failed" and not rnd.raw.get("model")
    assert rnd.failure is not None and rnd.failure["code"] == "EVALUATION_FAILED"
    assert "PREDICTION_FAILED" in rnd.failure["reason"]
    with pytest.raises(FedspecError) as missing:
        round_home.ledger().get_model(round_home.profile_id, round_no)
    assert missing.value.code == "NOT_FOUND"


def test_a_node_killed_mid_round_leaves_a_k_of_n_round(round_home: RoundHome) -> None:
    round_no, parent = round_home.open_round()
    procs = {node: round_home.spawn(node, round_no, parent) for node in NODES}
    rnd = round_home.wait_for(round_no, lambda r: r.status == "training")
    victim = next(n for n in rnd.participants if n != rnd.coordinator)
    os.killpg(procs[victim].pid, signal.SIGKILL)  # before it committed its update
    assert procs[victim].wait(timeout=30) == -signal.SIGKILL
    rnd = round_home.wait_for(round_no, lambda r: r.status in ("closed", "failed"), timeout=180)
    assert rnd.status == "closed", rnd.failure
    model = round_home.ledger().get_model(round_home.profile_id, round_no)
    assert sorted(i["node"] for i in model.inclusion) == sorted(set(NODES) - {victim})
    excluded = {e["node"]: e for e in model.raw["excluded"]}
    assert excluded[victim]["code"] == "TIMEOUT"
    for node, proc in procs.items():
        if node != victim:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err[-2000:]
            assert json.loads(out)["status"] == "ok"


def test_a_coordinator_killed_mid_round_is_replaced_after_its_deadline(
    round_home: RoundHome,
) -> None:
    round_no, parent = round_home.open_round()
    procs = {node: round_home.spawn(node, round_no, parent) for node in NODES}
    rnd = round_home.wait_for(round_no, lambda r: r.status == "training")
    dead = rnd.coordinator
    before = round_home.ledger().get_node(dead).reputation
    assert before is not None
    os.killpg(procs[dead].pid, signal.SIGKILL)
    procs[dead].wait(timeout=30)
    rnd = round_home.wait_for(round_no, lambda r: r.status in ("closed", "failed"), timeout=180)
    assert rnd.status == "closed", rnd.failure
    assert rnd.raw["replaced"] == [dead] and rnd.coordinator != dead
    model = round_home.ledger().get_model(round_home.profile_id, round_no)
    assert model.coordinator == rnd.coordinator
    assert dead not in {i["node"] for i in model.inclusion}
    assert (round_home.ledger().get_node(dead).reputation or 0) < before
    for node, proc in procs.items():
        if node != dead:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err[-2000:]
