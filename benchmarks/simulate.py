"""Virtual nodes at scale: ``fedspec simulate``'s Dask engine against the in-process loop.

1,000 virtual nodes of scikit-learn's digits (IID, 20 % held out) under the digits-8x8
example profile (torch MLP, 64 hidden units, 5 local epochs unless ``--epochs``), 5 rounds
of FedAvg unless ``--rounds``. Measured in the same run, on the same population and seeds:

- baseline: ``federated.simulation.run_simulation``, every node one after the other here;
- dask: ``flows.simulate.run_virtual_rounds`` on a loopback ``LocalCluster`` of
  ``--workers`` single-threaded processes, the nodes batched into 4 chunks per worker.

Both are warmed first (the learning stack imported in every process), so the figures are
rounds, not imports; the cluster's start and the one-off scatter of the rows
are printed apart. Printed: seconds per round, virtual nodes trained per second, the ratio
of the engine's throughput to the baseline's, and whether the two final models are equal
(they must be: same node code, same seeds, same aggregation order).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "profiles" / "digits-8x8.yaml"


def main(argv: list[str] | None = None) -> None:
    from federated.simulation import run_simulation
    from fedspec.app.profiles import load_profile_file
    from flows.simulate import DaskEngine, open_engine, run_virtual_rounds
    from flows.virtual_nodes import build_population, warm_up

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=None, help="default: the profile's (5)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    spec = load_profile_file(EXAMPLE)
    if args.epochs is not None:
        spec["model"]["hyperparameters"]["epochs"] = args.epochs
    population = build_population("digits-8x8", spec, nodes=args.nodes, seed=args.seed)
    plan = population.plan
    rows = [len(n.y) for n in population.nodes]
    print(
        f"{args.nodes} virtual nodes of digits-8x8 ({min(rows)}-{max(rows)} rows each), "
        f"{plan.family} {dict(plan.hyperparameters)}, {args.rounds} rounds of "
        f"{plan.strategy_name}"
    )

    warm_up(plan.family, plan.hyperparameters)  # imports, as the engine's place() does
    started = time.perf_counter()
    history = run_simulation(
        population.partitions(), family=plan.family, hyperparameters=plan.hyperparameters,
        strategy=plan.strategy(), rounds=args.rounds, initial=plan.initial_model(),
        evaluation=population.evaluation, privacy=plan.privacy, seed=args.seed,
    )  # fmt: skip
    base_s = time.perf_counter() - started

    started = time.perf_counter()
    with open_engine("dask", workers=args.workers) as engine:
        assert isinstance(engine, DaskEngine)
        cluster_s = time.perf_counter() - started
        report = run_virtual_rounds(
            population, engine, rounds=args.rounds, seed=args.seed, engine_name="dask"
        )
    summary = report.to_json()
    startup_s = cluster_s + report.start_seconds
    dask_s = sum(r["seconds"] for r in summary["rounds"])
    trained = args.nodes * args.rounds
    base_rate, dask_rate = trained / base_s, trained / dask_s
    equal = (
        report.model is not None
        and history.model is not None
        and all(
            np.allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-12)
            for a, b in zip(report.model.parameters, history.model.parameters, strict=True)
        )
    )
    print(f"{'engine':<34} {'s/round':>8} {'nodes/s':>9} {'accuracy':>9}")
    print(
        f"{'in-process run_simulation':<34} {base_s / args.rounds:>8.2f} {base_rate:>9.1f} "
        f"{history.accuracies()[-1]:>9.3f}"
    )
    print(
        f"{f'dask LocalCluster, {args.workers} workers':<34} {dask_s / args.rounds:>8.2f} "
        f"{dask_rate:>9.1f} {summary['rounds'][-1]['accuracy']:>9.3f}"
    )
    print(
        f"dask / in-process throughput: {dask_rate / base_rate:.2f}x "
        f"({summary['chunks']} chunks per round; cluster start, warm-up and scatter "
        f"{startup_s:.1f} s, once); same final model: {equal}"
    )
    aggregate_s = [r["aggregate_seconds"] for r in summary["rounds"]]
    print(f"aggregation of {args.nodes} updates: {max(aggregate_s):.3f} s per round at most")


if __name__ == "__main__":
    main()
