"""Aggregation math: pure functions over the nodes' parameter lists.

``updates`` is always a sequence of N parameter lists, one per node, each a list of layer
arrays with the same shapes in the same order. Functions return new arrays and never modify
their inputs; they raise ``ValueError`` on malformed input (strategies screen updates first
and turn problems into typed, per-node errors).

Speed: aggregation is memory-bound, so the cost to beat is reading the N updates once.
Each layer is walked in blocks; a block's accumulator (or its N × block stack) stays in the
CPU cache while the N inputs stream in, so every input byte is read from RAM once and nothing
N × P-sized is ever allocated. Everything is single-threaded numpy: no BLAS threads to
oversubscribe the cores that nodes' training shares with the coordinator. Flower's ``aggregate_inplace`` instead multiplies and adds
whole layers, streaming the accumulator through RAM once per node.

Precision: a layer is worked on in float32 when all its inputs are float32 (torch models
train in float32, so float64 would only double the memory traffic; the relative error of an
N-term float32 weighted sum, at most about N·2⁻²⁴, is far below any update), otherwise in
float64.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from federated.types import NDArray, NDArrays

Updates = Sequence[Sequence[NDArray]]

# Bytes per block of a running sum (accumulator and temporary each): small enough for the
# two to stay in cache, large enough that the per-call overhead of numpy is a few percent.
SUM_BLOCK_BYTES = 1 << 20
# Bytes of an N × block stack for order statistics and distances (kept in L2/L3).
STACK_BYTES = 2 << 20
# Above this many nodes a sorting network has too many comparators; numpy's sort wins.
MAX_NETWORK_NODES = 32


def weighted_mean(updates: Updates, weights: Sequence[float] | NDArray) -> NDArrays:
    """Coordinate-wise weighted mean ``Σ wᵢ·xᵢ / Σ wᵢ`` (FedAvg when wᵢ are sample counts)."""
    shapes = layer_shapes(updates)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (len(updates),):
        raise ValueError(f"need one weight per update, got {w.shape} for {len(updates)}")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights must be finite, non-negative and not all zero")
    w = w / w.sum()
    used = [i for i in range(len(updates)) if w[i] != 0.0]
    result: NDArrays = []
    for layer, shape in enumerate(shapes):
        flats, dtype = _flat_layer(updates, layer)
        # Weights in the working dtype: a float64 scalar would make every float32 ufunc
        # call cast (3× slower).
        scaled = w.astype(dtype)
        out = np.empty(_size(shape), dtype=dtype)
        block = SUM_BLOCK_BYTES // dtype.itemsize
        scratch = np.empty(min(block, out.size), dtype=dtype)
        for start in range(0, out.size, block):
            stop = min(start + block, out.size)
            acc, tmp = out[start:stop], scratch[: stop - start]
            np.multiply(flats[used[0]][start:stop], scaled[used[0]], out=acc)
            for i in used[1:]:
                np.multiply(flats[i][start:stop], scaled[i], out=tmp)
                np.add(acc, tmp, out=acc)
        result.append(out.reshape(shape))
    return result


def coordinate_median(updates: Updates) -> NDArrays:
    """Coordinate-wise median, unweighted (equals ``np.median(stack, axis=0)``)."""
    n = len(updates)

    def median(rows: NDArray, out: NDArray) -> None:
        if n % 2:
            out[...] = rows[n // 2]
        else:
            # (a + b) * 0.5 is what np.median computes for an even count, bit for bit.
            np.add(rows[n // 2 - 1], rows[n // 2], out=out)
            out *= 0.5

    return _reduce_sorted(updates, median)


def trimmed_mean(updates: Updates, proportion: float) -> NDArrays:
    """Coordinate-wise mean after dropping ``int(proportion·N)`` values at each end.

    The same cut as ``scipy.stats.trim_mean(stack, proportion, axis=0)``.
    """
    n = len(updates)
    if not 0.0 <= proportion < 0.5:
        raise ValueError(f"proportion must be in [0, 0.5), got {proportion}")
    cut = int(proportion * n)
    if n - 2 * cut < 1:
        raise ValueError(f"trimming {cut} of {n} from each end leaves nothing")

    def mean_of_middle(rows: NDArray, out: NDArray) -> None:
        np.sum(rows[cut : n - cut], axis=0, out=out)
        out /= n - 2 * cut

    return _reduce_sorted(updates, mean_of_middle)


def pairwise_sq_distances(updates: Updates) -> NDArray:
    """N × N matrix of squared Euclidean distances between the flattened updates."""
    shapes = layer_shapes(updates)
    n = len(updates)
    gram = np.zeros((n, n), dtype=np.float64)
    for layer, shape in enumerate(shapes):
        flats, _ = _flat_layer(updates, layer)
        block = max(1, STACK_BYTES // (8 * n))
        stack = np.empty((n, block), dtype=np.float64)
        for start in range(0, _size(shape), block):
            stop = min(start + block, _size(shape))
            rows = _fill(stack, flats, start, stop)
            # Distances do not change under a shared shift; centring each coordinate on the
            # nodes' mean keeps the Gram identity below from cancelling catastrophically.
            rows -= rows.mean(axis=0)
            gram += rows @ rows.T
    diag = np.diag(gram)
    distances = diag[:, None] + diag[None, :] - 2.0 * gram
    np.fill_diagonal(distances, 0.0)
    return np.maximum(distances, 0.0)


def krum_scores(distances: NDArray, num_malicious: int) -> NDArray:
    """Krum score of each node: the sum of its ``N − f − 2`` smallest distances to others."""
    n = distances.shape[0]
    if distances.shape != (n, n):
        raise ValueError("distances must be a square matrix")
    if n == 1:
        return np.zeros(1)
    closest = min(max(1, n - num_malicious - 2), n - 1)
    others = np.where(np.eye(n, dtype=bool), np.inf, distances)
    nearest = np.partition(others, closest - 1, axis=1)[:, :closest]
    scores: NDArray = nearest.sum(axis=1)
    return scores


def multi_krum_select(distances: NDArray, num_malicious: int, num_to_keep: int) -> NDArray:
    """Indices (ascending) of the ``num_to_keep`` nodes with the lowest Krum scores."""
    n = distances.shape[0]
    if not 1 <= num_to_keep <= n:
        raise ValueError(f"num_to_keep must be in [1, {n}], got {num_to_keep}")
    scores = krum_scores(distances, num_malicious)
    chosen: NDArray = np.sort(np.argsort(scores, kind="stable")[:num_to_keep])
    return chosen


def subtract(a: Sequence[NDArray], b: Sequence[NDArray]) -> NDArrays:
    """Layer-wise ``a − b`` in float64 (a model delta, or a pseudo-gradient)."""
    if len(a) != len(b):
        raise ValueError(f"{len(a)} layers against {len(b)}")
    return [np.subtract(x, y, dtype=np.float64) for x, y in zip(a, b, strict=True)]


def global_norm(arrays: Sequence[NDArray]) -> float:
    """L2 norm of all layers taken together as one vector."""
    total = 0.0
    for a in arrays:
        flat = np.ravel(a).astype(np.float64, copy=False)
        total += float(np.dot(flat, flat))
    return float(np.sqrt(total))


def adam_moments(
    delta: Sequence[NDArray],
    m: Sequence[NDArray],
    v: Sequence[NDArray],
    *,
    beta_1: float,
    beta_2: float,
) -> tuple[NDArrays, NDArrays]:
    """FedAdam's moments: ``m ← β₁m + (1−β₁)Δ``, ``v ← β₂v + (1−β₂)Δ²``."""
    new_m = [beta_1 * mi + (1.0 - beta_1) * d for mi, d in zip(m, delta, strict=True)]
    new_v = [beta_2 * vi + (1.0 - beta_2) * d * d for vi, d in zip(v, delta, strict=True)]
    return new_m, new_v


