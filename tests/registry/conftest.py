"""Shared fixtures: one embedded MLflow store per session, digits, trained global models.

Creating an MLflow SQLite store runs its migrations (~2 s), so the session shares one;
tests keep apart by registering under their own profile ids (:func:`profile_for`).
"""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pytest
import yaml

import registry
from federated.datasets import load_digits_8x8
from federated.datasets.split import split_rows
from federated.exchange import encode_global_model, sha256_hex
from federated.models import create_model
from federated.types import GlobalModel
from tests.processes import free_port, stop, venv_env, wait_http

__all__ = ["free_port", "stop", "venv_env", "wait_http"]  # process helpers, shared

REPO = Path(__file__).resolve().parents[2]

# Deprecations raised inside MLflow's own modules (SQLAlchemy's noload, pandas 3 API
# changes): not ours to fix. Each test module sets ``pytestmark = MLFLOW_WARNINGS``.
MLFLOW_WARNINGS = [pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow")]
PROFILE_FILE = REPO / "examples" / "profiles" / "digits-8x8.yaml"


@dataclass(frozen=True)
class Digits:
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


@dataclass(frozen=True)
class Trained:
    """A global model as the flows hold it: the adapter (which works on rows scaled by the
    profile) and its exchange bytes."""

    adapter: Any
    data: bytes
    profile: Mapping[str, Any]

    @property
    def sha256(self) -> str:
        return sha256_hex(self.data)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Labels of raw rows, as a client of the served model sees them."""
        return np.asarray(self.adapter.predict(registry.prepare_features(self.profile, X)))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.adapter.predict_proba(registry.prepare_features(self.profile, X)))


@pytest.fixture(scope="session")
def digits() -> Digits:
    dataset = load_digits_8x8()
    kept, held = split_rows(dataset.y, fraction=0.22, seed=0)  # ~400 held-out rows
    return Digits(dataset.X[kept], dataset.y[kept], dataset.X[held], dataset.y[held])


@pytest.fixture(scope="session")
def base_profile() -> dict[str, Any]:
    profile: dict[str, Any] = yaml.safe_load(PROFILE_FILE.read_text())
    return profile


def profile_for(base: Mapping[str, Any], profile_id: str) -> dict[str, Any]:
    profile = copy.deepcopy(dict(base))
    profile["id"] = profile_id
    return profile


def train(
    base: Mapping[str, Any], digits: Digits, *, epochs: int, learning_rate: float, seed: int = 0
) -> Trained:
    # The example profile's learning rate (0.05) is for federated rounds on many nodes; on
    # one node's raw pixels a smaller step trains a usable model quickly.
    params = {
        **registry.model_hyperparameters(base),
        "epochs": epochs,
        "learning_rate": learning_rate,
        "random_state": seed,
    }
    X = registry.prepare_features(base, digits.X_train)  # as every node trains
    adapter = create_model("torch-mlp", **params).fit(X, digits.y_train)
    data = encode_global_model(GlobalModel("torch-mlp", adapter.get_parameters()))
    return Trained(adapter, data, base)


@pytest.fixture(scope="session")
def weak(base_profile: dict[str, Any], digits: Digits) -> Trained:
    return train(base_profile, digits, epochs=1, learning_rate=0.001, seed=1)


@pytest.fixture(scope="session")
def strong(base_profile: dict[str, Any], digits: Digits) -> Trained:
    return train(base_profile, digits, epochs=8, learning_rate=0.005, seed=0)


@pytest.fixture(scope="session")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture(autouse=True)
def store(store_dir: Path) -> registry.TrackingConfig:
    """Every test starts pointed at the session's embedded store (a test may re-point)."""
    return registry.configure_embedded(store_dir)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Any]:
    """Start a command in its own process group on 127.0.0.1; always stopped by its PID."""
    started: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []

    def start(args: list[str], env: dict[str, str], log_name: str) -> subprocess.Popen[bytes]:
        log = (tmp_path / log_name).open("wb")
        proc = subprocess.Popen(
            args,
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its children (uvicorn workers) share its process group
        )
        started.append((proc, log))
        return proc

    yield start
    for proc, log in started:
        stop(proc)
        log.close()
