"""Starting the network's processes and stopping exactly those, by PID.

Each process runs in its own session (so a stop reaches its children too), logs to
``<run>/logs/<name>.log``, and is recorded in ``<run>/pids.json`` the moment it starts, so
that an interrupted ``up`` still leaves ``down`` everything it needs to clean up.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

import psutil

from fedspec.fileio import write_atomic


def pids_file(run_dir: Path) -> Path:
    return run_dir / "pids.json"


def recorded(run_dir: Path) -> dict[str, int]:
    try:
        doc = json.loads(pids_file(run_dir).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): int(v) for k, v in doc.items()}


def _record(run_dir: Path, name: str, pid: int | None) -> None:
    pids = recorded(run_dir)
    if pid is None:
        pids.pop(name, None)
    else:
        pids[name] = pid
    write_atomic(pids_file(run_dir), json.dumps(pids, indent=2, sort_keys=True))


def rename(run_dir: Path, old: str, new: str) -> None:
    """Record the process recorded as ``old`` as ``new`` (a chaincode server that takes over
    from the one it replaces)."""
    pid = recorded(run_dir).get(old)
    if pid is not None:
        _record(run_dir, new, pid)
        _record(run_dir, old, None)


def alive(pid: int) -> bool:
    if pid <= 0:  # kill(0 or -1, …) would address a whole group, not a process
        return False
    try:
        # A zombie (our own child, exited, not yet reaped) is not alive.
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # someone else's process: it exists
        return True


def start(
    run_dir: Path, name: str, argv: list[str], env: Mapping[str, str], cwd: Path | None = None
) -> int:
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            argv,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            start_new_session=True,
        )
    _record(run_dir, name, proc.pid)
    return proc.pid


def stop(run_dir: Path, name: str, *, timeout: float = 10.0) -> bool:
    """Stop one recorded process (SIGTERM, then SIGKILL); True if it was running."""
    pid = recorded(run_dir).get(name)
    was_running = False
    if pid is not None and alive(pid):
        was_running = True
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while alive(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.05)
        if alive(pid):
            _signal_group(pid, signal.SIGKILL)
            while alive(pid):
                _reap(pid)
                time.sleep(0.02)
    _record(run_dir, name, None)
    return was_running


def stop_all(run_dir: Path) -> list[str]:
    stopped = []
    # Chaincode servers and peers first, orderers last: nothing is left mid-commit.
    order = sorted(recorded(run_dir), key=lambda n: (n.startswith("orderer"), n))
    for name in order:
        if stop(run_dir, name):
            stopped.append(name)
    return stopped


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)  # the process leads its own session: this reaches its children
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):  # not our child: its parent reaps it
        os.waitpid(pid, os.WNOHANG)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def healthy(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=2) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_for(
    what: str,
    check: Callable[[], bool],
    *,
    timeout: float,
    pid: int | None = None,
    log: Path | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if pid is not None and not alive(pid):
            raise RuntimeError(f"{what} exited during start-up{_tail(log)}")
        time.sleep(0.1)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s{_tail(log)}")


def _tail(log: Path | None) -> str:
    if log is None or not log.exists():
        return ""
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if "ERRO" in ln or "PANI" in ln or "Error" in ln]
    last = (errors or lines)[-1:] if lines else []
    return f"; see {log}" + (f": {last[0][-300:]}" if last else "")
