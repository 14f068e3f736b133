"""The one shape every model adapter has: a scikit-learn estimator.

Adapters derive from scikit-learn's ``BaseEstimator`` and ``ClassifierMixin`` or
``RegressorMixin``, so ``get_params``/``set_params``, ``repr``, ``sklearn.base.clone``,
``is_classifier``/``is_regressor`` and ``score`` (accuracy, R²) are scikit-learn's own.
``__init__`` only stores keyword hyper-parameters under their own names; what ``fit`` learns
ends in ``_``; ``fit`` returns ``self``; ``metrics`` reports the full set of quality metrics;
``to_bytes``/``from_bytes`` exchange a model without running code. Only classifiers have
``predict_proba``. Classifiers declare their ``classes`` up front, because a federated node
may hold only some labels while the global model's output layer must not depend on any
node's data.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np

from federated.errors import InvalidUpdateError, NotFittedError, PredictionError
from federated.models.inputs import check_classes, check_labels, check_target, encode_labels
from federated.models.metrics import classification_metrics, regression_metrics
from federated.types import NDArray, NDArrays

if TYPE_CHECKING:
    # scikit-learn has no type information, so mypy sees its classes as ``Any``, and deriving
    # from ``Any`` would switch off attribute checking on every adapter. These are typed views
    # of what the adapters inherit; at run time the classes are scikit-learn's.

    class BaseEstimator:
        def get_params(self, deep: bool = True) -> dict[str, Any]: ...
        def set_params(self, **params: Any) -> Self: ...

    class ClassifierMixin:
        def score(self, X: NDArray, y: NDArray, sample_weight: NDArray | None = None) -> float: ...

    class RegressorMixin:
        def score(self, X: NDArray, y: NDArray, sample_weight: NDArray | None = None) -> float: ...

else:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin


class BaseAdapter(BaseEstimator, ABC):
    """The abstract contract; scikit-learn's ``BaseEstimator`` provides the parameter API.

    ``get_params``/``set_params`` read ``__init__``'s signature, so every hyper-parameter is
    an attribute of the same name holding exactly what was passed (``clone`` checks this).
    ``set_params`` with an unknown name raises ``ValueError``.
    """

    family: ClassVar[str]

    @abstractmethod
    def fit(self, X: NDArray, y: NDArray) -> Self:
        """Train on ``(X, y)`` and return ``self``."""

    @abstractmethod
    def predict(self, X: NDArray) -> NDArray:
        """Predicted labels (classifiers) or values (regressors), one per row."""

    @abstractmethod
    def score(self, X: NDArray, y: NDArray, sample_weight: NDArray | None = None) -> float:
        """scikit-learn's score: accuracy for classifiers, R² for regressors.

        Provided by ``ClassifierMixin`` or ``RegressorMixin``: every concrete adapter derives
        from one of them (through :class:`ClassifierAdapter` or :class:`RegressorAdapter`).
        """

    @abstractmethod
    def metrics(self, X: NDArray, y: NDArray) -> dict[str, float]:
        """Every quality metric of this kind of model on ``(X, y)``, as plain floats."""

    @abstractmethod
    def to_bytes(self) -> bytes:
        """Serialize in a format that cannot run code on load (safetensors or UBJSON)."""

    @classmethod
    @abstractmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Load bytes written by ``to_bytes`` of the same family.

        Raises ``IncompatibleModelError`` for bytes of another family or format.
        """

    def _require_fitted(self, attribute: str) -> None:
        if not hasattr(self, attribute):
            raise NotFittedError(
                f"{self.family}: the model has no parameters yet; call fit, set_parameters "
                f"or from_bytes first"
            )


