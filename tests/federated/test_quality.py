"""Learning quality on real data (digits 8×8) with the real model adapters.

Each figure is printed (``-s``) and recorded as a junit property, so a CI log shows the
accuracies behind every bound asserted here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from federated.datasets import holdout_split, load_digits_8x8, partition_iid
from federated.errors import IncompatibleModelError, PrivacyBudgetError
from federated.models import create_model
from federated.privacy import PrivacyConfig, PrivacySpend, compose
from federated.simulation import (
    initial_model,
    run_simulation,
    scale_update,
    sign_flip,
    train_node,
)
from federated.strategies import create_strategy, guard_strategy

CLASSES = list(range(10))
LINEAR: dict[str, Any] = {
    "classes": CLASSES, "n_features": 64, "epochs": 5, "learning_rate": 0.05,
}  # fmt: skip
MLP: dict[str, Any] = {
    "classes": CLASSES, "n_features": 64, "epochs": 2, "hidden_sizes": (64,),
    "learning_rate": 0.005, "num_threads": 1,
}  # fmt: skip

Data = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
Report = Callable[[str, float], None]


@pytest.fixture(scope="module")
def digits() -> Data:
    """Pixels scaled by their known maximum (16): a public bound, not a data statistic."""
    dataset = load_digits_8x8()
    pool, test = holdout_split(dataset, test_fraction=0.25, seed=0)
    X = dataset.X / 16.0
    return X[pool], dataset.y[pool], X[test], dataset.y[test]


def iid_nodes(digits: Data, count: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    X, y, _, _ = digits
    parts = partition_iid(len(y), [f"node{i:02d}" for i in range(count)], seed=0)
    return {node: (X[rows], y[rows]) for node, rows in parts.items()}


@pytest.fixture
def report(record_property: Callable[[str, object], None]) -> Report:
    def record(name: str, value: float) -> None:
        record_property(name, round(value, 4))
        print(f"{name} = {value:.4f}")

    return record


def federated_accuracy(digits: Data, nodes: int, **kwargs: Any) -> float:
    _, _, X_test, y_test = digits
    history = run_simulation(iid_nodes(digits, nodes), evaluation=(X_test, y_test), **kwargs)
    return history.accuracies()[-1]


@pytest.mark.parametrize(
    ("family", "hyperparameters", "rounds"),
    [("sklearn-linear", LINEAR, 8), ("torch-mlp", MLP, 15)],
    ids=["sklearn-linear", "torch-mlp"],
)
def test_fedavg_on_iid_nodes_is_within_two_points_of_centralized(
    digits, report, family, hyperparameters, rounds
):
    X, y, X_test, y_test = digits
    federated = federated_accuracy(
        digits, 5, family=family, hyperparameters=hyperparameters,
        strategy=create_strategy("fedavg"), rounds=rounds, seed=0,
    )  # fmt: skip
    # Same model, same number of passes over every row: rounds × local epochs.
    epochs = hyperparameters["epochs"] * rounds
    central_model = create_model(family, **{**hyperparameters, "epochs": epochs, "random_state": 0})
    central = central_model.fit(X, y).score(X_test, y_test)
    report(f"{family}_fedavg_accuracy", federated)
    report(f"{family}_centralized_accuracy", central)
    assert federated >= central - 0.02


@pytest.fixture(scope="module")
def clean_fedavg(digits: Data) -> float:
    return federated_accuracy(
        digits, 10, family="sklearn-linear", hyperparameters=LINEAR,
        strategy=create_strategy("fedavg"), rounds=8, seed=0,
    )  # fmt: skip


ATTACKS = {"sign-flip-x4": sign_flip(4.0), "scale-x10": scale_update(10.0)}
ROBUST: dict[str, dict[str, Any]] = {
    "median": {},
    "trimmed-mean": {"proportion": 0.3},
    "multi-krum": {"num_malicious": 3},
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_robust_strategies_hold_with_30_percent_poisoned_nodes_while_fedavg_breaks(
    digits, report, clean_fedavg, attack
):
    poisoned = {f"node{i:02d}": ATTACKS[attack] for i in (1, 4, 7)}  # 3 of 10 nodes

    def accuracy(name: str, **params: Any) -> float:
        return federated_accuracy(
            digits, 10, family="sklearn-linear", hyperparameters=LINEAR,
            strategy=create_strategy(name, **params), rounds=8, seed=0, attacks=poisoned,
        )  # fmt: skip

    report("clean_fedavg_accuracy", clean_fedavg)
    attacked_fedavg = accuracy("fedavg")
    report(f"{attack}_fedavg_accuracy", attacked_fedavg)
    assert attacked_fedavg < clean_fedavg - 0.20
    for name, params in ROBUST.items():
        robust = accuracy(name, **params)
        report(f"{attack}_{name}_accuracy", robust)
        assert robust >= clean_fedavg - 0.03, name


def test_client_level_dp_costs_a_bounded_reported_accuracy(digits, report):
    """ε = 8, δ = 1e-5 per round and node (client-level, Gaussian mechanism), 10 rounds.

    Noise is added on every node (the coordinator is not trusted), so the average of 30
    nodes still carries σ/√30 per weight: at this ε the cost on digits is about 10 points.
    """
    privacy = PrivacyConfig(
        "gaussian-update", epsilon=8.0, delta=1e-5, clip_norm=1.0,
        budget_epsilon=80.0, budget_delta=1e-3,
    )  # fmt: skip
    nodes = iid_nodes(digits, 30)
    _, _, X_test, y_test = digits
    common: dict[str, Any] = {
        "family": "sklearn-linear", "hyperparameters": LINEAR, "rounds": 10, "seed": 0,
    }  # fmt: skip
    clean = run_simulation(
        nodes, strategy=create_strategy("fedavg"), evaluation=(X_test, y_test), **common
    ).accuracies()[-1]
    private = run_simulation(
        nodes,
        strategy=guard_strategy(create_strategy("fedavg"), min_nodes=20, privacy=privacy),
        privacy=privacy,
        evaluation=(X_test, y_test),
        **common,
    )
    accuracy = private.accuracies()[-1]
    report("dp_eps8_clean_accuracy", clean)
    report("dp_eps8_private_accuracy", accuracy)
    report("dp_eps8_accuracy_cost", clean - accuracy)
    assert clean - accuracy <= 0.20
    assert accuracy >= 0.6  # chance is 0.1
    # Every round reports what each node spent, and no update was refused by the check.
    assert len(private.rounds) == 10
    for record in private.rounds:
        assert set(record.spends.values()) == {PrivacySpend(8.0, 1e-5)}
        assert record.metrics["privacy_refused"] == 0
    spent = private.spent["node00"]
    assert len(spent) == 10
    assert compose(spent).epsilon == pytest.approx(80.0)


class Tripwire:
    """Feature rows that record whether anything read them (through ``np.asarray``)."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows
        self.touched = False

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        self.touched = True
        return np.asarray(self.rows, dtype=dtype)

    def __len__(self) -> int:
        return len(self.rows)


