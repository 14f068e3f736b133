"""Truncated Monte-Carlo Shapley over many nodes: prefixes are cached by position masks,
so the subsets it evaluates must still be exactly each permutation's prefixes, and a round
whose model scores as its base (every permutation truncated at once) walks its whole
``max_permutations`` with two evaluations."""

from __future__ import annotations

import itertools

import numpy as np

from federated.contribution import tmc_shapley

NODES = [f"org{i}/node{i % 3}" for i in range(200)]


def test_an_additive_utility_gets_each_nodes_own_weight_exactly() -> None:
    # v(S) = Σ w_i: every marginal is w_i whatever the order, so the estimate is exact
    # only if every evaluated subset is the prefix it stands for.
    weights = dict(zip(NODES, np.random.default_rng(3).exponential(size=len(NODES)), strict=True))
    seen: list[frozenset[str]] = []

    def value(subset: frozenset[str]) -> float:
        seen.append(subset)
        return float(sum(weights[n] for n in subset))

    estimate = tmc_shapley(NODES, value, max_evaluations=len(NODES) + 1, tolerance=0.0)
    assert estimate.permutations == 1
    assert estimate.evaluations == len(NODES) + 1 == len(set(seen))
    assert sorted(len(s) for s in seen) == list(range(len(NODES) + 1))
    nested = sorted(seen, key=len)  # one chain of prefixes, each inside the next
    assert all(a < b for a, b in itertools.pairwise(nested))
    for node in NODES:
        assert abs(estimate.values[node] - weights[node]) < 1e-9


def test_a_model_no_better_than_its_base_truncates_every_permutation_at_once() -> None:
    calls: list[frozenset[str]] = []

    def flat(subset: frozenset[str]) -> float:
        calls.append(subset)
        return 0.9

    estimate = tmc_shapley(NODES, flat, max_evaluations=len(NODES) + 1, max_permutations=1000)
    assert estimate.permutations == 1000
    assert estimate.evaluations == 2
    assert calls == [frozenset(), frozenset(NODES)]
    assert set(estimate.values.values()) == {0.0}
