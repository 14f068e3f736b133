"""Prefect's temporary local API for one command, started as the command's first step.

Without ``PREFECT_API_URL``, Prefect starts a temporary server at a command's first flow call
(``prefect.server.api.server.SubprocessASGIServer``): the command first imports the whole
server package itself (5-10 s on 2 cores, for a class whose server it never runs in-process),
then waits idle while the server process imports it again and migrates its database. Started
here instead, with the same command line and environment as Prefect's class, before the
command imports its flows, the server boots on the other core while the command imports
numpy, Prefect and MLflow and opens its tracking store; :func:`flows.rounds.local_api_settings`
then points Prefect at it (``PREFECT_API_URL``) and waits for it only if it is not up yet.

Nothing here imports Prefect (its import alone takes seconds): the module stays light so the
command line can start the server before anything heavy is loaded.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import random
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from fedspec.errors import ErrorCode, FedspecError

# Prefect's own choices for its temporary server (SubprocessASGIServer, Prefect 3.8).
PORTS = range(8000, 9000)
STARTUP_FAILURE = 3  # uvicorn's exit status when it could not bind or start the app
SERVER_ENV = {
    "PREFECT_UI_ENABLED": "0",
    "PREFECT__SERVER_EPHEMERAL": "1",
    "PREFECT__SERVER_FINAL": "1",
}
DEFAULT_STARTUP_TIMEOUT_S = 180
POLL_S = 0.1
STOP_GRACE_S = 5.0


class LocalApiError(FedspecError):
    """Prefect's temporary local API did not come up (its process exited or never answered)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=ErrorCode.SERVER_UNREACHABLE)


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    for _ in range(50):
        port = random.choice(PORTS)
        if _bindable(port):
            return port
    raise LocalApiError(
        f"no free port for Prefect's temporary API in {PORTS.start}-{PORTS.stop - 1}"
    )


def _prefect_parent() -> str:
    """The directory holding the ``prefect`` package (uvicorn's ``--app-dir``), found
    without importing it."""
    spec = importlib.util.find_spec("prefect")
    if spec is None or not spec.submodule_search_locations:
        raise LocalApiError("the prefect package is not installed")
    return str(Path(next(iter(spec.submodule_search_locations))).parent)


class LocalApi:
    """One temporary Prefect API process: started at once, waited for when first needed,
    stopped when this process exits (after Prefect's own exit hooks have sent their last
    logs and events to it, as with Prefect's class)."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.ready = False
        self._start()
        # Registered before any Prefect exit hook, so it runs after them (atexit is LIFO).
        atexit.register(self.stop)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def _start(self) -> None:
        self.port = _free_port()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                _prefect_parent(),
                "--factory",
                "prefect.server.api.server:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "error",
                "--lifespan",
                "on",
            ],
            env={**os.environ, **SERVER_ENV},
        )

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=5) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait(self) -> str:
        """The API's URL once it answers; a port taken meanwhile is replaced by another."""
        deadline = time.monotonic() + self.timeout_s
        while not self.ready:
            assert self.process is not None, "stopped"
            status = self.process.poll()
            if status == STARTUP_FAILURE:  # most likely the port was taken meanwhile
                self._start()
            elif status is not None:
                raise LocalApiError(f"Prefect's temporary API exited with status {status}")
            elif self._healthy():
                self.ready = True
            elif time.monotonic() >= deadline:
                self.stop()
                raise LocalApiError(
                    f"Prefect's temporary API did not answer within {self.timeout_s:.0f} s "
                    "(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS)"
                )
            else:
                time.sleep(POLL_S)
        return self.url

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_local_api() -> LocalApi | None:
    """Start Prefect's temporary API now, unless ``PREFECT_API_URL`` names a server (then
    ``None``: the flows use that one). A server configured only in a Prefect profile is
    found later, by :func:`flows.rounds.local_api_settings`, which then stops this one."""
    if os.environ.get("PREFECT_API_URL"):
        return None
    timeout_s = float(
        os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS")
        or DEFAULT_STARTUP_TIMEOUT_S
    )
    return LocalApi(timeout_s)
