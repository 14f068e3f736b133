"""Complete linkage for many nodes keeps its merges when computed incrementally: the same
bipartitions as the definition (rescan every pair of clusters, merge the most similar,
ties to the first pair), on random, tied and two-group similarities."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from federated.divergence import _linkage_bipartition, cosine_matrix


def by_definition(similarity: np.ndarray, min_size: int) -> tuple[list[int], list[int]] | None:
    clusters: list[list[int]] = [[i] for i in range(len(similarity))]
    while len(clusters) > 2:
        best: tuple[float, int, int] | None = None
        for i, j in itertools.combinations(range(len(clusters)), 2):
            link = float(similarity[np.ix_(clusters[i], clusters[j])].min())
            if best is None or link > best[0]:
                best = (link, i, j)
        assert best is not None
        clusters[best[1]] += clusters[best[2]]
        del clusters[best[2]]
    first, second = sorted(clusters[0]), sorted(clusters[1])
    return None if min(len(first), len(second)) < min_size else (first, second)


@pytest.mark.parametrize("seed", range(40))
def test_incremental_linkage_merges_as_the_definition_does(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 30))
    deltas = rng.normal(size=(n, 6))
    if seed % 3 == 0:
        deltas = np.round(deltas)  # many equal similarities: ties decide
    if seed % 4 == 0:
        deltas[: n // 2] += 3.0  # two groups pulling apart
    similarity = cosine_matrix(deltas)
    if seed % 5 == 0:
        similarity = np.round(similarity, 1)
    names = [f"org{i:02d}/node0" for i in range(n)]
    min_size = int(rng.integers(1, 4))
    expected = by_definition(similarity, min_size)
    got = _linkage_bipartition(similarity, names, min_size)
    if expected is None:
        assert got is None
        return
    assert got is not None
    want = sorted((tuple(names[i] for i in expected[0]), tuple(names[i] for i in expected[1])))
    assert got.groups == (want[0], want[1])
