"""A weighted ensemble of profiles' champions as an MLflow pyfunc.

The logged model holds, per member ``i``, the champion's exchange bytes (``member-i``) and
its profile document (``profile-i``); the config (``MLmodel`` → ``python_function.config``)
holds the format, the members' sha256 and one JSON document with, per member, its weight,
how the client's rows are adapted to it (:class:`registry.matching.SchemaFit`), the hash of
its profile document and the config a :class:`registry.pyfunc.FedspecGlobalModel` loads
from. ``load_context`` hands each member to ``FedspecGlobalModel.load_context``, which
hashes the bytes and refuses them before decoding unless they match: a tampered member
stops the whole ensemble from loading.

Like the single model, it is logged as "models from code" (``registry/_ensemble_entry.py``):
no pickle. Build one with :func:`registry.access.build_ensemble`, then::

    with staged_ensemble(ensemble, X[:5]) as kwargs:
        mlflow.pyfunc.log_model(name="ensemble", **kwargs)   # inside a run
    model = mlflow.pyfunc.load_model(uri)
    model.predict(X)                                 # labels
    model.predict(X, params={"output": "proba"})     # weighted class probabilities
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc.model import PythonModel, PythonModelContext

from federated.exchange import sha256_hex
from federated.types import NDArray
from registry.access import Ensemble, ProbaFn, soft_vote
from registry.errors import ArtifactIntegrityError, InvalidModelError, RegistryError
from registry.matching import SchemaFit
from registry.models import pip_requirements
from registry.profiles import family_of_profile
from registry.pyfunc import (
    MODEL_ARTIFACT,
    OUTPUTS,
    PROFILE_ARTIFACT,
    FedspecGlobalModel,
    model_config,
)
from registry.query import InputSchema

FORMAT = "fedspec-ensemble/1"
ENTRY_FILE = Path(__file__).with_name("_ensemble_entry.py")
EXAMPLE_ROWS = 5


class FedspecEnsemble(PythonModel):
    """Members' probabilities, soft-voted with fixed weights; each member verified by hash
    before it is deserialized."""

    members: list[tuple[float, SchemaFit, FedspecGlobalModel]]
    labels: tuple[Any, ...]
    schema: InputSchema

    def load_context(self, context: PythonModelContext) -> None:
        config = dict(context.model_config or {})
        if config.get("format") != FORMAT:
            raise InvalidModelError(f"model config format {config.get('format')!r}, not {FORMAT}")
        doc = json.loads(str(config["ensemble"]))
        self.members = []
        for i, member in enumerate(doc["members"]):
            profile_path = Path(context.artifacts[f"profile-{i}"])
            # The bytes' hash does not cover the profile (its scaling bounds, its labels):
            # the profile document has its own hash in the config.
            actual = sha256_hex(profile_path.read_bytes())
            if actual != member["profile_sha256"]:
                raise ArtifactIntegrityError(
                    str(profile_path), expected=member["profile_sha256"], actual=actual
                )
            model = FedspecGlobalModel()
            model.load_context(
                PythonModelContext(  # type: ignore[no-untyped-call]
                    artifacts={
                        MODEL_ARTIFACT: context.artifacts[f"member-{i}"],
                        PROFILE_ARTIFACT: str(profile_path),
                    },
                    model_config=member["config"],
                )
            )
            self.members.append(
                (float(member["weight"]), SchemaFit.from_json(member["fit"]), model)
            )
        self.labels = tuple(doc["labels"])
        self.schema = InputSchema.from_json(doc["schema"])

    def predict(
        self,
        context: PythonModelContext,
        model_input: np.ndarray,  # MLflow skips type-hint validation for exactly this class
        params: dict[str, Any] | None = None,
    ) -> Any:
        """Labels per row; ``params={"output": "proba"}`` for the weighted probabilities,
        one column per label of the union."""
        output = str((params or {}).get("output", "label"))
        if output not in OUTPUTS:
            raise MlflowException(
                f"params.output must be one of {OUTPUTS}, got {output!r}", INVALID_PARAMETER_VALUE
            )
        rows = model_input.to_numpy() if isinstance(model_input, pd.DataFrame) else model_input
        parts = [(weight, fit, _member_proba(context, m)) for weight, fit, m in self.members]
        try:
            proba = soft_vote(np.asarray(rows, dtype=np.float64), parts, self.labels, self.schema)
        except RegistryError as exc:
            raise MlflowException(f"{exc.code}: {exc.message}", INVALID_PARAMETER_VALUE) from exc
        if output == "proba":
            return pd.DataFrame(proba, columns=[str(c) for c in self.labels])
        return np.asarray([self.labels[i] for i in np.argmax(proba, axis=1)])


def _member_proba(context: PythonModelContext, member: FedspecGlobalModel) -> ProbaFn:
    def proba(X: NDArray) -> tuple[NDArray, tuple[str, ...]]:
        frame = member.predict(context, X, params={"output": "proba"})
        return np.asarray(frame, dtype=np.float64), tuple(str(c) for c in frame.columns)

    return proba


@contextmanager
def staged_ensemble(ensemble: Ensemble, input_example: NDArray) -> Iterator[dict[str, Any]]:
    """Keyword arguments for ``mlflow.pyfunc.log_model`` / ``save_model`` (the member files
    live in a temporary folder until the block ends). ``input_example``: a few of the
    client's raw rows, from which the signature is inferred."""
    # Deferred: loads mlflow only when used.
    from mlflow.models import infer_signature

    example = np.asarray(input_example, dtype=np.float64)[:EXAMPLE_ROWS]
    with tempfile.TemporaryDirectory(prefix="fedspec-ensemble-") as tmp:
        staged = Path(tmp)
        artifacts: dict[str, str] = {}
        members: list[dict[str, Any]] = []
        families: set[str] = set()
        for i, member in enumerate(ensemble.members):
            profile = dict(member.model.profile)
            profile_bytes = json.dumps(profile, sort_keys=True).encode()
            bytes_path = staged / f"member-{i}-{member.profile_id}.safetensors"
            profile_path = staged / f"profile-{i}-{member.profile_id}.json"
            bytes_path.write_bytes(member.model.model_bytes)
            profile_path.write_bytes(profile_bytes)
            artifacts[f"member-{i}"] = str(bytes_path)
            artifacts[f"profile-{i}"] = str(profile_path)
            family = family_of_profile(profile)
            families.add(family)
            members.append(
                {
                    "profile_id": member.profile_id,
                    "weight": member.weight,
                    "fit": member.fit.to_json(),
                    "profile_sha256": sha256_hex(profile_bytes),
                    "config": model_config(
                        profile_id=member.profile_id,
                        round_no=member.model.champion.round,
                        sha256=member.sha256,
                        family=family,
                        hyperparameters=dict(member.model.hyperparameters),
                    ),
                }
            )
        doc = {**ensemble.to_json(), "members": members}
        labels = np.asarray(ensemble.predict(example).labels)
        requirements = sorted({r for f in sorted(families) for r in pip_requirements(f)})
        if any(m.fit.kind == "resample" for m in ensemble.members):
            # Deferred: loads scipy only when used.
            import scipy

            requirements.append(f"scipy=={scipy.__version__}")
        yield {
            "python_model": str(ENTRY_FILE),
            "artifacts": artifacts,
            "model_config": {
                "format": FORMAT,
                "members_sha256": ",".join(m.sha256 for m in ensemble.members),
                "ensemble": json.dumps(doc, sort_keys=True),
            },
            "signature": infer_signature(example, labels, params={"output": "label"}),
            "input_example": example,
            "pip_requirements": requirements,
        }


def save_ensemble(ensemble: Ensemble, path: str | Path, input_example: NDArray) -> Path:
    """Save the ensemble as an MLflow model folder at ``path`` (which must not exist)."""
    # Deferred: loads mlflow only when used.
    import mlflow

    with staged_ensemble(ensemble, input_example) as kwargs:
        mlflow.pyfunc.save_model(path=str(path), **kwargs)
    return Path(path)
