"""Shared fixtures: a consortium folder generated once per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")


@pytest.fixture(scope="session")
def consortium_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fedspec.app.consortium import init_consortium

    return init_consortium(
        ["org1", "org2", "org3"], tmp_path_factory.mktemp("consortium") / "c", nodes_per_org=2
    )


@pytest.fixture(scope="session")
def fabric_network(consortium_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A Fabric network (3 raft orderers, a peer per organization) for the whole session."""
    from tests.fabric_support import start_network

    yield from start_network(tmp_path_factory.mktemp("fabric") / "network", consortium_dir)
