"""What training a profile needs, derived once from the profile document on the ledger.

The profile names the family, hyper-parameters, strategy and privacy; the model's shape
(classes, input size) comes from the profile's task and feature schema, never from any one
node's data, so every node and every coordinator builds the same model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from federated.errors import FederatedError
from federated.preprocessing import scale_features
from federated.privacy import PrivacyConfig
from federated.strategies import Scaffold, create_strategy, guard_strategy
from federated.types import GlobalModel, NDArray, Strategy
from fedspec.errors import ErrorCode

TREE_FAMILIES = frozenset({"xgboost-classifier", "xgboost-regressor"})


class PlanError(FederatedError):
    """The profile cannot be trained as written (a readable reason)."""

    code = ErrorCode.PLAN_INVALID


@dataclass(frozen=True)
class TrainingPlan:
    profile_id: str
    spec: Mapping[str, Any]
    family: str
    hyperparameters: Mapping[str, Any]
    strategy_name: str
    strategy_params: Mapping[str, Any]
    privacy: PrivacyConfig | None
    min_nodes: int
    task_type: str
    objective_metric: str
    objective_direction: str
    xgb_params: Mapping[str, Any] = field(default_factory=dict)
    local_rounds: int = 1

    @property
    def is_tree(self) -> bool:
        return self.family in TREE_FAMILIES

    @property
    def uses_control_variates(self) -> bool:
        """Whether nodes keep a SCAFFOLD control variate ``c_i`` between rounds and send
        its change ``Δc_i`` with each update (:mod:`federated.strategies.scaffold`)."""
        return self.strategy_name == Scaffold.name

    @property
    def characteristics(self) -> Mapping[str, Any]:
        return dict(self.spec["characteristics"])

    @classmethod
    def from_profile(cls, profile_id: str, spec: Mapping[str, Any]) -> TrainingPlan:
        family = str(spec["model"]["family"])
        hp = dict(spec["model"].get("hyperparameters") or {})
        task = spec["task"]
        task_type = str(task["type"])
        shape = (spec.get("feature_schema") or {}).get("shape")
        columns = (spec.get("feature_schema") or {}).get("columns")
        n_features = math.prod(shape) if shape else (len(columns) if columns else None)
        if task_type == "classification":
            labels = task.get("labels")
            if not labels or not all(isinstance(v, int) for v in labels):
                raise PlanError(f"profile {profile_id}: classification needs integer task.labels")
            if family != "xgboost-regressor":
                hp.setdefault("classes", list(labels))
        if family == "torch-cnn":
            if n_features is None or math.isqrt(n_features) ** 2 != n_features:
                raise PlanError(
                    f"profile {profile_id}: torch-cnn needs a square image feature_schema.shape"
                )
            hp.setdefault("image_size", math.isqrt(n_features))
        elif n_features is not None:
            hp.setdefault("n_features", n_features)
        aggregation = spec["aggregation"]
        strategy = str(aggregation["strategy"])
        if strategy == "xgb-histogram":
            raise PlanError(
                f"profile {profile_id}: xgb-histogram needs every node connected to the coordinator "
                "for the whole round; the flows run xgb-bagging rounds (federated.trees has the "
                "histogram federation for co-located nodes)"
            )
        local_rounds = int(
            aggregation.get("params", {}).get("local_rounds", hp.pop("local_rounds", 2))
        )
        xgb_params: dict[str, Any] = {}
        if family in TREE_FAMILIES:
            xgb_params = _xgb_params(family, hp)
        objective = spec["objective"]
        return cls(
            profile_id=profile_id,
            spec=spec,
            family=family,
            hyperparameters=hp,
            strategy_name=strategy,
            strategy_params={
                k: v for k, v in (aggregation.get("params") or {}).items() if k != "local_rounds"
            },
            privacy=_privacy(spec),
            min_nodes=int(spec["min_nodes"]),
            task_type=task_type,
            objective_metric=str(objective["metric"]),
            objective_direction=str(objective["direction"]),
            xgb_params=xgb_params,
            local_rounds=local_rounds,
        )

    def strategy(self, *, federation_size: int | None = None) -> Strategy:
        """The profile's strategy behind the screen, privacy check and k-of-n quorum.

        ``federation_size`` is SCAFFOLD's ``N`` in ``c ← c + (|S|/N)·mean(Δc_i)`` (a real
        round's coordinator passes the profile's volunteers): used unless the profile's
        ``aggregation.params.num_nodes`` states it, ignored by every other strategy."""
        params = dict(self.strategy_params)
        if self.uses_control_variates and federation_size is not None:
            params.setdefault("num_nodes", federation_size)
        return guard_strategy(
            create_strategy(self.strategy_name, **params),
            min_nodes=self.min_nodes,
            privacy=self.privacy,
        )

    def seed(self, *parts: object) -> int:
        """A deterministic 31-bit seed for this profile and ``parts`` (round, node, …)."""
        text = "/".join([self.profile_id, *map(str, parts)])
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF

    def prepare(self, X: Any) -> NDArray:
        """Raw feature rows → the scaled rows every model of the profile trains and predicts on."""

        return scale_features(X, self.spec.get("feature_schema") or {})

    def initial_model(self) -> GlobalModel:
        """Round 0: seeded initial weights, or an empty tree ensemble."""
        if self.is_tree:
            return GlobalModel(self.family, b"")
        # Deferred: loads safetensors, scipy, sklearn only when used.
        from federated.simulation import initial_model

        return initial_model(self.family, self.hyperparameters, seed=self.seed("initial"))


def _privacy(spec: Mapping[str, Any]) -> PrivacyConfig | None:
    """The profile's privacy; under secure aggregation, client-level noise is shared out:
    each node adds σ²/t, so the sum of the t or more survivors the protocol unmasks carries
    σ² once (docs/privacy.md, "Distributed noise")."""
    privacy = PrivacyConfig.from_profile(spec["privacy"])
    secure = spec["aggregation"].get("secure")
    if privacy is not None and secure is not None and privacy.mechanism == "gaussian-update":
        privacy = dataclasses.replace(privacy, noise_shares=int(secure["threshold"]))
    return privacy


_XGB_REGULARIZERS = ("subsample", "colsample_bytree", "min_child_weight")


def _xgb_params(family: str, hp: Mapping[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {
        "max_depth": int(hp.get("max_depth", 4)),
        "eta": float(hp.get("learning_rate", 0.3)),
        "nthread": 1,
    }
    # Regularizers, only where the profile states them (XGBoost's defaults otherwise): row
    # and column sampling and a minimum leaf weight keep a node's trees, fitted to a few
    # subjects' rows, from memorizing them (docs/benchmarks.md, watch profiles).
    for name in _XGB_REGULARIZERS:
        if name in hp:
            params[name] = float(hp[name])
    if family == "xgboost-regressor":
        params["objective"] = "reg:squarederror"
    else:
        classes = list(hp.get("classes") or [])
        if len(classes) > 2:
            params.update(objective="multi:softprob", num_class=len(classes))
        else:
            params["objective"] = "binary:logistic"
    return params


def matches(characteristics: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether data with ``characteristics`` fits a profile asking for ``wanted``."""
    for key, value in wanted.items():
        have = characteristics.get(key)
        if isinstance(have, list):
            if not (set(value) <= set(have) if isinstance(value, list) else value in have):
                return False
        elif have != value:
            return False
    return True
