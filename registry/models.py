"""The model registry: one registered model per profile, one version per global model.

A version is created from the round's parent run and tagged ``sha256`` (the exchange bytes'
hash, as on the ledger), ``round``, ``family``, then ``ledger_tx_id`` / ``ledger_block``
once the ledger commit is known, and ``metric.<name>`` once evaluated. The aliases
``champion`` and ``challenger`` follow the profile's objective (:mod:`registry.promotion`).
Registering the same bytes twice returns the existing version: a retried flow is harmless.
"""

from __future__ import annotations

import importlib.metadata
import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from federated.exchange import sha256_hex
from federated.types import NDArray
from registry.artifacts import check_sha256, fetch_bytes
from registry.errors import (
    ArtifactIntegrityError,
    InvalidModelError,
    ModelNotFoundError,
    TrackingAuthError,
    TrackingError,
)
from registry.profiles import (
    family_of_profile,
    load_global_adapter,
    objective_of,
    prepare_features,
    profile_id_of,
    resolve_hyperparameters,
)
from registry.tracking import TAG_PROFILE, client, translate, writer
from registry.verified_bytes import VerifiedBytes

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.pyfunc import PyFuncModel

TAG_SHA256 = "sha256"
TAG_ROUND = "round"
TAG_FAMILY = "family"
TAG_LEDGER_TX = "ledger_tx_id"
TAG_LEDGER_BLOCK = "ledger_block"
METRIC_TAG_PREFIX = "metric."
VERIFIED = VerifiedBytes()  # the model bytes this process fetched, by profile and hash
LOGGED_MODEL_NAME = "global-model"
EXAMPLE_ROWS = 5

# Explicit requirements: without them MLflow infers them by importing and tracing the model,
# ~15 s per version. fedspec itself is not on PyPI: serve with `--env-manager local` from an
# environment where fedspec is installed.
_BASE_REQUIREMENTS = ("mlflow", "numpy", "pandas", "safetensors", "scikit-learn")
_FAMILY_REQUIREMENTS = {
    "torch-mlp": ("torch",),
    "torch-cnn": ("torch",),
    "xgboost-classifier": ("xgboost",),
    "xgboost-regressor": ("xgboost",),
    "dp-logistic-regression": ("diffprivlib",),
}


@dataclass(frozen=True)
class ModelVersionInfo:
    """One registered version of a profile's model."""

    profile_id: str
    version: int
    sha256: str
    round_no: int
    run_id: str | None
    aliases: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        """``models:/<profile_id>/<version>``, loadable with ``mlflow.pyfunc.load_model``."""
        return f"models:/{self.profile_id}/{self.version}"

    @property
    def metrics(self) -> dict[str, float]:
        """Evaluation metrics recorded on the version (``metric.<name>`` tags)."""
        out = {}
        for key, value in self.tags.items():
            if key.startswith(METRIC_TAG_PREFIX):
                try:
                    out[key[len(METRIC_TAG_PREFIX) :]] = float(value)
                except ValueError:
                    continue  # a hand-set tag that is not a number is not a metric
        return out


