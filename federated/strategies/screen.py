"""Update screening: malformed updates become typed failures, never part of an average."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from federated.errors import InvalidUpdateError
from federated.strategies.scaffold import Scaffold, check_control_delta
from federated.types import (
    AggregateResult,
    FitFailure,
    FitResult,
    GlobalModel,
    NDArray,
    NDArrays,
    Scalar,
    Strategy,
)


def check_update(current: GlobalModel, result: FitResult) -> None:
    """Raise ``InvalidUpdateError`` (naming the node and the problem) unless ``result`` is a
    well-formed update of ``current``: same family, same kind of parameters (arrays or
    bytes), same layer count and shapes, real numbers, no NaN or inf, and at least one
    training example.
    """
    _check_num_examples(result)
    _check_family(current, result)
    if isinstance(current.parameters, bytes):
        _check_serialized(current, result)
    else:
        _check_arrays(current.family, current.parameters, result)


def _check_num_examples(result: FitResult) -> None:
    """Raise ``InvalidUpdateError`` unless ``result.num_examples`` is a positive integer
    (Python or NumPy; a ``bool`` is refused even though it is an ``int``).
    """
    count = result.num_examples
    if isinstance(count, bool) or not isinstance(count, int | np.integer):
        raise InvalidUpdateError(
            f"num_examples must be an integer, got {type(count).__name__}",
            node_id=result.node_id,
        )
    if count <= 0:
        raise InvalidUpdateError(f"num_examples must be > 0, got {count}", node_id=result.node_id)


def _check_family(current: GlobalModel, result: FitResult) -> None:
    """Raise ``InvalidUpdateError`` if the update names a model family (its ``family``
    metric) other than ``current``'s; an update that names none passes.
    """
    family = result.metrics.get("family")
    if family is not None and family != current.family:
        raise InvalidUpdateError(
            f"update is for family {family!r}, the profile trains {current.family!r}",
            node_id=result.node_id,
        )


def _check_serialized(current: GlobalModel, result: FitResult) -> None:
    """For a family that exchanges a serialized model (``current.parameters`` is bytes):
    raise ``InvalidUpdateError`` unless the update is non-empty bytes too. The bytes
    themselves are not parsed.
    """
    if not isinstance(result.parameters, bytes):
        raise InvalidUpdateError(
            f"family {current.family!r} exchanges serialized bytes, got arrays",
            node_id=result.node_id,
        )
    if not result.parameters:
        raise InvalidUpdateError("empty serialized model", node_id=result.node_id)


def _check_arrays(family: str, expected: NDArrays, result: FitResult) -> None:
    """For a family that exchanges weight arrays: raise ``InvalidUpdateError`` unless the
    update is a list of arrays with as many entries as ``expected`` and each passes
    :func:`_check_array` against the matching shape (the first bad array is reported).
    """
    if isinstance(result.parameters, bytes):
        raise InvalidUpdateError(
            f"family {family!r} exchanges weight arrays, got bytes", node_id=result.node_id
        )
    shapes = [np.shape(a) for a in expected]
    if len(result.parameters) != len(shapes):
        raise InvalidUpdateError(
            f"{len(result.parameters)} parameter arrays, the model has {len(shapes)}",
            node_id=result.node_id,
        )
    for index, (array, shape) in enumerate(zip(result.parameters, shapes, strict=True)):
        _check_array(result.node_id, index, array, shape)


def _check_array(node: str, index: int, array: object, shape: tuple[int, ...]) -> None:
    """Raise ``InvalidUpdateError`` (for ``node``, naming array ``index``) unless ``array``
    is an ndarray of real numbers (float, signed or unsigned int) with exactly ``shape``
    and, if float, no NaN or inf. Dtype widths may differ from the model's.
    """
    if not isinstance(array, np.ndarray):
        raise InvalidUpdateError(
            f"parameter array {index} is a {type(array).__name__}, not an ndarray", node_id=node
        )
    if array.dtype.kind not in "fiu":
        raise InvalidUpdateError(
            f"parameter array {index} has dtype {array.dtype}, not real numbers", node_id=node
        )
    if array.shape != shape:
        raise InvalidUpdateError(
            f"parameter array {index} has shape {array.shape}, expected {shape} "
            f"({array.size} values instead of {int(np.prod(shape))})",
            node_id=node,
        )
    if array.dtype.kind == "f" and not _all_finite(array):
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        raise InvalidUpdateError(
            f"parameter array {index} has {bad} NaN or inf values", node_id=node
        )


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
        # SCAFFOLD averages each node's Δc_i too: one missing or malformed Δc_i is that
        # node's failure, not the round's (an exception in aggregate_fit would fail it).
        self._needs_control = isinstance(strategy.unwrapped(), Scaffold)

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
                if self._needs_control:
                    check_control_delta(current, result)
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
