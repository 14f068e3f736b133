"""SCAFFOLD (federated.strategies.scaffold): the control-variate algebra, its effect on a
strongly non-IID split, and the combinations it refuses."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch.nn import functional

from chaincode.errors import InvalidArgument
from chaincode.schema import SCAFFOLD_FAMILIES, validate_profile
from federated.datasets import holdout_split, load_digits_8x8, partition_dirichlet
from federated.errors import IncompatibleModelError, InvalidUpdateError, QuorumNotMetError
from federated.models.torch_adapters import TorchMLPClassifier
from federated.privacy import PrivacyConfig
from federated.simulation import initial_model, run_simulation, train_node
from federated.strategies import FedAvg, Scaffold, create_strategy, guard_strategy
from federated.strategies.scaffold import CONTROL_KEY, TORCH_FAMILIES, control_update
from federated.types import FitFailure, FitResult, GlobalModel
from fedspec.demo.setup import PROFILES, profile_document

MLP = {
    "classes": [0, 1, 2],
    "n_features": 4,
    "hidden_sizes": (5,),
    "optimizer": "sgd",
    "learning_rate": 0.1,
    "num_threads": 1,
}


def _blobs(seed: int, n: int = 30, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.normal(size=(n, 4)) + y[:, None] + shift
    return X, y


def _gradient(global_model: GlobalModel, X: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """The exact gradient of the mean cross-entropy at the global model's weights."""
    model = TorchMLPClassifier(**MLP).set_parameters(list(global_model.parameters))
    module = model.module_
    loss = functional.cross_entropy(
        module(torch.from_numpy(X.astype(np.float32))), torch.from_numpy(y.astype(np.int64))
    )
    torch.autograd.backward(loss)
    return [p.grad.numpy().astype(np.float64) for p in module.parameters()]  # type: ignore[union-attr]


def test_control_update_is_option_ii() -> None:
    c_i, c = [np.array([1.0, -2.0])], [np.array([0.5, 0.5])]
    x, y = [np.array([3.0, 3.0])], [np.array([2.0, 4.0])]
    delta = control_update(c_i, c, x, y, steps=4, learning_rate=0.1)
    # c_i⁺ = c_i − c + (x − y)/(Kη); Δc_i = c_i⁺ − c_i = −c + (x − y)/(Kη)
    np.testing.assert_allclose(delta[0], [-0.5 + 1.0 / 0.4, -0.5 - 1.0 / 0.4])
    assert np.all(control_update(c_i, c, x, y, steps=0, learning_rate=0.1)[0] == 0)


def test_one_full_batch_step_applies_the_correction_and_measures_the_gradient() -> None:
    """K = 1 full-batch SGD step: y = x − η(g − c_i + c), so c_i⁺ is the exact gradient g."""
    X, y = _blobs(0)
    start = initial_model("torch-mlp", MLP, seed=0)
    shapes = [np.shape(a) for a in start.parameters]
    rng = np.random.default_rng(1)
    c = [rng.normal(size=s) * 0.1 for s in shapes]
    c_i = [rng.normal(size=s) * 0.1 for s in shapes]
    current = GlobalModel("torch-mlp", start.parameters, {CONTROL_KEY: c})
    params = {**MLP, "epochs": 1, "batch_size": len(y)}
    result, _ = train_node(
        current, X, y, family="torch-mlp", hyperparameters=params, seed=0, control=c_i
    )
    g = _gradient(current, X, y)
    for x_l, y_l, g_l, c_l, ci_l in zip(
        start.parameters, result.parameters, g, c, c_i, strict=True
    ):
        np.testing.assert_allclose(y_l, x_l - 0.1 * (g_l - ci_l + c_l), atol=1e-6)
    assert result.control_delta is not None
    for ci_l, d_l, g_l in zip(c_i, result.control_delta, g, strict=True):
        np.testing.assert_allclose(ci_l + d_l, g_l, atol=1e-4)


