"""``xgboost-classifier`` and ``xgboost-regressor``: XGBoost boosters in the adapter shape.

Bytes are XGBoost's own UBJSON (``Booster.save_raw("ubj")``): pure data that any XGBoost
loads without running code, and that tree strategies can parse or append to. The fedspec
family and hyper-parameters ride inside as booster attributes (``fedspec_family``,
``fedspec_hyperparameters``); bytes without them (e.g. a model a strategy assembled) are
still accepted, their family read from the objective.

Trees are not averaged, so these adapters have no ``get_parameters``; federated rounds
continue boosting instead (:meth:`XGBoostModel.boost`) and ship new trees
(:meth:`XGBoostModel.tail_bytes`), as Flower's bagging strategy does.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Self

import numpy as np
import xgboost as xgb

from federated.errors import IncompatibleModelError, InvalidInputError
from federated.models.base import (
    BaseAdapter,
    ClassifierAdapter,
    RegressorAdapter,
    normalized_probabilities,
)
from federated.models.inputs import check_features, check_labels, check_target, encode_labels
from federated.models.serialization import family_in, to_json_value
from federated.types import NDArray

_FAMILY_ATTR = "fedspec_family"
_PARAMS_ATTR = "fedspec_hyperparameters"


class XGBoostModel(BaseAdapter):
    """Training, continued boosting and UBJSON bytes shared by the XGBoost families.

    ``random_state`` seeds XGBoost (``seed``; ``None`` means 0, XGBoost's default), and
    ``num_threads`` its ``nthread``; training is deterministic on the CPU for fixed values.
    """

    num_rounds: int
    max_depth: int
    learning_rate: float
    subsample: float
    colsample_bytree: float
    min_child_weight: float
    reg_lambda: float
    n_features: int | None
    random_state: int | None
    num_threads: int | None

    booster_: xgb.Booster
    n_features_in_: int

    _objectives: ClassVar[tuple[str, ...]]

    @abstractmethod
    def _objective_params(self) -> dict[str, Any]:
        """XGBoost's ``objective`` (and ``num_class``) for this family."""

    @abstractmethod
    def _targets(self, y: NDArray, n_rows: int) -> NDArray:
        """Checked training targets (class indices for classifiers)."""

    def _adopt(self, start: Self) -> None:
        """Continue from ``start``'s booster (loaded from a ``base`` given to ``boost``)."""
        self.booster_, self.n_features_in_ = start.booster_, start.n_features_in_

    def _params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "max_depth": self.max_depth,
            "eta": self.learning_rate,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "min_child_weight": self.min_child_weight,
            "lambda": self.reg_lambda,
            "tree_method": "hist",
            "seed": 0 if self.random_state is None else self.random_state,
            **self._objective_params(),
        }
        if self.num_threads is not None:
            params["nthread"] = self.num_threads
        return params

    def _check_X(self, X: object) -> NDArray:
        expected = self.n_features
        if expected is None and hasattr(self, "booster_"):
            expected = self.n_features_in_
        return check_features(X, n_features=expected, family=self.family)

    def fit(self, X: NDArray, y: NDArray) -> Self:
        """Train ``num_rounds`` rounds from scratch (see :meth:`boost` to continue a model)."""
        for name in ("booster_", "n_features_in_", "classes_"):
            self.__dict__.pop(name, None)
        return self.boost(X, y)

    def boost(
        self, X: NDArray, y: NDArray, num_rounds: int | None = None, base: bytes | None = None
    ) -> Self:
        """Add ``num_rounds`` (default: the hyper-parameter) boosting rounds on ``(X, y)``.

        Continues from ``base`` (UBJSON bytes of the same family, e.g. the global model)
        when given, else from this model's booster when it has one, else starts fresh.
        """
        rounds = self.num_rounds if num_rounds is None else num_rounds
        if rounds < 1:
            raise InvalidInputError(f"{self.family}: num_rounds must be >= 1")
        if base is not None:
            self._adopt(type(self).from_bytes(base))
        features = self._check_X(X)
        targets = self._targets(y, features.shape[0])
        matrix = xgb.DMatrix(features, label=targets, nthread=self.num_threads or -1)
        previous = getattr(self, "booster_", None)
        try:
            booster = xgb.train(self._params(), matrix, num_boost_round=rounds, xgb_model=previous)
        except xgb.core.XGBoostError as exc:
            # XGBoost validates hyper-parameters only when training starts.
            raise InvalidInputError(f"{self.family}: XGBoost refused to train: {exc}") from exc
        self.booster_, self.n_features_in_ = booster, features.shape[1]
        return self

    def _raw_predict(self, X: NDArray) -> NDArray:
        self._require_fitted("booster_")
        return np.asarray(self.booster_.inplace_predict(self._check_X(X)), dtype=np.float64)

    def _resolved_params(self) -> dict[str, Any]:
        return {**self.get_params(), "n_features": self.n_features_in_}

    def _save(self, booster: xgb.Booster) -> bytes:
        header = json.dumps(
            {k: to_json_value(v) for k, v in self._resolved_params().items()}, sort_keys=True
        )
        booster.set_attr(**{_FAMILY_ATTR: self.family, _PARAMS_ATTR: header})
        return bytes(booster.save_raw("ubj"))

    def to_bytes(self) -> bytes:
        """The whole model as UBJSON."""
        self._require_fitted("booster_")
        return self._save(self.booster_)

    def tail_bytes(self, num_rounds: int) -> bytes:
        """UBJSON of only the last ``num_rounds`` rounds: the trees a node adds in a round."""
        self._require_fitted("booster_")
        total = self.booster_.num_boosted_rounds()
        if not 1 <= num_rounds <= total:
            raise InvalidInputError(f"{self.family}: num_rounds must be in 1..{total}")
        return self._save(self.booster_[total - num_rounds : total])

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Load UBJSON bytes; bytes of another family or format raise ``IncompatibleModelError``."""
        other = family_in(data)
        if other is not None:
            raise IncompatibleModelError(
                f"expected a {cls.family} model, the bytes hold a {other} model",
                expected=cls.family,
                found=other,
            )
        # XGBoost 3.2 aborts the process (std::terminate) on an empty buffer: refuse it here.
        if len(data) < 16:
            raise IncompatibleModelError(
                f"expected a {cls.family} model as XGBoost UBJSON; {len(data)} bytes are not one",
                expected=cls.family,
                found=None,
            )
        booster = xgb.Booster()
        try:
            booster.load_model(bytearray(data))
        except xgb.core.XGBoostError as exc:
            raise IncompatibleModelError(
                f"expected a {cls.family} model as XGBoost UBJSON; these bytes are not one",
                expected=cls.family,
                found=None,
            ) from exc
        objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
        found = booster.attr(_FAMILY_ATTR)
        if (found is not None and found != cls.family) or objective not in cls._objectives:
            raise IncompatibleModelError(
                f"expected a {cls.family} model, the bytes hold a {found or objective} model",
                expected=cls.family,
                found=found or objective,
            )
        header = booster.attr(_PARAMS_ATTR)
        try:
            model = cls(**json.loads(header)) if header else cls._from_booster(booster)
        except TypeError as exc:
            raise IncompatibleModelError(f"{cls.family}: unknown hyper-parameters: {exc}") from exc
        model.booster_, model.n_features_in_ = booster, booster.num_features()
        return model

    @classmethod
    @abstractmethod
    def _from_booster(cls, booster: xgb.Booster) -> Self:
        """An adapter for bytes without a fedspec header: defaults, shape from the model."""


class XGBoostClassifier(XGBoostModel, ClassifierAdapter):
    """``xgboost-classifier``: ``binary:logistic`` for two classes, ``multi:softprob`` above."""

    family = "xgboost-classifier"
    _objectives = ("binary:logistic", "multi:softprob")

    def __init__(
        self,
        *,
        classes: Sequence[int] | None = None,
        n_features: int | None = None,
        num_rounds: int = 50,
        max_depth: int = 6,
        learning_rate: float = 0.3,
        subsample: float = 1.0,
        colsample_bytree: float = 1.0,
        min_child_weight: float = 1.0,
        reg_lambda: float = 1.0,
        random_state: int | None = None,
        num_threads: int | None = None,
    ) -> None:
        self.classes = classes
        self.n_features = n_features
        self.num_rounds = num_rounds
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.min_child_weight = min_child_weight
        self.reg_lambda = reg_lambda
        self.random_state = random_state
        self.num_threads = num_threads

    def _objective_params(self) -> dict[str, Any]:
        if self.classes_.size == 2:
            return {"objective": "binary:logistic"}
        return {"objective": "multi:softprob", "num_class": int(self.classes_.size)}

    def _targets(self, y: NDArray, n_rows: int) -> NDArray:
        labels = check_labels(y, n_rows=n_rows, family=self.family)
        self.classes_ = self._resolve_classes(labels)
        return encode_labels(labels, self.classes_, family=self.family)

    def _resolved_params(self) -> dict[str, Any]:
        return {**super()._resolved_params(), "classes": self.classes_.tolist()}

    def _adopt(self, start: Self) -> None:
        declared = self._resolve_classes(start.classes_)
        if not np.array_equal(declared, start.classes_):
            raise IncompatibleModelError(
                f"{self.family}: base model classes {start.classes_.tolist()} differ from "
                f"the declared classes {declared.tolist()}",
            )
        super()._adopt(start)
        self.classes_ = start.classes_

    @classmethod
    def _from_booster(cls, booster: xgb.Booster) -> Self:
        config = json.loads(booster.save_config())["learner"]["learner_model_param"]
        n_classes = max(int(config["num_class"]), 2)
        return cls(classes=list(range(n_classes)), n_features=booster.num_features())

    def predict_proba(self, X: NDArray) -> NDArray:
        """Class probabilities, one column per declared class."""
        raw = self._raw_predict(X)
        proba = np.column_stack([1.0 - raw, raw]) if raw.ndim == 1 else raw
        return normalized_probabilities(proba, self.family)

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Load UBJSON bytes; bytes of another family or format raise ``IncompatibleModelError``."""
        model = super().from_bytes(data)
        model.classes_ = model._resolve_classes(None)
        return model


