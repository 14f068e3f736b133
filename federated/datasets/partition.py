"""Split a dataset's rows among nodes: by a natural key, by Dirichlet label skew, or IID.

Every partitioner is seeded, returns ``{node_id: sorted row indices}`` with every row in
exactly one partition, and raises :class:`EmptyPartitionError` rather than hand a node no
rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from federated.errors import DatasetError, EmptyPartitionError
from federated.types import NDArray

Partition = dict[str, NDArray]


def check_partition(partition: Mapping[str, NDArray], n_rows: int, *, min_rows: int = 1) -> None:
    """Raise unless ``partition`` covers rows ``0..n_rows-1`` exactly once, each node with at
    least ``min_rows``."""
    for node_id, rows in partition.items():
        if len(rows) < min_rows:
            raise EmptyPartitionError(
                f"partition has {len(rows)} rows, fewer than {min_rows}", node_id=node_id
            )
    joined = np.concatenate([np.asarray(r, dtype=np.int64) for r in partition.values()])
    if joined.size != n_rows or not np.array_equal(np.sort(joined), np.arange(n_rows)):
        raise DatasetError("partition does not cover every row exactly once")


def _unique_ids(node_ids: Sequence[str]) -> list[str]:
    ids = list(node_ids)
    if not ids or len(set(ids)) != len(ids):
        raise DatasetError(f"node ids must be non-empty and unique, got {ids}")
    return ids


def partition_iid(n_rows: int, node_ids: Sequence[str], *, seed: int) -> Partition:
    """Shuffle and cut into near-equal parts (sizes differ by at most one)."""
    ids = _unique_ids(node_ids)
    order = np.random.default_rng(seed).permutation(n_rows)
    parts = {
        nid: np.sort(chunk) for nid, chunk in zip(ids, np.array_split(order, len(ids)), strict=True)
    }
    check_partition(parts, n_rows)
    return parts


def partition_natural(keys: NDArray, *, node_of: Mapping[str, str] | None = None) -> Partition:
    """One partition per key value (``origin``, ``subject``…), or per node in ``node_of``,
    which maps key values to node ids and must cover every value present."""
    values = np.asarray(keys).astype(str)
    if values.size == 0:
        raise EmptyPartitionError("no rows to partition")
    present = sorted(set(values.tolist()))
    mapping = {v: v for v in present} if node_of is None else dict(node_of)
    missing = [v for v in present if v not in mapping]
    if missing:
        raise DatasetError(f"key values without a node: {missing}")
    node_per_row = np.array([mapping[v] for v in values.tolist()])
    parts = {
        nid: np.flatnonzero(node_per_row == nid).astype(np.int64)
        for nid in sorted(set(mapping[v] for v in present))
    }
    check_partition(parts, values.size)
    return parts


def partition_dirichlet(
    y: NDArray,
    node_ids: Sequence[str],
    *,
    alpha: float,
    seed: int,
    min_rows: int = 1,
    max_attempts: int = 20,
) -> Partition:
    """Label skew: each class is shared among nodes in proportions drawn from
    Dirichlet(alpha); small alpha gives each node few classes, large alpha tends to IID.

    Draws again (from the same seeded generator) while a node gets fewer than ``min_rows``;
    after ``max_attempts`` the smallest node's :class:`EmptyPartitionError` is raised.
    """
    if alpha <= 0:
        raise DatasetError(f"alpha must be positive, got {alpha}")
    ids = _unique_ids(node_ids)
    labels = np.asarray(y)
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    sizes: dict[str, int] = {}
    for _ in range(max_attempts):
        buckets: list[list[NDArray]] = [[] for _ in ids]
        for c in classes:
            rows = rng.permutation(np.flatnonzero(labels == c))
            shares = rng.dirichlet(np.full(len(ids), alpha))
            cuts = (np.cumsum(shares)[:-1] * rows.size).astype(np.int64)
            for bucket, chunk in zip(buckets, np.split(rows, cuts), strict=True):
                bucket.append(chunk)
        parts = {
            nid: np.sort(np.concatenate(b)).astype(np.int64)
            for nid, b in zip(ids, buckets, strict=True)
        }
        sizes = {nid: len(rows) for nid, rows in parts.items()}
        if min(sizes.values()) >= min_rows:
            check_partition(parts, labels.size, min_rows=min_rows)
            return parts
    smallest = min(sizes, key=lambda nid: (sizes[nid], nid))
    raise EmptyPartitionError(
        f"Dirichlet(alpha={alpha}) left {sizes[smallest]} rows (< {min_rows}) after "
        f"{max_attempts} draws; raise alpha or use fewer nodes",
        node_id=smallest,
    )