def register_global_model(
    profile: Mapping[str, Any],
    round_no: int,
    model_bytes: bytes,
    *,
    run_id: str,
    input_example: NDArray,
    hyperparameters: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    tags: Mapping[str, str] | None = None,
) -> ModelVersionInfo:
    """Log the global model as a pyfunc under the round's parent run and register it.

    ``model_bytes`` are the exchange bytes (``federated.exchange.encode_global_model``);
    ``input_example`` a few raw feature rows (the first 5 are kept; the pyfunc scales rows
    itself) from which the signature is inferred. ``hyperparameters`` rebuild a parametric
    model from its weights: pass the flows' ``TrainingPlan.hyperparameters`` (default:
    :func:`registry.profiles.model_hyperparameters`; keys the family does not take are
    dropped). ``metrics`` are recorded as
    ``metric.<name>`` tags. Returns the new version, or the existing one for the same hash.
    """
    profile_id = profile_id_of(profile)
    digest = sha256_hex(model_bytes)
    existing = find_version(profile_id, digest)
    if existing is not None:
        return existing
    family = family_of_profile(profile)
    params = resolve_hyperparameters(profile, hyperparameters)
    # Building the adapter proves the bytes fit the profile before anything is logged.
    adapter = load_global_adapter(profile, model_bytes, hyperparameters=params)
    example = np.asarray(input_example, dtype=np.float64)[:EXAMPLE_ROWS]
    if example.ndim != 2 or example.shape[0] == 0:
        raise InvalidModelError(f"input_example must be 2-D feature rows, got {example.shape}")
    model_id = _log_pyfunc(
        profile,
        round_no,
        model_bytes,
        run_id=run_id,
        example=example,
        adapter_output=adapter.predict(prepare_features(profile, example)),
        hyperparameters=params,
        digest=digest,
    )
    version_tags = {str(k): str(v) for k, v in (tags or {}).items()}
    version_tags.update(
        {f"{METRIC_TAG_PREFIX}{k}": repr(float(v)) for k, v in (metrics or {}).items()}
    )
    # Last, so that caller tags cannot overwrite the hash the version is found by.
    version_tags.update({TAG_SHA256: digest, TAG_ROUND: str(round_no), TAG_FAMILY: family})
    with translate(f"registration of {profile_id} round {round_no}"):
        _ensure_registered_model(profile)
        created = client().create_model_version(
            profile_id,
            source=f"models:/{model_id}",
            run_id=run_id,
            tags=version_tags,
            model_id=model_id,
        )
    # Node agents of this process (the local dispatch) load this version next, by its hash.
    VERIFIED.put(profile_id, model_bytes)
    return _info(created)


def find_version(profile_id: str, sha256: str) -> ModelVersionInfo | None:
    """The version whose ``sha256`` tag is ``sha256`` (the oldest, if ever several)."""
    digest = check_sha256(sha256)
    with translate(f"search of {profile_id} versions"):
        found = client().search_model_versions(
            f"name = '{_quote(profile_id)}' and tags.{TAG_SHA256} = '{digest}'"
        )
    if not found:
        return None
    return _info(min(found, key=lambda v: int(v.version)))


def get_version(
    profile_id: str, *, alias: str | None = None, version: int | None = None
) -> ModelVersionInfo:
    """A version by ``alias`` (``champion``, ``challenger``) or number; ``ModelNotFoundError``
    if there is none."""
    # Deferred: loads mlflow only when used.
    from mlflow.exceptions import MlflowException

    if (alias is None) == (version is None):
        raise ValueError("give exactly one of alias= or version=")
    try:
        mlflow_client = client()
        if alias is not None:
            return _info(mlflow_client.get_model_version_by_alias(profile_id, alias))
        return _info(mlflow_client.get_model_version(profile_id, str(version)))
    except MlflowException as exc:
        # MLflow reports a missing alias as INVALID_PARAMETER_VALUE "... not found".
        missing = exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or (
            exc.error_code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc)
        )
        if missing:
            what = f"alias {alias!r}" if alias is not None else f"version {version}"
            raise ModelNotFoundError(f"{profile_id} has no {what}", profile_id=profile_id) from exc
        raise TrackingError(f"{profile_id}: {exc}") from exc


def fetch_model_bytes(profile_id: str, sha256: str, *, shared: bool = False) -> bytes:
    """The exchange bytes of the version with hash ``sha256``, verified after download.

    ``shared``: the node agents of a round, which all load the same base and new model: once
    per process, then from memory, verified again (:mod:`registry.verified_bytes`). Model
    access (``fedspec model``, serving) reads the store on every load."""
    if shared:
        return VERIFIED.get(profile_id, sha256, lambda: fetch_model_bytes(profile_id, sha256))
    found = find_version(profile_id, sha256)
    if found is None:
        raise ModelNotFoundError(f"{profile_id} has no version with sha256 {sha256}", sha256=sha256)
    # Deferred: loads mlflow, pandas only when used.
    from registry.pyfunc import MODEL_FILE

    return fetch_bytes(f"{found.uri}/artifacts/{MODEL_FILE}", sha256=found.sha256)


