"""Model adapters: one conformance suite over every family, then focused behaviour.

Real data only: scikit-learn's digits (8×8 images) for the classifiers, diabetes for the
regressor, breast cancer for binary tasks.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from diffprivlib.utils import PrivacyLeakWarning
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import MinMaxScaler

from federated.errors import (
    EmptyPartitionError,
    IncompatibleModelError,
    InvalidInputError,
    InvalidUpdateError,
    NotFittedError,
)
from federated.models import (
    FAMILIES,
    PARAMETRIC_FAMILIES,
    ParametricClassifier,
    create_model,
    family_of,
    load_model,
)
from federated.types import ModelAdapter

# diffprivlib 0.6.6 passes L-BFGS-B options that SciPy deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:scipy.optimize.*iprint.*:DeprecationWarning")

DIGITS_CLASSES = list(range(10))


@dataclass(frozen=True)
class Split:
    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray


def _split(X: np.ndarray, y: np.ndarray) -> Split:
    stratify = y if y.dtype.kind == "i" else None
    parts = train_test_split(X, y, test_size=0.25, random_state=0, stratify=stratify)
    return Split(*parts)


@pytest.fixture(scope="module")
def digits() -> Split:
    X, y = load_digits(return_X_y=True)
    return _split(X / 16.0, y)  # pixels 0..16 → [0, 1]; each row's L2 norm ≤ 8


@pytest.fixture(scope="module")
def diabetes() -> Split:
    X, y = load_diabetes(return_X_y=True)
    return _split(X, y)


@pytest.fixture(scope="module")
def cancer() -> Split:
    X, y = load_breast_cancer(return_X_y=True)
    return _split(MinMaxScaler().fit_transform(X), y)  # 30 features in [0, 1]: norm ≤ √30


# Hyper-parameters per family: small enough for 2 shared cores, real enough to learn.
HYPERPARAMETERS: dict[str, dict[str, Any]] = {
    "torch-mlp": {"classes": DIGITS_CLASSES, "n_features": 64, "epochs": 5, "learning_rate": 3e-3},
    "torch-cnn": {"classes": DIGITS_CLASSES, "image_size": 8, "epochs": 3, "learning_rate": 3e-3},
    "xgboost-classifier": {
        "classes": DIGITS_CLASSES,
        "num_rounds": 10,
        "max_depth": 3,
        "num_threads": 1,
    },
    "xgboost-regressor": {
        "num_rounds": 20,
        "max_depth": 2,
        "learning_rate": 0.1,
        "num_threads": 1,
    },
    "sklearn-linear": {"classes": DIGITS_CLASSES, "n_features": 64, "epochs": 3},
    "dp-logistic-regression": {
        "classes": DIGITS_CLASSES,
        "n_features": 64,
        "epsilon": 500.0,
        "data_norm": 8.0,
    },
}
CLASSIFIERS = [family for family in FAMILIES if family != "xgboost-regressor"]
# What each fitted model must reach on the held-out split: proof that it learned.
MINIMUM_SCORE = {
    "torch-mlp": ("accuracy", 0.9),
    "torch-cnn": ("accuracy", 0.9),
    "sklearn-linear": ("accuracy", 0.9),
    "xgboost-classifier": ("accuracy", 0.85),
    "dp-logistic-regression": ("accuracy", 0.85),  # at ε = 500: a utility check, not privacy
    "xgboost-regressor": ("r2", 0.3),
}


def _data(family: str, digits: Split, diabetes: Split) -> Split:
    return diabetes if family == "xgboost-regressor" else digits


def _model(family: str, **overrides: Any) -> Any:
    return create_model(family, random_state=0, **{**HYPERPARAMETERS[family], **overrides})


@pytest.fixture(scope="module")
def fitted(digits: Split, diabetes: Split) -> dict[str, Any]:
    """Each family fitted once on its training split, shared by the conformance tests."""
    models = {}
    for family in FAMILIES:
        data = _data(family, digits, diabetes)
        models[family] = _model(family).fit(data.X_train, data.y_train)
    return models


# --- conformance: every adapter ------------------------------------------------------------


def test_registry_lists_every_family() -> None:
    assert set(FAMILIES) == set(HYPERPARAMETERS)
    assert PARAMETRIC_FAMILIES.issubset(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_fit_returns_self_and_follows_the_protocol(family, digits, diabetes) -> None:
    model = _model(family)
    data = _data(family, digits, diabetes)
    assert model.fit(data.X_train, data.y_train) is model
    assert isinstance(model, ModelAdapter)
    assert model.family == family
    assert repr(model).startswith(type(model).__name__)


@pytest.mark.parametrize("family", FAMILIES)
def test_predictions_have_one_row_per_input(family, fitted, digits, diabetes) -> None:
    data = _data(family, digits, diabetes)
    model = fitted[family]
    predictions = model.predict(data.X_test)
    assert predictions.shape == (len(data.X_test),)
    if family == "xgboost-regressor":
        assert not hasattr(model, "predict_proba")  # scikit-learn's way: no such method
        return
    proba = model.predict_proba(data.X_test)
    assert proba.shape == (len(data.X_test), len(DIGITS_CLASSES))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-9)
    assert set(predictions) <= set(DIGITS_CLASSES)


@pytest.mark.parametrize("family", FAMILIES)
def test_metrics_are_floats_and_show_learning(family, fitted, digits, diabetes) -> None:
    data = _data(family, digits, diabetes)
    metrics = fitted[family].metrics(data.X_test, data.y_test)
    expected = (
        {"rmse", "mae", "r2"}
        if family == "xgboost-regressor"
        else {"accuracy", "f1_macro", "log_loss"}
    )
    assert set(metrics) == expected
    assert all(type(value) is float and np.isfinite(value) for value in metrics.values())
    name, minimum = MINIMUM_SCORE[family]
    assert metrics[name] > minimum


@pytest.mark.parametrize("family", FAMILIES)
def test_bytes_round_trip_gives_identical_predictions(family, fitted, digits, diabetes) -> None:
    data = _data(family, digits, diabetes)
    model = fitted[family]
    loaded = load_model(family, model.to_bytes())
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict(data.X_test), model.predict(data.X_test))
    if family != "xgboost-regressor":
        np.testing.assert_array_equal(
            loaded.predict_proba(data.X_test), model.predict_proba(data.X_test)
        )
    assert loaded.to_bytes() == model.to_bytes()


@pytest.mark.parametrize("family", FAMILIES)
def test_seeded_fit_is_deterministic(family, fitted, digits, diabetes) -> None:
    data = _data(family, digits, diabetes)
    again = _model(family).fit(data.X_train, data.y_train)
    assert again.to_bytes() == fitted[family].to_bytes()


@pytest.mark.parametrize("family", FAMILIES)
def test_parameters_round_trip(family, fitted, digits, diabetes) -> None:
    model = fitted[family]
    if family not in PARAMETRIC_FAMILIES:
        assert not isinstance(model, ParametricClassifier)  # trees travel as bytes
        return
    data = _data(family, digits, diabetes)
    parameters = model.get_parameters()
    copy = _model(family).set_parameters(parameters)
    np.testing.assert_array_equal(copy.predict_proba(data.X_test), model.predict_proba(data.X_test))
    for got, want in zip(copy.get_parameters(), parameters, strict=True):
        np.testing.assert_array_equal(got, want)
    # Strategies average in float64: the adapter must take those arrays back.
    copy.set_parameters([p.astype(np.float64) for p in parameters])


@pytest.mark.parametrize("family", FAMILIES)
def test_bytes_of_another_family_are_refused(family, fitted) -> None:
    other = FAMILIES[(FAMILIES.index(family) + 1) % len(FAMILIES)]
    with pytest.raises(IncompatibleModelError) as caught:
        load_model(family, fitted[other].to_bytes())
    assert caught.value.code == "INCOMPATIBLE_MODEL"
    with pytest.raises(IncompatibleModelError):
        load_model(family, b"not a model at all")


@pytest.mark.parametrize("family", FAMILIES)
def test_bad_input_raises_typed_errors(family, fitted, digits, diabetes) -> None:
    data = _data(family, digits, diabetes)
    model = fitted[family]
    with pytest.raises(IncompatibleModelError, match="features"):
        model.predict(data.X_test[:, :-1])
    with_nan = data.X_test.copy()
    with_nan[0, 0] = np.nan
    with pytest.raises(InvalidInputError, match="NaN"):
        model.predict(with_nan)
    with pytest.raises(EmptyPartitionError):
        _model(family).fit(data.X_train[:0], data.y_train[:0])
    with pytest.raises(InvalidInputError):
        _model(family).fit(data.X_train, data.y_train[:-1])
    with pytest.raises(NotFittedError):
        _model(family).to_bytes()


@pytest.mark.parametrize("family", CLASSIFIERS)
def test_labels_outside_the_declared_classes_are_refused(family, digits) -> None:
    model = _model(family, classes=[0, 1, 2])
    with pytest.raises(InvalidInputError, match="declared classes"):
        model.fit(digits.X_train, digits.y_train)


@pytest.mark.parametrize("family", CLASSIFIERS)
def test_output_size_follows_declared_classes_not_local_labels(family, fitted, digits) -> None:
    local = digits.y_train < 7  # this node never saw 7, 8 or 9
    model = _model(family).fit(digits.X_train[local], digits.y_train[local])
    assert model.predict_proba(digits.X_test).shape == (len(digits.X_test), 10)
    if family in PARAMETRIC_FAMILIES:
        shapes = [p.shape for p in model.get_parameters()]
        assert shapes == [p.shape for p in fitted[family].get_parameters()]


def test_unknown_family_and_hyperparameters_are_refused() -> None:
    with pytest.raises(IncompatibleModelError) as caught:
        create_model("random-forest")
    assert caught.value.code == "INCOMPATIBLE_MODEL"
    with pytest.raises(IncompatibleModelError, match="hyper-parameters"):
        create_model("torch-mlp", hidden_layers=3)


def test_family_of_reads_safetensors_bytes(fitted) -> None:
    assert family_of(fitted["torch-cnn"].to_bytes()) == "torch-cnn"
    assert family_of(fitted["xgboost-classifier"].to_bytes()) is None


def test_cnn_accepts_image_shaped_input(fitted, digits) -> None:
    images = digits.X_test.reshape(-1, 1, 8, 8)
    model = fitted["torch-cnn"]
    np.testing.assert_array_equal(model.predict(images), model.predict(digits.X_test))
    np.testing.assert_array_equal(model.predict(images[:, 0]), model.predict(digits.X_test))


# --- federated behaviour: warm start and FedProx -------------------------------------------


def _distance(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return float(np.sqrt(sum(np.sum((x - y) ** 2) for x, y in zip(a, b, strict=True))))


@pytest.mark.parametrize("family", ["torch-mlp", "sklearn-linear"])
def test_fit_continues_from_set_parameters(family, fitted, digits) -> None:
    global_parameters = fitted[family].get_parameters()
    unchanged = _model(family, epochs=0).set_parameters(global_parameters)
    unchanged.fit(digits.X_train, digits.y_train)
    for got, want in zip(unchanged.get_parameters(), global_parameters, strict=True):
        np.testing.assert_array_equal(got, want)

    warm = _model(family, epochs=1).set_parameters(global_parameters)
    cold = _model(family, epochs=1, warm_start=False).set_parameters(global_parameters)
    warm.fit(digits.X_train, digits.y_train)
    cold.fit(digits.X_train, digits.y_train)
    # One more epoch moves a warm model a little; a cold one restarts from scratch.
    warm_drift = _distance(warm.get_parameters(), global_parameters)
    cold_drift = _distance(cold.get_parameters(), global_parameters)
    assert 0 < warm_drift < 0.5 * cold_drift
    assert warm.metrics(digits.X_test, digits.y_test)["accuracy"] > 0.9


@pytest.mark.parametrize(("family", "mu"), [("torch-mlp", 1.0), ("sklearn-linear", 1.0)])
def test_proximal_term_pulls_weights_toward_the_global_model(family, mu, fitted, digits) -> None:
    global_parameters = fitted[family].get_parameters()
    skewed = digits.y_train < 3  # a node with a very different label mix drifts far
    X, y = digits.X_train[skewed], digits.y_train[skewed]
    drifts = {}
    for proximal_mu in (0.0, mu):
        local = _model(family, epochs=5, proximal_mu=proximal_mu)
        local.set_parameters(global_parameters).fit(X, y)
        drifts[proximal_mu] = _distance(local.get_parameters(), global_parameters)
    assert drifts[mu] < 0.25 * drifts[0.0]  # measured: about 1/8 (MLP) and 1/6 (linear)


# --- XGBoost: continued boosting for bagging -------------------------------------------------


def test_xgboost_continues_boosting_from_base_bytes(cancer) -> None:
    base = _model("xgboost-classifier", classes=[0, 1], num_rounds=5)
    base.fit(cancer.X_train, cancer.y_train)
    node = _model("xgboost-classifier", classes=[0, 1], num_rounds=3)
    node.boost(cancer.X_train, cancer.y_train, base=base.to_bytes())
    assert node.booster_.num_boosted_rounds() == 8
    new_trees = load_model("xgboost-classifier", node.tail_bytes(3))
    assert new_trees.booster_.num_boosted_rounds() == 3
    metrics = node.metrics(cancer.X_test, cancer.y_test)
    assert metrics["roc_auc"] > 0.95
    refit = _model("xgboost-classifier", classes=[0, 1], num_rounds=3)
    refit.boost(cancer.X_train, cancer.y_train, base=base.to_bytes())
    assert refit.to_bytes() == node.to_bytes()
    with pytest.raises(IncompatibleModelError, match="classes"):
        _model("xgboost-classifier", classes=[0, 1, 2]).boost(
            cancer.X_train, cancer.y_train, base=base.to_bytes()
        )


# --- differential privacy ------------------------------------------------------------------


def test_dp_logistic_regression_reports_the_epsilon_it_spent(cancer) -> None:
    norm = float(np.sqrt(cancer.X_train.shape[1]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = _model("dp-logistic-regression", classes=[0, 1], n_features=None)
        model.set_params(epsilon=10.0, data_norm=norm).fit(cancer.X_train, cancer.y_train)
    assert not [w for w in caught if issubclass(w.category, PrivacyLeakWarning)]
    assert model.epsilon_spent_ == 10.0
    assert model.delta_spent_ == 0.0
    metrics = model.metrics(cancer.X_test, cancer.y_test)
    assert metrics["accuracy"] > 0.8
    assert set(metrics) == {"accuracy", "f1_macro", "log_loss", "roc_auc"}


def test_dp_logistic_regression_requires_a_data_norm(cancer) -> None:
    model = _model("dp-logistic-regression", classes=[0, 1], n_features=None, data_norm=None)
    with pytest.raises(InvalidInputError, match="data_norm"):
        model.fit(cancer.X_train, cancer.y_train)


def test_set_parameters_refuses_malformed_updates(fitted) -> None:
    model = fitted["torch-mlp"]
    parameters = model.get_parameters()
    with pytest.raises(InvalidUpdateError, match="shape"):
        _model("torch-mlp").set_parameters([p.T for p in parameters])
    broken = [p.copy() for p in parameters]
    broken[0][0, 0] = np.inf
    with pytest.raises(InvalidUpdateError, match="NaN or inf"):
        _model("torch-mlp").set_parameters(broken)
    with pytest.raises(InvalidUpdateError, match="arrays"):
        _model("torch-mlp").set_parameters(parameters[:-1])


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("data", [b"", b"\x00", b"{}"])
def test_empty_or_truncated_bytes_are_refused_not_a_crash(family, data) -> None:
    # XGBoost itself aborts the process on an empty buffer; every adapter must raise instead.
    with pytest.raises(IncompatibleModelError):
        load_model(family, data)
