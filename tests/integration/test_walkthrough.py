"""The README's "Run a consortium" walkthrough, executed exactly as written: the shell block
between the walkthrough markers is read from README.md and run with bash, so the two cannot
drift. Then the outcome is checked: no member's home holds another organization's private
key, both rounds closed (the second with the fifth organization), the fourth organization
was voted out, and the ledger verifies."""

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
from tests.member_homes import private_key_files

SCRIPT_S = 1500
# The script's own bound, then the test's (the suite's default of 600 s cut a loaded CI run).
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(SCRIPT_S + 120)]

REPO = Path(__file__).resolve().parents[2]
BLOCK = re.compile(
    r"<!-- walkthrough: begin -->\s*```sh\n(.*?)```\s*<!-- walkthrough: end -->", re.S
)
ORGS = ["org1", "org2", "org3", "org4", "org5"]


def walkthrough() -> str:
    found = BLOCK.search((REPO / "README.md").read_text())
    assert found, "README.md has no walkthrough block between its markers"
    return found.group(1)


def _env() -> dict[str, str]:
    """This interpreter's tools first on PATH, and none of the outer run's settings."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("FEDSPEC_", "MLFLOW_", "PREFECT_"))
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    return env


def test_the_readme_walkthrough_runs_as_written(tmp_path: Path) -> None:
    # The block runs from a checkout's root: `walk/` beside `examples/`.
    (tmp_path / "examples").symlink_to(REPO / "examples")
    script = "set -euo pipefail\n" + walkthrough()
    proc = subprocess.Popen(
        ["bash", "-c", script],
        cwd=tmp_path,
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
    assert "ledger verified" in out, out[-3000:]

    walk = tmp_path / "walk"
    homes = {org: walk / org for org in [*ORGS, "ordering"]}
    for org, home in homes.items():
        folder = "ordererOrganizations" if org == "ordering" else "peerOrganizations"
        for key in private_key_files(home):
            assert key.is_relative_to(home / "consortium" / folder / org), (org, key)

    settings = Settings.load(
        homes["org2"], env={"FEDSPEC_LEDGER_PATH": str(walk / "ledger.sqlite")}
    )
    try:
        reader = open_ledger(
            settings.ledger, Consortium.load(settings.ledger.consortium_dir).default_admin
        )
        rounds = reader.list_rounds("flights-delay")
        assert [r.status for r in rounds] == ["closed", "closed"], rounds
        first, second = (reader.get_round("flights-delay", r.number) for r in rounds)
        assert set(first.participants) == {f"org{k}/node0" for k in range(1, 5)}
        assert "org5/node0" in second.participants
        assert sorted(reader.consortium_orgs()) == ["org1", "org2", "org3", "org5"]
        records = [
            reader.volunteer_record("flights-delay", v) for v in reader.volunteers("flights-delay")
        ]
        assert records and all(r.get("dataset") for r in records), records  # fingerprints
    finally:
        close_services()
