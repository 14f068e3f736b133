"""Rounds of a profile with secure aggregation, on real components (embedded ledger, MLflow
on SQLite, the demo's digits split over four nodes): the committed model is plain FedAvg of
the nodes' updates within fixed-point precision, MLflow holds masked vectors only, and a
node dropping after masking has its masks recovered, recorded on the ledger."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedspec.app.settings import Settings

from .conftest import NODES, ORGS, PROFILE, SCHEDULE, RoundHome

pytestmark = pytest.mark.integration
THRESHOLD = 3


DISTRIBUTED_DP = {
    "mode": "client-level-dp",
    "epsilon_per_round": "8",
    "delta_per_round": "1e-5",
    "epsilon_budget": "80",
    "delta_budget": "1e-4",
    "clip_norm": "1",
}


def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, privacy: dict[str, Any]) -> RoundHome:
    from fedspec.demo.setup import PROFILES, setup_consortium
    from flows import tracking
    from registry.tracking import ensure_experiment

    home = tmp_path / "home"
    monkeypatch.setenv("FEDSPEC_HOME", str(home))
    for name in ("MLFLOW_TRACKING_URI", "FEDSPEC_LEDGER", "FEDSPEC_LEDGER_PATH"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings.load(home, env={})
    profile = dataclasses.replace(
        next(p for p in PROFILES if p.id == PROFILE),
        hyperparameters={
            "hidden_sizes": [16],
            "epochs": 1,
            "learning_rate": 0.01,
            "batch_size": 32,
        },
        secure_threshold=THRESHOLD,
        privacy=privacy,
    )
    setup_consortium(settings, ORGS, [profile], nodes_per_org=1, schedule=SCHEDULE)
    tracking.configure(settings.mlflow_tracking_uri, settings.home / "mlflow" / "artifacts")
    ensure_experiment(profile.id)
    return RoundHome(home, settings, profile_id=profile.id, nodes=list(NODES))


@pytest.fixture
def secure_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RoundHome]:
    env = _home(tmp_path, monkeypatch, {"mode": "none"})
    try:
        yield env
    finally:
        env.stop_all()


@pytest.fixture
def secure_dp_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RoundHome]:
    env = _home(tmp_path, monkeypatch, DISTRIBUTED_DP)
    try:
        yield env
    finally:
        env.stop_all()


def _plain_updates(env: RoundHome, round_no: int, nodes: list[str]) -> dict[str, Any]:
    """Each node's plain update, from its own private state (never published)."""
    from federated.exchange import decode_update
    from flows.environment import NodeEnvironment

    out = {}
    for node in nodes:
        stored = NodeEnvironment(node, env.settings).read_state(env.profile_id, round_no, "update")
        assert stored is not None
        out[node] = decode_update(stored)[0]
    return out


def _committed(env: RoundHome, round_no: int) -> list[Any]:
    from federated.exchange import decode_global_model
    from registry.models import fetch_model_bytes

    model = env.ledger().get_model(env.profile_id, round_no)
    parameters = decode_global_model(fetch_model_bytes(env.profile_id, model.sha256)).parameters
    assert isinstance(parameters, list)
    return parameters


def _fedavg(updates: dict[str, Any]) -> list[Any]:
    total = sum(u.num_examples for u in updates.values())
    first = next(iter(updates.values())).parameters
    return [
        sum(
            np.asarray(u.parameters[i], dtype=np.float64) * u.num_examples for u in updates.values()
        )
        / total
        for i in range(len(first))
    ]


def _artifact_files(env: RoundHome) -> list[bytes]:
    return [p.read_bytes() for p in (env.home / "mlflow" / "artifacts").rglob("*") if p.is_file()]


