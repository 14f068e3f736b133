"""Fabric networks shared by the tests of this folder.

``fabric_rounds``: federated rounds on a one-host network, four organizations, one digits
node each, started once for the module from the round tests' own consortium (its identities
must be the ones the network trusts); the same flows as on the embedded ledger run with
``FEDSPEC_LEDGER=fabric``; every process is stopped by PID at the end.

``founders``: members on their own emulated hosts (:mod:`tests.fabric.founders`), formed once
per session (every Fabric test runs on one xdist worker) and shared by the founders' tests and
the distributed round.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fabric_network import NetworkLayout, network_down, network_up
from tests.fabric.founders import Founders, form
from tests.fabric_support import fabric_binaries_or_skip, free_base_port
from tests.flows.conftest import ORGS, RoundHome, build

# Four node processes, seven Fabric processes and four chaincode servers share CI's 2 cores:
# nodes get twice the embedded tests' time to train and commit after the election (45 s
# was missed once under that load).
SCHEDULE = {"join_window_s": 90, "reveal_window_s": 30, "coordinator_window_s": 90}


@dataclass
class FabricRounds:
    rounds: RoundHome
    layout: NetworkLayout
    bins: Path

    @property
    def config_dir(self) -> Path:
        return self.layout.run_dir / "config"


@pytest.fixture(scope="module")
def fabric_rounds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FabricRounds]:
    from fedspec.app.consortium import init_consortium

    bins = fabric_binaries_or_skip()
    home = tmp_path_factory.mktemp("fabric-rounds") / "home"
    init_consortium(ORGS, home / "consortium", nodes_per_org=1)
    layout = NetworkLayout(home / "network", home / "consortium", base_port=free_base_port())
    saved = {k: os.environ.get(k) for k in ("FEDSPEC_HOME", "FEDSPEC_LEDGER")}
    os.environ.update(FEDSPEC_HOME=str(home), FEDSPEC_LEDGER="fabric")
    for name in ("MLFLOW_TRACKING_URI", "FEDSPEC_LEDGER_PATH", "FEDSPEC_FABRIC_PEERS"):
        os.environ.pop(name, None)
    try:
        network_up(layout)
        rounds = build(
            home, new_consortium=False, env={"FEDSPEC_LEDGER": "fabric"}, schedule=SCHEDULE
        )
        yield FabricRounds(rounds, layout, bins)
        rounds.stop_all()
    finally:
        network_down(layout)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def founders(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Founders]:
    bins = fabric_binaries_or_skip()
    yield from form(tmp_path_factory.mktemp("founders"), bins)
