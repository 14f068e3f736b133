"""Contribution scores: marginal utility, compute plausibility, exact integer rewards."""

from __future__ import annotations

import math

import numpy as np
import pytest

from federated.contribution import (
    ComputeLimits,
    ContributionWeights,
    NodeReport,
    allocate_tokens,
    check_compute,
    contribution_scores,
    exact_shapley,
    leave_one_out,
    shapley_values,
    tmc_shapley,
)
from federated.errors import ContributionError
from federated.validation.summary import summarize_validation


def _summary(success: bool = True, unexpected: int = 0, rows: int = 100):
    """A validation summary built from a Great Expectations result of the real shape."""
    return summarize_validation(
        {
            "success": success,
            "suite_name": "fedspec-" + "0" * 64,
            "results": [
                {
                    "success": True,
                    "expectation_config": {
                        "type": "expect_table_row_count_to_be_between",
                        "kwargs": {},
                    },
                    "result": {"observed_value": rows},
                },
                {
                    "success": success,
                    "expectation_config": {
                        "type": "expect_column_values_to_be_between",
                        "kwargs": {"column": "__above_max__"},
                    },
                    "result": {"element_count": rows, "unexpected_count": unexpected},
                },
            ],
        }
    )


class CountingGame:
    """v(S) = sum of member weights + a bonus when 'a' and 'b' are together."""

    def __init__(self, weights: dict[str, float], synergy: float = 0.0) -> None:
        self.weights, self.synergy, self.calls = weights, synergy, []

    def __call__(self, subset: frozenset[str]) -> float:
        self.calls.append(subset)
        bonus = self.synergy if {"a", "b"} <= subset else 0.0
        return sum(self.weights[i] for i in subset) + bonus


# ------------------------------------------------------------------------ marginal utility


def test_leave_one_out_costs_n_plus_one_evaluations() -> None:
    game = CountingGame({"a": 1.0, "b": 2.0, "c": 3.0}, synergy=0.5)
    estimate = leave_one_out(["c", "a", "b"], game)
    assert estimate.values == pytest.approx({"a": 1.5, "b": 2.5, "c": 3.0})
    assert estimate.evaluations == 4 == len(game.calls)


def test_exact_shapley_splits_synergy_equally_and_sums_to_grand_value() -> None:
    game = CountingGame({"a": 1.0, "b": 2.0, "c": 3.0}, synergy=0.5)
    estimate = exact_shapley(["a", "b", "c"], game)
    assert estimate.values == pytest.approx({"a": 1.25, "b": 2.25, "c": 3.0})
    assert sum(estimate.values.values()) == pytest.approx(game(frozenset("abc")))
    assert estimate.evaluations == 8


def test_tmc_shapley_stays_within_budget_and_approximates_exact() -> None:
    weights = {f"n{i}": float(i + 1) for i in range(8)}
    game = CountingGame(weights)
    estimate = tmc_shapley(list(weights), game, max_evaluations=60, seed=0, tolerance=0.0)
    assert estimate.evaluations <= 60 and len(game.calls) == estimate.evaluations
    assert estimate.permutations >= 1
    # Additive game: each permutation gives the exact marginal, whatever the order.
    assert estimate.values == pytest.approx(weights)


def test_tmc_shapley_truncation_walks_more_permutations_on_the_same_budget() -> None:
    weights = {"big": 100.0, **{f"tiny{i}": 0.01 for i in range(7)}}
    full = tmc_shapley(list(weights), CountingGame(weights), max_evaluations=200, tolerance=0.0)
    cut = tmc_shapley(list(weights), CountingGame(weights), max_evaluations=200, tolerance=0.01)
    assert cut.permutations > full.permutations
    assert cut.evaluations <= 200 and full.evaluations <= 200
    assert cut.values["big"] == pytest.approx(100.0, rel=0.01)


def test_tmc_shapley_on_few_nodes_ends_and_converges_to_exact() -> None:
    game = CountingGame({"a": 1.0, "b": 2.0, "c": 3.0}, synergy=0.5)
    estimate = tmc_shapley(
        ["a", "b", "c"], game, max_evaluations=8, tolerance=0.0, max_permutations=600
    )
    assert estimate.permutations == 600 and estimate.evaluations <= 8
    assert estimate.values == pytest.approx({"a": 1.25, "b": 2.25, "c": 3.0}, abs=0.05)


