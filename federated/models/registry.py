"""Family names → adapter classes, imported lazily (torch alone takes seconds to import).

The family strings are the ones specialization profiles name; they are stable.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Literal, overload

from federated.errors import IncompatibleModelError
from federated.models.serialization import family_in

if TYPE_CHECKING:
    from federated.models.base import BaseAdapter
    from federated.models.dp_linear import DPLogisticRegression
    from federated.models.linear import LinearClassifier
    from federated.models.torch_adapters import TorchCNNClassifier, TorchMLPClassifier
    from federated.models.xgb import XGBoostClassifier, XGBoostRegressor

_FAMILIES: dict[str, tuple[str, str]] = {
    "torch-mlp": ("federated.models.torch_adapters", "TorchMLPClassifier"),
    "torch-cnn": ("federated.models.torch_adapters", "TorchCNNClassifier"),
    "xgboost-classifier": ("federated.models.xgb", "XGBoostClassifier"),
    "xgboost-regressor": ("federated.models.xgb", "XGBoostRegressor"),
    "sklearn-linear": ("federated.models.linear", "LinearClassifier"),
    "dp-logistic-regression": ("federated.models.dp_linear", "DPLogisticRegression"),
}

FAMILIES: tuple[str, ...] = tuple(_FAMILIES)
"""Every family name :func:`create_model` accepts."""

PARAMETRIC_FAMILIES: frozenset[str] = frozenset(
    {"torch-mlp", "torch-cnn", "sklearn-linear", "dp-logistic-regression"}
)
"""Families whose adapters have ``get_parameters``/``set_parameters`` (weights to average);
the others (XGBoost) exchange whole models as bytes."""


def adapter_class(family: str) -> type[BaseAdapter]:
    """The adapter class of ``family``; an unknown family raises ``IncompatibleModelError``."""
    try:
        module_name, class_name = _FAMILIES[family]
    except KeyError:
        raise IncompatibleModelError(
            f"unknown model family {family!r}; known: {', '.join(FAMILIES)}", family=family
        ) from None
    cls: type[BaseAdapter] = getattr(importlib.import_module(module_name), class_name)
    return cls


@overload
def create_model(family: Literal["torch-mlp"], **hyperparameters: Any) -> TorchMLPClassifier: ...
@overload
def create_model(family: Literal["torch-cnn"], **hyperparameters: Any) -> TorchCNNClassifier: ...
@overload
def create_model(
    family: Literal["xgboost-classifier"], **hyperparameters: Any
) -> XGBoostClassifier: ...
@overload
def create_model(
    family: Literal["xgboost-regressor"], **hyperparameters: Any
) -> XGBoostRegressor: ...
@overload
def create_model(family: Literal["sklearn-linear"], **hyperparameters: Any) -> LinearClassifier: ...
@overload
def create_model(
    family: Literal["dp-logistic-regression"], **hyperparameters: Any
) -> DPLogisticRegression: ...
@overload
def create_model(family: str, **hyperparameters: Any) -> BaseAdapter: ...
def create_model(family: str, **hyperparameters: Any) -> BaseAdapter:
    """A new, unfitted adapter of ``family`` with the given hyper-parameters.

    Unknown families and unknown hyper-parameter names raise ``IncompatibleModelError``.
    """
    cls = adapter_class(family)
    try:
        return cls(**hyperparameters)
    except TypeError as exc:
        raise IncompatibleModelError(
            f"{family}: unknown hyper-parameters {sorted(hyperparameters)}: {exc}", family=family
        ) from exc


@overload
def load_model(family: Literal["torch-mlp"], data: bytes) -> TorchMLPClassifier: ...
@overload
def load_model(family: Literal["torch-cnn"], data: bytes) -> TorchCNNClassifier: ...
@overload
def load_model(family: Literal["xgboost-classifier"], data: bytes) -> XGBoostClassifier: ...
@overload
def load_model(family: Literal["xgboost-regressor"], data: bytes) -> XGBoostRegressor: ...
@overload
def load_model(family: Literal["sklearn-linear"], data: bytes) -> LinearClassifier: ...
@overload
def load_model(family: Literal["dp-logistic-regression"], data: bytes) -> DPLogisticRegression: ...
@overload
def load_model(family: str, data: bytes) -> BaseAdapter: ...
def load_model(family: str, data: bytes) -> BaseAdapter:
    """Load bytes written by ``to_bytes`` of ``family``; other families or formats raise
    ``IncompatibleModelError``. Loading never runs code carried by the bytes."""
    return adapter_class(family).from_bytes(data)


def family_of(data: bytes) -> str | None:
    """The family fedspec safetensors bytes declare; ``None`` for any other bytes
    (XGBoost UBJSON declares its family inside the booster: load it with :func:`load_model`)."""
    return family_in(data)
