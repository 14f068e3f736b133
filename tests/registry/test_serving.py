"""``mlflow models serve`` answers with the champion, as the adapter would.

Starts a real scoring server on 127.0.0.1 (about 15 s on 2 cores), stopped by its PID.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import registry
from tests.registry.conftest import (
    MLFLOW_WARNINGS,
    Digits,
    Trained,
    free_port,
    profile_for,
    stop,
    venv_env,
    wait_http,
)

pytestmark = [*MLFLOW_WARNINGS, pytest.mark.integration, pytest.mark.timeout(180)]


def _post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_models_serve_answers_with_the_champion(
    store: registry.TrackingConfig,
    base_profile: dict[str, Any],
    strong: Trained,
    digits: Digits,
    spawn: Any,
    tmp_path: Path,
) -> None:
    profile = profile_for(base_profile, "serve-a")
    with registry.round_run("serve-a", 1) as rid:
        registry.register_global_model(
            profile, 1, strong.data, run_id=rid, input_example=digits.X_test[:5]
        )
    assert (
        registry.promote(profile, strong.sha256, {"accuracy": 0.9, "latency_ms_p95": 1.0}).alias
        == "champion"
    )

    port = free_port()
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "models",
        "serve",
        "-m",
        "models:/serve-a@champion",
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    proc = spawn(command, venv_env(MLFLOW_TRACKING_URI=store.tracking_uri), "serve.log")
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/ping", proc, tmp_path / "serve.log", timeout=120)

    X = digits.X_test[:40]
    status, body = _post(f"{base}/invocations", {"inputs": X.tolist()})
    assert status == 200
    assert body["predictions"] == strong.predict(X).tolist()

    columns = [f"px_{i}" for i in range(64)]
    split = {"dataframe_split": {"columns": columns, "data": X[:5].astype(int).tolist()}}
    status, body = _post(f"{base}/invocations", split)
    assert status == 200 and body["predictions"] == strong.predict(X[:5]).tolist()

    status, body = _post(
        f"{base}/invocations", {"inputs": X[:3].tolist(), "params": {"output": "proba"}}
    )
    assert status == 200
    proba = np.array([[row[str(c)] for c in range(10)] for row in body["predictions"]])
    np.testing.assert_allclose(proba, strong.predict_proba(X[:3]), rtol=1e-6)

    status, body = _post(f"{base}/invocations", {"inputs": X[:2, :63].tolist()})
    assert status == 400 and body["error_code"] == "INVALID_PARAMETER_VALUE"

    stop(proc)  # reaps the process (or raises); what is left to check is its group
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # the uvicorn worker went with it
