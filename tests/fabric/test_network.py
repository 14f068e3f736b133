"""`fedspec network` for real: up, status, down by PID, restart on existing ledgers, and
every refusal (no consortium, a port in use, a stale directory, no binaries, peers
unreachable, a failure half-way) as one line with nothing left running."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fabric_network import NetworkLayout, lifecycle, network_down, network_status, network_up
from fabric_network.control import SCRIPT, NetworkError
from fabric_network.processes import alive, recorded
from tests.fabric_support import fabric_binaries_or_skip, free_base_port
from tests.test_cli import fedspec, refused

pytestmark = [pytest.mark.fabric, pytest.mark.integration]


@pytest.fixture
def home(consortium_dir: Path, tmp_path: Path) -> Iterator[Path]:
    fabric_binaries_or_skip()
    home = tmp_path / "home"
    home.mkdir()
    (home / "consortium").symlink_to(consortium_dir)
    yield home
    layout = NetworkLayout(home / "network", consortium_dir)
    network_down(layout)  # whatever a failed test left, by PID


def test_up_status_down_and_restart_on_the_existing_ledgers(home: Path) -> None:
    base = free_base_port()
    up = fedspec(home, "network", "up", "--base-port", str(base), "--json")
    assert up.returncode == 0, up.stderr
    status = json.loads(up.stdout)
    assert status["state"] == "ready" and status["fabric_version"]
    assert status["peers"]["org2"] == f"127.0.0.1:{base + 110}"
    pids = recorded(home / "network")
    assert len(pids) == 9 and all(alive(p) for p in pids.values())  # 3 orderers, 3 peers, 3 cc
    # The ledger is selected by configuration alone; the peers come from network.json.
    env = {**os.environ, "FEDSPEC_LEDGER": "fabric"}
    init = subprocess.run(
        [*_cli(home), "ledger", "init", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert init.returncode == 0, init.stderr
    height = json.loads(init.stdout)["height"]

    down = fedspec(home, "network", "down", "--json")
    assert sorted(json.loads(down.stdout)["stopped"]) == sorted(pids)
    assert not any(alive(p) for p in pids.values())
    assert json.loads(fedspec(home, "network", "status", "--json").stdout)["state"] == "stopped"

    # Up again: the same ports (from network.json), the same ledger, nothing recreated.
    assert fedspec(home, "network", "up", "--json").returncode == 0
    again = subprocess.run(
        [*_cli(home), "ledger", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["height"] == height


def test_refusals_are_one_line_and_leave_nothing_running(home: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    refused(fedspec(empty, "network", "up"), "run `fedspec consortium init` first")

    base = free_base_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", base + 110))  # org2's peer port
        holder.listen()
        refused(
            fedspec(home, "network", "up", "--base-port", str(base)),
            f"port {base + 110} (org2 peer)",
        )
    assert not (home / "network" / "pids.json").exists() or not recorded(home / "network")

    (home / "network").mkdir(exist_ok=True)
    (home / "network" / "network.json").write_text(json.dumps({"status": "starting"}))
    refused(fedspec(home, "network", "up"), "stale network directory")
    assert fedspec(home, "network", "down", "--wipe").returncode == 0
    assert not (home / "network").exists()

    unreachable = subprocess.run(
        [*_cli(home), "ledger", "status"],
        env={
            **os.environ,
            "FEDSPEC_LEDGER": "fabric",
            "FEDSPEC_FABRIC_PEERS": f"org1=127.0.0.1:{base}",
        },
        capture_output=True,
        text=True,
        check=False,
    )
    refused(unreachable, "the Fabric peer at 127.0.0.1:")


def test_without_go_or_binaries_the_script_says_how_to_get_them(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(SCRIPT)],
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "FEDSPEC_FABRIC_CACHE": str(tmp_path / "cache"),
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "install Go" in done.stderr and "on PATH" in done.stderr


def test_a_failure_half_way_through_up_stops_every_process_it_started(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = NetworkLayout(home / "network", home / "consortium", base_port=free_base_port())

    def broken_join(*args: object) -> None:
        raise lifecycle.ToolError("`peer channel join` failed: injected")

    monkeypatch.setattr(lifecycle, "peer_join", broken_join)
    with pytest.raises(NetworkError, match="every process it started was stopped"):
        network_up(layout)
    assert recorded(layout.run_dir) == {}  # orderers and peers had started: all stopped
    assert network_status(layout).state == "partial"  # and the next `up` says what to do
    with pytest.raises(NetworkError, match="stale network directory"):
        network_up(layout)
    shutil.rmtree(layout.run_dir)


def _cli(home: Path) -> list[str]:
    import sys

    return [sys.executable, "-m", "fedspec.cli", "--home", str(home)]
