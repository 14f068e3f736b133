"""SCAFFOLD in real rounds: three nodes, two rounds of a small torch MLP on digits, on the
embedded ledger and MLflow, each node's agent in its own thread as the local dispatch runs them.

What is checked: each node keeps its c_i in its private state (never on the ledger or in
MLflow), the c_i after a round is the one before plus the Δc_i its committed update carries
(under the hash on the ledger), round 2's nodes trained with the c_i round 1 left them (the
update is what training from it gives, and not what training from zeros gives), and the server
control c in the registered model moves by (|S|/N)·mean(Δc_i)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from federated.exchange import decode_global_model, decode_update, sha256_hex
from federated.plan import TrainingPlan
from federated.simulation import train_node
from federated.strategies.scaffold import CONTROL_KEY
from federated.types import GlobalModel, NDArrays
from fedspec.app.settings import Settings
from flows.control_variates import control_path, load_control
from flows.environment import NodeEnvironment
from registry.models import fetch_model_bytes

from .conftest import PROFILE, SCHEDULE, RoundHome

pytestmark = pytest.mark.integration

ORGS = ["org1", "org2", "org3"]
NODES = [f"{org}/node0" for org in ORGS]
HYPERPARAMETERS = {
    "hidden_sizes": [16],
    "epochs": 1,
    "learning_rate": 0.05,
    "batch_size": 32,
    "optimizer": "sgd",
    "num_threads": 1,
}


@pytest.fixture
def scaffold_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RoundHome:
    from fedspec.demo.setup import PROFILES, setup_consortium
    from flows import tracking
    from registry.tracking import ensure_experiment

    monkeypatch.setenv("FEDSPEC_HOME", str(tmp_path / "home"))
    for name in ("MLFLOW_TRACKING_URI", "FEDSPEC_LEDGER", "FEDSPEC_LEDGER_PATH"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings.load(tmp_path / "home", env={})
    profile = replace(
        next(p for p in PROFILES if p.id == PROFILE),
        strategy="scaffold",
        hyperparameters=HYPERPARAMETERS,
    )
    setup_consortium(settings, ORGS, [profile], nodes_per_org=1, schedule=SCHEDULE)
    tracking.configure(settings.mlflow_tracking_uri, settings.home / "mlflow" / "artifacts")
    ensure_experiment(profile.id)
    return RoundHome(settings.home, settings, profile_id=profile.id, nodes=list(NODES))


def _round(home: RoundHome) -> tuple[int, GlobalModel]:
    """One round with every node; the registered model it committed."""
    round_no, parent = home.open_round()
    outcomes = home.agents(round_no, parent)
    assert {o.status for o in outcomes.values()} == {"ok"}, outcomes
    rnd = home.ledger().get_round(home.profile_id, round_no)
    assert rnd.status == "closed", rnd.failure
    return round_no, decode_global_model(fetch_model_bytes(home.profile_id, rnd.raw["model"]))


def _updates(home: RoundHome, round_no: int) -> dict[str, tuple[NDArrays, NDArrays, int]]:
    """Each node's (weights, Δc_i, rows) from its private state, checked against the hash it
    committed: the ledger's hash covers the Δc_i."""
    committed = {u.node: u.sha256 for u in home.ledger().list_updates(home.profile_id, round_no)}
    out = {}
    for node in NODES:
        stored = NodeEnvironment(node, home.settings).read_state(
            home.profile_id, round_no, "update"
        )
        assert stored is not None and sha256_hex(stored) == committed[node]
        result, _ = decode_update(stored)
        assert result.control_delta is not None and not isinstance(result.parameters, bytes)
        out[node] = (list(result.parameters), list(result.control_delta), result.num_examples)
    return out


def _control(home: RoundHome, node: str, shapes: list[tuple[int, ...]]) -> tuple[NDArrays, int]:
    stored = load_control(
        NodeEnvironment(node, home.settings), home.profile_id, "torch-mlp", shapes
    )
    return stored.control, stored.round_no