def test_a_secure_round_commits_fedavg_of_masked_updates_and_recovers_a_dropped_node(
    secure_home: RoundHome, capsys: pytest.CaptureFixture[str]
) -> None:
    from fedspec.cli.round_status import round_report
    from tests.cli_scenario import run

    env = secure_home
    # Round 1: every node survives; the model is FedAvg of the four updates.
    round_no, parent = env.open_round()
    outcomes = env.agents(round_no, parent)
    rnd = env.ledger().get_round(env.profile_id, round_no)
    assert rnd.status == "closed", (rnd.failure, {n: o.reason for n, o in outcomes.items()})
    state = env.ledger().evaluate("GetSecureAggregation", env.profile_id, str(round_no))
    assert state["dealers"] == state["survivors"] == sorted(NODES)
    assert state["dropped"] == state["recovered"] == []
    assert sorted(state["keys"]) == sorted(NODES)
    updates = _plain_updates(env, round_no, list(NODES))
    for got, want in zip(_committed(env, round_no), _fedavg(updates), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)

    # MLflow holds masked vectors only: no node's weights appear in any artifact.
    files = _artifact_files(env)
    for update in updates.values():
        layer = np.asarray(update.parameters[0]).tobytes()[:256]
        assert not any(layer in data for data in files)
    model = env.ledger().get_model(env.profile_id, round_no)
    assert sorted(i["node"] for i in model.inclusion) == sorted(NODES)

    # Round 2: one node deals and masks, but its vector never arrives intact (dropped after
    # masking): the others' masks with it are rebuilt from shares, and the ledger says so.
    dropped = NODES[2]
    round_no, parent = env.open_round()
    outcomes = env.agents(round_no, parent, {dropped: {"tamper_update": True}})
    rnd = env.ledger().get_round(env.profile_id, round_no)
    assert rnd.status == "closed", (rnd.failure, {n: o.reason for n, o in outcomes.items()})
    state = env.ledger().evaluate("GetSecureAggregation", env.profile_id, str(round_no))
    survivors = sorted(set(NODES) - {dropped})
    assert state["dealers"] == sorted(NODES)
    assert state["survivors"] == survivors
    assert state["dropped"] == state["recovered"] == [dropped]
    updates = _plain_updates(env, round_no, survivors)
    for got, want in zip(_committed(env, round_no), _fedavg(updates), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)
    model = env.ledger().get_model(env.profile_id, round_no)
    assert sorted(i["node"] for i in model.inclusion) == survivors
    excluded = {e["node"]: e for e in model.raw["excluded"]}
    assert excluded[dropped]["code"] == "ARTIFACT_INTEGRITY"
    # `fedspec round status` says whose masks were recovered.
    report = round_report(env.ledger(), env.profile_id, round_no)["secure_aggregation"]
    assert report["recovered"] == [dropped] and report["survivors"] == survivors
    assert round_report(env.ledger(), env.profile_id, 1)["secure_aggregation"]["recovered"] == []
    code, out, _ = run(env.home, capsys, "round", "status", env.profile_id, "--round", "2")
    assert code == 0 and f"masks recovered for: {dropped}" in out
    assert f"dropped after sharing: {dropped}" in out


def test_client_level_dp_with_secure_aggregation_shares_the_noise_and_weighs_nodes_equally(
    secure_dp_home: RoundHome,
) -> None:
    """Each node clips its update to C and adds only N(0, σ²/t): the sum of the t or more
    survivors carries σ² once. Nodes enter the sum with weight 1 (one node moves it by at
    most C), so the committed model is the plain mean of the released updates."""
    from federated.plan import TrainingPlan
    from federated.privacy import released_norm_bounds, update_norm

    env = secure_dp_home
    round_no, parent = env.open_round()
    outcomes = env.agents(round_no, parent)
    rnd = env.ledger().get_round(env.profile_id, round_no)
    assert rnd.status == "closed", (rnd.failure, {n: o.reason for n, o in outcomes.items()})
    updates = _plain_updates(env, round_no, list(NODES))
    assert len({u.num_examples for u in updates.values()}) > 1  # equal weights matter here
    mean = [
        sum(np.asarray(u.parameters[i], dtype=np.float64) for u in updates.values()) / len(updates)
        for i in range(len(next(iter(updates.values())).parameters))
    ]
    for got, want in zip(_committed(env, round_no), mean, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)

    plan = TrainingPlan.from_profile(env.profile_id, env.ledger().get_profile(env.profile_id).spec)
    assert plan.privacy is not None and plan.privacy.noise_shares == THRESHOLD
    initial = plan.initial_model().parameters
    assert isinstance(initial, list)
    dimension = sum(np.asarray(w).size for w in initial)
    share = released_norm_bounds(dimension, clip_norm=1.0, sigma=plan.privacy.node_noise_sigma())
    full = released_norm_bounds(dimension, clip_norm=1.0, sigma=plan.privacy.noise_sigma())
    for update in updates.values():
        residual = update_norm(
            [
                np.subtract(w, g, dtype=np.float64)
                for w, g in zip(update.parameters, initial, strict=True)
            ]
        )
        assert share[0] <= residual <= share[1]  # its share of the noise …
        assert residual < full[0]  # … not the whole of it
