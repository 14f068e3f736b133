"""The same code against an ``mlflow server`` with proxied artifacts (``mlflow-artifacts:``),
the distributed setting: organizations share a tracking server, not a file system."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mlflow import MlflowClient

import registry
from tests.registry.conftest import (
    MLFLOW_WARNINGS,
    Digits,
    Trained,
    free_port,
    profile_for,
    venv_env,
    wait_http,
)

pytestmark = [*MLFLOW_WARNINGS, pytest.mark.integration, pytest.mark.timeout(180)]


def test_rounds_artifacts_and_registry_through_a_tracking_server(
    base_profile: dict[str, Any], strong: Trained, digits: Digits, spawn: Any, tmp_path: Path
) -> None:
    port = free_port()
    served = tmp_path / "served-artifacts"
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{tmp_path / 'server.db'}",
        "--artifacts-destination",
        str(served),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    # Job execution (GenAI scorers) would start seven more worker processes.
    proc = spawn(command, venv_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"), "server.log")
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/health", proc, tmp_path / "server.log", timeout=120)

    config = registry.configure(url)  # no artifact root: the server proxies artifacts
    assert config.artifact_root is None
    profile = profile_for(base_profile, "remote-a")
    with registry.round_run("remote-a", 1, params={"strategy": "fedavg"}) as rid:
        with registry.node_run(rid, "org1-n1") as nid:
            uri = registry.log_bytes(nid, "updates/org1-n1.safetensors", strong.data)
        assert registry.fetch_bytes(uri, sha256=strong.sha256) == strong.data
        with pytest.raises(registry.ArtifactMissingError):
            registry.fetch_bytes(f"runs:/{nid}/updates/absent.bin", sha256=strong.sha256)
        registry.register_global_model(
            profile, 1, strong.data, run_id=rid, input_example=digits.X_test[:5]
        )
    assert MlflowClient(url).get_run(rid).info.artifact_uri.startswith("mlflow-artifacts:")
    assert list(served.rglob("org1-n1.safetensors"))  # written by the server, not by us

    metrics = {"accuracy": 0.9, "latency_ms_p95": 1.0}
    assert registry.promote(profile, strong.sha256, metrics).alias == "champion"
    assert registry.fetch_model_bytes("remote-a", strong.sha256) == strong.data
    model = registry.load_pyfunc("remote-a", alias="champion")
    X = digits.X_test[:50]
    assert np.array_equal(model.predict(X), strong.predict(X))