def test_one_node_in_every_round_keeps_c_equal_to_c_i_and_is_fedavg() -> None:
    """The paper's edge case: one node, full participation: c = c_1 after every round, the
    correction c − c_1 is zero, and SCAFFOLD trains exactly as FedAvg does."""
    X, y = _blobs(2, n=40)
    params = {**MLP, "epochs": 2, "batch_size": 8}
    current = initial_model("torch-mlp", params, seed=0)
    plain = current
    c_1 = [np.zeros(np.shape(a)) for a in current.parameters]
    for server_round in (1, 2, 3):
        result, _ = train_node(
            current, X, y, family="torch-mlp", hyperparameters=params, seed=server_round,
            control=c_1,
        )  # fmt: skip
        assert result.control_delta is not None
        c_1 = [a + d for a, d in zip(c_1, result.control_delta, strict=True)]
        model = Scaffold().aggregate_fit(server_round, current, [result], []).model
        assert model is not None
        current = model
        for c_l, ci_l in zip(current.server_state[CONTROL_KEY], c_1, strict=True):
            np.testing.assert_allclose(c_l, ci_l, rtol=1e-6, atol=1e-7)
        fedavg_result, _ = train_node(
            plain, X, y, family="torch-mlp", hyperparameters=params, seed=server_round
        )
        fedavg_model = FedAvg().aggregate_fit(server_round, plain, [fedavg_result], []).model
        assert fedavg_model is not None
        plain = fedavg_model
    assert np.linalg.norm(current.server_state[CONTROL_KEY][0]) > 0  # c did move
    for a, b in zip(current.parameters, plain.parameters, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_full_participation_keeps_c_the_weighted_mean_of_the_nodes_c_i() -> None:
    data = {f"n{i}": _blobs(10 + i, n=12 + 8 * i, shift=i) for i in range(3)}
    params = {**MLP, "epochs": 1, "batch_size": 8}
    current = initial_model("torch-mlp", params, seed=0)
    controls = {n: [np.zeros(np.shape(a)) for a in current.parameters] for n in data}
    for server_round in (1, 2):
        results = []
        for node, (X, y) in data.items():
            result, _ = train_node(
                current, X, y, family="torch-mlp", hyperparameters=params, node_id=node,
                seed=server_round, control=controls[node],
            )  # fmt: skip
            assert result.control_delta is not None
            controls[node] = [
                a + d for a, d in zip(controls[node], result.control_delta, strict=True)
            ]
            results.append(result)
        model = Scaffold().aggregate_fit(server_round, current, results, []).model
        assert model is not None
        current = model
    weights = np.array([len(y) for _, y in data.values()], dtype=float)
    weights /= weights.sum()
    for layer, c_l in enumerate(current.server_state[CONTROL_KEY]):
        expected = sum(w * controls[n][layer] for w, n in zip(weights, data, strict=True))
        np.testing.assert_allclose(c_l, expected, rtol=1e-5, atol=1e-6)


def _result(node: str, value: float, n: int) -> FitResult:
    return FitResult(node, [np.full(2, value, np.float32)], n, {}, [np.full(2, value)])


def test_partial_participation_scales_the_control_step_by_the_participating_share() -> None:
    current = GlobalModel("torch-mlp", [np.zeros(2, np.float32)], {CONTROL_KEY: [np.ones(2)]})
    results = [_result("a", 1.0, 10), _result("b", 4.0, 30)]
    gone = [FitFailure("c", "TIMEOUT", "late"), FitFailure("d", "TIMEOUT", "late")]
    out = Scaffold().aggregate_fit(1, current, results, gone)
    assert out.model is not None
    # weighted mean of Δc_i: (10·1 + 30·4)/40 = 3.25; |S|/N = 2/4 (failed nodes count in N)
    np.testing.assert_allclose(out.model.server_state[CONTROL_KEY][0], 1 + 0.5 * 3.25)
    np.testing.assert_allclose(out.model.parameters[0], 3.25)
    out = Scaffold(num_nodes=8, global_lr=2.0).aggregate_fit(1, current, results, [])
    assert out.model is not None
    np.testing.assert_allclose(out.model.server_state[CONTROL_KEY][0], 1 + 0.25 * 3.25)
    np.testing.assert_allclose(out.model.parameters[0], 6.5)  # x + η_g·(mean − x)


def test_scaffold_beats_fedavg_on_a_dirichlet_0_1_split_of_digits() -> None:
    """10 nodes, Dirichlet(0.1) label skew, torch MLP with SGD: SCAFFOLD's corrected local
    steps end clearly above FedAvg's on each seed (benchmarks/non_iid.py has the 20-round,
    3-seed table; this is a shorter run of the same setup). Over seeds 0–5 the gap after 8
    rounds was 0.14 to 0.44; FedAvg was 0.36 to 0.67."""
    dataset = load_digits_8x8()
    pool, test = holdout_split(dataset, test_fraction=0.25, seed=0)
    X = dataset.X / 16.0
    params = {
        "classes": list(range(10)), "n_features": 64, "hidden_sizes": (64,), "epochs": 2,
        "batch_size": 32, "learning_rate": 0.05, "optimizer": "sgd", "num_threads": 1,
    }  # fmt: skip
    gaps = []
    for seed in (0, 1):
        parts = partition_dirichlet(
            dataset.y[pool], [f"n{i}" for i in range(10)], alpha=0.1, seed=seed, min_rows=10
        )
        nodes = {n: (X[pool][rows], dataset.y[pool][rows]) for n, rows in parts.items()}
        final = {}
        for name in ("fedavg", "scaffold"):
            history = run_simulation(
                nodes, family="torch-mlp", hyperparameters=params,
                strategy=create_strategy(name), rounds=8,
                evaluation=(X[test], dataset.y[test]), seed=seed,
            )  # fmt: skip
            final[name] = history.accuracies()[-1]
        gaps.append(final["scaffold"] - final["fedavg"])
    assert min(gaps) > 0.1, gaps


def test_scaffold_refuses_what_it_cannot_correct() -> None:
    X, y = _blobs(3)
    params = {**MLP, "epochs": 1}
    start = initial_model("torch-mlp", params, seed=0)
    zeros = [np.zeros(np.shape(a)) for a in start.parameters]
    with pytest.raises(IncompatibleModelError, match="optimizer='sgd'"):
        train_node(
            start, X, y, family="torch-mlp", hyperparameters={**params, "optimizer": "adam"},
            control=zeros,
        )  # fmt: skip
    private = PrivacyConfig(
        mechanism="gaussian-update", epsilon=1.0, delta=1e-5, clip_norm=1.0,
        budget_epsilon=10.0, budget_delta=1e-4,
    )  # fmt: skip
    with pytest.raises(IncompatibleModelError, match="privacy"):
        train_node(
            start, X, y, family="torch-mlp", hyperparameters=params, privacy=private,
            control=zeros,
        )  # fmt: skip
    linear = {"classes": [0, 1, 2], "n_features": 4}
    with pytest.raises(IncompatibleModelError, match="scaffold") as refused:
        run_simulation(
            {"a": (X, y)}, family="sklearn-linear", hyperparameters=linear,
            strategy=create_strategy("scaffold"), rounds=1,
        )  # fmt: skip
    assert refused.value.code == "INCOMPATIBLE_MODEL"
    with pytest.raises(IncompatibleModelError, match="scaffold"):
        Scaffold().aggregate_fit(1, initial_model("sklearn-linear", linear), [], [])
    # An update trained without SCAFFOLD (no Δc_i) is never averaged in silently.
    plain, _ = train_node(start, X, y, family="torch-mlp", hyperparameters=params)
    with pytest.raises(InvalidUpdateError, match="control_delta"):
        Scaffold().aggregate_fit(1, start, [plain], [])
    # Behind the screen (as in a round) it is that node's failure, not the round's.
    screened = guard_strategy(Scaffold(), min_nodes=1)
    with pytest.raises(QuorumNotMetError, match="control_delta"):
        screened.aggregate_fit(1, start, [plain], [])


def _scaffold_document() -> dict[str, Any]:
    profile = next(p for p in PROFILES if p.id == "digits-8x8")
    document = profile_document(profile, load_digits_8x8())
    document["aggregation"] = {"strategy": "scaffold", "params": {"global_lr": 1}}
    document["model"]["hyperparameters"] = {"hidden_sizes": [16], "optimizer": "sgd"}
    return document


def test_the_ledger_takes_a_scaffold_profile_of_a_torch_family_trained_by_sgd() -> None:
    assert set(SCAFFOLD_FAMILIES) == TORCH_FAMILIES  # the chaincode's copy of the list
    validate_profile(_scaffold_document())
    cnn = _scaffold_document()
    cnn["model"]["family"] = "torch-cnn"
    validate_profile(cnn)


PRIVATE = {
    "mode": "client-level-dp", "epsilon_per_round": "1", "delta_per_round": "0.00001",
    "epsilon_budget": "10", "delta_budget": "0.0001", "clip_norm": "1",
}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"model": {"family": "sklearn-linear"}}, "model.family", "use torch-mlp or torch-cnn"),
        ({"model": {"family": "dp-logistic-regression"}}, "model.family", "corrects local SGD"),
        ({"hyperparameters": {"optimizer": "adam"}}, "model.hyperparameters.optimizer", "'adam'"),
        ({"hyperparameters": {}}, "model.hyperparameters.optimizer", "got None"),
        ({"privacy": PRIVATE}, "privacy.mode", "un-noised release"),
        ({"secure": {"threshold": 2}}, "aggregation.secure", "unmasked"),
    ],
    ids=["linear", "dp-logistic", "adam", "default-optimizer", "privacy", "secure"],
)
def test_the_ledger_refuses_what_scaffold_cannot_correct_at_proposal(
    change: dict[str, Any], field: str, fragment: str
) -> None:
    """The refusals of training (family, optimizer, privacy) come first at the ledger, so
    that no profile exists whose rounds every node would refuse; secure aggregation too: its
    masked vector carries the weights only, so each node's Δc_i would reach the coordinator."""
    document = _scaffold_document()
    if "model" in change:
        document["model"] = {**document["model"], **change["model"]}
    if "hyperparameters" in change:
        document["model"]["hyperparameters"] = change["hyperparameters"]
    if "privacy" in change:
        document["privacy"] = change["privacy"]
    if "secure" in change:
        document["aggregation"]["secure"] = change["secure"]
    with pytest.raises(InvalidArgument, match=r"scaffold") as refused:
        validate_profile(document)
    assert refused.value.details["field"] == field
    assert fragment in refused.value.message
