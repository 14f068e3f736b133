"""A submit load on a ledger: client processes × threads × transactions in flight per thread.

Every transaction is a signed ``ProposeProfile``, endorsed, submitted, and waited for until
its commit status says it is valid (on the client's own peer, then on every other peer, as
``ledger_client.fabric`` waits): a transaction counts once it is committed, never when it is
only sent. With one transaction in flight per thread, throughput is at most
threads / commit latency, however idle the network; a thread that keeps ``window``
transactions in flight (``submit_async`` several, then wait on the oldest's status) and
client processes (Python's client holds one interpreter lock per process) lift that bound
without weakening anything a transaction goes through. On the 2-core development VM the
network's CPU per transaction binds first (docs/fabric.md, "Measured").
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from benchmarks.cpu_meter import CpuMeter, CpuUsage

ORGS = ["org1", "org2", "org3"]  # the network: three organizations


def profile_doc(pid: str) -> str:
    return json.dumps(
        {
            "id": pid,
            "name": pid,
            "characteristics": {"modality": "image"},
            "task": {"type": "classification"},
            "objective": {"metric": "accuracy", "direction": "maximize"},
            "model": {"family": "torch-mlp"},
            "aggregation": {"strategy": "fedavg"},
            "privacy": {"mode": "none"},
            "min_nodes": 2,
        }
    )


@dataclass(frozen=True)
class Clients:
    """How the load is offered: ``processes`` client processes of ``threads`` threads, each
    thread keeping up to ``window`` transactions in flight (submitted, not yet seen committed).

    Spelled ``[P*]T[xW]``: ``32`` is 32 threads in this process, each submitting and waiting
    for its commit before the next (the closed loop of earlier runs); ``2*16x4`` is 2 processes
    of 16 threads with 4 in flight each: 128 in flight at most.
    """

    processes: int
    threads: int
    window: int

    @classmethod
    def parse(cls, text: str) -> Clients:
        procs, _, rest = text.rpartition("*")
        threads, _, window = rest.partition("x")
        clients = cls(int(procs or 1), int(threads), int(window or 1))
        if min(clients.processes, clients.threads, clients.window) < 1:
            raise ValueError(f"clients {text!r}: every count must be at least 1")
        return clients

    @property
    def in_flight(self) -> int:
        return self.processes * self.threads * self.window

    def __str__(self) -> str:
        return (f"{self.processes}*" if self.processes > 1 else "") + (
            f"{self.threads}x{self.window}" if self.window > 1 else str(self.threads)
        )


@dataclass
class Done:
    """What client threads measured, per committed transaction (seconds, block number)."""

    start: float = float("inf")  # time.perf_counter: CLOCK_MONOTONIC, shared by processes
    end: float = 0.0
    latency: list[float] = field(default_factory=list)  # endorse → committed on every peer
    endorse: list[float] = field(default_factory=list)
    submit: list[float] = field(default_factory=list)
    commit: list[float] = field(default_factory=list)  # submitted → committed, queueing included
    blocks: list[int] = field(default_factory=list)

    def merge(self, other: Done) -> None:
        self.start = min(self.start, other.start)
        self.end = max(self.end, other.end)
        for name in ("latency", "endorse", "submit", "commit", "blocks"):
            getattr(self, name).extend(getattr(other, name))


class _Thread:
    """One client thread: keeps up to ``window`` transactions in flight, taking the next
    index from ``todo`` while there is one, and waits for the oldest's commit otherwise."""

    def __init__(self, contract: Any, prefix: str, window: int, todo: Iterator[int]) -> None:
        self.contract, self.prefix, self.window, self.todo = contract, prefix, window, todo
        self.done = Done()
        self._pending: deque[tuple[float, float, float, Any]] = deque()

    def run(self, take: threading.Lock) -> None:
        exhausted = False
        while True:
            if len(self._pending) < self.window and not exhausted:
                with take:
                    i = next(self.todo, None)
                if i is not None:
                    self._submit(i)
                    continue
                exhausted = True
            if not self._pending:
                return
            self._wait_oldest()

    def _submit(self, i: int) -> None:
        t0 = time.perf_counter()
        doc = profile_doc(f"{self.prefix}-{i}")
        endorsed = self.contract.new_proposal("ProposeProfile", [doc]).endorse()
        t1 = time.perf_counter()
        submitted = endorsed.submit()
        self._pending.append((t0, t1, time.perf_counter(), submitted))
        self.done.start = min(self.done.start, t0)

    def _wait_oldest(self) -> None:
        t0, t1, t2, submitted = self._pending.popleft()
        status = submitted.get_status()
        status.raise_for_failure()
        t3 = time.perf_counter()
        d = self.done
        d.end = t3
        d.latency.append(t3 - t0)
        d.endorse.append(t1 - t0)
        d.submit.append(t2 - t1)
        d.commit.append(t3 - t2)
        d.blocks.append(status.block_number)


