"""Bytes in and out of MLflow's artifact store, checked against the hash the ledger records.

Updates and global models travel between organizations this way: the sender logs the bytes
to a run, the ledger records their sha256, the receiver fetches them with that hash and gets
them only if they match. ``runs:/<run_id>/<path>`` URIs are returned because they resolve
through the tracking server on any organization's machine, whatever the artifact root.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from federated.exchange import sha256_hex
from registry.errors import (
    ArtifactIntegrityError,
    ArtifactMissingError,
    RegistryError,
    TrackingError,
)
from registry.tracking import client, current_config, translate

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def check_sha256(value: str) -> str:
    """``value`` as a lower-case sha256 hex digest; anything else is a ``RegistryError``."""
    digest = value.strip().lower()
    if not _SHA256.match(digest):
        raise RegistryError(f"not a sha256 hex digest: {value!r}")
    return digest


def _file_path(artifact_path: str) -> PurePosixPath:
    path = PurePosixPath(artifact_path)
    if path.is_absolute() or ".." in path.parts or not path.name or artifact_path.endswith("/"):
        raise RegistryError(f"artifact path must be relative and name a file: {artifact_path!r}")
    return path


def artifact_uri(run_id: str, artifact_path: str) -> str:
    """The ``runs:/<run_id>/<artifact_path>`` URI :func:`log_bytes` returns for the file."""
    return f"runs:/{run_id}/{_file_path(artifact_path)}"


def log_files(run_id: str, files: Mapping[str, bytes]) -> dict[str, str]:
    """Store several files (``{artifact_path: data}``) in the run with one MLflow call,
    each at its path with its bytes, as :func:`log_bytes` stores one; returns their
    ``runs:/`` URIs by path. Nothing to store makes no call."""
    paths = {name: _file_path(name) for name in files}
    if not files:
        return {}
    with tempfile.TemporaryDirectory(prefix="fedspec-artifacts-") as tmp:
        for name, data in files.items():
            local = Path(tmp, *paths[name].parts)
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(data)
        with translate(f"upload of {', '.join(sorted(files))} to run {run_id}"):
            client().log_artifacts(run_id, tmp)
    return {name: f"runs:/{run_id}/{path}" for name, path in paths.items()}


def log_bytes(run_id: str, artifact_path: str, data: bytes) -> str:
    """Store ``data`` as the run's artifact ``artifact_path`` (``updates/org1-n1.safetensors``)
    and return its ``runs:/<run_id>/<artifact_path>`` URI. Logging the same path again
    replaces the file (a retried upload of the same bytes is harmless)."""
    path = _file_path(artifact_path)
    with tempfile.TemporaryDirectory(prefix="fedspec-artifact-") as tmp:
        local = Path(tmp) / path.name
        local.write_bytes(data)
        parent = str(path.parent) if str(path.parent) != "." else None
        with translate(f"upload of {artifact_path} to run {run_id}"):
            client().log_artifact(run_id, str(local), artifact_path=parent)
    return f"runs:/{run_id}/{path}"


def fetch_bytes(uri: str, *, sha256: str) -> bytes:
    """Download the file at ``uri`` (``runs:/``, ``models:/``, ``mlflow-artifacts:``,
    ``file:``) and return its bytes only if their sha256 is ``sha256``.

    Raises ``ArtifactIntegrityError`` (``ARTIFACT_INTEGRITY``, naming both hashes) on a
    mismatch, ``ArtifactMissingError`` (``ARTIFACT_MISSING``) when nothing is there, and
    ``TrackingError`` when the store cannot be reached.
    """
    expected = check_sha256(sha256)
    data = _download(uri)
    actual = sha256_hex(data)
    if actual != expected:
        raise ArtifactIntegrityError(uri, expected=expected, actual=actual)
    return data


def _download(uri: str) -> bytes:
    # Deferred: loads mlflow only when used.
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="fedspec-fetch-") as tmp:
        try:
            local = Path(
                download_artifacts(
                    artifact_uri=uri, dst_path=tmp, tracking_uri=current_config().tracking_uri
                )
            )
        except (MlflowException, OSError) as exc:
            if _means_missing(exc):
                raise ArtifactMissingError(f"no artifact at {uri}", uri=uri) from exc
            raise TrackingError(f"download of {uri}: {type(exc).__name__}: {exc}") from exc
        if not local.is_file():
            raise ArtifactMissingError(f"{uri} is a directory, not a file", uri=uri)
        return local.read_bytes()


def _means_missing(exc: Exception) -> bool:
    """Whether a download failure says "not there" rather than "cannot reach the store"."""
    if isinstance(exc, FileNotFoundError):
        return True
    code = str(getattr(exc, "error_code", ""))
    if code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
        return True
    # The HTTP artifact repository reports a missing file as a 404 in the message only.
    text = str(exc)
    return "404" in text or "does not exist" in text or "No such file" in text


def log_json(run_id: str, artifact_file: str, data: Mapping[str, Any] | Sequence[Any]) -> None:
    """Write ``data`` as sorted-key JSON to the run's ``artifact_file`` (e.g. ``round.json``)."""
    log_bytes(run_id, artifact_file, json.dumps(data, sort_keys=True, indent=2).encode())
