"""A global model as the profile defines it: the adapter plus the profile's input scaling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from federated.errors import IncompatibleModelError
from federated.models import ClassifierAdapter, create_model, load_model
from federated.plan import TrainingPlan
from federated.types import GlobalModel, ModelAdapter, NDArray


def adapter_for(plan: TrainingPlan, model: GlobalModel) -> ModelAdapter:
    """An adapter of the profile's family holding ``model``'s weights or trees."""
    if isinstance(model.parameters, bytes):
        return load_model(plan.family, model.parameters)
    adapter = create_model(plan.family, **dict(plan.hyperparameters))
    adapter.set_parameters(list(model.parameters))  # type: ignore[attr-defined]
    return adapter


@dataclass(frozen=True)
class ProfileModel:
    """Predicts and evaluates on raw rows, scaling them as the profile says."""

    plan: TrainingPlan
    adapter: ModelAdapter

    @classmethod
    def of(cls, plan: TrainingPlan, model: GlobalModel) -> ProfileModel:
        return cls(plan, adapter_for(plan, model))

    def predict(self, X: Any) -> NDArray:
        return self.adapter.predict(self.plan.prepare(X))

    def predict_proba(self, X: Any) -> NDArray:
        if not isinstance(self.adapter, ClassifierAdapter):  # regressors have no predict_proba
            raise IncompatibleModelError(f"{self.plan.family} predicts values, not probabilities")
        return self.adapter.predict_proba(self.plan.prepare(X))

    def metrics(self, X: Any, y: NDArray) -> dict[str, float]:
        """The adapter's ``metrics`` on raw rows."""
        return self.adapter.metrics(self.plan.prepare(X), y)
