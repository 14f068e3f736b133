"""When one profile holds data that wants two models: divergence among nodes' updates.

Two signals, both computed from what a round's coordinator already sees:

**Update clusters** — the criterion of clustered federated learning (Sattler, Müller and
Samek, *Clustered Federated Learning: Model-Agnostic Distributed Multi-Task Optimization
under Privacy Constraints*, 2019). Each node's update is the flattened difference between
the weights it trained and the round's base model. Near a stationary point of the joint
objective the weighted mean update is small while single updates stay large: the nodes pull
in different directions, so one model cannot serve them all. Then the nodes are bipartitioned
to minimize the largest cosine similarity *across* the two groups; the split is supported
when that cross similarity is low and clearly below the smallest similarity *within* the
groups (a separation gap: every node is closer to its own group than to any node of the
other). Sattler et al. state the stationarity test with absolute thresholds on the two
norms; here it is their ratio, which does not depend on the model's scale or learning rate.

**Loss outliers** — a node whose local training loss stays far from the others' (a robust
z-score against the median and the median absolute deviation) round after round has data
the shared model does not fit.

Pure NumPy: no I/O, no ledger, no MLflow; :mod:`flows.specialization` feeds it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from federated.errors import FederatedError
from federated.types import NDArray
from fedspec.errors import ErrorCode

EXHAUSTIVE_MAX_NODES = 14  # 2^13 bipartitions at most; beyond, complete linkage


class DivergenceError(FederatedError):
    """Updates that cannot be compared (different shapes, too few)."""

    code = ErrorCode.DIVERGENCE_INVALID


@dataclass(frozen=True)
class SplitCriteria:
    """When update clusters justify splitting a profile (defaults measured on digits: see
    docs/specialization.md)."""

    max_norm_ratio: float = 0.75  # ‖weighted mean update‖ / max ‖update‖ at most this
    max_cross_similarity: float = 0.3  # the bipartition's largest cross-group cosine
    min_gap: float = 0.2  # smallest within-group cosine minus the largest cross-group one
    min_cluster_size: int = 2  # a child profile needs nodes to federate


@dataclass(frozen=True)
class Bipartition:
    groups: tuple[tuple[str, ...], tuple[str, ...]]
    cross_max: float  # largest cosine similarity between nodes of different groups
    intra_min: float  # smallest cosine similarity between nodes of one group (1.0 if none)

    @property
    def gap(self) -> float:
        return self.intra_min - self.cross_max

    def key(self) -> frozenset[frozenset[str]]:
        """The partition itself, whatever the order of its groups."""
        return frozenset(frozenset(g) for g in self.groups)

    def to_json(self) -> dict[str, Any]:
        return {
            "groups": [list(g) for g in self.groups],
            "cross_max": round(self.cross_max, 6),
            "intra_min": round(self.intra_min, 6),
            "gap": round(self.gap, 6),
        }


@dataclass(frozen=True)
class DivergenceReport:
    """One round's verdict, with a readable line per test."""

    nodes: tuple[str, ...]
    similarity: NDArray
    mean_norm: float
    max_norm: float
    bipartition: Bipartition | None
    split: bool
    lines: tuple[str, ...] = field(default_factory=tuple)

    @property
    def norm_ratio(self) -> float:
        return self.mean_norm / self.max_norm if self.max_norm > 0 else 1.0

    def to_json(self) -> dict[str, Any]:
        return {
            "nodes": list(self.nodes),
            "similarity": np.round(self.similarity, 6).tolist(),
            "mean_norm": self.mean_norm,
            "max_norm": self.max_norm,
            "norm_ratio": round(self.norm_ratio, 6),
            "bipartition": self.bipartition.to_json() if self.bipartition else None,
            "split": self.split,
            "lines": list(self.lines),
        }


def flatten_delta(base: Sequence[NDArray], trained: Sequence[NDArray]) -> NDArray:
    """One vector: every weight array of ``trained`` minus the same array of ``base``."""
    if len(base) != len(trained):
        raise DivergenceError(f"{len(trained)} weight arrays against a base of {len(base)}")
    parts = []
    for b, t in zip(base, trained, strict=True):
        b64, t64 = np.asarray(b, dtype=np.float64), np.asarray(t, dtype=np.float64)
        if b64.shape != t64.shape:
            raise DivergenceError(f"an update's array of shape {t64.shape} against {b64.shape}")
        parts.append((t64 - b64).ravel())
    return np.concatenate(parts) if parts else np.zeros(0)


