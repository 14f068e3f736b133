"""What the registry reads from a specialization profile: its objective, its task, and how
to turn a global model's exchange bytes back into a model adapter.

A profile is the JSON document on the ledger (``chaincode/profile.schema.json``). No MLflow
import here, and the model layer only inside the functions that load or feed a model: flows,
evaluation and matching use these helpers without paying for either.
"""

from __future__ import annotations

import inspect
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal

from federated.errors import FederatedError
from registry.errors import EvaluationError, InvalidModelError

if TYPE_CHECKING:
    from federated.models import BaseAdapter
    from federated.types import NDArray

Direction = Literal["maximize", "minimize"]
TaskType = Literal["classification", "regression"]

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
    "==": operator.eq,
}


@dataclass(frozen=True)
class Constraint:
    """``metric op value``, e.g. ``latency_ms_p95 <= 5``."""

    metric: str
    op: str
    value: float

    def holds(self, metrics: Mapping[str, float]) -> bool:
        measured = metrics.get(self.metric)
        # An unmeasured or NaN metric cannot show the constraint holds.
        return (
            measured is not None
            and not math.isnan(measured)
            and _OPS[self.op](measured, self.value)
        )

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


@dataclass(frozen=True)
class Objective:
    """The profile's ``objective``: the metric to optimize, its direction, its constraints."""

    metric: str
    direction: Direction
    constraints: tuple[Constraint, ...] = ()

    def better(self, candidate: float, incumbent: float) -> bool:
        """Whether ``candidate`` strictly beats ``incumbent`` (a tie keeps the incumbent;
        NaN never wins)."""
        if math.isnan(candidate):
            return False
        if math.isnan(incumbent):
            return True
        if self.direction == "maximize":
            return candidate > incumbent
        return candidate < incumbent

    def violations(self, metrics: Mapping[str, float]) -> list[str]:
        """The constraints ``metrics`` break (a missing metric breaks its constraint)."""
        return [str(c) for c in self.constraints if not c.holds(metrics)]


def objective_of(profile: Mapping[str, Any]) -> Objective:
    try:
        spec = profile["objective"]
        direction = spec["direction"]
        if direction not in ("maximize", "minimize"):
            raise EvaluationError(f"objective direction {direction!r} is not maximize/minimize")
        constraints = tuple(
            Constraint(str(c["metric"]), str(c["op"]), _decimal(c["value"]))
            for c in spec.get("constraints") or ()
        )
        unknown = [c.op for c in constraints if c.op not in _OPS]
        if unknown:
            raise EvaluationError(f"unknown constraint operators {unknown}")
        return Objective(str(spec["metric"]), direction, constraints)
    except (KeyError, TypeError) as exc:
        raise EvaluationError(f"profile has no usable objective: {exc!r}") from exc


def task_type_of(profile: Mapping[str, Any]) -> TaskType:
    task_type = (profile.get("task") or {}).get("type", "classification")
    if task_type not in ("classification", "regression"):
        raise EvaluationError(f"unknown task type {task_type!r}")
    return "regression" if task_type == "regression" else "classification"


def profile_id_of(profile: Mapping[str, Any]) -> str:
    try:
        return str(profile["id"])
    except KeyError:
        raise InvalidModelError("profile has no id") from None


def family_of_profile(profile: Mapping[str, Any]) -> str:
    try:
        return str(profile["model"]["family"])
    except (KeyError, TypeError):
        raise InvalidModelError("profile names no model family") from None


def n_features_of(profile: Mapping[str, Any]) -> int | None:
    """Width of a feature row: the product of ``feature_schema.shape`` or the column count."""
    schema = profile.get("feature_schema") or {}
    if schema.get("columns"):
        return len(schema["columns"])
    if schema.get("shape"):
        return math.prod(int(s) for s in schema["shape"])
    return None


def model_hyperparameters(profile: Mapping[str, Any]) -> dict[str, Any]:
    """The profile's ``model.hyperparameters`` plus what fixes the model's shape: declared
    ``classes`` (``task.labels``) and the input size (``n_features``, or ``image_size`` for
    ``torch-cnn``), each only where the family takes it and the profile did not set it.
    Keys the family's adapter does not take (the flows' ``local_rounds``) are left out."""
    family = family_of_profile(profile)
    accepted = _accepted(family)
    params = {
        k: v
        for k, v in ((profile.get("model") or {}).get("hyperparameters") or {}).items()
        if k in accepted
    }
    labels = (profile.get("task") or {}).get("labels")
    if "classes" in accepted and labels and "classes" not in params:
        params["classes"] = list(labels)
    width = n_features_of(profile)
    if width is not None and "n_features" in accepted and "n_features" not in params:
        params["n_features"] = width
    if width is not None and "image_size" in accepted and "image_size" not in params:
        side = math.isqrt(width)
        if side * side == width:
            params["image_size"] = side
    return params


