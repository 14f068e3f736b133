"""The divergence tests on synthetic updates: clusters found, agreement and noise left alone."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federated.divergence import (
    Bipartition,
    DivergenceError,
    DivergenceReport,
    LossCriteria,
    SplitCriteria,
    best_bipartition,
    cosine_matrix,
    detect_split,
    flatten_delta,
    loss_outliers,
    persistent_split,
)

DIM = 200


def _deltas(groups: dict[str, np.ndarray], noise: float, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {n: d + noise * rng.standard_normal(DIM) for n, d in groups.items()}


def _two_tasks(noise: float = 0.3, per_group: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """Two groups of nodes whose data pull the shared model in opposite directions."""
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(DIM), rng.standard_normal(DIM)
    direction = {"a": a - b, "b": b - a}  # the joint optimum sits between them: stationary
    nodes = {f"{g}{i}": direction[g] for g in "ab" for i in range(per_group)}
    return _deltas(nodes, noise * float(np.linalg.norm(a - b)) / np.sqrt(DIM), seed + 1)


def test_two_groups_pulling_apart_are_split_along_the_groups() -> None:
    report = detect_split(_two_tasks())
    assert report.split, report.lines
    assert report.bipartition is not None
    assert report.bipartition.groups == (("a0", "a1"), ("b0", "b1"))
    assert report.norm_ratio < 0.2 and report.bipartition.cross_max < 0
    assert report.lines[-1] == "split" and "best bipartition {a0, a1} | {b0, b1}" in report.lines[1]
    assert report.to_json()["bipartition"]["groups"] == [["a0", "a1"], ["b0", "b1"]]


def test_nodes_that_agree_are_not_split() -> None:
    rng = np.random.default_rng(3)
    common = rng.standard_normal(DIM)
    report = detect_split(_deltas({f"n{i}": common for i in range(6)}, noise=0.5))
    assert not report.split
    assert report.norm_ratio > 0.75 and "they still agree" in report.lines[0]


def test_noise_around_a_stationary_point_is_not_a_split() -> None:
    """Small mean update, but no structure: every pair is about orthogonal, so no group is
    closer to itself than to the other (no gap)."""
    report = detect_split(_deltas({f"n{i}": np.zeros(DIM) for i in range(6)}, noise=1.0, seed=5))
    assert report.norm_ratio < 0.75
    assert report.bipartition is not None and report.bipartition.gap < 0.2
    assert not report.split


def test_a_lone_outlier_is_not_a_group_of_its_own_by_default() -> None:
    deltas = _two_tasks(per_group=2)
    del deltas["b1"]  # three nodes: {a0, a1} against b0 alone
    report = detect_split(deltas)
    assert report.bipartition is None and not report.split
    assert "no bipartition leaves 2 nodes on each side" in report.lines[1]
    alone = detect_split(deltas, criteria=SplitCriteria(min_cluster_size=1))
    assert alone.split and alone.bipartition is not None
    assert alone.bipartition.groups == (("a0", "a1"), ("b0",))


def test_weights_enter_the_mean_update() -> None:
    deltas = _two_tasks()
    even = detect_split(deltas)
    skewed = detect_split(deltas, weights={"a0": 100, "a1": 100, "b0": 1, "b1": 1})
    assert skewed.mean_norm > 5 * even.mean_norm  # the big group dominates: not stationary
    assert not skewed.split
    with pytest.raises(DivergenceError):
        detect_split(deltas, weights=dict.fromkeys(deltas, 0.0))


def test_the_same_split_must_persist() -> None:
    first = detect_split(_two_tasks(seed=0))
    second = detect_split(_two_tasks(seed=7))
    assert persistent_split([first, second], patience=2) == second.bipartition
    assert persistent_split([second], patience=2) is None
    calm = detect_split(_deltas({f"n{i}": np.ones(DIM) for i in range(4)}, noise=0.1))
    assert persistent_split([first, calm], patience=2) is None
    other = DivergenceReport(
        nodes=first.nodes,
        similarity=first.similarity,
        mean_norm=0.0,
        max_norm=1.0,
        bipartition=Bipartition((("a0", "b0"), ("a1", "b1")), -0.5, 0.5),
        split=True,
    )
    assert persistent_split([first, other], patience=2) is None


def test_many_nodes_are_split_by_complete_linkage() -> None:
    report = detect_split(_two_tasks(per_group=9))  # 18 nodes: beyond the exhaustive search
    assert report.split and report.bipartition is not None
    assert report.bipartition.groups == (
        tuple(f"a{i}" for i in range(9)),
        tuple(f"b{i}" for i in range(9)),
    )


@settings(max_examples=40, deadline=None)
@given(st.integers(3, 7), st.integers(0, 10_000))
def test_the_exhaustive_bipartition_minimizes_the_cross_similarity(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    similarity = cosine_matrix(rng.standard_normal((n, 5)))
    names = [f"n{i}" for i in range(n)]
    found = best_bipartition(similarity, names)
    assert found is not None
    best = min(
        float(similarity[np.ix_(first, [i for i in range(n) if i not in first])].max())
        for size in range(1, n)
        for first in itertools.combinations(range(n), size)
    )
    assert found.cross_max == pytest.approx(best)


def test_flattened_deltas_need_matching_shapes() -> None:
    base = [np.zeros((2, 3)), np.ones(4)]
    delta = flatten_delta(base, [np.ones((2, 3)), np.full(4, 3.0)])
    assert delta.tolist() == [1.0] * 6 + [2.0] * 4
    with pytest.raises(DivergenceError):
        flatten_delta(base, [np.ones((3, 2)), np.ones(4)])
    with pytest.raises(DivergenceError):
        flatten_delta(base, [np.ones((2, 3))])
    assert cosine_matrix(np.zeros((2, 3))).tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_a_node_whose_loss_stays_far_off_is_an_outlier() -> None:
    typical = {"a": 0.50, "b": 0.52, "c": 0.48, "d": 0.51}
    odd = {**typical, "e": 1.4}
    assert loss_outliers([odd, odd, odd]).keys() == {"e"}
    assert "robust z" in loss_outliers([odd, odd, odd])["e"]
    assert loss_outliers([typical, odd, odd]) == {}  # two rounds of three
    assert loss_outliers([odd, odd], LossCriteria(patience=2)).keys() == {"e"}
    # A tiny spread among the others does not make a small difference an outlier.
    close = {"a": 0.500, "b": 0.501, "c": 0.500, "d": 0.501, "e": 0.55}
    assert loss_outliers([close] * 3) == {}
    assert loss_outliers([{"a": 1.0, "b": 9.0}] * 3) == {}  # two nodes: neither is odd
