"""The README's "Run a consortium" walkthroughs, executed exactly as written: each shell block
between its walkthrough markers is read from README.md and run with bash, so the two cannot
drift. One block shares one embedded ledger file; the other runs the same consortium on a
Fabric network whose members each start their own part (`fedspec node up`) on their own
loopback address. Then the outcome is checked: no member's home holds another organization's
private key, both rounds closed (the second with the fifth organization), the fourth
organization was voted out, and the ledger verifies (the embedded file) or every running
member's peer serves the same rounds and members (Fabric)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fedspec.app.settings import Settings
from ledger_client import Consortium, close_services, open_ledger
from tests.fabric_support import fabric_binaries_or_skip
from tests.member_homes import private_key_files

SCRIPT_S = 1500
# The script's own bound, then the test's (the suite's default of 600 s cut a loaded CI run).
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(SCRIPT_S + 180)]

REPO = Path(__file__).resolve().parents[2]
ORGS = ["org1", "org2", "org3", "org4", "org5"]
HOMES = [*ORGS, "ordering"]
PROFILE = "flights-delay"


def walkthrough(marker: str) -> str:
    block = re.compile(
        rf"<!-- {marker}: begin -->\s*```sh\n(.*?)```\s*<!-- {marker}: end -->", re.S
    )
    found = block.search((REPO / "README.md").read_text())
    assert found, f"README.md has no {marker} block between its markers"
    return found.group(1)


def _env() -> dict[str, str]:
    """This interpreter's tools first on PATH, and none of the outer run's settings."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("FEDSPEC_", "MLFLOW_", "PREFECT_"))
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    return env


def run_block(marker: str, cwd: Path) -> str:
    """The block from a checkout's root (``walk/`` beside ``examples/``); its output."""
    (cwd / "examples").symlink_to(REPO / "examples")
    proc = subprocess.Popen(
        ["bash", "-c", "set -euo pipefail\n" + walkthrough(marker)],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # the background `round join`s are in its process group
    )
    try:
        out, _ = proc.communicate(timeout=SCRIPT_S)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # anything left behind, by its group
        proc.wait(timeout=30)
    assert proc.returncode == 0, out[-6000:]
    return out


def assert_homes_hold_only_their_own(walk: Path) -> None:
    for org in HOMES:
        home = walk / org
        folder = "ordererOrganizations" if org == "ordering" else "peerOrganizations"
        for key in private_key_files(home):
            assert key.is_relative_to(home / "consortium" / folder / org), (org, key)


def assert_rounds_and_members(settings: Settings) -> tuple[object, ...]:
    """Both rounds closed (the second with org5), org4 voted out, every volunteer's dataset
    fingerprint recorded; what was read, to compare across peers."""
    reader = open_ledger(
        settings.ledger, Consortium.load(settings.ledger.consortium_dir).default_admin
    )
    rounds = reader.list_rounds(PROFILE)
    assert [r.status for r in rounds] == ["closed", "closed"], rounds
    first, second = (reader.get_round(PROFILE, r.number) for r in rounds)
    assert set(first.participants) == {f"org{k}/node0" for k in range(1, 5)}
    assert "org5/node0" in second.participants
    members = sorted(reader.consortium_orgs())
    assert members == ["org1", "org2", "org3", "org5"]
    records = [reader.volunteer_record(PROFILE, v) for v in reader.volunteers(PROFILE)]
    assert records and all(r.get("dataset") for r in records), records  # fingerprints
    return (first.raw, second.raw, members, reader.get_model(PROFILE, 2).sha256)


def test_the_readme_walkthrough_runs_as_written(tmp_path: Path) -> None:
    out = run_block("walkthrough", tmp_path)
    assert "ledger verified" in out, out[-3000:]
    walk = tmp_path / "walk"
    assert_homes_hold_only_their_own(walk)
    settings = Settings.load(
        walk / "org2", env={"FEDSPEC_LEDGER_PATH": str(walk / "ledger.sqlite")}
    )
    try:
        assert_rounds_and_members(settings)
    finally:
        close_services()


@pytest.mark.fabric
def test_the_readme_walkthrough_on_fabric_runs_as_written(tmp_path: Path) -> None:
    from fabric_network import node_down, node_status
    from fedspec.app.node import member_layout

    fabric_binaries_or_skip()
    walk = tmp_path / "walk-fabric"
    try:
        out = run_block("walkthrough-fabric", tmp_path)
        assert "members org1, org2, org3, org5" in out, out[-3000:]
        assert_homes_hold_only_their_own(walk)
        # Every running member's own peer (its home's node.json) serves the same history.
        seen = {}
        for org in ["org1", "org2", "org3", "org5"]:
            try:
                seen[org] = assert_rounds_and_members(
                    Settings.load(walk / org, env={"FEDSPEC_LEDGER": "fabric"})
                )
            finally:
                close_services()
        assert all(s == seen["org1"] for s in seen.values()), seen
        assert node_status(member_layout(Settings.load(walk / "org4", env={}))).state == "stopped"
    finally:
        close_services()
        # What README says each member does at the end: stop its own part, by PID.
        for home in HOMES:
            with contextlib.suppress(Exception):  # a home the block never reached
                node_down(member_layout(Settings.load(walk / home, env={})))
