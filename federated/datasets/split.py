"""Seeded row splits: the coordinator's held-out test set and each node's local validation.

Rows that share a group (windows of one recording) stay on one side; otherwise
classification splits are stratified per class, so a node's validation split keeps its
label mix.
"""

from __future__ import annotations

import numpy as np

from federated.datasets.info import Dataset
from federated.errors import DatasetError
from federated.types import NDArray


def split_rows(
    y: NDArray,
    *,
    fraction: float,
    seed: int,
    groups: NDArray | None = None,
    stratify: bool = True,
) -> tuple[NDArray, NDArray]:
    """``(kept, held)`` sorted row indices with about ``fraction`` of the rows held out.

    Never holds out every row: a split that would leave nothing to keep holds out none.
    """
    if not 0.0 <= fraction < 1.0:
        raise DatasetError(f"fraction must be in [0, 1), got {fraction}")
    n = len(y)
    rng = np.random.default_rng(seed)
    held_mask = np.zeros(n, dtype=bool)
    if groups is not None:
        names = np.asarray(groups).astype(str)
        unique = rng.permutation(np.unique(names))
        sizes = {g: int(c) for g, c in zip(*np.unique(names, return_counts=True), strict=True)}
        target, taken = fraction * n, 0
        chosen = []
        for g in unique:
            if taken >= target:
                break
            chosen.append(g)
            taken += sizes[g]
        held_mask = np.isin(names, chosen) if chosen else held_mask
    elif stratify:
        for c in np.unique(y):
            rows = rng.permutation(np.flatnonzero(y == c))
            held_mask[rows[: round(fraction * rows.size)]] = True
    else:
        rows = rng.permutation(n)
        held_mask[rows[: round(fraction * n)]] = True
    if held_mask.all():
        held_mask[:] = False
    return np.flatnonzero(~held_mask), np.flatnonzero(held_mask)


def holdout_split(
    dataset: Dataset, *, test_fraction: float = 0.2, seed: int = 0
) -> tuple[NDArray, NDArray]:
    """``(pool, test)`` rows: ``test`` is for the coordinator's evaluation only, ``pool`` is
    what partitioners share among nodes."""
    info = dataset.info
    groups = dataset.keys.get(info.group_key) if info.group_key else None
    return split_rows(
        dataset.y,
        fraction=test_fraction,
        seed=seed,
        groups=groups,
        stratify=info.task_type == "classification",
    )
