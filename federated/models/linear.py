"""Linear one-vs-rest classifiers: the shared adapter, and ``sklearn-linear`` (SGDClassifier).

Parameters are ``[coef, intercept]`` in scikit-learn's layout: ``(1, d)`` and ``(1,)`` for two
classes, ``(k, d)`` and ``(k,)`` for ``k > 2``. The layout depends only on the declared
classes, so models from nodes holding different labels average cleanly.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, Self

import numpy as np
from scipy.special import log_expit, logsumexp
from sklearn.linear_model import SGDClassifier

from federated.errors import (
    IncompatibleModelError,
    InvalidInputError,
    NotFittedError,
    PredictionError,
    TrainingError,
)
from federated.models.base import (
    ParametricClassifier,
    check_parameters,
    normalized_probabilities,
)
from federated.models.inputs import check_features, check_labels, encode_labels
from federated.models.serialization import pack, unpack
from federated.types import NDArray, NDArrays


def ovr_estimator(coef: NDArray, intercept: NDArray, classes: NDArray) -> SGDClassifier:
    """A scikit-learn estimator that predicts with given one-vs-rest logistic weights.

    Setting the fitted attributes is scikit-learn's documented way to reuse weights learned
    elsewhere (Flower's scikit-learn examples do the same).
    """
    estimator = SGDClassifier(loss="log_loss")
    estimator.classes_ = classes
    estimator.coef_ = coef
    estimator.intercept_ = intercept
    estimator.n_features_in_ = coef.shape[1]
    return estimator


class LinearModel(ParametricClassifier):
    """Parameters, prediction and serialization shared by the linear families.

    Without any fit or ``set_parameters``, declared ``classes`` and ``n_features`` give
    all-zero initial weights (scikit-learn's own starting point for SGD).
    """

    classes: Sequence[int] | None
    n_features: int | None
    warm_start: bool
    random_state: int | None

    coef_: NDArray
    intercept_: NDArray
    n_features_in_: int

    @abstractmethod
    def _train(
        self, features: NDArray, labels: NDArray, classes: NDArray, start: NDArrays
    ) -> NDArrays:
        """Learn ``[coef, intercept]`` from ``start`` (the initial or global weights)."""

    @staticmethod
    def _zeros(n_features: int, classes: NDArray) -> NDArrays:
        rows = 1 if classes.size == 2 else int(classes.size)
        return [np.zeros((rows, n_features)), np.zeros(rows)]

    def _ensure_parameters(self) -> None:
        if hasattr(self, "coef_"):
            return
        if self.n_features is None or self.classes is None:
            raise NotFittedError(
                f"{self.family}: no weights yet; declare `classes` and `n_features`, or fit first"
            )
        classes = self._resolve_classes(None)
        self._store(self._zeros(self.n_features, classes), classes)

    def _store(self, parameters: NDArrays, classes: NDArray) -> None:
        self.coef_, self.intercept_ = parameters
        self.classes_, self.n_features_in_ = classes, int(parameters[0].shape[1])

    def _expected_features(self, *, fitting: bool) -> int | None:
        if self.n_features is not None:
            return self.n_features
        if hasattr(self, "coef_") and (self.warm_start or not fitting):
            return self.n_features_in_
        return None

    def fit(self, X: NDArray, y: NDArray) -> Self:
        """Train from the current weights when ``warm_start`` (zeros otherwise)."""
        features = check_features(
            X, n_features=self._expected_features(fitting=True), family=self.family
        )
        labels = check_labels(y, n_rows=features.shape[0], family=self.family)
        classes = self._resolve_classes(labels)
        encode_labels(labels, classes, family=self.family)  # refuses undeclared labels
        start = self._zeros(features.shape[1], classes)
        if self.warm_start and hasattr(self, "coef_") and np.array_equal(self.classes_, classes):
            start = self.get_parameters()
        self._store(self._train(features, labels, classes, start), classes)
        return self

    def predict_proba(self, X: NDArray) -> NDArray:
        """One-vs-rest logistic probabilities, normalized per row (scikit-learn's rule),
        computed in log space so large weights cannot produce NaN rows.

        scikit-learn computes ``expit(z)`` per class and divides by the row's sum: once
        every ``|z|`` is large, each ``expit`` underflows to 0 and the row becomes 0/0.
        Here ``log expit(z)`` is normalized with log-sum-exp, which is exact for any finite
        ``z``. Scores that are NaN (a product of infinities) raise ``PredictionError``.
        """
        self._require_fitted("coef_")
        features = check_features(X, n_features=self.n_features_in_, family=self.family)
        with np.errstate(over="ignore", invalid="ignore"):
            scores = features @ self.coef_.T + self.intercept_
        if np.isnan(scores).any():
            raise PredictionError(
                f"{self.family}: the decision scores are NaN (weights too large or not finite)"
            )
        if self.classes_.size == 2:
            # Binary: P(class 1) = expit(z), P(class 0) = expit(-z), in log space.
            logs = np.column_stack([log_expit(-scores[:, 0]), log_expit(scores[:, 0])])
        else:
            logs = log_expit(scores)
        with np.errstate(invalid="ignore"):
            proba = np.exp(logs - logsumexp(logs, axis=1, keepdims=True))
        return normalized_probabilities(proba, self.family)

    def get_parameters(self) -> NDArrays:
        """``[coef, intercept]`` copies (float64); zeros when only declared so far."""
        self._ensure_parameters()
        return [self.coef_.copy(), self.intercept_.copy()]

    def set_parameters(self, parameters: NDArrays) -> Self:
        """Replace ``[coef, intercept]``; shapes must match ``get_parameters``."""
        self._ensure_parameters()
        check_parameters(self.family, parameters, [self.coef_.shape, self.intercept_.shape])
        self.coef_, self.intercept_ = (np.array(p, dtype=np.float64) for p in parameters)
        return self

    def _resolved_params(self) -> dict[str, Any]:
        return {
            **self.get_params(),
            "classes": self.classes_.tolist(),
            "n_features": self.n_features_in_,
        }

    def to_bytes(self) -> bytes:
        """safetensors of ``coef`` and ``intercept`` plus the hyper-parameters as JSON."""
        self._require_fitted("coef_")
        arrays = {"coef": self.coef_, "intercept": self.intercept_}
        return pack(self.family, self._resolved_params(), arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Rebuild the model from :meth:`to_bytes` output; other families raise."""
        hyperparameters, arrays = unpack(data, cls.family)
        try:
            model = cls(**hyperparameters)
            parameters = [arrays["coef"], arrays["intercept"]]
        except (TypeError, KeyError) as exc:
            raise IncompatibleModelError(f"{cls.family}: unexpected model content: {exc}") from exc
        return model.set_parameters(parameters)


class LinearClassifier(LinearModel):
    """``sklearn-linear``: logistic regression trained by scikit-learn's ``SGDClassifier``.

    Each epoch visits the rows in a seeded random order with a constant step
    ``learning_rate``; ``alpha`` is the L2 penalty. ``partial_fit`` with the declared
    classes keeps the output size fixed when local data lacks some labels.

    FedProx: with ``proximal_mu`` > 0, after every ``batch_size`` rows of SGD steps the
    weights take the exact proximal step of μ/2·‖w − w_global‖² over those steps
    (``w ← (w + τμ·w_global)/(1 + τμ)``, ``τ = learning_rate × rows``). SGDClassifier has no
    offset term through which the proximal gradient could enter its own updates, so the
    term is applied by this operator splitting.
    """

    family = "sklearn-linear"

    def __init__(
        self,
        *,
        classes: Sequence[int] | None = None,
        n_features: int | None = None,
        epochs: int = 5,
        batch_size: int = 32,
        learning_rate: float = 0.01,
        alpha: float = 1e-4,
        proximal_mu: float = 0.0,
        warm_start: bool = True,
        random_state: int | None = None,
    ) -> None:
        self.classes = classes
        self.n_features = n_features
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.alpha = alpha
        self.proximal_mu = proximal_mu
        self.warm_start = warm_start
        self.random_state = random_state

    def _train(
        self, features: NDArray, labels: NDArray, classes: NDArray, start: NDArrays
    ) -> NDArrays:
        if self.epochs < 0 or self.batch_size < 1 or self.learning_rate <= 0:
            raise InvalidInputError(
                f"{self.family}: need epochs >= 0, batch_size >= 1 and learning_rate > 0"
            )
        if self.proximal_mu < 0:
            raise InvalidInputError(f"{self.family}: proximal_mu must be >= 0")
        estimator = SGDClassifier(
            loss="log_loss",
            alpha=self.alpha,
            learning_rate="constant",
            eta0=self.learning_rate,
            shuffle=False,  # rows are shuffled below, by a generator this adapter seeds
            random_state=self.random_state,
        )
        # Warm start: partial_fit keeps coef_/intercept_ that are already present.
        estimator.coef_, estimator.intercept_ = (p.copy() for p in start)
        anchor = start
        rng = np.random.default_rng(self.random_state)
        n_rows = features.shape[0]
        # Without the proximal term, one partial_fit per epoch makes the same SGD steps.
        chunk = self.batch_size if self.proximal_mu > 0 else n_rows
        for _ in range(self.epochs):
            order = rng.permutation(n_rows)
            for begin in range(0, n_rows, chunk):
                rows = order[begin : begin + chunk]
                try:
                    estimator.partial_fit(features[rows], labels[rows], classes=classes)
                except ValueError as exc:  # "Floating-point under-/overflow occurred …"
                    raise TrainingError(f"{self.family}: SGD diverged: {exc}") from exc
                if self.proximal_mu > 0:
                    shrink = self.learning_rate * rows.size * self.proximal_mu
                    estimator.coef_ = (estimator.coef_ + shrink * anchor[0]) / (1 + shrink)
                    estimator.intercept_ = (estimator.intercept_ + shrink * anchor[1]) / (
                        1 + shrink
                    )
        return [
            np.array(estimator.coef_, dtype=np.float64),
            np.array(estimator.intercept_, dtype=np.float64),
        ]
