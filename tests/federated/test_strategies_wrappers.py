"""Update screen, quorum and the standard wrapper stack."""

from __future__ import annotations

import numpy as np
import pytest

from federated.errors import InvalidUpdateError, QuorumNotMetError
from federated.strategies import (
    FedAvg,
    FedProx,
    Quorum,
    UpdateScreen,
    check_update,
    create_strategy,
    guard_strategy,
)
from federated.types import FitFailure, FitResult, GlobalModel

SHAPES = [(4, 3), (3,)]
CURRENT = GlobalModel("torch-mlp", [np.zeros(s, dtype=np.float32) for s in SHAPES])


def good(node: str, value: float = 1.0, n: int = 10) -> FitResult:
    return FitResult(node, [np.full(s, value, dtype=np.float32) for s in SHAPES], n)


def with_params(node, params, n=10, metrics=None):
    return FitResult(node, params, n, metrics or {})


nan_layer = np.zeros((4, 3), dtype=np.float32)
nan_layer[1, 2] = np.nan
BAD = {
    "nan": (with_params("n", [nan_layer, np.zeros(3)]), "1 NaN or inf"),
    "inf": (with_params("n", [np.zeros((4, 3)), np.array([0, np.inf, 0])]), "array 1 has 1 NaN"),
    "shape": (with_params("n", [np.zeros((3, 4)), np.zeros(3)]), "shape (3, 4), expected (4, 3)"),
    "count": (with_params("n", [np.zeros((4, 3))]), "1 parameter arrays, the model has 2"),
    "extra-values": (with_params("n", [np.zeros((4, 3)), np.zeros(4)]), "4 values instead of 3"),
    "bytes": (with_params("n", b"trees"), "exchanges weight arrays, got bytes"),
    "family": (
        with_params("n", [np.zeros((4, 3)), np.zeros(3)], metrics={"family": "torch-cnn"}),
        "family 'torch-cnn'",
    ),
    "dtype": (with_params("n", [np.zeros((4, 3), dtype=complex), np.zeros(3)]), "complex"),
    "object": (with_params("n", [np.zeros((4, 3)), [0.0, 0.0, 0.0]]), "is a list"),
    "examples": (with_params("n", [np.zeros((4, 3)), np.zeros(3)], n=0), "num_examples"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_check_update_names_the_node_and_the_problem(case):
    update, problem = BAD[case]
    with pytest.raises(InvalidUpdateError, match="node n: ") as raised:
        check_update(CURRENT, update)
    assert problem in str(raised.value)
    assert raised.value.node_id == "n" and raised.value.code == "INVALID_UPDATE"


def test_check_update_accepts_large_finite_values_and_float64_for_float32_models():
    huge = [np.full((4, 3), 3e38, dtype=np.float32), np.full(3, -3e38, dtype=np.float32)]
    check_update(CURRENT, with_params("n", huge))  # the sum overflows; the values do not
    check_update(CURRENT, with_params("n", [np.zeros((4, 3)), np.zeros(3)]))


def test_check_update_for_tree_models_wants_non_empty_bytes():
    trees = GlobalModel("xgboost-classifier", b"")
    check_update(trees, with_params("n", b"{ubj}"))
    with pytest.raises(InvalidUpdateError, match="empty serialized model"):
        check_update(trees, with_params("n", b""))
    with pytest.raises(InvalidUpdateError, match="got arrays"):
        check_update(trees, good("n"))


def test_screen_excludes_bad_updates_as_typed_failures_never_averages_them():
    results = [good("a", 1.0), good("b", 3.0), BAD["nan"][0], BAD["shape"][0]]
    results[2] = with_params("c", results[2].parameters)
    results[3] = with_params("d", results[3].parameters)
    new, metrics = UpdateScreen(FedAvg()).aggregate_fit(1, CURRENT, results, [])
    assert new is not None
    np.testing.assert_allclose(new.parameters[0], 2.0)
    assert metrics["screened_out"] == 2
    assert metrics["included_nodes"] == "a,b"
    assert metrics["failed_nodes"] == "c:INVALID_UPDATE,d:INVALID_UPDATE"
    assert "c: parameter array 0 has 1 NaN or inf values" in str(metrics["failure_reasons"])


def test_screen_refuses_every_update_of_a_node_that_sends_two():
    screen = UpdateScreen(FedAvg())
    accepted, refused = screen.screen(CURRENT, [good("a"), good("b"), good("b", 9.0)])
    assert [r.node_id for r in accepted] == ["a"]
    assert [(f.node_id, f.code) for f in refused] == [("b", "INVALID_UPDATE")] * 2
    assert "sent 2 updates" in refused[0].reason


def test_quorum_raises_with_the_reason_and_the_left_out_nodes():
    strategy = Quorum(FedAvg(), min_nodes=3)
    with pytest.raises(QuorumNotMetError) as raised:
        strategy.aggregate_fit(
            4, CURRENT, [good("a"), good("b")], [FitFailure("c", "TIMEOUT", "no answer")]
        )
    error = raised.value
    assert error.code == "QUORUM_NOT_MET"
    assert "round 4: 2 usable updates, the profile needs at least 3" in str(error)
    assert "c: no answer" in str(error)
    assert error.details["failures"] == [("c", "TIMEOUT", "no answer")]
    new, metrics = strategy.aggregate_fit(4, CURRENT, [good("a"), good("b"), good("c")], [])
    assert new is not None and metrics["min_nodes"] == 3
    with pytest.raises(ValueError, match="min_nodes"):
        Quorum(FedAvg(), min_nodes=0)


def test_guarded_strategy_counts_only_updates_that_pass_the_screen():
    guarded = guard_strategy(create_strategy("fedavg"), min_nodes=2)
    poisoned = with_params("c", BAD["nan"][0].parameters)
    with pytest.raises(QuorumNotMetError, match="1 usable updates") as raised:
        guarded.aggregate_fit(1, CURRENT, [good("a"), poisoned], [])
    assert raised.value.details["failures"][0][:2] == ("c", "INVALID_UPDATE")
    new, _ = guarded.aggregate_fit(1, CURRENT, [good("a"), good("b"), poisoned], [])
    assert new is not None


def test_wrappers_pass_the_inner_node_config_through():
    guarded = guard_strategy(FedProx(proximal_mu=0.2), min_nodes=1)
    assert guarded.node_config(1) == {"proximal_mu": 0.2}  # type: ignore[attr-defined]