class ClassifierAdapter(ClassifierMixin, BaseAdapter):
    """Label handling, ``predict`` and ``metrics`` shared by every classifier.

    Subclasses keep a ``classes`` hyper-parameter (``None`` infers the classes from the first
    ``fit``'s labels, which is only safe outside federated training) and set ``classes_``.
    """

    classes: Sequence[int] | None
    classes_: NDArray

    def _resolve_classes(self, labels: NDArray | None) -> NDArray:
        """Declared classes, else those of an earlier fit, else the labels' unique values."""
        if self.classes is not None:
            return check_classes(self.classes, family=self.family)
        if hasattr(self, "classes_"):
            return self.classes_
        if labels is None:
            raise NotFittedError(
                f"{self.family}: declare `classes` (or fit first) to know the output size"
            )
        return check_classes(np.unique(labels).tolist(), family=self.family)

    @abstractmethod
    def predict_proba(self, X: NDArray) -> NDArray:
        """Class probabilities, shape ``(n, len(classes_))``, rows summing to 1."""

    def predict(self, X: NDArray) -> NDArray:
        """The most probable declared class for each row."""
        proba = self.predict_proba(X)
        return np.asarray(self.classes_[np.argmax(proba, axis=1)])

    def metrics(self, X: NDArray, y: NDArray) -> dict[str, float]:
        """``accuracy``, ``f1_macro``, ``log_loss`` and, for two classes, ``roc_auc``."""
        proba = self.predict_proba(X)
        labels = check_labels(y, n_rows=proba.shape[0], family=self.family)
        encode_labels(labels, self.classes_, family=self.family)  # refuses undeclared labels
        return classification_metrics(labels, proba, self.classes_)


class RegressorAdapter(RegressorMixin, BaseAdapter):
    """``metrics`` shared by regressors. A regressor has no ``predict_proba``."""

    def metrics(self, X: NDArray, y: NDArray) -> dict[str, float]:
        """``rmse``, ``mae`` and ``r2``."""
        predictions = self.predict(X)
        targets = check_target(y, n_rows=predictions.shape[0], family=self.family)
        return regression_metrics(targets, predictions)


class ParametricClassifier(ClassifierAdapter):
    """A classifier whose learned state is a list of weight arrays a strategy can average.

    ``fit`` starts from the current parameters when there are any (set by
    ``set_parameters``, loaded by ``from_bytes`` or left by an earlier ``fit``) and
    ``warm_start`` is true: a federated round starts from the global model.
    """

    @abstractmethod
    def get_parameters(self) -> NDArrays:
        """Copies of the weight arrays, in a fixed order and shape for this configuration."""

    @abstractmethod
    def set_parameters(self, parameters: NDArrays) -> Self:
        """Replace the weights (same count and shapes as ``get_parameters``); returns self.

        Raises ``InvalidUpdateError`` for a wrong count, shape or non-finite value.
        """


def normalized_probabilities(proba: NDArray, family: str) -> NDArray:
    """``proba`` as float64 rows that are finite, in [0, 1] and sum to one.

    Rows are clipped to [0, 1] and renormalized (rounding can leave a sum a few ulps off);
    a row with NaN or inf, or with nothing left to normalize, raises ``PredictionError``.
    """
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or not np.isfinite(proba).all():
        raise PredictionError(f"{family}: the model's probabilities are not finite (NaN or inf)")
    proba = np.clip(proba, 0.0, 1.0)
    totals = proba.sum(axis=1, keepdims=True)
    if proba.shape[0] and not (totals > 0).all():
        raise PredictionError(f"{family}: a row's probabilities are all zero")
    return np.asarray(proba / totals)


def check_parameters(
    family: str, parameters: NDArrays, expected: Sequence[tuple[int, ...]]
) -> None:
    """Raise ``InvalidUpdateError`` unless ``parameters`` match ``expected`` shapes and are finite."""
    if len(parameters) != len(expected):
        raise InvalidUpdateError(
            f"{family}: expected {len(expected)} parameter arrays, got {len(parameters)}"
        )
    for index, (array, shape) in enumerate(zip(parameters, expected, strict=True)):
        got = tuple(np.shape(array))
        if got != tuple(shape):
            raise InvalidUpdateError(
                f"{family}: parameter array {index} has shape {got}, expected {tuple(shape)}"
            )
        if not np.isfinite(array).all():
            raise InvalidUpdateError(f"{family}: parameter array {index} has NaN or inf values")