def yogi_moments(
    delta: Sequence[NDArray],
    m: Sequence[NDArray],
    v: Sequence[NDArray],
    *,
    beta_1: float,
    beta_2: float,
) -> tuple[NDArrays, NDArrays]:
    """FedYogi's moments: ``v ← v − (1−β₂)Δ²·sign(v − Δ²)`` (additive, so v grows slowly)."""
    new_m = [beta_1 * mi + (1.0 - beta_1) * d for mi, d in zip(m, delta, strict=True)]
    new_v = []
    for vi, d in zip(v, delta, strict=True):
        d2 = d * d
        new_v.append(vi - (1.0 - beta_2) * d2 * np.sign(vi - d2))
    return new_m, new_v


def adaptive_step(
    current: Sequence[NDArray],
    m: Sequence[NDArray],
    v: Sequence[NDArray],
    *,
    eta: float,
    tau: float,
) -> NDArrays:
    """Server step of Reddi et al.'s adaptive optimizers: ``x + η·m / (√v + τ)``."""
    return [
        np.asarray(x, dtype=np.float64) + eta * mi / (np.sqrt(vi) + tau)
        for x, mi, vi in zip(current, m, v, strict=True)
    ]


def layer_shapes(updates: Updates) -> list[tuple[int, ...]]:
    """The shared layer shapes of ``updates``; ``ValueError`` if they differ or are empty."""
    if not updates:
        raise ValueError("no updates to aggregate")
    shapes = [tuple(np.shape(a)) for a in updates[0]]
    for i, update in enumerate(updates[1:], start=1):
        other = [tuple(np.shape(a)) for a in update]
        if other != shapes:
            raise ValueError(f"update {i} has layer shapes {other}, expected {shapes}")
    return shapes


