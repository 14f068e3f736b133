"""Update screening: malformed updates become typed failures, never part of an average."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from federated.errors import InvalidUpdateError
from federated.types import (
    AggregateResult,
    FitFailure,
    FitResult,
    GlobalModel,
    NDArray,
    Scalar,
    Strategy,
)


def check_update(current: GlobalModel, result: FitResult) -> None:
    """Raise ``InvalidUpdateError`` (naming the node and the problem) unless ``result`` is a
    well-formed update of ``current``: same family, same kind of parameters (arrays or
    bytes), same layer count and shapes, real numbers, no NaN or inf, and at least one
    training example.
    """
    node = result.node_id

    def refuse(problem: str, **details: object) -> InvalidUpdateError:
        return InvalidUpdateError(problem, node_id=node, **details)

    if isinstance(result.num_examples, bool) or not isinstance(
        result.num_examples, int | np.integer
    ):
        raise refuse(f"num_examples must be an integer, got {type(result.num_examples).__name__}")
    if result.num_examples <= 0:
        raise refuse(f"num_examples must be > 0, got {result.num_examples}")
    family = result.metrics.get("family")
    if family is not None and family != current.family:
        raise refuse(f"update is for family {family!r}, the profile trains {current.family!r}")
    if isinstance(current.parameters, bytes):
        if not isinstance(result.parameters, bytes):
            raise refuse(f"family {current.family!r} exchanges serialized bytes, got arrays")
        if not result.parameters:
            raise refuse("empty serialized model")
        return
    if isinstance(result.parameters, bytes):
        raise refuse(f"family {current.family!r} exchanges weight arrays, got bytes")
    expected = [np.shape(a) for a in current.parameters]
    if len(result.parameters) != len(expected):
        raise refuse(f"{len(result.parameters)} parameter arrays, the model has {len(expected)}")
    for index, (array, shape) in enumerate(zip(result.parameters, expected, strict=True)):
        if not isinstance(array, np.ndarray):
            raise refuse(f"parameter array {index} is a {type(array).__name__}, not an ndarray")
        if array.dtype.kind not in "fiu":
            raise refuse(f"parameter array {index} has dtype {array.dtype}, not real numbers")
        if array.shape != shape:
            raise refuse(
                f"parameter array {index} has shape {array.shape}, expected {shape} "
                f"({array.size} values instead of {int(np.prod(shape))})"
            )
        if array.dtype.kind == "f" and not _all_finite(array):
            bad = int(array.size - np.count_nonzero(np.isfinite(array)))
            raise refuse(f"parameter array {index} has {bad} NaN or inf values")


def _all_finite(array: NDArray) -> bool:
    # A finite sum proves every term finite (one fast read); only a non-finite sum, which
    # may be a mere overflow of large finite values, needs the element-wise check.
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.sum(array)):
            return True
    return bool(np.isfinite(array).all())


class UpdateScreen:
    """Wrapper: screen every result with :func:`check_update` before the inner strategy.

    A node that sends more than one update in a round has all of them refused (which is
    genuine cannot be told). Refusals join ``failures`` as ``FitFailure(code=
    "INVALID_UPDATE", reason=...)``; the metrics count them as ``screened_out``.
    """

    def __init__(self, strategy: Strategy) -> None:
        self.strategy = strategy

    def node_config(self, server_round: int) -> dict[str, Scalar]:
        """The inner strategy's node configuration."""
        return self.strategy.node_config(server_round)

    def unwrapped(self) -> Strategy:
        """The bare strategy inside this wrapper (and any it wraps)."""
        return self.strategy.unwrapped()

    def screen(
        self, current: GlobalModel, results: Sequence[FitResult]
    ) -> tuple[list[FitResult], list[FitFailure]]:
        """Split ``results`` into well-formed updates and typed failures."""
        counts = Counter(r.node_id for r in results)
        accepted: list[FitResult] = []
        refused: list[FitFailure] = []
        for result in results:
            try:
                if counts[result.node_id] > 1:
                    raise InvalidUpdateError(
                        f"sent {counts[result.node_id]} updates in one round",
                        node_id=result.node_id,
                    )
                check_update(current, result)
            except InvalidUpdateError as error:
                refused.append(FitFailure(result.node_id, error.code, error.message))
            else:
                accepted.append(result)
        return accepted, refused

    def aggregate_fit(
        self,
        server_round: int,
        current: GlobalModel,
        results: Sequence[FitResult],
        failures: Sequence[FitFailure],
    ) -> AggregateResult:
        """Screen, then delegate the well-formed results (the refused join the failures)."""
        accepted, refused = self.screen(current, results)
        result = self.strategy.aggregate_fit(server_round, current, accepted, [*failures, *refused])
        return result.with_metrics({"screened_out": len(refused)})

    def __repr__(self) -> str:
        return f"UpdateScreen({self.strategy!r})"