def set_version_tags(
    profile_id: str,
    sha256: str,
    tags: Mapping[str, Any],
    *,
    version: ModelVersionInfo | None = None,
) -> ModelVersionInfo:
    """Set tags on the version with hash ``sha256`` (values written as strings); returns the
    version with them. ``version``: the version as the caller has it (just registered, say),
    which spares the search for it."""
    found = version if version is not None and version.sha256 == sha256 else None
    found = found or find_version(profile_id, sha256)
    if found is None:
        raise ModelNotFoundError(f"{profile_id} has no version with sha256 {sha256}", sha256=sha256)
    # MLflow sets a version's tags one call each: only those that change (a coordinator's
    # metrics are on the version since its creation; setting them again cost a call per
    # metric on every round's critical path, benchmarks/round_time.py).
    changed = {k: str(v) for k, v in sorted(tags.items()) if found.tags.get(k) != str(v)}
    if not changed:
        return found
    with translate(f"tags of {found.uri}"):
        mlflow_client = client()
        for key, value in changed.items():
            mlflow_client.set_model_version_tag(profile_id, str(found.version), key, value)
    # Not read back: one call fewer, and a read could not rule out a later writer either.
    return replace(found, tags={**found.tags, **changed})


def record_ledger_commit(
    profile_id: str,
    sha256: str,
    *,
    tx_id: str,
    block: int,
    version: ModelVersionInfo | None = None,
) -> ModelVersionInfo:
    """Tag the version with the ledger transaction that committed its hash."""
    return set_version_tags(
        profile_id, sha256, {TAG_LEDGER_TX: tx_id, TAG_LEDGER_BLOCK: block}, version=version
    )


def record_metrics(
    profile_id: str,
    sha256: str,
    metrics: Mapping[str, float],
    *,
    version: ModelVersionInfo | None = None,
) -> ModelVersionInfo:
    """Record evaluation metrics on the version as ``metric.<name>`` tags."""
    return set_version_tags(
        profile_id,
        sha256,
        {f"{METRIC_TAG_PREFIX}{k}": repr(float(v)) for k, v in metrics.items()},
        version=version,
    )


def load_pyfunc(
    profile_id: str, *, alias: str | None = None, sha256: str | None = None
) -> PyFuncModel:
    """Load a version as a pyfunc (its ``load_context`` verifies the bytes' hash), by alias
    or hash, and check the hash the model was built with is the registry's ``sha256`` tag."""
    # Deferred: loads mlflow only when used.
    import mlflow

    if sha256 is not None:
        info = find_version(profile_id, sha256)
        if info is None:
            raise ModelNotFoundError(f"{profile_id} has no version with sha256 {sha256}")
    else:
        info = get_version(profile_id, alias=alias or "champion")
    with translate(f"load of {info.uri}"):
        model: PyFuncModel = mlflow.pyfunc.load_model(info.uri)
    config = model.model_config or {}
    if config.get("sha256") != info.sha256:
        raise ArtifactIntegrityError(
            info.uri, expected=info.sha256, actual=str(config.get("sha256"))
        )
    return model


def pip_requirements(family: str) -> list[str]:
    """Pinned requirements of a served model of ``family`` (the installed versions)."""
    names = (*_BASE_REQUIREMENTS, *_FAMILY_REQUIREMENTS.get(family, ()))
    return [f"{name}=={importlib.metadata.version(name)}" for name in names]


