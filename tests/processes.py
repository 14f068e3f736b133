"""Real processes on 127.0.0.1 for integration tests: started in their own process group,
always stopped by PID (SIGTERM, then SIGKILL after a bounded wait), descendants included.

A process that starts its children in a session of their own (a Prefect worker starts each
flow run so) escapes a group-wide signal; :class:`Processes` therefore marks everything it
starts with an environment variable that children inherit, and on stopping also signals,
by PID, every process that carries the mark (psutil reads the environments).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO

import psutil
import pytest

from fabric_network.processes import alive

MARK = "FEDSPEC_TEST_PROCESSES"
STOP_GRACE_S = 10.0


# Ports a test hands to a server it starts. Chosen below the kernel's ephemeral range, so no
# outgoing connection (a client's source port) can take one between choosing and binding: a
# Fabric peer lost its operations port so when two pytest-xdist workers ran. Each worker
# draws from its own slice, so two workers never choose the same port.
_LOWEST_PORT = 10000
_handed_out: set[int] = set()


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _worker_ports() -> range:
    top = max(_ephemeral_start(), _LOWEST_PORT + 2000)
    workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    width = (top - _LOWEST_PORT) // workers
    start = _LOWEST_PORT + (worker % workers) * width
    return range(start, start + width)


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_block(size: int = 1, *, step: int = 1) -> int:
    """The first of ``size`` consecutive ports that are free and not handed out before in this
    process, from this worker's slice below the ephemeral range."""
    ports = _worker_ports()
    rng = random.Random()
    for _ in range(200):
        first = rng.randrange(ports.start, ports.stop - size, step)
        block = range(first, first + size)
        if not _handed_out.intersection(block) and all(_bindable(p) for p in block):
            _handed_out.update(block)
            return first
    raise RuntimeError(f"no free block of {size} ports in {ports.start}-{ports.stop - 1}")


def free_port() -> int:
    return free_port_block(1)


def venv_env(**extra: str) -> dict[str, str]:
    """Environment for a child process: this interpreter's bin first on PATH (``mlflow``
    starts ``uvicorn`` by name), telemetry off."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env.update(extra)
    return env


def bin_path(name: str) -> str:
    """A console script of this virtual environment (``prefect``, ``mlflow``)."""
    return str(Path(sys.executable).parent / name)


def descendants(pid: int) -> set[int]:
    """Every living descendant of ``pid`` (empty where there is none)."""
    try:
        return {child.pid for child in psutil.Process(pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def marked(token: str) -> set[int]:
    """PIDs of the processes whose environment carries ``MARK=token`` (ours only)."""
    found = set()
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        try:
            if proc.environ().get(MARK) == token:
                found.add(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _signal_all(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _wait_gone(pids: set[int], timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    left = {p for p in pids if alive(p)}
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = {p for p in left if alive(p)}
    return left


def stop(proc: subprocess.Popen[bytes], extra: Iterable[int] = ()) -> None:
    """SIGTERM the process group whose id is ``proc``'s PID (``start_new_session``: only our
    child and what it forked) and the PIDs in ``extra``; SIGKILL what is left after
    :data:`STOP_GRACE_S`."""
    pids = {proc.pid, *extra}
    with contextlib.suppress(ProcessLookupError):  # already gone, workers included
        os.killpg(proc.pid, signal.SIGTERM)
    _signal_all(pids, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        _signal_all([proc.pid], signal.SIGKILL)
        proc.wait(timeout=STOP_GRACE_S)
    left = _wait_gone(pids, STOP_GRACE_S)  # children may outlive the parent by a moment
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    _signal_all(left, signal.SIGKILL)
    _wait_gone(left, STOP_GRACE_S)
    _wait_group_gone(proc.pid, STOP_GRACE_S)


def _wait_group_gone(pgid: int, timeout: float) -> None:
    """Until no process is left in group ``pgid`` (killed members are reaped by init a
    moment later), or ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, *, timeout: float) -> None:
    """Poll ``url`` until it answers 200; fail early if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"process exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    pytest.fail(f"{url} not ready after {timeout} s:\n{log.read_text()[-3000:]}")


def wait_until(
    predicate: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.05
) -> None:
    """Poll ``predicate`` until it holds; fail the test, naming ``what``, after ``timeout``
    seconds. The timeout bounds a stuck run; it is not how long the step should take."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s")
        time.sleep(interval)


class Processes:
    """Starts commands (each in its own session, output to a log file) and, on leaving the
    ``with`` block — failure or not — stops every one of them and whatever they started."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.token = uuid.uuid4().hex
        self.started: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []
        self.leftover: set[int] = set()  # marked processes still alive after stopping

    def start(
        self, args: list[str], env: Mapping[str, str], log_name: str, *, cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = (self.logs / log_name).open("wb")
        proc = subprocess.Popen(
            args,
            env={**env, MARK: self.token},
            cwd=cwd or self.logs,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.started.append((proc, log))
        return proc

    def run(
        self,
        args: list[str],
        env: Mapping[str, str],
        log_name: str,
        *,
        timeout: float,
        cwd: Path | None = None,
    ) -> str:
        """Run a command to its end (bounded by ``timeout``); fail the test if it fails."""
        proc = self.start(args, env, log_name, cwd=cwd)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{' '.join(args)} still running after {timeout} s:\n{self.log(log_name)}")
        if code != 0:
            pytest.fail(f"{' '.join(args)} exited with {code}:\n{self.log(log_name)}")
        return (self.logs / log_name).read_text()

    def log(self, log_name: str, tail: int = 3000) -> str:
        path = self.logs / log_name
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    def stop_all(self) -> None:
        # Whom each started, now, while parents still tell us who their children are.
        tree = {proc.pid: descendants(proc.pid) for proc, _ in self.started}
        for proc, log in reversed(self.started):  # workers before the servers they talk to
            try:
                stop(proc, tree[proc.pid])
            finally:
                log.close()
        rest = marked(self.token)  # anything that slipped out of the tree (re-parented)
        if rest:
            _signal_all(rest, signal.SIGTERM)
            left = _wait_gone(rest, STOP_GRACE_S)
            _signal_all(left, signal.SIGKILL)
            _wait_gone(left, STOP_GRACE_S)
        self.leftover = {p for p in marked(self.token) if alive(p)}

    def __enter__(self) -> Processes:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()
