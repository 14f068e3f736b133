"""fedspec's federated-learning core: models, strategies, privacy, validation, data.

This package has no Prefect, MLflow or ledger import: flows call it, tests use it directly.
"""

from federated.errors import FederatedError
from federated.types import (
    FitFailure,
    FitResult,
    GlobalModel,
    ModelAdapter,
    NDArrays,
    Scalar,
    Strategy,
)

__all__ = [
    "FederatedError",
    "FitFailure",
    "FitResult",
    "GlobalModel",
    "ModelAdapter",
    "NDArrays",
    "Scalar",
    "Strategy",
]
