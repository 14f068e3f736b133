"""Specialization at equal round budgets: a generic 8×8 digits model against the two
children a split would give, each trained for the same number of rounds, over several seeds.

``benchmarks.specialization`` runs the real flows once (generic rounds until the split is
proposed, then a few child rounds); its margin is measured at one budget, where the generic
model may still be converging. This benchmark isolates the question "does a specialized
model beat the generic one at the same training budget?" with the same node code in-process
(``federated.simulation``):

- data (:mod:`fedspec.demo.mixed_digits`): scikit-learn digits and MNIST resampled to 8×8,
  20 % of each held out; each source's training rows split IID over two nodes;
- model: the demo's torch MLP (hidden 32, 2 local epochs, learning rate 0.01, batch 32),
  FedAvg, no differential privacy, features scaled 0–16 → 0–1 as the profile declares;
- generic: all four nodes, ``R`` rounds; child ``digits-8x8`` / ``mnist-8x8``: its source's
  two nodes, ``R`` rounds, from the same seeded initial weights;
- each is evaluated on each child's held-out set; ``R`` ∈ {5, 10, 20, 30}; mean ± std over
  the seeds (seeds change the split, initial weights and batches).

Run: ``.venv/bin/python -m benchmarks.specialization_budget [--budgets 5,10,20,30]
[--seeds 0,1,2] [--mnist-rows 1500]``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from federated.datasets import Dataset, holdout_split, partition_iid
from federated.simulation import run_simulation
from federated.strategies import create_strategy
from federated.types import NDArray
from fedspec.demo.mixed_digits import sources

HIDDEN = {"hidden_sizes": [32], "epochs": 2, "learning_rate": 0.01, "batch_size": 32}


def _scaled(data: Dataset, rows: Any) -> tuple[NDArray, NDArray]:
    return (data.X[rows] / 16.0).astype(np.float32), data.y[rows]


def accuracies(
    nodes: dict[str, tuple[NDArray, NDArray]],
    tests: dict[str, tuple[NDArray, NDArray]],
    *,
    rounds: int,
    seed: int,
) -> dict[str, float]:
    """Held-out accuracy on each of ``tests`` after ``rounds`` FedAvg rounds over ``nodes``."""
    # Deferred: the model layer is only needed here.
    from federated.models import create_model

    hyperparameters = {**HIDDEN, "classes": list(range(10)), "n_features": 64}
    history = run_simulation(
        nodes,
        family="torch-mlp",
        hyperparameters=hyperparameters,
        strategy=create_strategy("fedavg"),
        rounds=rounds,
        seed=seed,
    )
    assert history.model is not None
    model = create_model("torch-mlp", **hyperparameters)
    model.set_parameters(list(history.model.parameters))  # type: ignore[arg-type]
    return {name: float(model.score(X, y)) for name, (X, y) in tests.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="5,10,20,30", help="rounds, comma-separated")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--mnist-rows", type=int, default=1500)
    args = parser.parse_args(argv)
    budgets = [int(b) for b in args.budgets.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    data = sources(args.mnist_rows)
    # (budget, model, test set) → accuracy per seed
    results: dict[tuple[int, str, str], list[float]] = {}
    started = time.perf_counter()
    for seed in seeds:
        tests: dict[str, tuple[NDArray, NDArray]] = {}
        children: dict[str, dict[str, tuple[NDArray, NDArray]]] = {}
        for name, dataset in data.items():
            train_rows, test_rows = holdout_split(dataset, test_fraction=0.2, seed=seed)
            tests[name] = _scaled(dataset, test_rows)
            parts = partition_iid(len(train_rows), [f"{name}/a", f"{name}/b"], seed=seed)
            children[name] = {
                node: _scaled(dataset, np.asarray(train_rows)[rows]) for node, rows in parts.items()
            }
        generic_nodes = {node: xy for nodes in children.values() for node, xy in nodes.items()}
        for budget in budgets:
            for name, score in accuracies(generic_nodes, tests, rounds=budget, seed=seed).items():
                results.setdefault((budget, "generic", name), []).append(score)
            for name, nodes in children.items():
                own = {name: tests[name]}
                score = accuracies(nodes, own, rounds=budget, seed=seed)[name]
                results.setdefault((budget, "child", name), []).append(score)
            print(f"seed {seed}, {budget} rounds done", flush=True)
    print(
        f"\nheld-out accuracy, mean ± std over seeds {seeds} "
        f"({time.perf_counter() - started:.0f} s in all)"
    )
    print(f"{'rounds':>6}  {'test set':<11}{'child':>15}{'generic':>15}{'margin':>15}")
    for budget in budgets:
        for name in data:
            child = np.array(results[(budget, "child", name)])
            generic = np.array(results[(budget, "generic", name)])
            margin = child - generic
            print(
                f"{budget:>6}  {name:<11}"
                f"{child.mean():>9.3f} ± {child.std():.3f}"
                f"{generic.mean():>9.3f} ± {generic.std():.3f}"
                f"{margin.mean():>+9.3f} ± {margin.std():.3f}"
            )


if __name__ == "__main__":
    main()
