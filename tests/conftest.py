"""Shared fixtures: a consortium folder generated once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")


@pytest.fixture(scope="session")
def consortium_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fedspec.consortium import init_consortium

    return init_consortium(
        ["org1", "org2", "org3"], tmp_path_factory.mktemp("consortium") / "c", nodes_per_org=2
    )
