"""The shapes every part of the learning core agrees on.

Flower's strategy shape (``aggregate_fit(round, results, failures)``) with one deliberate
difference: fedspec elects a different coordinator every round, so a strategy object cannot
keep server-side state (FedAdam's moments, a bagged ensemble) between rounds in memory. That
state travels in :class:`GlobalModel.server_state`, is stored beside the model, and comes
back as an explicit input to the next round's ``aggregate_fit``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
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
    """One node's successful local training in one round.

    ``control_delta`` is SCAFFOLD's ``Δc_i`` (the change of the node's control variate, in
    parameter order), ``None`` for every other strategy.
    """

    node_id: str
    parameters: NDArrays | bytes
    num_examples: int
    metrics: Mapping[str, Scalar] = field(default_factory=dict)
    control_delta: NDArrays | None = None


@dataclass(frozen=True)
class FitFailure:
    """One node left out of a round, with a stable code and a readable reason."""

    node_id: str
    code: str
    reason: str


@dataclass(frozen=True)
class AggregateResult:
    """What a strategy's ``aggregate_fit`` returns: the model and who is in it, as records.

    ``included`` (node ids whose updates entered the model, sorted) is the ledger's
    inclusion set; ``failures`` (sorted by node and code) is every node left out of the
    round, those passed in and those the strategy or its wrappers refused, each with its
    code and reason. ``metrics`` carries plain values only (counts, norms, ``fit_<name>``
    means) for MLflow, never node lists. ``model`` is ``None`` when the round produced
    none, with ``reason`` saying why.
    """

    model: GlobalModel | None
    metrics: dict[str, Scalar] = field(default_factory=dict)
    included: tuple[str, ...] = ()
    failures: tuple[FitFailure, ...] = ()
    reason: str = ""

    def __post_init__(self) -> None:
        # Canonical order, whoever built the record: results never depend on arrival order.
        object.__setattr__(self, "included", tuple(sorted(self.included)))
        ordered = sorted(self.failures, key=lambda f: (f.node_id, f.code))
        object.__setattr__(self, "failures", tuple(ordered))

    def with_metrics(self, extra: Mapping[str, Scalar]) -> AggregateResult:
        """The same result with ``extra`` added to (or replacing entries of) its metrics."""
        return replace(self, metrics={**self.metrics, **extra})


class Strategy(Protocol):
    """Aggregation in Flower's shape; no I/O inside a strategy.

    Wrappers (screen, privacy check, quorum) implement the same protocol and delegate
    ``node_config`` to the strategy they wrap; ``unwrapped`` reaches the bare rule.
    """

    def node_config(self, server_round: int) -> dict[str, Scalar]:
        """Hyper-parameters every node must train with this round (FedProx's
        ``proximal_mu``); ``{}`` for most strategies."""
        ...

    def aggregate_fit(
        self,
        server_round: int,
        current: GlobalModel,
        results: Sequence[FitResult],
        failures: Sequence[FitFailure],
    ) -> AggregateResult:
        """Combine the nodes' results into the next global model (``None`` if it cannot)."""
        ...

    def unwrapped(self) -> Strategy:
        """The aggregation rule without its guards (itself for a bare strategy): what
        scoring sub-aggregates of already accepted updates runs, needing no quorum."""
        ...


@runtime_checkable
class ModelAdapter(Protocol):
    """A scikit-learn estimator: ``__init__`` stores parameters, ``fit`` returns ``self``.

    Only classifiers have ``predict_proba`` (``sklearn.base.is_classifier`` tells them apart).
    """

    family: ClassVar[str]

    def fit(self, X: NDArray, y: NDArray) -> Self: ...

    def predict(self, X: NDArray) -> NDArray: ...

    def score(self, X: NDArray, y: NDArray) -> float:
        """scikit-learn's score: accuracy for classifiers, R² for regressors."""
        ...

    def metrics(self, X: NDArray, y: NDArray) -> dict[str, float]:
        """Every quality metric (accuracy, f1_macro, log_loss…; rmse, mae, r2)."""
        ...

    def to_bytes(self) -> bytes:
        """Serialize in a format that cannot run code on load (safetensors, UBJSON)."""
        ...


def as_float_arrays(arrays: Sequence[NDArray]) -> NDArrays:
    """Copy arrays into float64, the dtype aggregation math works in."""
    return [np.asarray(a, dtype=np.float64) for a in arrays]
