"""Rollback evidence through the command line: every command that opens the ledger checks and
advances its identity's signed checkpoint in the home; a ledger cut back consistently (it
still verifies on its own) is refused in one line (exit 2), and `ledger verify` fails (exit 1),
both naming the block the member had seen."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from fedspec.app.settings import Settings
from tests.cli_scenario import DIGITS, height, ledger_home, real, refused, run, run_round

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "examples" / "profiles" / "digits-8x8.yaml"


@pytest.fixture(autouse=True)
def _settings_from_home_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MLFLOW_TRACKING_URI", "FEDSPEC_HOME", "FEDSPEC_LEDGER", "FEDSPEC_LEDGER_PATH"):
        monkeypatch.delenv(name, raising=False)


def _checkpoint(home: Path, ref: str) -> dict[str, object]:
    org, name = ref.split("/")
    doc: dict[str, object] = json.loads(
        (home / "checkpoints" / "fedspec" / org / f"{name}.json").read_text()
    )
    return doc


def _copy_ledger(src: Path, dst: Path) -> None:
    """A consistent copy (the write-ahead log included), over ``dst`` if it exists."""
    from ledger_client import close_services

    close_services()  # this process's cached connections to the file
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)


def test_the_first_command_creates_the_checkpoint_and_a_write_advances_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    settings = ledger_home(home)
    assert not (home / "checkpoints").exists()
    code, _, err = run(home, capsys, "ledger", "status")
    assert code == 0, err
    seen = _checkpoint(home, "org1/admin")
    assert seen["height"] == height(settings) and seen["identity"] == "org1/admin"

    doc = tmp_path / "other.yaml"
    doc.write_text(PROFILE.read_text().replace("id: digits-8x8", "id: digits-other", 1))
    code, _, err = run(home, capsys, "profile", "propose", str(doc), "--as", "org2/admin")
    assert code == 0, err
    assert _checkpoint(home, "org2/admin")["height"] == height(settings)  # past its own block

    # Lowered by someone who cannot sign as org1/admin: refused, not trusted, not overwritten.
    path = home / "checkpoints" / "fedspec" / "org1" / "admin.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "height": 2}))
    code, _, err = run(home, capsys, "ledger", "status")
    refused(code, err, "CHECKPOINT_INVALID")
    assert json.loads(path.read_text())["height"] == 2
    code, _, err = run(home, capsys, "ledger", "verify")
    assert code == 1 and "CHECKPOINT_INVALID" in err, err


def test_a_rolled_back_ledger_is_refused_and_fails_verification(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    settings = ledger_home(home)
    path = settings.ledger.ledger_path
    _copy_ledger(path, tmp_path / "before.sqlite")
    run_round(settings, "digits-8x8", DIGITS)  # a later round and its rewards …
    code, out, err = run(home, capsys, "rewards", "--json")  # … which org1/admin sees
    assert code == 0, err
    seen = _checkpoint(home, "org1/admin")
    last = int(str(seen["height"])) - 1

    _copy_ledger(tmp_path / "before.sqlite", path)  # the rollback: blocks, events, state
    code, out, err = run(home, capsys, "ledger", "verify")
    assert code == 1, (out, err)
    assert "LEDGER_ROLLED_BACK" in err and f"block {last}" in err and "shorter" in err

    proc = real(home, "rewards")
    refused(proc.returncode, proc.stderr, "LEDGER_ROLLED_BACK")
    assert f"block {last}" in proc.stderr
    code, _, err = run(home, capsys, "ledger", "status")
    refused(code, err, f"block {last}")
    assert _checkpoint(home, "org1/admin") == seen  # the evidence stays

    code, out, _ = run(home, capsys, "ledger", "verify", "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["ok"] is False
    assert [(p["code"], p["block"]) for p in doc["checkpoints"]["problems"]] == [
        ("LEDGER_ROLLED_BACK", last)
    ]


def test_ledger_init_founds_a_new_ledger_with_fresh_checkpoints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    ledger_home(home)
    assert real(home, "ledger", "status").returncode == 0
    assert (home / "checkpoints").is_dir()
    proc = real(home, "ledger", "init", "--force")  # a process of its own, as in use
    assert proc.returncode == 0, proc.stderr
    assert not (home / "checkpoints").exists()
    code, _, err = run(home, capsys, "ledger", "status")
    assert code == 0, err
    assert _checkpoint(home, "org1/admin")["height"] == height(Settings.load(home, env={}))