def _retrain(
    home: RoundHome,
    plan: TrainingPlan,
    model: GlobalModel,
    node: str,
    round_no: int,
    start: NDArrays,
) -> NDArrays:
    """The weights ``node`` trains from ``model`` in ``round_no`` when its c_i is ``start``."""
    data = NodeEnvironment(node, home.settings).local_data(dict(plan.characteristics))
    result, _ = train_node(
        model, plan.prepare(data.train.X), data.train.y, family=plan.family,
        hyperparameters={**plan.hyperparameters, **plan.strategy().node_config(round_no)},
        node_id=node, seed=plan.seed(round_no, node), control=start,
    )  # fmt: skip
    assert not isinstance(result.parameters, bytes)
    return list(result.parameters)


def _weighted_mean(arrays: list[NDArrays], weights: list[int]) -> NDArrays:
    total = sum(weights)
    return [
        np.sum([w * a[i] for a, w in zip(arrays, weights, strict=True)], axis=0) / total
        for i in range(len(arrays[0]))
    ]


def test_scaffold_rounds_keep_c_i_at_the_nodes_and_c_in_the_model(
    scaffold_home: RoundHome,
) -> None:
    home = scaffold_home
    plan = TrainingPlan.from_profile(
        home.profile_id, home.ledger().get_profile(home.profile_id).spec
    )
    initial = plan.initial_model()
    assert not isinstance(initial.parameters, bytes)
    shapes = [np.shape(a) for a in initial.parameters]
    for node in NODES:
        assert not control_path(NodeEnvironment(node, home.settings), home.profile_id).exists()

    round_1, model_1 = _round(home)
    updates_1 = _updates(home, round_1)
    controls_1 = {}
    for node, (_, delta, _) in updates_1.items():
        path = control_path(NodeEnvironment(node, home.settings), home.profile_id)
        assert path.is_file() and path.stat().st_mode & 0o077 == 0  # private to its owner
        control, held = _control(home, node, shapes)
        assert held == round_1
        assert sum(float(np.linalg.norm(c)) for c in control) > 0
        for c, d in zip(control, delta, strict=True):  # zeros + Δc_i
            np.testing.assert_array_equal(c, d)
        controls_1[node] = control
    # c = 0 + (|S|/N)·mean(Δc_i) with S = N = the three volunteers, stored as float32.
    c_1 = model_1.server_state[CONTROL_KEY]
    expected = _weighted_mean(
        [d for _, d, _ in updates_1.values()], [n for *_, n in updates_1.values()]
    )
    for got, want in zip(c_1, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)

    round_2, model_2 = _round(home)
    updates_2 = _updates(home, round_2)
    c_2 = model_2.server_state[CONTROL_KEY]
    assert any(not np.array_equal(a, b) for a, b in zip(c_1, c_2, strict=True))
    deltas_2 = [d for _, d, _ in updates_2.values()]
    step = _weighted_mean(deltas_2, [n for *_, n in updates_2.values()])
    for got, before, s in zip(c_2, c_1, step, strict=True):
        np.testing.assert_allclose(got, before + s, rtol=1e-5, atol=1e-6)

    for node, (weights, delta, _) in updates_2.items():
        control, held = _control(home, node, shapes)
        assert held == round_2
        for c, before, d in zip(control, controls_1[node], delta, strict=True):
            np.testing.assert_allclose(c, before + d, rtol=1e-12, atol=1e-12)
        # Round 2 trained from model 1 with the c_i round 1 left: retraining the node's rows
        # with that c_i gives its committed weights, and with zeros (no memory) it does not.
        replayed = {
            name: _retrain(home, plan, model_1, node, round_2, start)
            for name, start in (
                ("stored", controls_1[node]),
                ("zeros", [np.zeros(s) for s in shapes]),
            )
        }
        for got, want in zip(replayed["stored"], weights, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        assert any(
            not np.allclose(got, want, rtol=1e-5, atol=1e-6)
            for got, want in zip(replayed["zeros"], weights, strict=True)
        ), node
    # c_i never leaves the node: no artifact of the rounds is a control file.
    artifacts = home.settings.home / "mlflow" / "artifacts"
    assert not [p for p in artifacts.rglob("*") if "control" in p.name]
