"""The one shape every model adapter has, in scikit-learn's conventions.

``__init__`` only stores keyword hyper-parameters; what ``fit`` learns ends in ``_``;
``fit`` returns ``self``; ``to_bytes``/``from_bytes`` exchange a model without running code.
Classifiers declare their ``classes`` up front, because a federated node may hold only some
labels while the global model's output layer must not depend on any node's data.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Self

import numpy as np

from federated.errors import InvalidInputError, InvalidUpdateError, NotFittedError
from federated.models.inputs import check_classes, check_labels, encode_labels
from federated.models.metrics import classification_metrics
from federated.types import NDArray, NDArrays


class BaseAdapter(ABC):
    """Common behaviour: hyper-parameter introspection, repr, and the abstract contract."""

    family: ClassVar[str]

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [name for name in signature.parameters if name != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyper-parameters as given to ``__init__`` (scikit-learn's ``get_params``)."""
        del deep  # adapters hold no nested estimators
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Self:
        """Change hyper-parameters (scikit-learn's ``set_params``); unknown names raise."""
        unknown = set(params) - set(self._param_names())
        if unknown:
            raise InvalidInputError(f"{self.family}: unknown hyper-parameters {sorted(unknown)}")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{name}={value!r}" for name, value in self.get_params().items())
        return f"{type(self).__name__}({args})"

    @abstractmethod
    def fit(self, X: NDArray, y: NDArray) -> Self:
        """Train on ``(X, y)`` and return ``self``."""

    @abstractmethod
    def predict(self, X: NDArray) -> NDArray:
        """Predicted labels (classifiers) or values (regressors), one per row."""

    @abstractmethod
    def predict_proba(self, X: NDArray) -> NDArray:
        """Class probabilities, shape ``(n, len(classes_))``, rows summing to 1."""

    @abstractmethod
    def evaluate(self, X: NDArray, y: NDArray) -> dict[str, float]:
        """Metrics on ``(X, y)`` as plain floats."""

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


class ClassifierAdapter(BaseAdapter):
    """Label handling, ``predict`` and ``evaluate`` shared by every classifier.

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

    def predict(self, X: NDArray) -> NDArray:
        """The most probable declared class for each row."""
        proba = self.predict_proba(X)
        return np.asarray(self.classes_[np.argmax(proba, axis=1)])

    def evaluate(self, X: NDArray, y: NDArray) -> dict[str, float]:
        """``accuracy``, ``f1_macro``, ``log_loss`` and, for two classes, ``roc_auc``."""
        proba = self.predict_proba(X)
        labels = check_labels(y, n_rows=proba.shape[0], family=self.family)
        encode_labels(labels, self.classes_, family=self.family)  # refuses undeclared labels
        return classification_metrics(labels, proba, self.classes_)


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