def _reduce_sorted(updates: Updates, reduce: Callable[[NDArray, NDArray], None]) -> NDArrays:
    """Sort each coordinate across nodes block by block, then ``reduce(sorted_rows, out)``."""
    shapes = layer_shapes(updates)
    n = len(updates)
    result: NDArrays = []
    for layer, shape in enumerate(shapes):
        flats, dtype = _flat_layer(updates, layer)
        out = np.empty(_size(shape), dtype=dtype)
        block = max(1, STACK_BYTES // (dtype.itemsize * n))
        stack = np.empty((n, min(block, max(out.size, 1))), dtype=dtype)
        for start in range(0, out.size, block):
            stop = min(start + block, out.size)
            rows = _fill(stack, flats, start, stop)
            _sort_rows(rows)
            reduce(rows, out[start:stop])
        result.append(out.reshape(shape))
    return result


def _sort_rows(rows: NDArray) -> None:
    """Sort ``rows`` along axis 0 in place.

    For a few nodes a sorting network wins by far: each comparator is one vectorized
    minimum/maximum over a whole block, where ``sort(axis=0)`` sorts every column on its
    own (about 3× slower at 10 nodes).
    """
    n = rows.shape[0]
    if n > MAX_NETWORK_NODES:
        rows.sort(axis=0)
        return
    low = np.empty_like(rows[0])
    for i, j in _comparators(n):
        np.minimum(rows[i], rows[j], out=low)
        np.maximum(rows[i], rows[j], out=rows[j])
        rows[i] = low


@lru_cache(maxsize=MAX_NETWORK_NODES)
def _comparators(n: int) -> tuple[tuple[int, int], ...]:
    """Batcher's merge-exchange sorting network for n inputs (Knuth, TAOCP 5.2.2, M)."""
    pairs: list[tuple[int, int]] = []
    if n < 2:
        return ()
    t = (n - 1).bit_length()
    p = 1 << (t - 1)
    while p > 0:
        q, r, d = 1 << (t - 1), 0, p
        while d > 0:
            pairs.extend((i, i + d) for i in range(n - d) if i & p == r)
            d, q, r = q - p, q >> 1, p
        p >>= 1
    return tuple(pairs)


def _flat_layer(updates: Updates, layer: int) -> tuple[list[NDArray], np.dtype[Any]]:
    flats = [np.ravel(u[layer]) for u in updates]
    dtype = (
        np.dtype(np.float32) if all(f.dtype == np.float32 for f in flats) else np.dtype(np.float64)
    )
    return flats, dtype


def _fill(stack: NDArray, flats: list[NDArray], start: int, stop: int) -> NDArray:
    rows = stack[:, : stop - start]
    for row, flat in zip(rows, flats, strict=True):
        row[...] = flat[start:stop]
    return rows


def _size(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64))


__all__ = [
    "Updates",
    "adam_moments",
    "adaptive_step",
    "coordinate_median",
    "global_norm",
    "krum_scores",
    "layer_shapes",
    "multi_krum_select",
    "pairwise_sq_distances",
    "subtract",
    "trimmed_mean",
    "weighted_mean",
    "yogi_moments",
]
