"""The shapes every part of the learning core agrees on.

Flower's strategy shape (``aggregate_fit(round, results, failures)``) with one deliberate
difference: fedspec elects a different coordinator every round, so a strategy object cannot
keep server-side state (FedAdam's moments, a bagged ensemble) between rounds in memory. That
state travels in :class:`GlobalModel.server_state`, is stored beside the model, and comes
back as an explicit input to the next round's ``aggregate_fit``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

import numpy as np
import numpy.typing as npt

NDArray = npt.NDArray[Any]
NDArrays = list[NDArray]
Scalar = bool | int | float | str


@dataclass(frozen=True)
class GlobalModel:
    """The model a round starts from and the model a round produces.

    ``parameters`` are weight arrays for neural and linear models, or the serialized model
    (XGBoost UBJSON) for tree models. ``server_state`` holds strategy state that must
    survive a change of coordinator (e.g. FedAdam's first and second moments).
    """

    family: str
    parameters: NDArrays | bytes
    server_state: Mapping[str, NDArrays] = field(default_factory=dict)


@dataclass(frozen=True)
class FitResult:
    """One node's successful local training in one round."""

    node_id: str
    parameters: NDArrays | bytes
    num_examples: int
    metrics: Mapping[str, Scalar] = field(default_factory=dict)


@dataclass(frozen=True)
class FitFailure:
    """One node left out of a round, with a stable code and a readable reason."""

    node_id: str
    code: str
    reason: str


class Strategy(Protocol):
    """Aggregation in Flower's shape; no I/O inside a strategy."""

    def aggregate_fit(
        self,
        server_round: int,
        current: GlobalModel,
        results: Sequence[FitResult],
        failures: Sequence[FitFailure],
    ) -> tuple[GlobalModel | None, dict[str, Scalar]]:
        """Combine the nodes' results into the next global model (``None`` if it cannot)."""
        ...


@runtime_checkable
class ModelAdapter(Protocol):
    """scikit-learn style: ``__init__`` stores parameters, ``fit`` returns ``self``."""

    family: ClassVar[str]

    def fit(self, X: NDArray, y: NDArray) -> Self: ...

    def predict(self, X: NDArray) -> NDArray: ...

    def predict_proba(self, X: NDArray) -> NDArray: ...

    def evaluate(self, X: NDArray, y: NDArray) -> dict[str, float]: ...

    def to_bytes(self) -> bytes:
        """Serialize in a format that cannot run code on load (safetensors, UBJSON)."""
        ...


def as_float_arrays(arrays: Sequence[NDArray]) -> NDArrays:
    """Copy arrays into float64, the dtype aggregation math works in."""
    return [np.asarray(a, dtype=np.float64) for a in arrays]
