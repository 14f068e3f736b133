"""Where a federated round's wall time goes, on one realistic workload.

Workload: the demo's ``digits-28x28`` profile (MNIST, a small CNN, 2 local epochs), four
organizations with one node each, the ``federated-round`` Prefect flow on Prefect's local
API, the embedded ledger and MLflow on SQLite: exactly what ``make demo`` runs, one profile
at a time. Every step of every node agent and of the coordinator is a span on one timeline
(:mod:`flows.timing`); each instant of the round goes to the most important active category,
so the categories add up to the round's wall time:

- training (local fit), aggregation, evaluation (held-out and local evaluation, Shapley
  contributions): the work a round exists for;
- validation (Great Expectations on each node's data), MLflow, ledger, orchestration
  (Prefect, task start-up, imports, waiting on other nodes): the overhead.

Target: everything beyond training, aggregation and evaluation ≤ 10% of the round. Round 1
includes first imports (torch, Great Expectations, MLflow) and MLflow's first model version;
later rounds are the steady state a consortium sees.

Run: ``.venv/bin/python -m benchmarks.round_time [--rounds 3] [--epochs 2]``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from benchmarks.sandbox import bench_dir

WORK = ("training", "aggregation", "evaluation")
ORGS = ["org1", "org2", "org3", "org4"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--profile", default="digits-28x28")
    args = parser.parse_args()

    home = bench_dir("fedspec-bench-round-")
    from fedspec.app.settings import Settings
    from fedspec.demo.run import start_local_api
    from fedspec.demo.setup import PROFILES, setup_consortium
    from flows import timing
    from flows.rounds import federated_round, local_api_settings

    settings = Settings.load(home, env={})
    profile = next(p for p in PROFILES if p.id == args.profile)
    hyperparameters = {**profile.hyperparameters, "epochs": args.epochs}
    profile = replace(profile, hyperparameters=hyperparameters)
    setup_consortium(settings, ORGS, [profile], nodes_per_org=1)
    start_local_api()
    print(f"{profile.id}: {profile.family} {hyperparameters}, {len(ORGS)} nodes, home {home}")
    header = ["round", "wall s", *timing.CATEGORIES, timing.ORCHESTRATION, "overhead"]
    print("  ".join(f"{h:>12}" for h in header))
    for _ in range(args.rounds):
        with local_api_settings(), timing.recording() as spans:
            start = time.perf_counter()
            summary = federated_round(profile.id, "org1/admin", home=str(home))
            end = time.perf_counter()
        totals = timing.breakdown(spans, start, end)
        wall = end - start
        overhead = (wall - sum(totals[c] for c in WORK)) / wall
        cells = [f"{summary['round']}", f"{wall:.2f}"]
        cells += [f"{totals[c]:.2f} {totals[c] / wall:4.0%}" for c in header[2:-1]]
        cells.append(f"{overhead:.1%}")
        print("  ".join(f"{c:>12}" for c in cells), f"({summary['status']})")
    print("overhead = 1 − (training + aggregation + evaluation) / wall; target ≤ 10%")


if __name__ == "__main__":
    main()
