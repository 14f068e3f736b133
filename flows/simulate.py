"""``fedspec simulate``: rounds of a profile over thousands of virtual nodes, on Dask.

Why Dask and not Ray: dask.distributed is pure-Python wheels (no raylet, no object-store
daemon), a ``LocalCluster`` of a few worker processes fits a 2-core laptop, and a real
cluster is one address (``tcp://scheduler:8786``, started with ``dask scheduler`` and
``dask worker``). Why not ``prefect-dask``'s ``DaskTaskRunner``: it makes every engine task
a Prefect task run (API writes per state change) and needs every worker to reach the Prefect
API; here the Prefect flow is the run's record and Dask futures carry the work.

The work is batched: each round, the virtual nodes are cut into chunks and each chunk is one
engine task (:func:`flows.virtual_nodes.train_chunk`). Thousands of one-node tasks would
spend more on scheduling and shipping the global model than on training a node of a few
rows. The rows are scattered to the workers once; each round ships only the global model.

Results are gathered in population order and aggregated with the profile's strategy by
:func:`federated.simulation.aggregate_round`, then evaluated on held-out rows, exactly as
:func:`federated.simulation.run_simulation` does in-process. A simulation is not a round:
nothing is written to the ledger, the registry or MLflow.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from prefect import flow, get_run_logger

from federated.errors import FederatedError, QuorumNotMetError
from federated.plan import TrainingPlan
from federated.privacy import PrivacySpend
from federated.simulation import aggregate_round, evaluate_model
from federated.types import FitFailure, FitResult, GlobalModel
from flows.virtual_nodes import (
    EngineUnavailableError,
    NodeOutcome,
    Population,
    RoundTask,
    VirtualNode,
    build_population,
    train_chunk,
    warm_up,
)

ENGINES = ("local", "dask")
CONNECT_TIMEOUT_S = 10
CHUNKS_PER_WORKER = 4  # enough chunks that a slow worker is not the round's tail
LOCAL_CHUNKS = 10  # in-process: chunks only pace the progress lines
ENGINE_TASK_FAILED = "ENGINE_TASK_FAILED"  # a FitFailure code, as train_node's are error codes
NOT_RECORDED = "a simulation is not a round: nothing was written to the ledger"

Progress = Callable[[int, int, int, float], None]
"""``(round, nodes done, nodes, seconds)``, after every chunk."""

Chunk = tuple[VirtualNode, ...]


class Engine(Protocol):
    """Where chunks of virtual nodes train: in this process, or on a Dask cluster."""

    workers: int

    def place(self, chunks: Sequence[Chunk], plan: TrainingPlan) -> list[Any]:
        """Ship each chunk's rows once (the handles stand for them in every round), and
        import ``plan``'s learning stack wherever chunks will train."""

    def run(
        self,
        current: GlobalModel,
        handles: Sequence[Any],
        task: RoundTask,
        spent: Sequence[Mapping[str, Sequence[PrivacySpend]]],
    ) -> Iterator[tuple[int, list[NodeOutcome] | BaseException]]:
        """Train every chunk; yield ``(chunk index, outcomes or the chunk's error)`` as
        each finishes, in any order."""


class InProcessEngine:
    """Chunks one after the other, here: the baseline, and runs without Dask."""

    workers = 1

    def place(self, chunks: Sequence[Chunk], plan: TrainingPlan) -> list[Any]:
        warm_up(plan.family, plan.hyperparameters)
        return list(chunks)

    def run(
        self,
        current: GlobalModel,
        handles: Sequence[Any],
        task: RoundTask,
        spent: Sequence[Mapping[str, Sequence[PrivacySpend]]],
    ) -> Iterator[tuple[int, list[NodeOutcome] | BaseException]]:
        for index, chunk in enumerate(handles):
            yield index, train_chunk(current, chunk, task, spent[index])


class DaskEngine:
    """Chunks as futures on a Dask client (a ``LocalCluster`` or a remote scheduler)."""

    def __init__(self, client: Any, workers: int) -> None:
        self.client = client
        self.workers = workers

    def place(self, chunks: Sequence[Chunk], plan: TrainingPlan) -> list[Any]:
        self.client.run(warm_up, plan.family, dict(plan.hyperparameters))
        # Spread over the workers; a chunk's task then runs where its rows already are.
        return list(self.client.scatter(list(chunks), hash=False))

    def run(
        self,
        current: GlobalModel,
        handles: Sequence[Any],
        task: RoundTask,
        spent: Sequence[Mapping[str, Sequence[PrivacySpend]]],
    ) -> Iterator[tuple[int, list[NodeOutcome] | BaseException]]:
        from distributed import as_completed

        model = self.client.scatter(current, broadcast=True, hash=False)
        futures = {
            self.client.submit(train_chunk, model, handle, task, spent[i], pure=False): i
            for i, handle in enumerate(handles)
        }
        for future in as_completed(futures, loop=self.client.loop):  # type: ignore[no-untyped-call]
            index = futures[future]
            if future.status == "error":  # a bug or a lost worker: the chunk's nodes fail
                yield index, future.exception()
            else:
                yield index, future.result()
            future.release()


