"""Many node runs started at once in one process (a round's node agents on the local
dispatch): MLflow's SQL store opens a session inside a session in ``create_run``, so its
default connection pool (5 + 10 overflow) deadlocked fifteen or more concurrent creations
until each timed out after 30 s (a 25-node round failed so). registry.configure runs SQLite
stores without a pool."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import registry
from tests.registry.conftest import MLFLOW_WARNINGS

pytestmark = MLFLOW_WARNINGS

NODES = 32  # twice the default pool's 15 connections


def test_node_runs_started_at_once_by_more_threads_than_a_pool_holds(
    store: registry.TrackingConfig,
) -> None:
    rid = registry.start_round_run("track-many", 1)
    start = threading.Barrier(NODES)

    def node(i: int) -> str:
        start.wait(timeout=120)  # every thread creates its run at the same moment
        with registry.node_run(rid, f"org{i}-n1", params={"rows": i}) as nid:
            registry.log_metrics(nid, {"loss": 1.0 / (i + 1)}, step=1)
        return nid

    with ThreadPoolExecutor(max_workers=NODES) as pool:
        ids = list(pool.map(node, range(NODES)))
    registry.end_run(rid)
    assert registry.node_runs(rid) == {f"org{i}-n1": ids[i] for i in range(NODES)}


def test_calls_on_a_sqlite_store_take_turns_within_the_process(
    store: registry.TrackingConfig,
) -> None:
    """SQLite answers "database is locked" to one of two sessions that each read and then
    write (MLflow's create_run does), and its busy timeout ran out for 125 node agents of
    one process under load (benchmarks/scale.py, five profiles of 25): the calls of a
    process on a SQLite store take turns."""
    from registry import tracking

    done = threading.Event()

    def search() -> None:
        tracking.client().search_experiments()
        done.set()

    with tracking._sqlite_turn:  # another call of this process is in progress
        caller = threading.Thread(target=search, daemon=True)
        caller.start()
        assert not done.wait(0.5), "the call did not wait for its turn"
    assert done.wait(120)
    caller.join(timeout=10)


def test_a_server_store_is_left_to_the_server() -> None:
    from mlflow import MlflowClient

    from registry import tracking

    registry.configure("http://127.0.0.1:9")  # never contacted: only the client is built
    assert type(tracking.client()) is MlflowClient
