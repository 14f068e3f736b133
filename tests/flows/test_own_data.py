"""A consortium trains on its members' own files: the flights example of docs/data.md
("Your own data") end to end. CSVs per origin airport, the flights profile proposed and
voted in, each node's file and the evaluation file added with `fedspec data add`, the
nodes volunteered, then `fedspec round run` as its own process: the round closes and each
volunteer record on the ledger carries the fingerprint `data add` computed."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fedspec.app.settings import Settings
from tests.cli_scenario import run

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PROFILE = "flights-delay"
ORGS = ["org1", "org2", "org3"]
AIRPORTS = {"org1/node0": "EWR", "org2/node0": "JFK", "org3/node0": "LGA"}


def _example_script() -> Any:
    spec = importlib.util.spec_from_file_location(
        "flights_csv", ROOT / "examples" / "data" / "flights_csv.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ok(home: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code, out, err = run(home, capsys, *args)
    assert code == 0, (args, out, err)
    return out


def test_a_round_on_members_own_csv_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from fedspec.app.bootstrap import init_ledger
    from fedspec.app.consortium import init_consortium
    from ledger_client import open_ledger

    for name in ("MLFLOW_TRACKING_URI", "FEDSPEC_LEDGER", "FEDSPEC_LEDGER_PATH"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("FEDSPEC_HOME", str(home))
    settings = Settings.load(home, env={})
    init_consortium(ORGS, settings.ledger.consortium_dir, nodes_per_org=1)
    init_ledger(settings, force=True)
    files = _example_script().write_csvs(tmp_path / "csv", rows=3000)

    _ok(
        home,
        capsys,
        "profile",
        "propose",
        str(ROOT / "examples" / "profiles" / "flights-delay.yaml"),
    )
    for admin in ("org1/admin", "org2/admin"):  # a majority of the three members
        _ok(home, capsys, "profile", "vote", PROFILE, "--as", admin)
    fingerprints = {}
    for node, airport in AIRPORTS.items():
        out = _ok(
            home,
            capsys,
            "data",
            "add",
            "--node",
            node,
            "--profile",
            PROFILE,
            str(files[airport]),
            "--json",
        )
        fingerprints[node] = json.loads(out)["fingerprint"]
    _ok(home, capsys, "data", "add", "--evaluation", "--profile", PROFILE, str(files["evaluation"]))
    volunteered = json.loads(_ok(home, capsys, "round", "volunteer", PROFILE, "--json"))
    assert volunteered["volunteered"] == sorted(AIRPORTS)

    proc = subprocess.run(
        [sys.executable, "-m", "fedspec.cli", "--home", str(home), "round", "run", PROFILE],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        # A Prefect home of its own: the command's temporary API migrates a fresh database,
        # which must not race another server starting on this worker's.
        env={**os.environ, "FEDSPEC_HOME": str(home), "PREFECT_HOME": str(tmp_path / "prefect")},
    )
    assert proc.returncode == 0, (proc.stdout, proc.stderr[-3000:])
    assert "Traceback" not in proc.stdout + proc.stderr

    ledger = open_ledger(settings.ledger, "org1/admin")
    rnd = ledger.get_round(PROFILE, 1)
    assert rnd.status == "closed", rnd.raw
    assert sorted(rnd.participants) == sorted(AIRPORTS)
    for node in AIRPORTS:
        record = ledger.volunteer_record(PROFILE, node)
        assert record["dataset"] == fingerprints[node]
        assert set(record["dataset"]) == {"sha256", "rows", "schema_sha256"}  # never rows
    # Each node validated, before its round, the very rows `data add` validated.
    for update in ledger.list_updates(PROFILE, 1):
        shown = json.loads(
            _ok(home, capsys, "data", "show", "--node", update.node, "--profile", PROFILE, "--json")
        )
        assert update.validation.passed
        assert update.validation.summary_sha256 == shown["validation"]["sha256"]