@contextmanager
def open_engine(engine: str, *, address: str | None = None, workers: int = 2) -> Iterator[Engine]:
    """The engine named ``engine``; ``dask`` starts a loopback ``LocalCluster`` of
    ``workers`` single-threaded processes (closed on exit) unless ``address`` names a
    running scheduler. Raises :class:`EngineUnavailableError` when Dask is not installed or
    the scheduler does not answer within ``CONNECT_TIMEOUT_S``."""
    if engine == "local":
        yield InProcessEngine()
        return
    if engine != "dask":
        raise EngineUnavailableError(f"unknown engine {engine!r}; choose one of {ENGINES}")
    client = connect(address, workers=workers)
    try:
        if address is not None:  # a scheduler with no worker would take the tasks and wait
            try:
                client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
            except TimeoutError:
                raise EngineUnavailableError(
                    f"the Dask scheduler at {address} has no worker after {CONNECT_TIMEOUT_S} s"
                ) from None
        count = len(client.scheduler_info(n_workers=-1).get("workers", {})) or workers
        yield DaskEngine(client, count)
    finally:
        cluster = client.cluster
        client.close()
        if address is None and cluster is not None:
            cluster.close()


def require_dask() -> None:
    """Raise :class:`EngineUnavailableError` unless dask.distributed can be imported."""
    try:
        import distributed  # noqa: F401
    except ImportError as exc:
        raise EngineUnavailableError(
            f"the dask engine needs dask.distributed, which cannot be imported ({exc})"
        ) from None