def test_a_round_beyond_the_budget_is_refused_before_any_training(digits):
    X, y, _, _ = digits
    privacy = PrivacyConfig(
        "gaussian-update", epsilon=1.0, delta=1e-6, clip_norm=1.0,
        budget_epsilon=2.5, budget_delta=1e-5,
    )  # fmt: skip
    start = initial_model("sklearn-linear", LINEAR, seed=0)
    kwargs = {"family": "sklearn-linear", "hyperparameters": LINEAR, "privacy": privacy}
    spent = [PrivacySpend(1.0, 1e-6)] * 2

    refused = Tripwire(X[:100])
    with pytest.raises(PrivacyBudgetError) as raised:
        train_node(start, refused, y[:100], spent=spent, node_id="n1", **kwargs)  # type: ignore[arg-type]
    assert raised.value.code == "BUDGET_EXCEEDED" and raised.value.node_id == "n1"
    assert not refused.touched  # the data was never read, so no training happened

    # The same call with budget left does read (and train on) the same kind of input.
    allowed = Tripwire(X[:100])
    result, spend = train_node(start, allowed, y[:100], spent=spent[:1], node_id="n1", **kwargs)  # type: ignore[arg-type]
    assert allowed.touched
    assert spend == PrivacySpend(1.0, 1e-6)
    assert result.metrics["dp_epsilon"] == 1.0 and result.metrics["dp_delta"] == 1e-6


def test_simulation_stops_when_every_node_is_out_of_budget(digits):
    privacy = PrivacyConfig(
        "gaussian-update", epsilon=1.0, delta=1e-6, clip_norm=1.0,
        budget_epsilon=2.0, budget_delta=1e-5,
    )  # fmt: skip
    history = run_simulation(
        iid_nodes(digits, 4),
        family="sklearn-linear",
        hyperparameters=LINEAR,
        strategy=guard_strategy(create_strategy("fedavg"), min_nodes=3, privacy=privacy),
        privacy=privacy,
        rounds=5,
        seed=0,
    )
    assert [r.error for r in history.rounds] == [None, None, "QUORUM_NOT_MET"]
    last = history.rounds[-1]
    assert {f.code for f in last.failures} == {"BUDGET_EXCEEDED"}
    assert last.spends == {}
    assert {node: len(spends) for node, spends in history.spent.items()} == {
        f"node{i:02d}": 2 for i in range(4)
    }


@pytest.mark.filterwarnings("ignore:scipy.optimize:DeprecationWarning")  # inside diffprivlib
def test_dp_estimator_nodes_report_the_epsilon_their_diffprivlib_model_spent(digits):
    privacy = PrivacyConfig("dp-estimator", epsilon=2.0, budget_epsilon=4.0)
    hyperparameters = {"classes": CLASSES, "n_features": 64, "data_norm": 8.0}
    history = run_simulation(
        iid_nodes(digits, 3),
        family="dp-logistic-regression",
        hyperparameters=hyperparameters,
        strategy=guard_strategy(create_strategy("fedavg"), min_nodes=2, privacy=privacy),
        privacy=privacy,
        rounds=3,
        seed=0,
    )
    assert [r.error for r in history.rounds] == [None, None, "QUORUM_NOT_MET"]
    for record in history.rounds[:2]:
        assert set(record.spends.values()) == {PrivacySpend(2.0, 0.0)}
    with pytest.raises(IncompatibleModelError, match="differs from the profile"):
        train_node(
            history.model, *iid_nodes(digits, 3)["node00"], family="dp-logistic-regression",  # type: ignore[arg-type]
            hyperparameters={**hyperparameters, "epsilon": 5.0}, privacy=privacy,
        )  # fmt: skip
