"""Artifacts travel with their hash: fetched bytes are returned only if they match it."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pytest
from mlflow import MlflowClient

import registry
from federated.exchange import sha256_hex
from tests.registry.conftest import MLFLOW_WARNINGS, Trained

pytestmark = MLFLOW_WARNINGS


def _local_file(store: registry.TrackingConfig, run_id: str, path: str) -> Path:
    root = MlflowClient(store.tracking_uri).get_run(run_id).info.artifact_uri
    return Path(urlparse(root).path) / path


def test_bytes_round_trip_and_tampering_is_refused(
    store: registry.TrackingConfig, weak: Trained
) -> None:
    with registry.round_run("art-a", 1) as rid, registry.node_run(rid, "org1-n1") as nid:
        uri = registry.log_bytes(nid, "updates/org1-n1.safetensors", weak.data)
    assert uri == f"runs:/{nid}/updates/org1-n1.safetensors"
    assert registry.fetch_bytes(uri, sha256=weak.sha256) == weak.data
    assert registry.fetch_bytes(uri, sha256=weak.sha256.upper()) == weak.data

    # Someone with write access to the artifact store flips one byte.
    stored = _local_file(store, nid, "updates/org1-n1.safetensors")
    tampered = bytearray(stored.read_bytes())
    tampered[-1] ^= 0xFF
    stored.write_bytes(bytes(tampered))
    with pytest.raises(registry.ArtifactIntegrityError) as caught:
        registry.fetch_bytes(uri, sha256=weak.sha256)
    error = caught.value
    assert error.code == "ARTIFACT_INTEGRITY"
    assert error.expected == weak.sha256 and error.actual == sha256_hex(bytes(tampered))
    assert weak.sha256 in str(error) and error.actual in str(error)


def test_a_missing_artifact_is_typed(store: registry.TrackingConfig) -> None:
    rid = registry.start_round_run("art-b", 1)
    registry.log_bytes(rid, "global/present.bin", b"x")
    with pytest.raises(registry.ArtifactMissingError) as caught:
        registry.fetch_bytes(f"runs:/{rid}/global/absent.bin", sha256="0" * 64)
    assert caught.value.code == "ARTIFACT_MISSING"
    with pytest.raises(registry.ArtifactMissingError):
        registry.fetch_bytes(f"runs:/{rid}/global", sha256="0" * 64)  # a directory
    registry.end_run(rid)


def test_bad_hashes_and_paths_are_refused_before_any_io() -> None:
    with pytest.raises(registry.RegistryError, match="not a sha256"):
        registry.fetch_bytes("runs:/abc/x.bin", sha256="abc")
    for path in ("/abs/x.bin", "../x.bin", "dir/"):
        with pytest.raises(registry.RegistryError, match="relative"):
            registry.log_bytes("any-run", path, b"x")
