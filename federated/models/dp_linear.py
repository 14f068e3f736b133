"""``dp-logistic-regression``: diffprivlib's ε-differentially private logistic regression.

diffprivlib perturbs the objective (vector mechanism) and clips every row of ``X`` to the
L2 norm ``data_norm``. ``data_norm`` must come from domain knowledge (e.g. ``sqrt(64)`` for
64 pixels scaled to [0, 1]); deriving it from the data would leak, so it is required.

The ε spent by the last ``fit`` is ``epsilon_spent_`` (δ is 0); ``n_iter_`` is the solver's
iteration count (of the slowest one-vs-rest model, at most ``max_iter``). This adapter spends
through a private accountant per fit and never touches diffprivlib's process-wide default
one: the node's budget accounting belongs to the caller (:mod:`federated.privacy`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from diffprivlib.accountant import BudgetAccountant
from diffprivlib.models import LogisticRegression

from federated.errors import InvalidInputError
from federated.models.linear import LinearModel
from federated.types import NDArray, NDArrays


class DPLogisticRegression(LinearModel):
    """ε-DP one-vs-rest logistic regression (diffprivlib), parameters ``[coef, intercept]``.

    diffprivlib fits one-vs-rest models for the labels present locally (at least two), with
    ε split evenly between them. Their weights are placed in the declared classes' layout;
    rows of declared classes absent locally keep their starting weights, so which rows
    changed shows which labels a node holds: differential privacy covers the weights'
    values, not label presence. There is no ``proximal_mu``: the DP objective is fixed.
    """

    family = "dp-logistic-regression"

    epsilon_spent_: float
    delta_spent_: float
    n_iter_: int

    def __init__(
        self,
        *,
        classes: Sequence[int] | None = None,
        n_features: int | None = None,
        epsilon: float = 1.0,
        data_norm: float | None = None,
        C: float = 1.0,
        max_iter: int = 100,
        tol: float = 1e-4,
        warm_start: bool = True,
        random_state: int | None = None,
    ) -> None:
        self.classes = classes
        self.n_features = n_features
        self.epsilon = epsilon
        self.data_norm = data_norm
        self.C = C
        self.max_iter = max_iter
        self.tol = tol
        self.warm_start = warm_start
        self.random_state = random_state

    def _train(
        self, features: NDArray, labels: NDArray, classes: NDArray, start: NDArrays
    ) -> NDArrays:
        if self.data_norm is None or self.data_norm <= 0:
            raise InvalidInputError(
                f"{self.family}: data_norm (a bound on each row's L2 norm, from domain "
                f"knowledge) is required; computing it from the data would leak privacy"
            )
        if self.epsilon <= 0:
            raise InvalidInputError(f"{self.family}: epsilon must be > 0")
        present = np.unique(labels)
        if present.size < 2:
            raise InvalidInputError(
                f"{self.family}: local data holds only label {present.tolist()}; "
                f"logistic regression needs at least two"
            )
        rows = np.searchsorted(classes, present)
        estimator = LogisticRegression(
            epsilon=self.epsilon,
            data_norm=self.data_norm,
            C=self.C,
            max_iter=self.max_iter,
            tol=self.tol,
            warm_start=True,
            random_state=self.random_state,
            accountant=BudgetAccountant(),
        )
        coef, intercept = start
        if classes.size == 2:
            estimator.coef_, estimator.intercept_ = coef.copy(), intercept.copy()
        else:
            # diffprivlib fits one model per local label, or one for exactly two labels.
            picked = rows[1:] if present.size == 2 else rows
            estimator.coef_, estimator.intercept_ = coef[picked], intercept[picked]
        estimator.fit(features, labels)
        self.epsilon_spent_, self.delta_spent_ = (float(v) for v in estimator.accountant.total())
        self.n_iter_ = int(np.max(estimator.n_iter_))  # of the slowest one-vs-rest model
        learned_coef = np.asarray(estimator.coef_, dtype=np.float64)
        learned_intercept = np.asarray(estimator.intercept_, dtype=np.float64)
        if classes.size == 2:
            return [learned_coef, learned_intercept]
        coef, intercept = coef.copy(), intercept.copy()
        if present.size == 2:
            # A binary model for labels (a, b) is b-vs-rest on this data; a-vs-rest is its mirror.
            coef[rows[1]], intercept[rows[1]] = learned_coef[0], learned_intercept[0]
            coef[rows[0]], intercept[rows[0]] = -learned_coef[0], -learned_intercept[0]
        else:
            coef[rows], intercept[rows] = learned_coef, learned_intercept
        return [coef, intercept]