def cosine_matrix(deltas: NDArray) -> NDArray:
    """Pairwise cosine similarities of the rows of ``deltas`` (a zero row is similar to
    nothing: 0, and 1 with itself)."""
    norms = np.linalg.norm(deltas, axis=1)
    safe = np.where(norms > 0, norms, 1.0)
    unit = deltas / safe[:, None]
    similarity = np.clip(unit @ unit.T, -1.0, 1.0)
    np.fill_diagonal(similarity, 1.0)
    return similarity


def best_bipartition(
    similarity: NDArray, names: Sequence[str], *, min_size: int = 1
) -> Bipartition | None:
    """The split into two groups (each of at least ``min_size``) with the smallest largest
    cross-group similarity; ties go to the larger within-group minimum, then to the first
    in node order. Exhaustive up to :data:`EXHAUSTIVE_MAX_NODES` nodes, complete-linkage
    agglomeration beyond. ``None`` if no split respects ``min_size``."""
    n = len(names)
    if n < 2 * max(1, min_size):
        return None
    if n > EXHAUSTIVE_MAX_NODES:
        return _linkage_bipartition(similarity, names, min_size)
    best: tuple[float, float, tuple[int, ...]] | None = None
    rest = range(1, n)
    # Node 0 always sits in the first group, so each partition is seen once.
    for size in range(0, n - 1):
        for others in itertools.combinations(rest, size):
            first = (0, *others)
            second = tuple(i for i in range(n) if i not in first)
            if min(len(first), len(second)) < min_size:
                continue
            cross = float(similarity[np.ix_(first, second)].max())
            intra = min(_intra_min(similarity, first), _intra_min(similarity, second))
            candidate = (cross, -intra, first)
            if best is None or candidate < best:
                best = candidate
    if best is None:
        return None
    first = best[2]
    second = tuple(i for i in range(n) if i not in first)
    return _bipartition(similarity, names, first, second)


def detect_split(
    deltas: Mapping[str, NDArray],
    weights: Mapping[str, float] | None = None,
    criteria: SplitCriteria | None = None,
) -> DivergenceReport:
    """Sattler et al.'s test on one round's updates (``node → flattened delta``), weighted
    by ``weights`` (e.g. sample counts) in the mean."""
    criteria = criteria or SplitCriteria()
    names = tuple(sorted(deltas))
    if len(names) < 2:
        raise DivergenceError("divergence needs the updates of at least two nodes")
    matrix = np.stack([np.asarray(deltas[n], dtype=np.float64) for n in names])
    if matrix.ndim != 2:
        raise DivergenceError("deltas must be flat vectors of one length")
    w = np.asarray([float((weights or {}).get(n, 1.0)) for n in names])
    if np.any(w < 0) or w.sum() <= 0:
        raise DivergenceError("weights must be non-negative with a positive sum")
    norms = np.linalg.norm(matrix, axis=1)
    mean_norm = float(np.linalg.norm((w[:, None] * matrix).sum(axis=0) / w.sum()))
    max_norm = float(norms.max())
    similarity = cosine_matrix(matrix)
    partition = best_bipartition(similarity, names, min_size=criteria.min_cluster_size)
    ratio = mean_norm / max_norm if max_norm > 0 else 1.0
    lines = [
        f"mean update norm / max update norm = {mean_norm:.4g} / {max_norm:.4g} = {ratio:.2f} "
        f"({'≤' if ratio <= criteria.max_norm_ratio else '>'} {criteria.max_norm_ratio}: "
        + ("the nodes pull apart" if ratio <= criteria.max_norm_ratio else "they still agree")
        + ")"
    ]
    split = ratio <= criteria.max_norm_ratio and max_norm > 0
    if partition is None:
        lines.append(
            f"no bipartition leaves {criteria.min_cluster_size} nodes on each side "
            f"({len(names)} nodes)"
        )
        split = False
    else:
        a, b = partition.groups
        cross_ok = partition.cross_max <= criteria.max_cross_similarity
        gap_ok = partition.gap >= criteria.min_gap
        lines.append(
            f"best bipartition {{{', '.join(a)}}} | {{{', '.join(b)}}}: largest cross-group "
            f"cosine {partition.cross_max:.2f} ({'≤' if cross_ok else '>'} "
            f"{criteria.max_cross_similarity}), smallest within-group {partition.intra_min:.2f}, "
            f"gap {partition.gap:.2f} ({'≥' if gap_ok else '<'} {criteria.min_gap})"
        )
        split = split and cross_ok and gap_ok
    lines.append("split" if split else "no split")
    return DivergenceReport(
        nodes=names,
        similarity=similarity,
        mean_norm=mean_norm,
        max_norm=max_norm,
        bipartition=partition,
        split=split,
        lines=tuple(lines),
    )


