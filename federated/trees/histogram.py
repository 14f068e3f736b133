"""Histogram-based horizontal federated XGBoost through XGBoost's federated communicator.

The coordinator starts XGBoost's federated server (gRPC) in a child process, each node
trains in its own process on its own rows with ``tree_method="hist"``: the server sums the
nodes' gradient histograms, so every node grows the same trees it would grow on the union
of the data, while rows never leave their node. Every process started here is stopped by
PID before the call returns, whatever happens. See :mod:`federated.trees.tls` for why the
server needs mutual TLS.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue as queue_module
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from federated.datasets.info import DatasetInfo
from federated.errors import DataValidationError, InvalidInputError, TrainingError
from federated.trees._hist_node import run_node
from federated.trees.tls import LOOPBACK, FederationCredentials, issue_credentials
from federated.validation.summary import ValidationSummary

_SPAWN = multiprocessing.get_context("spawn")


@dataclass(frozen=True)
class HistogramNode:
    """A node taking part: its id and its own data directory (read only by its process)."""

    node_id: str
    data_dir: Path


@dataclass(frozen=True)
class NodeTrainingReport:
    node_id: str
    rank: int
    num_examples: int
    train_seconds: float
    cpu_seconds: float
    model_sha256: str
    validation: ValidationSummary | None  # present when the nodes validated their data


@dataclass(frozen=True)
class HistogramFederationResult:
    model: bytes  # XGBoost UBJSON
    model_sha256: str
    nodes: tuple[NodeTrainingReport, ...]


def _serve(port: int, world_size: int, paths: dict[str, str], timeout_s: int) -> None:
    """Server process entry point: serves until the coordinator stops it."""
    # Deferred: loads xgboost only when used.
    import xgboost.federated

    xgboost.federated.run_federated_server(
        world_size,
        port,
        server_key_path=paths["server_key"],
        server_cert_path=paths["server_cert"],
        client_cert_path=paths["ca_cert"],
        timeout=timeout_s,
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.2):
            return True
    except OSError:
        return False


def _stop(process: BaseProcess) -> None:
    """Stop one process we started (by its PID): SIGTERM, then SIGKILL. Idempotent."""
    try:
        if process.pid is None:  # never started
            return
        if process.is_alive():
            process.terminate()
            process.join(2.0)
        if process.is_alive():
            process.kill()
        process.join(2.0)
        process.close()
    except ValueError:  # already closed by an earlier stop
        return


@contextlib.contextmanager
def _processes() -> Iterator[list[BaseProcess]]:
    """Every process appended to the yielded list is stopped on exit, whatever happened."""
    started: list[BaseProcess] = []
    try:
        yield started
    finally:
        for process in reversed(started):
            _stop(process)


def _start_server(
    started: list[BaseProcess], world_size: int, creds: FederationCredentials, deadline: float
) -> int:
    paths = {
        "server_key": str(creds.server_key_path),
        "server_cert": str(creds.server_cert_path),
        "ca_cert": str(creds.ca_cert_path),
    }
    # The free port is chosen on 127.0.0.1 then handed to the server; if another process
    # takes it in between, the server dies and a fresh port is tried.
    for _ in range(3):
        port = _free_port()
        server = _SPAWN.Process(
            target=_serve,
            args=(port, world_size, paths, max(1, int(deadline - time.monotonic()))),
            name=f"xgb-federated-server:{port}",
            daemon=True,
        )
        server.start()
        started.append(server)
        while time.monotonic() < deadline and server.is_alive():
            if _accepts(port):
                return port
            time.sleep(0.05)
        _stop(server)
        if time.monotonic() >= deadline:
            break
    raise TrainingError("the federated server did not start listening")


@contextlib.contextmanager
def federated_server(
    world_size: int, creds: FederationCredentials, *, timeout_s: float = 60.0
) -> Iterator[int]:
    """XGBoost's federated server (mutual TLS with ``creds``) in a child process; yields
    its port on 127.0.0.1 and stops the process on exit."""
    with _processes() as started:
        yield _start_server(started, world_size, creds, time.monotonic() + timeout_s)


def _check_alive(
    workers: Mapping[str, BaseProcess], received: Mapping[str, Any], dead_since: dict[str, float]
) -> None:
    now = time.monotonic()
    for node_id, process in workers.items():
        if node_id in received or process.is_alive():
            continue
        # A message put just before exit may still be in the pipe: allow it a moment.
        if now - dead_since.setdefault(node_id, now) > 2.0:
            raise TrainingError(
                f"node process exited ({process.exitcode}) without a result", node_id=node_id
            )


def _collect(
    workers: Mapping[str, BaseProcess],
    messages: Any,
    deadline: float,
) -> dict[str, dict[str, Any]]:
    received: dict[str, dict[str, Any]] = {}
    dead_since: dict[str, float] = {}
    while len(received) < len(workers):
        if time.monotonic() > deadline:
            missing = sorted(set(workers) - set(received))
            raise TrainingError(f"federated training passed its deadline; waiting on {missing}")
        try:
            message = messages.get(timeout=0.25)
        except queue_module.Empty:
            _check_alive(workers, received, dead_since)
            continue
        node_id = str(message["node_id"])
        if message["status"] == "invalid":
            raise DataValidationError(message["message"], result=message["result"], node_id=node_id)
        if message["status"] != "ok":
            raise TrainingError(str(message["message"]), node_id=node_id)
        received[node_id] = message
    return received


def train_histogram_federated(
    nodes: Sequence[HistogramNode],
    params: Mapping[str, Any],
    num_boost_round: int,
    *,
    timeout_s: float = 300.0,
    validation_spec: Mapping[str, Any] | DatasetInfo | None = None,
) -> HistogramFederationResult:
    """Train one XGBoost model over all nodes' rows; returns it with each node's report.

    ``params`` are XGBoost training parameters (``tree_method`` must be ``hist``).
    With ``validation_spec`` (a profile's data part) every node validates its data first
    and a failure raises that node's :class:`DataValidationError`. Other failures and the
    ``timeout_s`` deadline raise :class:`TrainingError`.
    """
    ordered = sorted(nodes, key=lambda n: n.node_id)
    if not ordered or len({n.node_id for n in ordered}) != len(ordered):
        raise InvalidInputError("node ids must be non-empty and unique")
    if params.get("tree_method", "hist") != "hist":
        raise InvalidInputError(
            f"histogram federation needs tree_method='hist', got {params['tree_method']!r}"
        )
    spec = (
        validation_spec.profile_spec()
        if isinstance(validation_spec, DatasetInfo)
        else validation_spec
    )
    deadline = time.monotonic() + timeout_s
    with tempfile.TemporaryDirectory(prefix="fedspec-xgb-tls-") as tmp, _processes() as started:
        creds = issue_credentials(Path(tmp), [n.node_id for n in ordered])
        port = _start_server(started, len(ordered), creds, deadline)
        messages = _SPAWN.Queue()
        workers: dict[str, BaseProcess] = {}
        for rank, node in enumerate(ordered):
            job = {
                "node_id": node.node_id,
                "rank": rank,
                "world_size": len(ordered),
                "data_dir": str(node.data_dir),
                "server_address": f"{LOOPBACK}:{port}",
                "ca_cert_path": str(creds.ca_cert_path),
                "client_key_path": str(creds.clients[node.node_id].key_path),
                "client_cert_path": str(creds.clients[node.node_id].cert_path),
                "params": {**params, "tree_method": "hist"},
                "num_boost_round": int(num_boost_round),
                "validation_spec": None if spec is None else dict(spec),
                "timeout_s": max(1, int(timeout_s)),
            }
            worker = _SPAWN.Process(
                target=run_node, args=(job, messages), name=f"xgb-node:{node.node_id}", daemon=True
            )
            worker.start()
            started.append(worker)
            workers[node.node_id] = worker
        try:
            received = _collect(workers, messages, deadline)
        finally:
            messages.close()
            messages.cancel_join_thread()

    hashes = {m["model_sha256"] for m in received.values()}
    model = next((m["model"] for m in received.values() if m["model"] is not None), None)
    if len(hashes) != 1 or model is None:
        raise TrainingError(f"nodes ended with different models: {sorted(hashes)}")
    reports = tuple(
        NodeTrainingReport(
            node_id=n.node_id,
            rank=int(received[n.node_id]["rank"]),
            num_examples=int(received[n.node_id]["num_examples"]),
            train_seconds=float(received[n.node_id]["train_seconds"]),
            cpu_seconds=float(received[n.node_id]["cpu_seconds"]),
            model_sha256=str(received[n.node_id]["model_sha256"]),
            validation=(
                ValidationSummary.from_canonical_json(received[n.node_id]["validation"])
                if received[n.node_id]["validation"] is not None
                else None
            ),
        )
        for n in ordered
    )
    return HistogramFederationResult(model=model, model_sha256=hashes.pop(), nodes=reports)
