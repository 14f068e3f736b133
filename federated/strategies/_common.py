"""What every averaging strategy does before and after its math."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from federated.errors import IncompatibleModelError, InvalidUpdateError
from federated.strategies.aggregate import layer_shapes
from federated.types import (
    AggregateResult,
    FitFailure,
    FitResult,
    GlobalModel,
    NDArray,
    NDArrays,
    Scalar,
)


def array_parameters(current: GlobalModel, strategy: str) -> NDArrays:
    """The current model's arrays; tree models (bytes) are never averaged."""
    if isinstance(current.parameters, bytes):
        raise IncompatibleModelError(
            f"{strategy} averages weight arrays; family {current.family!r} ships bytes "
            f"(trees are never averaged: use xgb-bagging or xgb-histogram)",
            family=current.family,
            strategy=strategy,
        )
    return list(current.parameters)


def array_updates(current: NDArrays, results: Sequence[FitResult], strategy: str) -> list[NDArrays]:
    """Each result's arrays, refusing bytes and shapes that differ from the current model.

    A strategy should sit behind :class:`~federated.strategies.screen.UpdateScreen`, which
    turns such updates into failures; this check is what keeps a bare strategy from
    averaging them silently.
    """
    expected = layer_shapes([current])
    updates: list[NDArrays] = []
    for result in results:
        if isinstance(result.parameters, bytes):
            raise InvalidUpdateError(
                f"{strategy} cannot average a serialized (bytes) update",
                node_id=result.node_id,
            )
        shapes = [tuple(np.shape(a)) for a in result.parameters]
        if shapes != expected:
            raise InvalidUpdateError(
                f"layer shapes {shapes} do not match the global model's {expected}",
                node_id=result.node_id,
            )
        updates.append(list(result.parameters))
    return updates


def like_current(arrays: Sequence[NDArray], current: Sequence[NDArray]) -> NDArrays:
    """Cast aggregated layers back to the global model's floating dtypes."""
    out: NDArrays = []
    for array, reference in zip(arrays, current, strict=True):
        dtype = np.asarray(reference).dtype
        out.append(array.astype(dtype, copy=False) if dtype.kind == "f" else array)
    return out


def empty_round(strategy: str, failures: Sequence[FitFailure]) -> AggregateResult:
    """Flower's answer to a round without results: no model, and why."""
    return AggregateResult(
        None,
        {"strategy": strategy, "num_results": 0, "num_failures": len(failures)},
        failures=tuple(failures),
        reason="no successful updates to aggregate",
    )


def aggregated(
    model: GlobalModel,
    strategy: str,
    results: Sequence[FitResult],
    failures: Sequence[FitFailure],
    included: Sequence[FitResult] | None = None,
) -> AggregateResult:
    """The result of a round that produced ``model``: who is in it, who was left out, counts
    and example-weighted node metrics.

    Robust rules that drop whole updates (Multi-Krum) pass ``included`` and add the dropped
    nodes to ``failures``; ``num_failures`` counts the failures passed in.
    """
    chosen = results if included is None else included
    metrics: dict[str, Scalar] = {
        "strategy": strategy,
        "num_results": len(results),
        "num_failures": len(failures),
        "num_examples": int(sum(r.num_examples for r in chosen)),
    }
    metrics.update(weighted_node_metrics(chosen))
    return AggregateResult(
        model,
        metrics,
        included=tuple(r.node_id for r in chosen),
        failures=tuple(failures),
    )


def weighted_node_metrics(results: Sequence[FitResult]) -> dict[str, Scalar]:
    """Example-weighted mean of every numeric metric all results report, as ``fit_<name>``."""
    if not results:
        return {}
    names = set.intersection(*(set(_numeric(r.metrics)) for r in results))
    total = sum(r.num_examples for r in results)
    if total <= 0:
        return {}
    return {
        f"fit_{name}": float(sum(float(r.metrics[name]) * r.num_examples for r in results) / total)
        for name in sorted(names)
    }


def _numeric(metrics: Mapping[str, Scalar]) -> list[str]:
    return [
        k
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)
    ]
