"""Shared fixtures: a consortium folder generated once per test session (per xdist worker).

``make test`` runs the suite on every core with pytest-xdist (``-n logical --dist
loadgroup``). Each worker is its own process with its own temporary directories and ports
(``tests.processes.free_port``); what would be shared is set apart here: Prefect's home
(its temporary local API keeps a SQLite database there, which two workers' servers would
lock against each other) and the Fabric tests, which all run on one worker
(``xdist_group``) so that two networks never load the machine at once.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")

# Set before anything imports Prefect: its settings are read from the environment then. A
# home of the run's own, never the user's ~/.prefect (removed at the end of the session).
_PREFECT_HOME: Path | None = None
if "PREFECT_HOME" not in os.environ:
    _PREFECT_HOME = Path(
        tempfile.mkdtemp(prefix=f"fedspec-prefect-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-")
    )
    os.environ["PREFECT_HOME"] = str(_PREFECT_HOME)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _PREFECT_HOME is not None:
        shutil.rmtree(_PREFECT_HOME, ignore_errors=True)


# tryfirst: pytest-xdist's worker reads the `xdist_group` markers in its own
# pytest_collection_modifyitems (suffixing each grouped test's id), which otherwise runs
# before this one and sees none.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Fabric tests run in two groups, each on one worker, one test after another: the
    # founders' network (a session fixture: the founders' tests and the distributed round
    # share it), and the rest (the one-host session network of the ledger scenarios and
    # parity, the membership and network modules, the Fabric walkthrough). A session
    # network is started once per worker that needs it, and each group needs one; the two
    # groups may run at once on the two workers (their addresses and ports never meet).
    # Everything else spreads over the workers.
    for item in items:
        if item.get_closest_marker("fabric") is not None:
            founders = "founders" in getattr(item, "fixturenames", ())
            item.add_marker(pytest.mark.xdist_group("fabric-founders" if founders else "fabric"))

    # Modules that start processes first: pytest-xdist hands out tests in this order, and a
    # multi-minute test handed out last (the walkthrough, a distributed round) would run
    # alone on one worker while the other idles. Whole modules move, in their own order, so
    # a module's fixtures are not set up twice.
    def module(item: pytest.Item) -> str:
        return item.nodeid.partition("::")[0]

    heavy = {
        module(item)
        for item in items
        if item.get_closest_marker("slow") or item.get_closest_marker("integration")
    }
    items.sort(key=lambda item: module(item) not in heavy)


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
