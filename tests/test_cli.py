"""The `fedspec` command: real processes, exit code 2 and one line for bad input, nothing written."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "examples" / "profiles" / "digits-8x8.yaml"


def fedspec(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedspec.cli", "--home", str(home), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=ROOT,
    )


def refused(proc: subprocess.CompletedProcess[str], fragment: str, code: int = 2) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fedspec: error: "), proc.stderr
    assert fragment in lines[0], lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(
        b"".join(p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file())
    ).hexdigest()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home")
    assert (
        fedspec(
            home, "consortium", "init", "--orgs", "org1,org2,org3", "--nodes-per-org", "1"
        ).returncode
        == 0
    )
    init = fedspec(home, "ledger", "init", "--json")
    assert init.returncode == 0, init.stderr
    assert json.loads(init.stdout)["nodes"] == ["org1/node0", "org2/node0", "org3/node0"]
    return home


def _height(home: Path) -> int:
    return int(
        sqlite3.connect(home / "ledger.sqlite").execute("SELECT COUNT(*) FROM blocks").fetchone()[0]
    )


def test_consortium_init_refuses_to_overwrite(home: Path) -> None:
    before = digest(home / "consortium")
    refused(fedspec(home, "consortium", "init", "--orgs", "org1"), "--force")
    assert digest(home / "consortium") == before


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["consortium", "init", "--orgs", "Org1"], "organization name"),
        (["consortium", "init", "--orgs", "a,a", "--out", "/tmp/fedspec-never"], "twice"),
        (["consortium", "init", "--orgs", "a", "--nodes-per-org", "0"], "--nodes-per-org"),
        (["consortium", "init"], "--orgs"),
        (["ledger", "nosuch"], "No such command"),
        (["ledger", "verify", "--jobs", "zero"], "--jobs"),
        (["round", "run", "digits-8x8", "--dispatch", "ssh"], "--dispatch"),
        (["round", "run", "no-such-profile"], "no-such-profile"),
        (["round", "node", "no-such-profile", "--node", "org1/node0"], "no-such-profile"),
        (["round", "run", "digits-8x8", "--rounds", "0"], "--rounds"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(home: Path, args: list[str], fragment: str) -> None:
    refused(fedspec(home, *args), fragment)
    assert not Path("/tmp/fedspec-never").exists()


def test_ledger_init_refuses_to_replace_a_ledger(home: Path) -> None:
    before = (home / "ledger.sqlite").read_bytes()
    refused(fedspec(home, "ledger", "init"), "--force")
    assert (home / "ledger.sqlite").read_bytes() == before


def test_a_missing_identity_folder_is_one_line(tmp_path: Path) -> None:
    refused(fedspec(tmp_path, "ledger", "status"), "consortium init")
    refused(fedspec(tmp_path, "ledger", "init"), "consortium init")
    assert not (tmp_path / "ledger.sqlite").exists()


def test_an_unreadable_identity_is_one_line(home: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    for key in (copy / "consortium/peerOrganizations/org1/users/admin/msp/keystore").iterdir():
        key.write_text("not a key")
    refused(fedspec(copy, "ledger", "status", "--as", "org1/admin"), "IDENTITY_INVALID")


def test_a_file_that_is_not_a_ledger_is_one_line(home: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"\x00" * 100)
    refused(fedspec(home, "ledger", "verify", "--ledger", str(junk)), "LEDGER_INVALID")
    refused(fedspec(home, "ledger", "verify", "--ledger", str(PROFILE)), "not a fedspec ledger")


def test_profiles_from_the_command_line(home: Path, tmp_path: Path) -> None:
    proposed = fedspec(home, "profile", "propose", str(PROFILE), "--json")
    assert proposed.returncode == 0, proposed.stderr
    spec = json.loads(proposed.stdout)["spec"]
    assert spec["privacy"] == {"mode": "none"}  # the tour's example trains without DP
    assert fedspec(home, "profile", "vote", "digits-8x8").returncode == 0
    second = fedspec(home, "profile", "vote", "digits-8x8", "--as", "org3/admin", "--json")
    assert json.loads(second.stdout)["status"] == "active"
    refused(
        fedspec(home, "profile", "vote", "digits-8x8", "--as", "org3/admin"), "FAILED_PRECONDITION"
    )
    listed = json.loads(fedspec(home, "profile", "list", "--json").stdout)
    assert [p["id"] for p in listed] == ["digits-8x8"]

    before = _height(home)
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("id: [unclosed")
    refused(fedspec(home, "profile", "propose", str(bad_yaml)), "not valid YAML")
    tree_fedavg = tmp_path / "tree.yaml"
    tree_fedavg.write_text(
        PROFILE.read_text().replace("torch-mlp", "xgboost-classifier").replace("digits-8x8", "t")
    )
    refused(fedspec(home, "profile", "propose", str(tree_fedavg)), "aggregation")
    refused(fedspec(home, "profile", "propose", str(tmp_path / "missing.yaml")), "cannot read")
    refused(fedspec(home, "profile", "vote", "digits-8x8", "--as", "org1/node0"), "FORBIDDEN")
    assert _height(home) == before


def test_inspection_and_verification(home: Path, tmp_path: Path) -> None:
    status = json.loads(fedspec(home, "ledger", "status", "--json").stdout)
    assert status["orgs"] == ["org1", "org2", "org3"] and status["height"] == _height(home)
    blocks = json.loads(
        fedspec(home, "ledger", "blocks", "--from", "1", "--to", "2", "--json").stdout
    )
    assert blocks[0]["transactions"][0]["function"] == "InitConsortium"
    tx_id = blocks[1]["transactions"][0]["tx_id"]
    tx = json.loads(fedspec(home, "ledger", "tx", tx_id, "--json").stdout)
    assert tx["function"] == "RegisterNode" and tx["code"] == "VALID" and len(tx["endorsers"]) == 2
    events = json.loads(
        fedspec(home, "ledger", "events", "--name", "NodeRegistered", "--json").stdout
    )
    assert [e["payload"]["id"] for e in events] == ["org1/node0", "org2/node0", "org3/node0"]
    ok = fedspec(home, "ledger", "verify", "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["ok"] is True

    import shutil

    copy = tmp_path / "tampered"
    shutil.copytree(home, copy)
    db = sqlite3.connect(copy / "ledger.sqlite", isolation_level=None)
    db.execute(
        "UPDATE state SET value = CAST('{}' AS BLOB) WHERE instr(key, 'org2/node0') > 0 AND instr(key, 'node') = 2"
    )
    refused(fedspec(copy, "ledger", "verify"), "failed at block 3", code=1)