def connect(address: str | None, *, workers: int = 2) -> Any:
    """A ``distributed.Client``: to ``address``, or to a new loopback ``LocalCluster``."""
    require_dask()
    import logging

    from distributed import Client, LocalCluster

    # The scheduler and nannies log every start and stop at INFO; the progress lines and
    # the summary are what a user reads.
    logging.getLogger("distributed").setLevel(logging.WARNING)
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")  # the worker processes
    if address is None:
        cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        return Client(cluster, set_as_default=False)  # type: ignore[no-untyped-call]
    try:
        return Client(  # type: ignore[no-untyped-call]
            address, timeout=CONNECT_TIMEOUT_S, set_as_default=False
        )
    except (OSError, TimeoutError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EngineUnavailableError(f"no Dask scheduler answers at {address}: {reason}") from None


@dataclass
class SimulationReport:
    """Per-round figures, the last model, and each virtual node's privacy spends."""

    profile_id: str
    dataset: str
    nodes: int
    engine: str
    workers: int
    chunks: int
    rounds: list[dict[str, Any]] = field(default_factory=list)
    model: GlobalModel | None = None
    spent: dict[str, list[PrivacySpend]] = field(default_factory=dict)
    seconds: float = 0.0
    start_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        trained = sum(r["nodes_trained"] for r in self.rounds)
        training = sum(r["seconds"] for r in self.rounds)  # without start_seconds
        return {
            "profile": self.profile_id,
            "dataset": self.dataset,
            "nodes": self.nodes,
            "engine": self.engine,
            "workers": self.workers,
            "chunks": self.chunks,
            "rounds": self.rounds,
            "nodes_failed": sum(r["nodes_failed"] for r in self.rounds),
            "seconds": round(self.seconds, 3),
            "start_seconds": round(self.start_seconds, 3),
            "nodes_per_s": round(trained / training, 1) if training > 0 else 0.0,
            "recorded": False,
            "note": NOT_RECORDED,
        }


def run_virtual_rounds(
    population: Population,
    engine: Engine,
    *,
    rounds: int,
    seed: int = 0,
    chunk_size: int | None = None,
    engine_name: str = "local",
    on_progress: Progress | None = None,
) -> SimulationReport:
    """``rounds`` rounds of the population's profile on ``engine``: chunks trained,
    gathered in population order, aggregated by the profile's strategy, evaluated on the
    held-out rows. A round that misses its quorum is recorded and ends the run."""
    plan = population.plan
    strategy = plan.strategy()  # one for the run: stateful strategies (FedAdam) carry over
    nodes = population.nodes
    size = chunk_size or max(
        1,
        -(
            -len(nodes)
            // (LOCAL_CHUNKS if engine.workers == 1 else engine.workers * CHUNKS_PER_WORKER)
        ),
    )
    chunks = [nodes[i : i + size] for i in range(0, len(nodes), size)]
    report = SimulationReport(
        plan.profile_id, population.dataset, len(nodes), engine_name, engine.workers, len(chunks),
        model=plan.initial_model(), spent={n.node_id: [] for n in nodes},
    )  # fmt: skip
    started_run = time.perf_counter()
    handles = engine.place(chunks, plan)
    report.start_seconds = time.perf_counter() - started_run
    for server_round in range(1, rounds + 1):
        current = report.model
        assert current is not None
        task = RoundTask(
            plan, {**plan.hyperparameters, **strategy.node_config(server_round)}, server_round, seed
        )
        spent = [
            {n.node_id: report.spent[n.node_id] for n in chunk} if plan.privacy else {}
            for chunk in chunks
        ]
        started = time.perf_counter()
        gathered: list[list[NodeOutcome]] = [[] for _ in chunks]
        done = 0
        for index, finished in engine.run(current, handles, task, spent):
            gathered[index] = (
                _chunk_failed(chunks[index], finished)
                if isinstance(finished, BaseException)
                else finished
            )
            done += len(chunks[index])
            if on_progress is not None:
                on_progress(server_round, done, len(nodes), time.perf_counter() - started)
        train_seconds = time.perf_counter() - started
        results: list[FitResult] = []
        failures: list[FitFailure] = []
        for fit, spend in (o for chunk_outcomes in gathered for o in chunk_outcomes):
            if isinstance(fit, FitFailure):
                failures.append(fit)
                continue
            results.append(fit)
            if spend is not None:
                report.spent[fit.node_id].append(spend)
        record: dict[str, Any] = {
            "round": server_round,
            "nodes_trained": len(results),
            "nodes_failed": len(failures),
            "train_seconds": round(train_seconds, 3),
        }
        try:
            aggregation = aggregate_round(
                strategy, current, results, failures, server_round=server_round
            )
        except QuorumNotMetError as error:
            record.update(error=error.code, reason=error.message, seconds=round(train_seconds, 3))
            report.rounds.append(record)
            break
        if aggregation.model is not None:
            report.model = aggregation.model
            try:
                evaluated = evaluate_model(
                    aggregation.model, *population.evaluation, hyperparameters=plan.hyperparameters
                )
                record.update({k: round(float(v), 6) for k, v in evaluated.items()})
            except FederatedError as error:  # e.g. PredictionError: NaN probabilities
                record["error"] = error.code
        seconds = time.perf_counter() - started
        record.update(
            included=len(aggregation.included),
            aggregate_seconds=round(float(aggregation.metrics.get("aggregate_seconds", 0.0)), 3),
            seconds=round(seconds, 3),
            nodes_per_s=round(len(nodes) / seconds, 1) if seconds else 0.0,
        )
        report.rounds.append(record)
    report.seconds = time.perf_counter() - started_run
    return report


def _chunk_failed(chunk: Chunk, error: BaseException) -> list[NodeOutcome]:
    """A chunk whose engine task raised (a bug, a worker lost past Dask's retries): each of
    its nodes is a failure of the round, as a real node that never answered is."""
    reason = f"{type(error).__name__}: {error}".splitlines()[0]
    return [(FitFailure(n.node_id, ENGINE_TASK_FAILED, reason), None) for n in chunk]


def print_progress(server_round: int, done: int, total: int, seconds: float) -> None:
    """One stderr line per finished chunk: ``round 2: 250/1000 virtual nodes, 1.4 s``."""
    print(f"round {server_round}: {done}/{total} virtual nodes, {seconds:.1f} s", file=sys.stderr)


@flow(name="simulate", log_prints=False)
def simulate_profile(
    profile_id: str,
    spec: dict[str, Any],
    *,
    nodes: int,
    rounds: int,
    engine: str = "local",
    address: str | None = None,
    workers: int = 2,
    chunk_size: int | None = None,
    dataset: str | None = None,
    dirichlet: float | None = None,
    min_rows: int = 1,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Simulate ``rounds`` rounds of ``spec`` over ``nodes`` virtual nodes on ``engine``;
    returns the report's JSON (per-round metrics, failures, seconds, nodes/s). Writes
    nothing to the ledger."""
    logger = get_run_logger()
    population = build_population(
        profile_id, spec, nodes=nodes, dataset=dataset, dirichlet=dirichlet,
        min_rows=min_rows, seed=seed,
    )  # fmt: skip
    with open_engine(engine, address=address, workers=workers) as running:
        report = run_virtual_rounds(
            population, running, rounds=rounds, seed=seed, chunk_size=chunk_size,
            engine_name=engine, on_progress=print_progress if progress else None,
        )  # fmt: skip
    summary = report.to_json()
    logger.info(
        "simulated %s rounds of %s over %s virtual nodes on %s: %.1f nodes/s (%s)",
        len(report.rounds), profile_id, nodes, engine, summary["nodes_per_s"], NOT_RECORDED,
    )  # fmt: skip
    return summary