def run_clients(
    home: str,
    backend: str,
    prefix: str,
    indices: list[int],
    threads: int,
    window: int,
    ready: Callable[[], None] = lambda: None,
) -> Done:
    """Submit ``ProposeProfile`` ``prefix-i`` for each of ``indices`` from ``threads`` threads
    (the admins of every organization in turn), each keeping ``window`` in flight; ``ready``
    is called once connected, before the first transaction."""
    from fedspec.app.settings import Settings
    from ledger_client import close_services, open_ledger

    settings = Settings.load(home, env={"FEDSPEC_LEDGER": backend})
    contracts = [open_ledger(settings.ledger, f"{org}/admin").contract for org in ORGS]
    todo = iter(indices)
    take = threading.Lock()
    workers = [_Thread(contracts[k % len(contracts)], prefix, window, todo) for k in range(threads)]
    failures: list[BaseException] = []

    def guarded(worker: _Thread) -> None:
        try:
            worker.run(take)
        except BaseException as exc:  # re-raised below: a failed load has no rate
            failures.append(exc)

    ready()
    pool = [threading.Thread(target=guarded, args=(w,)) for w in workers]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    close_services()
    if failures:
        raise failures[0]
    done = Done()
    for w in workers:
        done.merge(w.done)
    return done


def _client_process(
    conn: Connection,
    home: str,
    backend: str,
    prefix: str,
    indices: list[int],
    threads: int,
    window: int,
    go: Any,
) -> None:
    """One client process: connected before the start signal, so start-up is not measured."""

    def ready() -> None:
        conn.send(os.getpid())
        go.wait()

    try:
        conn.send(run_clients(home, backend, prefix, indices, threads, window, ready))
    except Exception as exc:
        conn.send(RuntimeError(f"client process {os.getpid()}: {exc!r}"))
    conn.close()


@dataclass(frozen=True)
class LoadResult:
    clients: Clients
    count: int
    done: Done
    cpu: CpuUsage | None

    @property
    def elapsed(self) -> float:
        return self.done.end - self.done.start

    @property
    def rate(self) -> float:
        return self.count / self.elapsed

    def quantile(self, name: str, q: int) -> float:
        values: list[float] = getattr(self.done, name)
        return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]

    def block_sizes(self) -> tuple[int, float, int]:
        """Blocks the load's transactions went into: how many, mean and most per block."""
        per = Counter(self.done.blocks)
        return len(per), self.count / max(len(per), 1), max(per.values(), default=0)


def load(
    home: str,
    backend: str,
    prefix: str,
    count: int,
    clients: Clients,
    groups: Mapping[str, Callable[[], list[int]]] | None = None,
) -> LoadResult:
    """``count`` transactions offered by ``clients``; with ``groups``, the CPU seconds of
    each group of processes (and of the clients, ``client``) over the load."""
    indices = list(range(count))
    meter = CpuMeter(groups) if groups is not None else None
    if clients.processes == 1:

        def ready() -> None:
            if meter is not None:
                meter.__enter__()

        done = run_clients(home, backend, prefix, indices, clients.threads, clients.window, ready)
        if meter is not None:
            meter.__exit__(None, None, None)
        return LoadResult(clients, count, done, meter.usage if meter else None)

    # Spawned, not forked: a fork would inherit this process's gRPC state.
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    links = []
    for p in range(clients.processes):
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=_client_process,
            args=(
                child,
                home,
                backend,
                prefix,
                indices[p :: clients.processes],
                clients.threads,
                clients.window,
                go,
            ),
        )
        proc.start()
        links.append((proc, parent))
    try:
        pids = [_received(parent) for _, parent in links]
        if meter is not None:
            meter = CpuMeter({**(groups or {}), "client": lambda: [os.getpid(), *pids]})
            meter.__enter__()
        go.set()
        done = Done()
        for _, parent in links:
            done.merge(_received(parent))
        if meter is not None:
            meter.__exit__(None, None, None)
    finally:
        for proc, _ in links:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    return LoadResult(clients, count, done, meter.usage if meter else None)


def _received(conn: Connection) -> Any:
    got = conn.recv()
    if isinstance(got, BaseException):
        raise got
    return got