def persistent_split(reports: Sequence[DivergenceReport], patience: int) -> Bipartition | None:
    """The bipartition every one of the last ``patience`` reports splits along, or ``None``:
    one round's clusters can be noise, the same clusters round after round are not."""
    if patience < 1 or len(reports) < patience:
        return None
    recent = reports[-patience:]
    if not all(r.split and r.bipartition is not None for r in recent):
        return None
    keys = {r.bipartition.key() for r in recent if r.bipartition is not None}
    return recent[-1].bipartition if len(keys) == 1 else None


@dataclass(frozen=True)
class LossCriteria:
    """When a node's loss is an outlier: robust z-score above ``z`` *and* a relative
    distance from the median above ``min_relative`` (so that a tiny spread among the others
    does not make a small difference look large), for ``patience`` rounds in a row."""

    z: float = 3.0
    min_relative: float = 0.25
    patience: int = 3


def loss_outliers(
    history: Sequence[Mapping[str, float]], criteria: LossCriteria | None = None
) -> dict[str, str]:
    """Nodes whose loss is an outlier in each of the last ``patience`` rounds of
    ``history`` (one ``node → local loss`` mapping per round, oldest first), with why."""
    criteria = criteria or LossCriteria()
    if len(history) < criteria.patience:
        return {}
    flagged: dict[str, list[str]] = {}
    for losses in history[-criteria.patience :]:
        this_round = _round_outliers(losses, criteria)
        if not flagged:
            flagged = {node: [why] for node, why in this_round.items()}
        else:
            flagged = {
                node: [*whys, this_round[node]]
                for node, whys in flagged.items()
                if node in this_round
            }
        if not flagged:
            return {}
    return {node: "; ".join(whys) for node, whys in sorted(flagged.items())}


def _round_outliers(losses: Mapping[str, float], criteria: LossCriteria) -> dict[str, str]:
    values = {n: float(v) for n, v in losses.items() if math.isfinite(float(v))}
    if len(values) < 3:  # with two nodes, neither is the odd one out
        return {}
    array = np.asarray(list(values.values()))
    median = float(np.median(array))
    mad = float(np.median(np.abs(array - median))) * 1.4826  # σ of a normal distribution
    out = {}
    for node, value in values.items():
        distance = abs(value - median)
        z = distance / mad if mad > 0 else math.inf
        if z > criteria.z and distance > criteria.min_relative * abs(median):
            out[node] = f"loss {value:.3g} vs median {median:.3g} (robust z {z:.1f})"
    return out


def _intra_min(similarity: NDArray, group: Sequence[int]) -> float:
    if len(group) < 2:
        return 1.0
    block = similarity[np.ix_(group, group)]
    return float(block[~np.eye(len(group), dtype=bool)].min())


def _bipartition(
    similarity: NDArray, names: Sequence[str], first: Sequence[int], second: Sequence[int]
) -> Bipartition:
    groups = (tuple(names[i] for i in first), tuple(names[i] for i in second))
    groups = (groups[0], groups[1]) if groups[0] <= groups[1] else (groups[1], groups[0])
    return Bipartition(
        groups=groups,
        cross_max=float(similarity[np.ix_(first, second)].max()),
        intra_min=min(_intra_min(similarity, first), _intra_min(similarity, second)),
    )


def _linkage_bipartition(
    similarity: NDArray, names: Sequence[str], min_size: int
) -> Bipartition | None:
    """Complete linkage on cosine similarity down to two clusters (many nodes).

    ``link[i, j]`` is the linkage of clusters i and j, kept up to date as they merge (the
    linkage of a union is the smaller of its parts'), so each merge costs O(c²) in numpy
    instead of rescanning every pair's block in Python: O(n³) block scans took 15 s for 200
    nodes after every round (benchmarks/scale.py), this takes 0.03 s. Merges are the same:
    the most similar pair, ties to the first (i, j) in row order; NaN counts as least similar.
    """
    clusters: list[list[int]] = [[i] for i in range(len(names))]
    link = np.where(np.isnan(similarity), -np.inf, np.asarray(similarity, dtype=np.float64))
    while len(clusters) > 2:
        c = len(clusters)
        upper = np.where(np.triu(np.ones((c, c), dtype=bool), k=1), link, -np.inf)
        i, j = divmod(int(np.argmax(upper)), c)  # i < j: the upper triangle only
        # Complete linkage: two clusters are as close as their least similar pair.
        merged = np.minimum(link[i], link[j])
        link[i, :] = merged
        link[:, i] = merged
        link = np.delete(np.delete(link, j, axis=0), j, axis=1)
        clusters[i] = clusters[i] + clusters[j]
        del clusters[j]
    first, second = sorted(clusters[0]), sorted(clusters[1])
    if min(len(first), len(second)) < min_size:
        return None
    return _bipartition(similarity, names, first, second)
