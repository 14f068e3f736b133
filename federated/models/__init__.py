"""Model adapters: scikit-learn estimators over torch, XGBoost and scikit-learn models.

``create_model(family, **hyperparameters)`` builds an adapter, ``load_model(family, data)``
loads one from bytes that cannot run code on load. Families: ``torch-mlp``, ``torch-cnn``,
``xgboost-classifier``, ``xgboost-regressor``, ``sklearn-linear``, ``dp-logistic-regression``.
The adapter classes live in submodules imported on first use (torch is slow to import).
"""

from federated.models.base import (
    BaseAdapter,
    ClassifierAdapter,
    ParametricClassifier,
    RegressorAdapter,
)
from federated.models.registry import (
    FAMILIES,
    PARAMETRIC_FAMILIES,
    adapter_class,
    create_model,
    family_of,
    load_model,
)

__all__ = [
    "FAMILIES",
    "PARAMETRIC_FAMILIES",
    "BaseAdapter",
    "ClassifierAdapter",
    "ParametricClassifier",
    "RegressorAdapter",
    "adapter_class",
    "create_model",
    "family_of",
    "load_model",
]