class XGBoostRegressor(XGBoostModel, RegressorAdapter):
    """``xgboost-regressor``: squared-error regression; ``metrics`` gives rmse, mae, r2."""

    family = "xgboost-regressor"
    _objectives = ("reg:squarederror",)

    def __init__(
        self,
        *,
        n_features: int | None = None,
        num_rounds: int = 50,
        max_depth: int = 6,
        learning_rate: float = 0.3,
        subsample: float = 1.0,
        colsample_bytree: float = 1.0,
        min_child_weight: float = 1.0,
        reg_lambda: float = 1.0,
        random_state: int | None = None,
        num_threads: int | None = None,
    ) -> None:
        self.n_features = n_features
        self.num_rounds = num_rounds
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.min_child_weight = min_child_weight
        self.reg_lambda = reg_lambda
        self.random_state = random_state
        self.num_threads = num_threads

    def _objective_params(self) -> dict[str, Any]:
        return {"objective": "reg:squarederror"}

    def _targets(self, y: NDArray, n_rows: int) -> NDArray:
        return check_target(y, n_rows=n_rows, family=self.family)

    @classmethod
    def _from_booster(cls, booster: xgb.Booster) -> Self:
        return cls(n_features=booster.num_features())

    def predict(self, X: NDArray) -> NDArray:
        """Predicted values, float64."""
        return self._raw_predict(X)
