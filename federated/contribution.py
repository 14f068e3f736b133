"""Contribution scores per node per round, turned into integer token rewards.

score_i = quality_i × Σ_k w_k · share_k(i), k ∈ {quantity, utility, cpu, time}, where each
share_k is node i's fraction of the round's total of that (non-negative) quantity and the
weights of components whose total is zero move to the others. Tokens: largest remainder of
``total × s_i / Σ s`` over integer scores, ties by node id, so they sum to ``total`` exactly.
Self-reported figures are capped and checked against the round's median per sample first.
docs/contribution.md gives the formula, weights, flags and cost in evaluations.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import operator
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import median
from typing import Any

import numpy as np

from federated.errors import ContributionError
from federated.types import FitResult, GlobalModel, Strategy
from federated.validation.expectations import canonical_json
from federated.validation.summary import ValidationSummary

Evaluate = Callable[[frozenset[str]], float]
SCORE_SCALE = 10**9  # integer scores: the ledger's arithmetic has no floats


# --------------------------------------------------------------------------- marginal utility


@dataclass(frozen=True)
class UtilityEstimate:
    """Per-node marginal utility, the method used and how many evaluations it cost."""

    values: Mapping[str, float]
    method: str
    evaluations: int
    permutations: int = 0


class _Memo:
    """Caches ``evaluate`` by subset and refuses to exceed the evaluation budget.

    Subsets are cached under a key that stands for them one to one: the subset itself, or
    (for :func:`tmc_shapley`) a bit mask of node positions, which a permutation's prefixes
    extend in O(1) each where building every prefix as a set costs O(n²) a permutation."""

    def __init__(self, evaluate: Evaluate, budget: int) -> None:
        self._evaluate = evaluate
        self._budget = budget
        self._cache: dict[Hashable, float] = {}
        self.calls = 0

    def can_afford(self, keys: Iterable[Hashable]) -> bool:
        return self.calls + len({k for k in keys if k not in self._cache}) <= self._budget

    def __call__(self, subset: frozenset[str]) -> float:
        return self.value(subset, lambda: subset)

    def value(self, key: Hashable, subset: Callable[[], frozenset[str]]) -> float:
        """v of the subset ``key`` stands for; ``subset()`` is built only to evaluate it."""
        if key not in self._cache:
            if self.calls >= self._budget:
                raise ContributionError("evaluation budget exhausted")
            members = subset()
            value = float(self._evaluate(members))
            if not math.isfinite(value):
                raise ContributionError(f"evaluate({sorted(members)}) returned {value}")
            self._cache[key] = value
            self.calls += 1
        return self._cache[key]


def _ids(node_ids: Sequence[str]) -> list[str]:
    ids = sorted(node_ids)
    if not ids or len(set(ids)) != len(ids):
        raise ContributionError(f"node ids must be non-empty and unique: {ids}")
    return ids


def leave_one_out(node_ids: Sequence[str], evaluate: Evaluate) -> UtilityEstimate:
    """u_i = v(N) − v(N∖{i}); n + 1 evaluations."""
    ids = _ids(node_ids)
    memo = _Memo(evaluate, len(ids) + 1)
    everyone = frozenset(ids)
    full = memo(everyone)
    values = {i: full - memo(everyone - {i}) for i in ids}
    return UtilityEstimate(values=values, method="leave-one-out", evaluations=memo.calls)


def exact_shapley(node_ids: Sequence[str], evaluate: Evaluate) -> UtilityEstimate:
    """Shapley values by enumerating all 2^n subsets (n ≤ 16)."""
    ids = _ids(node_ids)
    n = len(ids)
    if n > 16:
        raise ContributionError(f"exact Shapley over {n} nodes needs 2^{n} evaluations")
    memo = _Memo(evaluate, 2**n)
    weights = [math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n) for k in range(n)]
    values = dict.fromkeys(ids, 0.0)
    for i in ids:
        others = [j for j in ids if j != i]
        for k in range(n):
            for coalition in itertools.combinations(others, k):
                base = frozenset(coalition)
                values[i] += weights[k] * (memo(base | {i}) - memo(base))
    return UtilityEstimate(values=values, method="exact-shapley", evaluations=memo.calls)


def tmc_shapley(
    node_ids: Sequence[str],
    evaluate: Evaluate,
    *,
    max_evaluations: int,
    seed: int = 0,
    tolerance: float = 0.01,
    max_permutations: int = 1000,
) -> UtilityEstimate:
    """Truncated Monte-Carlo Shapley (Ghorbani & Zou, 2019) within an evaluation budget.

    Walks seeded random permutations; once a prefix is within ``tolerance`` (relative) of
    v(N), later nodes in that permutation get a zero marginal without being evaluated.
    Only whole permutations count; stops when the next one might not fit the budget, or
    after ``max_permutations`` (cached subsets cost no evaluation, so for few nodes the
    budget alone would never end the walk).
    """
    ids = _ids(node_ids)
    memo = _Memo(evaluate, max_evaluations)
    # Subsets as bit masks of positions in ``ids``: a truncated permutation costs O(n), not
    # O(n²) (every prefix built as a set), and truncation makes permutations that evaluate
    # nothing new common, so the walk often runs all ``max_permutations`` of them: 4.6 s
    # of set building for 200 nodes, 0.5 s for 50 (benchmarks/scale.py).
    everyone = (1 << len(ids)) - 1
    if not memo.can_afford([0, everyone]):
        raise ContributionError("budget too small for v(∅) and v(N)")
    empty = memo.value(0, frozenset)
    full = memo.value(everyone, lambda: frozenset(ids))
    rng = np.random.default_rng(seed)
    totals, walked = dict.fromkeys(ids, 0.0), 0
    while walked < max_permutations:
        positions = [int(k) for k in rng.permutation(len(ids))]
        prefixes = list(itertools.accumulate((1 << k for k in positions), operator.or_))
        if not memo.can_afford(prefixes):
            break
        previous = empty
        for k, prefix in enumerate(prefixes):
            if abs(full - previous) <= tolerance * abs(full):
                break  # truncated: the remaining marginals are taken as zero
            current = memo.value(prefix, functools.partial(_members, ids, positions, k + 1))
            totals[ids[positions[k]]] += current - previous
            previous = current
        walked += 1
    if walked == 0:
        raise ContributionError("budget too small for one permutation")
    values = {i: totals[i] / walked for i in ids}
    return UtilityEstimate(
        values=values, method="tmc-shapley", evaluations=memo.calls, permutations=walked
    )


def _members(ids: Sequence[str], positions: Sequence[int], count: int) -> frozenset[str]:
    """The nodes at the first ``count`` of ``positions`` (a permutation's prefix)."""
    return frozenset(ids[j] for j in positions[:count])


def shapley_values(
    node_ids: Sequence[str], evaluate: Evaluate, *, max_evaluations: int = 64, seed: int = 0
) -> UtilityEstimate:
    """Exact Shapley when 2^n evaluations fit the budget, truncated Monte-Carlo otherwise."""
    if 2 ** len(set(node_ids)) <= max_evaluations:
        return exact_shapley(node_ids, evaluate)
    return tmc_shapley(node_ids, evaluate, max_evaluations=max_evaluations, seed=seed)


def aggregation_evaluator(
    strategy: Strategy,
    server_round: int,
    current: GlobalModel,
    results: Sequence[FitResult],
    score: Callable[[GlobalModel], float],
) -> Evaluate:
    """v(S) for any strategy without retraining (as GTG-Shapley does): aggregate only the
    updates of S into ``current`` and ``score`` the result; v(∅) scores ``current`` itself.
    ``score`` runs on the coordinator's evaluation data (e.g. AUC on the held-out split).
    """
    by_node = {r.node_id: r for r in results}

    def evaluate(subset: frozenset[str]) -> float:
        if not subset:
            return float(score(current))
        chosen = [by_node[i] for i in sorted(subset)]
        model = strategy.aggregate_fit(server_round, current, chosen, []).model
        return float(score(model if model is not None else current))

    return evaluate


# ------------------------------------------------------------------ self-reported compute


@dataclass(frozen=True)
class NodeReport:
    """What a node reports for a round, with its validation summary."""

    node_id: str
    num_examples: int
    train_seconds: float
    cpu_seconds: float
    validation: ValidationSummary | None = None


@dataclass(frozen=True)
class ComputeLimits:
    """Bounds on self-reported figures; ``max_rate_vs_median``: seconds per sample beyond
    this multiple of the round's median are clipped to it and flagged."""

    max_train_seconds: float = 3600.0
    max_cores: float = 64.0
    max_rate_vs_median: float = 3.0


def _clip_to_median(
    figures: dict[str, float],
    counts: Mapping[str, int],
    bound: float,
    flag: str,
    flags: dict[str, list[str]],
) -> None:
    rates = [figures[i] / counts[i] for i in figures if counts[i] > 0 and figures[i] > 0]
    if not rates:
        return
    ceiling = bound * median(rates)
    for i, value in list(figures.items()):
        if counts[i] > 0 and value / counts[i] > ceiling:
            figures[i] = ceiling * counts[i]
            flags[i].append(flag)


def check_compute(
    reports: Sequence[NodeReport], limits: ComputeLimits = ComputeLimits()
) -> tuple[dict[str, float], dict[str, float], dict[str, list[str]]]:
    """``(train_seconds, cpu_seconds, flags)`` after caps and the per-sample median check."""
    flags: dict[str, list[str]] = {r.node_id: [] for r in reports}
    counts = {r.node_id: max(int(r.num_examples), 0) for r in reports}
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for r in reports:
        t, c = float(r.train_seconds), float(r.cpu_seconds)
        if not (math.isfinite(t) and math.isfinite(c)) or t < 0 or c < 0:
            flags[r.node_id].append("INVALID_COMPUTE_REPORT")
            t, c = 0.0, 0.0
        if counts[r.node_id] == 0 and (t > 0 or c > 0):
            flags[r.node_id].append("COMPUTE_WITHOUT_EXAMPLES")
            t, c = 0.0, 0.0
        if t > limits.max_train_seconds:
            t = limits.max_train_seconds
            flags[r.node_id].append("TRAIN_TIME_CAPPED")
        if c > t * limits.max_cores:
            c = t * limits.max_cores
            flags[r.node_id].append("CPU_EXCEEDS_WALL_TIME")
        wall[r.node_id], cpu[r.node_id] = t, c
    _clip_to_median(wall, counts, limits.max_rate_vs_median, "TIME_PER_SAMPLE_OUTLIER", flags)
    _clip_to_median(cpu, counts, limits.max_rate_vs_median, "CPU_PER_SAMPLE_OUTLIER", flags)
    return wall, cpu, flags


# ------------------------------------------------------------------------- combination


@dataclass(frozen=True)
class ContributionWeights:
    quantity: float = 0.3
    utility: float = 0.4
    cpu: float = 0.2
    time: float = 0.1


@dataclass(frozen=True)
class NodeContribution:
    node_id: str
    tokens: int
    score: int  # SCORE_SCALE fixed point
    quality: float
    shares: Mapping[str, float]
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class ContributionResult:
    total: int
    nodes: tuple[NodeContribution, ...]
    utility: UtilityEstimate | None
    weights: ContributionWeights = field(default_factory=ContributionWeights)

    def tokens(self) -> dict[str, int]:
        return {n.node_id: n.tokens for n in self.nodes}

    def to_json_dict(self) -> dict[str, Any]:
        """Integers and strings only (ppm for fractions), for the ledger."""
        return {
            "total": self.total,
            "utility_method": self.utility.method if self.utility else "none",
            "evaluations": self.utility.evaluations if self.utility else 0,
            "nodes": [
                {
                    "node_id": n.node_id,
                    "tokens": n.tokens,
                    "score": n.score,
                    "quality_ppm": round(n.quality * 1_000_000),
                    "shares_ppm": {k: round(v * 1_000_000) for k, v in sorted(n.shares.items())},
                    "flags": list(n.flags),
                }
                for n in self.nodes
            ],
        }

    def sha256(self) -> str:
        return hashlib.sha256(canonical_json(self.to_json_dict()).encode()).hexdigest()


def allocate_tokens(scores: Mapping[str, int], total: int) -> dict[str, int]:
    """floor(total·s_i/Σs), then one unit each by largest remainder (ties: node id)."""
    if total < 0 or any(s < 0 for s in scores.values()):
        raise ContributionError("total and scores must be non-negative")
    weight = sum(scores.values())
    if weight == 0:
        raise ContributionError("no node has a positive score")
    base = {i: total * s // weight for i, s in scores.items()}
    remainder = {i: total * s % weight for i, s in scores.items()}
    left = total - sum(base.values())
    for i in sorted(scores, key=lambda i: (-remainder[i], i))[:left]:
        base[i] += 1
    return base


def _shares(values: Mapping[str, float]) -> dict[str, float]:
    clipped = {i: max(v, 0.0) for i, v in values.items()}
    total = sum(clipped.values())
    return {i: (v / total if total > 0 else 0.0) for i, v in clipped.items()}


def contribution_scores(
    reports: Sequence[NodeReport],
    *,
    total: int = 1_000_000,
    utility: UtilityEstimate | None = None,
    weights: ContributionWeights = ContributionWeights(),
    limits: ComputeLimits = ComputeLimits(),
) -> ContributionResult:
    """Combine quantity, quality, compute and (optional) marginal utility into tokens."""
    ids = _ids([r.node_id for r in reports])
    wall, cpu, flags = check_compute(reports, limits)
    quality: dict[str, float] = {}
    for r in reports:
        if r.validation is None:
            flags[r.node_id].append("NO_VALIDATION")
        quality[r.node_id] = r.validation.quality if r.validation is not None else 0.0
    components = {
        "quantity": _shares({r.node_id: float(max(r.num_examples, 0)) for r in reports}),
        "cpu": _shares(cpu),
        "time": _shares(wall),
        "utility": _shares({i: utility.values.get(i, 0.0) for i in ids}) if utility else {},
    }
    raw_weights = {k: float(getattr(weights, k)) for k in components}
    if any(w < 0 or not math.isfinite(w) for w in raw_weights.values()):
        raise ContributionError(f"weights must be finite and non-negative: {raw_weights}")
    active = {k: w for k, w in raw_weights.items() if w > 0 and sum(components[k].values()) > 0}
    weight_sum = sum(active.values())
    if weight_sum == 0:
        raise ContributionError("every weighted component is zero for every node")
    scores = {
        i: round(
            SCORE_SCALE
            * quality[i]
            * sum(w * components[k][i] for k, w in active.items())
            / weight_sum
        )
        for i in ids
    }
    tokens = allocate_tokens(scores, total)
    nodes = tuple(
        NodeContribution(
            node_id=i,
            tokens=tokens[i],
            score=scores[i],
            quality=quality[i],
            shares={k: components[k][i] for k in active},
            flags=tuple(flags[i]),
        )
        for i in ids
    )
    return ContributionResult(total=total, nodes=nodes, utility=utility, weights=weights)