def test_shapley_values_picks_exact_when_it_fits_and_tmc_otherwise() -> None:
    game = CountingGame({"a": 1.0, "b": 1.0, "c": 1.0})
    assert shapley_values(["a", "b", "c"], game, max_evaluations=8).method == "exact-shapley"
    assert shapley_values(["a", "b", "c"], game, max_evaluations=7).method == "tmc-shapley"


def test_budget_too_small_and_non_finite_evaluations_are_errors() -> None:
    game = CountingGame({"a": 1.0, "b": 1.0, "c": 1.0})
    with pytest.raises(ContributionError):
        tmc_shapley(["a", "b", "c"], game, max_evaluations=3)
    with pytest.raises(ContributionError):
        leave_one_out(["a", "b"], lambda subset: math.nan)


# ---------------------------------------------------------------------- compute reports


def test_cpu_per_sample_beyond_median_bound_is_clipped_and_flagged() -> None:
    reports = [
        NodeReport("a", 1000, train_seconds=10.0, cpu_seconds=10.0),
        NodeReport("b", 1000, train_seconds=11.0, cpu_seconds=11.0),
        NodeReport("c", 1000, train_seconds=12.0, cpu_seconds=500.0),
    ]
    wall, cpu, flags = check_compute(reports, ComputeLimits(max_rate_vs_median=3.0))
    assert cpu["c"] == pytest.approx(33.0)  # 3 × median rate (11 ms/sample) × 1000 samples
    assert flags["c"] == ["CPU_PER_SAMPLE_OUTLIER"]
    assert flags["a"] == flags["b"] == []
    assert wall == {"a": 10.0, "b": 11.0, "c": 12.0}


def test_impossible_reports_are_capped_or_zeroed() -> None:
    reports = [
        NodeReport("slow", 100, train_seconds=10_000.0, cpu_seconds=1.0),
        NodeReport("busy", 100, train_seconds=1.0, cpu_seconds=1_000.0),
        NodeReport("nan", 100, train_seconds=math.nan, cpu_seconds=1.0),
        NodeReport("empty", 0, train_seconds=5.0, cpu_seconds=5.0),
    ]
    limits = ComputeLimits(max_train_seconds=60.0, max_cores=4.0, max_rate_vs_median=1e9)
    wall, cpu, flags = check_compute(reports, limits)
    assert wall["slow"] == 60.0 and "TRAIN_TIME_CAPPED" in flags["slow"]
    assert cpu["busy"] == 4.0 and "CPU_EXCEEDS_WALL_TIME" in flags["busy"]
    assert wall["nan"] == cpu["nan"] == 0.0 and flags["nan"] == ["INVALID_COMPUTE_REPORT"]
    assert cpu["empty"] == 0.0 and flags["empty"] == ["COMPUTE_WITHOUT_EXAMPLES"]


# ------------------------------------------------------------------------------ rewards


def test_largest_remainder_sums_exactly_and_breaks_ties_by_node_id() -> None:
    assert allocate_tokens({"b": 1, "a": 1, "c": 1}, 100) == {"a": 34, "b": 33, "c": 33}
    assert allocate_tokens({"x": 2, "y": 1}, 1_000_000) == {"x": 666_667, "y": 333_333}
    rng = np.random.default_rng(0)
    for _ in range(50):
        scores = {f"n{i}": int(s) for i, s in enumerate(rng.integers(0, 10**9, size=7))}
        total = int(rng.integers(1, 10**7))
        assert sum(allocate_tokens(scores, total).values()) == total
    with pytest.raises(ContributionError):
        allocate_tokens({"a": 0, "b": 0}, 10)


def test_scores_combine_components_and_sum_to_the_total() -> None:
    reports = [
        NodeReport("a", 3000, 30.0, 30.0, _summary()),
        NodeReport("b", 1000, 10.0, 10.0, _summary()),
    ]
    game = CountingGame({"a": 0.1, "b": 0.1})
    result = contribution_scores(reports, total=1_000_000, utility=exact_shapley(["a", "b"], game))
    tokens = result.tokens()
    assert sum(tokens.values()) == 1_000_000
    # quantity/cpu/time: 3:1 (weight 0.6), utility 1:1 (weight 0.4) → a = 0.6·0.75 + 0.4·0.5
    assert tokens["a"] == pytest.approx(650_000, abs=1)
    assert result.to_json_dict()["evaluations"] == 4
    assert (
        result.sha256()
        == contribution_scores(
            reports, total=1_000_000, utility=exact_shapley(["a", "b"], game)
        ).sha256()
    )


