"""Virtual nodes of a profile on an engine: the model equals the sequential simulation's.

The digits-8x8 example profile (torch MLP, one epoch to stay quick) over ~100 virtual nodes
of scikit-learn's digits: in this process, and on a real Dask ``LocalCluster`` (worker
processes on 127.0.0.1, gone after the run). The aggregate must be the one
``federated.simulation.run_simulation`` gives for the same seed: the same node code, the
same seeds, the same order of aggregation, only the engine differs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from fedspec.app.profiles import load_profile_file
from fedspec.errors import ErrorCode

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "profiles" / "digits-8x8.yaml"
NODES = 100
ROUNDS = 2
CHANCE = 0.1  # ten balanced classes


def digits_spec(**hyperparameters: Any) -> dict[str, Any]:
    spec = load_profile_file(EXAMPLE)
    spec["model"]["hyperparameters"].update({"epochs": 1, **hyperparameters})
    return spec


def sequential(population: Any, rounds: int, seed: int) -> Any:
    from federated.simulation import run_simulation

    plan = population.plan
    return run_simulation(
        population.partitions(),
        family=plan.family,
        hyperparameters=plan.hyperparameters,
        strategy=plan.strategy(),
        rounds=rounds,
        initial=plan.initial_model(),
        evaluation=population.evaluation,
        privacy=plan.privacy,
        seed=seed,
    )


def same_model(a: Any, b: Any) -> bool:
    return len(a.parameters) == len(b.parameters) and all(
        np.allclose(x, y, rtol=0, atol=1e-12)
        for x, y in zip(a.parameters, b.parameters, strict=True)
    )


@pytest.fixture(scope="module")
def population() -> Any:
    from flows.virtual_nodes import build_population

    return build_population("digits-8x8", digits_spec(), nodes=NODES, seed=3)


@pytest.fixture(scope="module")
def baseline(population: Any) -> Any:
    return sequential(population, ROUNDS, seed=3)


def test_every_row_of_the_pool_goes_to_exactly_one_virtual_node(population: Any) -> None:
    sizes = [len(n.y) for n in population.nodes]
    assert len(sizes) == NODES and min(sizes) >= 1 and max(sizes) - min(sizes) <= 1
    assert len({n.node_id for n in population.nodes}) == NODES
    # 1,797 digits, 20 % held out for the coordinator's evaluation.
    assert sum(sizes) + len(population.evaluation[1]) == 1797


def test_in_process_rounds_give_the_sequential_simulations_model(
    population: Any, baseline: Any
) -> None:
    from flows.simulate import open_engine, run_virtual_rounds

    seen: list[tuple[int, int, int]] = []
    with open_engine("local") as engine:
        report = run_virtual_rounds(
            population, engine, rounds=ROUNDS, seed=3, chunk_size=7,
            on_progress=lambda r, done, total, _s: seen.append((r, done, total)),
        )  # fmt: skip
    assert same_model(report.model, baseline.model)
    summary = report.to_json()
    assert [r["accuracy"] for r in summary["rounds"]] == pytest.approx(
        baseline.accuracies(), abs=1e-6
    )
    assert summary["nodes_failed"] == 0 and summary["recorded"] is False
    # Progress after every chunk of 7, ending at every node, in each round.
    assert seen[-1] == (ROUNDS, NODES, NODES) and len(seen) == ROUNDS * -(-NODES // 7)


@pytest.mark.integration
def test_rounds_on_a_dask_local_cluster_give_the_sequential_model_and_leave_no_worker(
    population: Any, baseline: Any
) -> None:
    from flows.simulate import open_engine, run_virtual_rounds

    with open_engine("dask", workers=2) as engine:
        pids = list(engine.client.run(os.getpid).values())  # type: ignore[attr-defined]
        assert len(pids) == 2 and os.getpid() not in pids
        report = run_virtual_rounds(population, engine, rounds=ROUNDS, seed=3, engine_name="dask")
    summary = report.to_json()
    assert summary["workers"] == 2 and summary["chunks"] == 8  # 4 per worker
    assert summary["nodes_failed"] == 0
    assert all(r["nodes_trained"] == NODES for r in summary["rounds"])
    assert same_model(report.model, baseline.model)
    assert summary["rounds"][-1]["accuracy"] > 3 * CHANCE
    # The LocalCluster's worker processes end with the engine (bounded wait, not a sleep).
    _, alive = psutil.wait_procs([_process(pid) for pid in pids if psutil.pid_exists(pid)], 30)
    assert not alive


def _process(pid: int) -> psutil.Process:
    return psutil.Process(pid)


def test_more_virtual_nodes_than_training_rows_is_refused_in_one_line() -> None:
    from flows.virtual_nodes import SimulationError, build_population

    with pytest.raises(SimulationError) as refused:
        build_population("digits-8x8", digits_spec(), nodes=1439)
    assert refused.value.code == ErrorCode.SIMULATION_INVALID
    assert "1438" in refused.value.message  # the pool's rows, the most nodes it allows
    with pytest.raises(SimulationError):
        build_population("digits-8x8", digits_spec(), nodes=100, min_rows=15)
    with pytest.raises(SimulationError):
        build_population("digits-8x8", digits_spec(), nodes=0)


def test_a_dirichlet_split_that_leaves_a_node_too_few_rows_is_refused() -> None:
    from flows.virtual_nodes import SimulationError, build_population

    skewed = build_population("digits-8x8", digits_spec(), nodes=20, dirichlet=0.5, seed=1)
    assert min(len(n.y) for n in skewed.nodes) >= 1
    # Non-IID: some node lacks some class.
    assert min(len(np.unique(n.y)) for n in skewed.nodes) < 10
    with pytest.raises(SimulationError):
        build_population("digits-8x8", digits_spec(), nodes=500, dirichlet=0.01, min_rows=2)


def test_a_dataset_whose_rows_do_not_fit_the_profile_is_refused() -> None:
    from flows.virtual_nodes import SimulationError, build_population

    with pytest.raises(SimulationError, match="features"):
        build_population("digits-8x8", digits_spec(), nodes=3, dataset="flights")
    with pytest.raises(SimulationError, match="built-in dataset"):
        build_population("digits-8x8", digits_spec(), nodes=3, dataset="no-such-data")


def test_a_scheduler_that_does_not_answer_is_an_engine_error() -> None:
    import socket

    from flows.simulate import connect
    from flows.virtual_nodes import EngineUnavailableError

    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(EngineUnavailableError) as refused:
        connect(f"tcp://127.0.0.1:{port}")
    assert refused.value.code == ErrorCode.SIMULATION_ENGINE_UNAVAILABLE


@pytest.mark.integration
def test_rounds_on_a_separate_dask_scheduler_and_worker_by_address(tmp_path: Path) -> None:
    """The cluster case: `dask scheduler` and `dask worker` as their own processes (as on
    other hosts, here on 127.0.0.1), the simulation reaching them by address only."""
    from flows.simulate import open_engine, run_virtual_rounds
    from flows.virtual_nodes import build_population
    from tests.processes import Processes, bin_path, free_port, venv_env, wait_until

    small = build_population("digits-8x8", digits_spec(), nodes=20, seed=5)
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = venv_env(DASK_LOGGING__DISTRIBUTED="warning")
    with Processes(tmp_path / "logs") as procs:
        procs.start(
            [bin_path("dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
             "--no-dashboard"], env, "scheduler.log",
        )  # fmt: skip
        procs.start(
            [bin_path("dask"), "worker", address, "--nworkers", "1", "--nthreads", "1",
             "--no-dashboard", "--host", "127.0.0.1"], env, "worker.log",
        )  # fmt: skip
        wait_until(lambda: _answers(port), timeout=120, what="the Dask scheduler")
        with open_engine("dask", address=address) as engine:
            assert engine.workers == 1
            report = run_virtual_rounds(small, engine, rounds=1, seed=5, engine_name="dask")
    assert report.to_json()["nodes_failed"] == 0
    assert same_model(report.model, sequential(small, 1, seed=5).model)


def _answers(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_client_dp_spends_are_kept_per_virtual_node_and_the_budget_ends_the_run() -> None:
    """The profile's privacy travels with the node code: each virtual node is noised and
    spends its ε per round, and a node past its budget is refused as a real one is."""
    from flows.simulate import open_engine, run_virtual_rounds
    from flows.virtual_nodes import build_population

    spec = digits_spec()
    spec["privacy"] = {
        "mode": "client-dp", "epsilon_per_round": "0.5", "delta_per_round": "1e-6",
        "epsilon_budget": "1", "delta_budget": "1e-5", "clip_norm": "1",
    }  # fmt: skip
    private = build_population("digits-8x8", spec, nodes=12, seed=2)
    with open_engine("local") as engine:
        report = run_virtual_rounds(private, engine, rounds=3, seed=2, chunk_size=5)
    baseline = sequential(private, 3, seed=2)
    rounds = report.to_json()["rounds"]
    # Two rounds of ε 0.5 fit a budget of 1; in the third every node is refused.
    assert [r["nodes_trained"] for r in rounds[:2]] == [12, 12]
    assert rounds[2]["nodes_trained"] == 0 and rounds[2]["error"] == ErrorCode.QUORUM_NOT_MET
    assert {node: len(s) for node, s in report.spent.items()} == {
        n.node_id: 2 for n in private.nodes
    }
    assert report.spent == baseline.spent
    assert same_model(report.model, baseline.model)