def _log_pyfunc(
    profile: Mapping[str, Any],
    round_no: int,
    model_bytes: bytes,
    *,
    run_id: str,
    example: NDArray,
    adapter_output: NDArray,
    hyperparameters: Mapping[str, Any],
    digest: str,
) -> str:
    """Save the pyfunc locally and upload it as a LoggedModel linked to ``run_id``.

    ``mlflow.pyfunc.log_model`` is not used: it attaches the model to the calling thread's
    active run, and the round's run is usually active in no thread of this process.
    """
    # Deferred: loads mlflow only when used.
    import mlflow
    from mlflow.entities import LoggedModelOutput
    from mlflow.models import Model, infer_signature

    from registry import pyfunc

    family = family_of_profile(profile)
    profile_id = profile_id_of(profile)
    signature = infer_signature(example, adapter_output, params={"output": "label"})
    with translate(f"run {run_id}"):
        mlflow_client = client()
        run = mlflow_client.get_run(run_id)
        run_profile = run.data.tags.get(TAG_PROFILE)
        if run_profile is not None and run_profile != profile_id:
            raise InvalidModelError(
                f"run {run_id} belongs to profile {run_profile!r}, not {profile_id!r}"
            )
        logged = mlflow_client.create_logged_model(
            run.info.experiment_id,
            name=LOGGED_MODEL_NAME,
            source_run_id=run_id,
            tags={TAG_SHA256: digest, TAG_ROUND: str(round_no), TAG_PROFILE: profile_id},
            model_type="fedspec-global",
        )
    model_id = str(logged.model_id)
    try:
        with tempfile.TemporaryDirectory(prefix="fedspec-model-") as tmp:
            staged = Path(tmp)
            (staged / pyfunc.MODEL_FILE).write_bytes(model_bytes)
            (staged / pyfunc.PROFILE_FILE).write_text(json.dumps(dict(profile), sort_keys=True))
            metadata = Model(
                artifact_path=logged.artifact_location,
                model_uuid=model_id,
                run_id=run_id,
                model_id=model_id,
            )
            mlflow.pyfunc.save_model(
                path=str(staged / "model"),
                python_model=str(pyfunc.ENTRY_FILE),
                artifacts={
                    pyfunc.MODEL_ARTIFACT: str(staged / pyfunc.MODEL_FILE),
                    pyfunc.PROFILE_ARTIFACT: str(staged / pyfunc.PROFILE_FILE),
                },
                model_config=pyfunc.model_config(
                    profile_id=profile_id,
                    round_no=round_no,
                    sha256=digest,
                    family=family,
                    hyperparameters=dict(hyperparameters),
                ),
                signature=signature,
                input_example=example,
                pip_requirements=pip_requirements(family),
                mlflow_model=metadata,
            )
            with translate(f"upload of model {model_id}"):
                mlflow_client.log_model_artifacts(model_id, str(staged / "model"))
    except BaseException:
        mlflow_client.finalize_logged_model(model_id, "FAILED")
        raise
    with translate(f"run {run_id}"):
        mlflow_client.finalize_logged_model(model_id, "READY")
        mlflow_client.log_outputs(run_id, [LoggedModelOutput(model_id, step=round_no)])
    return model_id


def _ensure_registered_model(profile: Mapping[str, Any]) -> None:
    # Deferred: loads mlflow only when used.
    from mlflow.exceptions import MlflowException

    profile_id = profile_id_of(profile)
    objective = objective_of(profile)
    mlflow_client = client()
    if writer():
        # On a server with credentials the consortium's admin creates the registered model
        # (`fedspec servers grant`): created here, MLflow would give this member MANAGE on
        # it, and with it the power to delete every other member's versions.
        if _registered(mlflow_client, profile_id):
            return
        raise TrackingAuthError(
            f"registered model {profile_id} does not exist on the MLflow server and "
            f"{writer()} may not create it: the consortium's admin runs "
            f"`fedspec servers grant {profile_id}` before the profile's first round",
            forbidden=True,
            user=writer(),
            endpoint="registered-models/create",
            status=403,
        )
    try:
        mlflow_client.create_registered_model(
            profile_id,
            tags={
                "family": family_of_profile(profile),
                "objective.metric": objective.metric,
                "objective.direction": objective.direction,
            },
            description=str(profile.get("name", profile_id)),
        )
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise


def _registered(mlflow_client: MlflowClient, name: str) -> bool:
    # Deferred: loads mlflow only when used.
    from mlflow.exceptions import MlflowException

    try:
        mlflow_client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise
    return True


def _info(version: ModelVersion) -> ModelVersionInfo:
    tags = dict(version.tags or {})
    return ModelVersionInfo(
        profile_id=str(version.name),
        version=int(version.version),
        sha256=tags.get(TAG_SHA256, ""),
        round_no=int(tags.get(TAG_ROUND, "-1")),
        run_id=version.run_id,
        aliases=tuple(version.aliases or ()),
        tags=tags,
    )


def _quote(value: str) -> str:
    """Profile ids match ``^[a-z0-9][a-z0-9._-]{1,62}$``; refuse anything that could break
    out of a filter string."""
    if "'" in value or "\\" in value:
        raise InvalidModelError(f"invalid profile id {value!r}")
    return value
