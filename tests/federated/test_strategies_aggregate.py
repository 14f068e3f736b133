"""The aggregation math against naive or reference implementations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import trim_mean

from federated.strategies import aggregate as agg


def make_updates(n: int, *, seed: int = 0, dtype: type = np.float64) -> list[list[np.ndarray]]:
    """n nodes × three layers, one of them larger than a block and one scalar-shaped."""
    rng = np.random.default_rng(seed)
    big = agg.SUM_BLOCK_BYTES // 4 + 123  # more than one block, float32 or float64
    return [
        [
            rng.standard_normal((3, 5)).astype(dtype),
            rng.standard_normal(big).astype(dtype),
            rng.standard_normal(()).astype(dtype),
        ]
        for _ in range(n)
    ]


def stack(updates, layer):
    return np.stack([np.asarray(u[layer], dtype=np.float64) for u in updates])


@pytest.mark.parametrize("n", [1, 2, 3, 10, 33])
def test_weighted_mean_equals_naive_weighted_average(n):
    updates = make_updates(n)
    weights = np.random.default_rng(1).integers(1, 500, n)
    result = agg.weighted_mean(updates, weights)
    for layer in range(3):
        naive = sum(w * u[layer] for w, u in zip(weights, updates, strict=True)) / weights.sum()
        np.testing.assert_allclose(result[layer], naive, rtol=1e-12, atol=1e-12)
        assert result[layer].shape == updates[0][layer].shape
        assert result[layer].dtype == np.float64


def test_weighted_mean_works_in_float32_for_float32_inputs_and_float64_for_mixed():
    updates = make_updates(4, dtype=np.float32)
    result = agg.weighted_mean(updates, [1, 2, 3, 4])
    naive = sum(w * stack(updates, 1)[i] for i, w in enumerate([1, 2, 3, 4])) / 10
    assert result[1].dtype == np.float32
    np.testing.assert_allclose(result[1], naive, rtol=1e-5, atol=1e-6)
    updates[0][1] = updates[0][1].astype(np.float64)
    assert agg.weighted_mean(updates, [1, 2, 3, 4])[1].dtype == np.float64


def test_weighted_mean_ignores_zero_weights_and_leaves_inputs_untouched():
    updates = make_updates(3)
    copies = [[a.copy() for a in u] for u in updates]
    result = agg.weighted_mean(updates, [0, 5, 0])
    for layer in range(3):
        np.testing.assert_array_equal(result[layer], updates[1][layer])
    for original, copy in zip(updates, copies, strict=True):
        for a, b in zip(original, copy, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "weights", [[1, 2], [1, -1, 1], [0, 0, 0], [1, np.nan, 1]], ids=["count", "neg", "zero", "nan"]
)
def test_weighted_mean_refuses_bad_weights(weights):
    with pytest.raises(ValueError, match="weight"):
        agg.weighted_mean(make_updates(3), weights)


def test_mismatched_layer_shapes_are_refused():
    updates = make_updates(3)
    updates[2][0] = np.zeros((5, 3))
    with pytest.raises(ValueError, match="update 2 has layer shapes"):
        agg.weighted_mean(updates, [1, 1, 1])
    with pytest.raises(ValueError, match="no updates"):
        agg.coordinate_median([])


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 10, 16, 31, 32, 33, 40])
def test_coordinate_median_equals_np_median(n):
    updates = make_updates(n, seed=n)
    result = agg.coordinate_median(updates)
    for layer in range(3):
        np.testing.assert_array_equal(result[layer], np.median(stack(updates, layer), axis=0))


def test_median_of_float32_stays_float32_and_matches():
    updates = make_updates(6, dtype=np.float32)
    result = agg.coordinate_median(updates)
    assert result[1].dtype == np.float32
    expected = np.median(np.stack([u[1] for u in updates]), axis=0)
    np.testing.assert_array_equal(result[1], expected)


@pytest.mark.parametrize(
    ("n", "proportion"), [(1, 0.0), (5, 0.2), (10, 0.3), (10, 0.1), (33, 0.45)]
)
def test_trimmed_mean_equals_scipy_trim_mean(n, proportion):
    updates = make_updates(n, seed=n)
    result = agg.trimmed_mean(updates, proportion)
    for layer in range(3):
        expected = trim_mean(stack(updates, layer), proportion, axis=0)
        np.testing.assert_allclose(result[layer], expected, rtol=1e-12, atol=1e-12)


def test_trimmed_mean_refuses_a_cut_that_leaves_nothing():
    with pytest.raises(ValueError, match="proportion"):
        agg.trimmed_mean(make_updates(4), 0.5)


@pytest.mark.parametrize("n", range(2, 34))
def test_sorting_network_sorts_every_column(n):
    rng = np.random.default_rng(n)
    rows = rng.integers(-3, 4, size=(n, 257)).astype(np.float64)  # ties included
    expected = np.sort(rows, axis=0)
    agg._sort_rows(rows)
    np.testing.assert_array_equal(rows, expected)


def test_pairwise_distances_equal_naive_distances_even_far_from_the_origin():
    updates = make_updates(6)
    # A large shared offset is where a plain Gram identity cancels catastrophically.
    shifted = [[a + 1e4 for a in u] for u in updates]
    flat = np.stack([np.concatenate([np.ravel(a) for a in u]) for u in updates])
    naive = ((flat[:, None, :] - flat[None, :, :]) ** 2).sum(axis=-1)
    np.testing.assert_allclose(agg.pairwise_sq_distances(updates), naive, rtol=1e-10)
    np.testing.assert_allclose(agg.pairwise_sq_distances(shifted), naive, rtol=1e-6)


def naive_krum_scores(distances, f):
    n = len(distances)
    closest = max(1, n - f - 2)
    return np.array([sorted(np.delete(distances[i], i))[:closest] for i in range(n)]).sum(axis=1)


@pytest.mark.parametrize(("n", "f"), [(5, 1), (10, 3), (7, 0), (4, 3)])
def test_krum_scores_equal_the_definition(n, f):
    distances = agg.pairwise_sq_distances(make_updates(n, seed=n))
    np.testing.assert_allclose(agg.krum_scores(distances, f), naive_krum_scores(distances, f))


def test_multi_krum_keeps_the_honest_cluster():
    rng = np.random.default_rng(3)
    honest = [[rng.normal(0.0, 0.1, 50)] for _ in range(7)]
    attackers = [[rng.normal(5.0, 0.1, 50)] for _ in range(3)]
    updates = attackers[:1] + honest + attackers[1:]
    chosen = agg.multi_krum_select(agg.pairwise_sq_distances(updates), 3, 7)
    assert chosen.tolist() == [1, 2, 3, 4, 5, 6, 7]
    with pytest.raises(ValueError, match="num_to_keep"):
        agg.multi_krum_select(agg.pairwise_sq_distances(updates), 3, 11)


def test_adam_and_yogi_moments_follow_their_formulas():
    delta = [np.array([1.0, -2.0, 0.5])]
    m = [np.array([0.1, 0.1, 0.1])]
    v = [np.array([0.5, 5.0, 0.25])]
    am, av = agg.adam_moments(delta, m, v, beta_1=0.9, beta_2=0.99)
    np.testing.assert_allclose(am[0], 0.9 * m[0] + 0.1 * delta[0])
    np.testing.assert_allclose(av[0], 0.99 * v[0] + 0.01 * delta[0] ** 2)
    ym, yv = agg.yogi_moments(delta, m, v, beta_1=0.9, beta_2=0.99)
    np.testing.assert_allclose(ym[0], am[0])
    # v < Δ² grows by (1−β₂)Δ²; v > Δ² shrinks by it; v = Δ² stays.
    np.testing.assert_allclose(yv[0], [0.5 + 0.01 * 1.0, 5.0 - 0.01 * 4.0, 0.25])
    stepped = agg.adaptive_step([np.zeros(3)], am, av, eta=0.1, tau=1e-3)
    np.testing.assert_allclose(stepped[0], 0.1 * am[0] / (np.sqrt(av[0]) + 1e-3))


def test_global_norm_and_subtract():
    a = [np.array([[3.0]]), np.array([4.0], dtype=np.float32)]
    assert agg.global_norm(a) == pytest.approx(5.0)
    diff = agg.subtract(a, [np.array([[1.0]]), np.array([1.0])])
    assert [d.tolist() for d in diff] == [[[2.0]], [3.0]]
    assert all(d.dtype == np.float64 for d in diff)
