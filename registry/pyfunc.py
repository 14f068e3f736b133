"""The MLflow pyfunc that serves a fedspec global model.

The logged model holds two artifacts, the global model's exchange bytes
(``global_model.safetensors``, whose sha256 the ledger records) and the profile document
(``profile.json``), plus a config (``MLmodel`` → ``python_function.config``) with the
expected ``sha256``, the ``family`` and the resolved ``hyperparameters``. ``load_context``
hashes the bytes and refuses to deserialize them unless the hash matches.

MLflow loads this class through ``registry/_serving_entry.py`` ("models from code"), so the
logged model carries no pickle: loading it imports this module and runs nothing from the
artifact store except that three-line file.

``predict`` takes a DataFrame or an array of raw feature rows, scales them as training did
(``registry.profiles.prepare_features``), and returns labels (classification)
or values (regression); ``params={"output": "proba"}`` returns class probabilities, one
column per declared class (over HTTP: ``{"inputs": [...], "params": {"output": "proba"}}``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc.model import PythonModel, PythonModelContext

from federated.errors import FederatedError
from federated.exchange import sha256_hex
from federated.models import BaseAdapter, ClassifierAdapter
from registry.errors import ArtifactIntegrityError, InvalidModelError
from registry.profiles import load_global_adapter, prepare_features, task_type_of

FORMAT = "fedspec-pyfunc/1"
MODEL_ARTIFACT = "global_model"
MODEL_FILE = "global_model.safetensors"
PROFILE_ARTIFACT = "profile"
PROFILE_FILE = "profile.json"
ENTRY_FILE = Path(__file__).with_name("_serving_entry.py")
OUTPUTS = ("label", "proba")


class FedspecGlobalModel(PythonModel):
    """A global model of one profile, verified by hash before it is deserialized."""

    adapter: BaseAdapter
    model_bytes: bytes
    profile: dict[str, Any]
    sha256: str

    def load_context(self, context: PythonModelContext) -> None:
        config = dict(context.model_config or {})
        if config.get("format") != FORMAT:
            raise InvalidModelError(f"model config format {config.get('format')!r}, not {FORMAT}")
        path = Path(context.artifacts[MODEL_ARTIFACT])
        data = path.read_bytes()
        expected, actual = str(config["sha256"]), sha256_hex(data)
        # The hash is checked before anything parses the bytes.
        if actual != expected:
            raise ArtifactIntegrityError(str(path), expected=expected, actual=actual)
        self.profile = json.loads(Path(context.artifacts[PROFILE_ARTIFACT]).read_text())
        self.adapter = load_global_adapter(
            self.profile, data, hyperparameters=json.loads(str(config["hyperparameters"]))
        )
        self.model_bytes = data
        self.sha256 = expected

    def predict(
        self,
        context: PythonModelContext,
        model_input: np.ndarray,  # MLflow skips type-hint validation for exactly this class
        params: dict[str, Any] | None = None,
    ) -> Any:
        """Labels or values per row; ``params={"output": "proba"}`` for probabilities."""
        del context
        output = str((params or {}).get("output", "label"))
        if output not in OUTPUTS:
            raise MlflowException(
                f"params.output must be one of {OUTPUTS}, got {output!r}", INVALID_PARAMETER_VALUE
            )
        rows = model_input.to_numpy() if isinstance(model_input, pd.DataFrame) else model_input
        try:
            # Raw rows in, as clients have them; the profile's scaling, as in training.
            X = prepare_features(self.profile, np.asarray(rows, dtype=np.float64))
            if output == "label":
                return np.asarray(self.adapter.predict(X))
            if task_type_of(self.profile) == "regression" or not isinstance(
                self.adapter, ClassifierAdapter
            ):
                raise MlflowException(
                    "a regression model has no probabilities", INVALID_PARAMETER_VALUE
                )
            proba = self.adapter.predict_proba(X)
            classes = getattr(self.adapter, "classes_", range(proba.shape[1]))
            return pd.DataFrame(proba, columns=[str(c) for c in classes])
        except FederatedError as exc:
            # A client error: MLflow's scoring server answers 400 with this message.
            raise MlflowException(f"{exc.code}: {exc}", INVALID_PARAMETER_VALUE) from exc


def model_config(
    *, profile_id: str, round_no: int, sha256: str, family: str, hyperparameters: dict[str, Any]
) -> dict[str, Any]:
    """The config recorded in ``MLmodel`` and read back by :meth:`load_context`."""
    return {
        "format": FORMAT,
        "profile_id": profile_id,
        "round": round_no,
        "sha256": sha256,
        "family": family,
        "hyperparameters": json.dumps(hyperparameters, sort_keys=True),
    }