def test_failed_or_missing_validation_earns_nothing() -> None:
    reports = [
        NodeReport("good", 100, 1.0, 1.0, _summary()),
        NodeReport("bad", 10_000, 100.0, 100.0, _summary(success=False, unexpected=5)),
        NodeReport("silent", 10_000, 100.0, 100.0, None),
    ]
    result = contribution_scores(reports, total=999)
    assert result.tokens() == {"bad": 0, "good": 999, "silent": 0}
    flags = {n.node_id: n.flags for n in result.nodes}
    assert flags["silent"] == ("NO_VALIDATION",)


def test_quality_scales_the_score() -> None:
    reports = [
        NodeReport("clean", 1000, 1.0, 1.0, _summary(rows=1000)),
        NodeReport("noisy", 1000, 1.0, 1.0, _summary(unexpected=200, rows=1000)),
    ]
    tokens = contribution_scores(reports, total=1800).tokens()
    assert tokens == {"clean": 1000, "noisy": 800}


def test_negative_utility_gets_no_utility_share_and_zero_components_reweight() -> None:
    reports = [
        NodeReport("a", 100, 0.0, 0.0, _summary()),
        NodeReport("b", 100, 0.0, 0.0, _summary()),
    ]
    harmful = exact_shapley(
        ["a", "b"], lambda s: (1.0 if "a" in s else 0.0) - (0.5 if "b" in s else 0.0)
    )
    result = contribution_scores(reports, total=100, utility=harmful, weights=ContributionWeights())
    shares = {n.node_id: dict(n.shares) for n in result.nodes}
    assert shares["b"]["utility"] == 0.0 and "cpu" not in shares["a"]  # zero compute everywhere
    assert result.tokens()["a"] > result.tokens()["b"]


def test_bagging_round_utility_ranks_a_label_noise_node_last() -> None:
    """Marginal utility measured on held-out flights through the bagging strategy."""
    import xgboost as xgb
    from sklearn.metrics import roc_auc_score

    from federated.contribution import aggregation_evaluator
    from federated.datasets import holdout_split, load_flights, partition_natural
    from federated.trees import XGBBagging, bagging_local_update
    from federated.types import FitResult, GlobalModel

    data = load_flights(sample_size=8_000, seed=4)
    pool_rows, test_rows = holdout_split(data, test_fraction=0.25, seed=0)
    pool = data.subset(pool_rows)
    parts = partition_natural(pool.keys["origin"])
    params = {"objective": "binary:logistic", "max_depth": 3, "nthread": 1, "seed": 0}
    rng = np.random.default_rng(0)
    results = []
    for node, rows in parts.items():
        y = pool.y[rows] if node != "LGA" else rng.permutation(pool.y[rows])  # LGA: noise
        update = bagging_local_update(b"", pool.X[rows], y, params, local_rounds=4)
        results.append(FitResult(node, update, len(rows)))
    test = xgb.DMatrix(data.X[test_rows])

    def auc(model: GlobalModel) -> float:
        if not model.parameters:
            return 0.5
        booster = xgb.Booster()
        booster.load_model(bytearray(model.parameters))  # type: ignore[arg-type]
        return float(roc_auc_score(data.y[test_rows], booster.predict(test)))

    current = GlobalModel("xgboost-classifier", b"")
    evaluate = aggregation_evaluator(XGBBagging(), 1, current, results, auc)
    utility = exact_shapley(list(parts), evaluate)
    assert utility.evaluations == 8
    assert min(utility.values, key=utility.values.get) == "LGA"
    reports = [NodeReport(r.node_id, r.num_examples, 1.0, 1.0, _summary()) for r in results]
    tokens = contribution_scores(reports, total=1_000_000, utility=utility).tokens()
    assert min(tokens, key=tokens.get) == "LGA"
