"""Update screen, quorum and the standard wrapper stack."""

from __future__ import annotations

import numpy as np
import pytest

from federated.errors import InvalidUpdateError, QuorumNotMetError
from federated.privacy import PrivacyConfig
from federated.strategies import (
    FedAvg,
    FedProx,
    PrivacyCheck,
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
    out = UpdateScreen(FedAvg()).aggregate_fit(1, CURRENT, results, [])
    new = out.model
    assert new is not None
    np.testing.assert_allclose(new.parameters[0], 2.0)
    assert out.metrics["screened_out"] == 2
    assert out.included == ("a", "b")
    assert [(f.node_id, f.code) for f in out.failures] == [
        ("c", "INVALID_UPDATE"),
        ("d", "INVALID_UPDATE"),
    ]
    assert "parameter array 0 has 1 NaN or inf values" in out.failures[0].reason


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
    out = strategy.aggregate_fit(4, CURRENT, [good("a"), good("b"), good("c")], [])
    assert out.model is not None and out.metrics["min_nodes"] == 3
    with pytest.raises(ValueError, match="min_nodes"):
        Quorum(FedAvg(), min_nodes=0)


def test_guarded_strategy_counts_only_updates_that_pass_the_screen():
    guarded = guard_strategy(create_strategy("fedavg"), min_nodes=2)
    poisoned = with_params("c", BAD["nan"][0].parameters)
    with pytest.raises(QuorumNotMetError, match="1 usable updates") as raised:
        guarded.aggregate_fit(1, CURRENT, [good("a"), poisoned], [])
    assert raised.value.details["failures"][0][:2] == ("c", "INVALID_UPDATE")
    out = guarded.aggregate_fit(1, CURRENT, [good("a"), good("b"), poisoned], [])
    assert out.model is not None
    assert out.included == ("a", "b") and [f.node_id for f in out.failures] == ["c"]


def test_wrappers_pass_the_inner_node_config_through_and_unwrap_to_the_bare_rule():
    bare = FedProx(proximal_mu=0.2)
    privacy = PrivacyConfig(mechanism="gaussian-update", epsilon=8.0, delta=1e-5, clip_norm=1.0)
    guarded = guard_strategy(bare, min_nodes=1, privacy=privacy)
    assert isinstance(guarded, UpdateScreen) and isinstance(guarded.strategy, PrivacyCheck)
    assert guarded.node_config(1) == {"proximal_mu": 0.2}
    assert guarded.unwrapped() is bare


# Reasons are free text: separators the old metric strings used must survive intact.
AWKWARD = "worker died; traceback: a, b; c: d,e"


def test_failure_reasons_with_separators_survive_every_wrapper():
    guarded = guard_strategy(create_strategy("fedavg"), min_nodes=2)
    given = [FitFailure("z", "TIMEOUT", AWKWARD), FitFailure("y:1", "ERR", "x: y, z; w")]
    poisoned = with_params("c", BAD["nan"][0].parameters)
    out = guarded.aggregate_fit(1, CURRENT, [good("a"), good("b"), poisoned], given)
    assert out.included == ("a", "b")
    assert [f.node_id for f in out.failures] == ["c", "y:1", "z"]
    assert set(out.failures) >= set(given)  # the same records: node, code and reason intact
    assert out.failures[0].code == "INVALID_UPDATE"


def test_the_coordinator_reads_included_and_left_out_nodes_from_the_records():
    from flows.coordinator import _included, _left_out

    strategy = guard_strategy(create_strategy("multi-krum", num_malicious=1), min_nodes=2)
    results = [good("a"), good("b", 1.001), good("c", 0.999), good("evil", 50.0)]
    given = FitFailure("z", "TIMEOUT", AWKWARD)
    out = strategy.aggregate_fit(1, CURRENT, results, [given])
    assert [r.node_id for r in _included(out, results)] == ["a", "b", "c"]
    left_out = {f.node_id: f for f in _left_out(out)}
    assert left_out["z"] == given
    assert left_out["evil"].code == "KRUM_DROPPED"
