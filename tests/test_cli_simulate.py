"""`fedspec simulate`: bad input is one line and exit 2, before Prefect or an engine starts;
a run prints its rounds and writes nothing to the ledger."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fedspec.app.settings import Settings
from tests.cli_scenario import height
from tests.test_cli_bad_input import refused, run

EXAMPLE = str(Path(__file__).resolve().parents[1] / "examples" / "profiles" / "digits-8x8.yaml")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fedspec.app.bootstrap import init_ledger
    from fedspec.app.consortium import init_consortium

    home = tmp_path_factory.mktemp("simulate")
    init_consortium(["org1", "org2"], home / "consortium", nodes_per_org=1)
    init_ledger(Settings.load(home, env={}))
    return home


@pytest.fixture(autouse=True)
def _no_env_home(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FEDSPEC_HOME", "FEDSPEC_LEDGER", "FEDSPEC_LEDGER_PATH", "FEDSPEC_CONSORTIUM"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--nodes", "0"], "--nodes"),
        (["--nodes", "-5"], "--nodes"),
        (["--nodes", "1439"], "SIMULATION_INVALID: 1439 virtual nodes need 1439 training rows"),
        (["--nodes", "200", "--min-rows", "10"], "at most 143 nodes"),
        (["--nodes", "3", "--dataset", "flights"], "SIMULATION_INVALID"),
        (["--nodes", "3", "--engine", "ray"], "--engine"),
        (["--nodes", "3", "--address", "tcp://127.0.0.1:1"], "--address"),
        (["--nodes", "3", "--dirichlet", "0"], "--dirichlet"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], home: Path, args: list[str], fragment: str
) -> None:
    refused(run(capsys, "--home", str(home), "simulate", EXAMPLE, *args), fragment)


def test_an_unknown_profile_on_the_ledger_is_one_line(
    capsys: pytest.CaptureFixture[str], home: Path
) -> None:
    refused(
        run(capsys, "--home", str(home), "simulate", "no-such-profile", "--nodes", "3"),
        "NOT_FOUND: GetProfile: profile no-such-profile does not exist",
    )


def test_a_scheduler_that_does_not_answer_is_one_line(
    capsys: pytest.CaptureFixture[str], home: Path
) -> None:
    import socket

    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["--nodes", "3", "--engine", "dask", "--address", f"tcp://127.0.0.1:{port}"]
    refused(
        run(capsys, "--home", str(home), "simulate", EXAMPLE, *args),
        "SIMULATION_ENGINE_UNAVAILABLE: no Dask scheduler answers",
    )


def test_a_missing_engine_is_one_line(home: Path, tmp_path: Path) -> None:
    # A `distributed` that cannot be imported, first on the path: as if it were not installed.
    shadow = tmp_path / "shadow" / "distributed"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named distributed')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "shadow"), "FEDSPEC_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-m", "fedspec.cli", "simulate", EXAMPLE, "--nodes", "3", "--engine", "dask"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "SIMULATION_ENGINE_UNAVAILABLE" in lines[0], done.stderr


@pytest.mark.integration
@pytest.mark.slow
def test_a_simulation_on_dask_prints_its_rounds_and_records_nothing(
    home: Path, tmp_path: Path
) -> None:
    settings = Settings.load(home, env={})
    before = height(settings)
    # One Dask worker process: two are what tests/flows/test_simulate.py checks; here the
    # command line's path through the engine, and each worker process imports torch (~1 min
    # of a loaded CI core).
    env = {**os.environ, "FEDSPEC_HOME": str(home), "PREFECT_HOME": str(tmp_path / "prefect")}
    command = [
        sys.executable, "-m", "fedspec.cli", "simulate", EXAMPLE, "--nodes", "30",
        "--rounds", "2", "--engine", "dask", "--workers", "1", "--json",
    ]  # fmt: skip
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=580, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["nodes"] == 30 and summary["engine"] == "dask" and summary["workers"] == 1
    assert [r["round"] for r in summary["rounds"]] == [1, 2]
    assert all(r["nodes_trained"] == 30 for r in summary["rounds"])
    assert summary["rounds"][-1]["accuracy"] > 0.1
    assert summary["recorded"] is False
    assert height(settings) == before  # a simulation is not a round: no block written