def resolve_hyperparameters(
    profile: Mapping[str, Any], given: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``given`` (e.g. the flows' ``TrainingPlan.hyperparameters``) restricted to what the
    family's adapter takes, or :func:`model_hyperparameters` of the profile if ``None``."""
    if given is None:
        return model_hyperparameters(profile)
    accepted = _accepted(family_of_profile(profile))
    return {k: v for k, v in given.items() if k in accepted}


def prepare_features(profile: Mapping[str, Any], X: Any) -> NDArray:
    """Raw feature rows → the rows every model of the profile trains and predicts on: each
    feature scaled into [0, 1] by the bounds of the profile's ``feature_schema``
    (``federated.preprocessing``). The pyfunc applies it, so clients send raw rows."""
    # Deferred: the model layer (scikit-learn, SciPy, torch) loads only when rows are
    # prepared or a model is loaded, never for matching, objectives or schemas.
    from federated.preprocessing import scale_features

    return scale_features(X, profile.get("feature_schema") or {})


def round_params(profile: Mapping[str, Any], participants: Sequence[str]) -> dict[str, Any]:
    """The params of a round's parent run: strategy, privacy, model and participants.

    MLflow params are immutable: a retried round must log the same participants (the
    ledger fixes them per round); anything that changes on a retry belongs in tags.
    """
    aggregation = profile.get("aggregation") or {}
    model = profile.get("model") or {}
    return {
        "profile": profile_id_of(profile),
        "strategy": aggregation.get("strategy"),
        "strategy_params": dict(aggregation.get("params") or {}),
        "privacy": dict(profile.get("privacy") or {}),
        "family": model.get("family"),
        "hyperparameters": dict(model.get("hyperparameters") or {}),
        "min_nodes": profile.get("min_nodes"),
        "participants": sorted(participants),
        "n_participants": len(participants),
    }


def load_global_adapter(
    profile: Mapping[str, Any],
    model_bytes: bytes,
    *,
    hyperparameters: Mapping[str, Any] | None = None,
) -> BaseAdapter:
    """The adapter a global model's exchange bytes describe, ready to predict.

    Weight arrays go into ``create_model(family, **hyperparameters)`` (default:
    :func:`model_hyperparameters` of the profile); tree models load from their own bytes.
    Bytes of another family than the profile's, or that do not fit, raise
    ``InvalidModelError``. Loading runs no code from the bytes (safetensors / UBJSON).
    """
    # Deferred: see prepare_features.
    from federated.exchange import decode_global_model
    from federated.models import create_model, load_model
    from federated.models.base import ParametricClassifier

    family = family_of_profile(profile)
    try:
        model = decode_global_model(model_bytes)
        if model.family != family:
            raise InvalidModelError(
                f"the bytes hold a {model.family!r} model, the profile names {family!r}"
            )
        if isinstance(model.parameters, bytes):
            return load_model(family, model.parameters)
        adapter = create_model(family, **resolve_hyperparameters(profile, hyperparameters))
        if not isinstance(adapter, ParametricClassifier):
            raise InvalidModelError(f"{family} takes no weight arrays", family=family)
        return adapter.set_parameters(list(model.parameters))
    except FederatedError as exc:
        raise InvalidModelError(f"{exc.code}: {exc}", family=family, cause_code=exc.code) from exc


def _accepted(family: str) -> set[str]:
    """The keyword hyper-parameters the family's adapter takes."""
    from federated.models import adapter_class  # deferred: see prepare_features

    try:
        return set(inspect.signature(adapter_class(family).__init__).parameters) - {"self"}
    except FederatedError as exc:
        raise InvalidModelError(str(exc), family=family) from exc


def _decimal(value: Any) -> float:
    try:
        return float(Decimal(str(value)))
    except (InvalidOperation, ValueError) as exc:
        raise EvaluationError(f"constraint value {value!r} is not a decimal") from exc
