"""Strategies for non-IID nodes: FedAvg, FedProx and SCAFFOLD against centralized training.

Digits 8×8 split over 10 nodes by Dirichlet(0.1) label skew (most nodes hold two or three
classes), torch MLP (64 hidden), 2 local epochs per round, 20 rounds, held-out accuracy
after the last round (and the best round), mean ± sample std over 3 seeds (the seed draws the split, the initial
weights and the batches). SCAFFOLD's correction is defined for SGD steps, so every method
runs with SGD; FedAvg and FedProx also run with Adam (the adapters' default) so that
SCAFFOLD is compared with the best of both. Centralized is the same model on the union of
the nodes' rows for as many epochs as a node trains in all rounds.

Run: ``.venv/bin/python -m benchmarks.non_iid [--rounds 20] [--seeds 0 1 2]``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from federated.datasets import holdout_split, load_digits_8x8, partition_dirichlet
from federated.models import create_model
from federated.simulation import run_simulation
from federated.strategies import create_strategy

NODES = 10
ALPHA = 0.1
LOCAL_EPOCHS = 2
OPTIMIZERS: dict[str, dict[str, Any]] = {
    "sgd": {"optimizer": "sgd", "learning_rate": 0.05},
    "adam": {"optimizer": "adam", "learning_rate": 0.005},
}
BASE: dict[str, Any] = {
    "classes": list(range(10)),
    "n_features": 64,
    "hidden_sizes": (64,),
    "epochs": LOCAL_EPOCHS,
    "batch_size": 32,
    "num_threads": 1,
}
# (label, strategy, its parameters, optimizer)
METHODS: list[tuple[str, str, dict[str, Any], str]] = [
    ("fedavg", "fedavg", {}, "sgd"),
    ("fedprox μ=0.01", "fedprox", {"proximal_mu": 0.01}, "sgd"),
    ("fedprox μ=1", "fedprox", {"proximal_mu": 1.0}, "sgd"),
    ("scaffold", "scaffold", {}, "sgd"),
    ("fedavg", "fedavg", {}, "adam"),
    ("fedprox μ=0.01", "fedprox", {"proximal_mu": 0.01}, "adam"),
    ("fedprox μ=1", "fedprox", {"proximal_mu": 1.0}, "adam"),
]


def run(rounds: int, seeds: list[int]) -> None:
    dataset = load_digits_8x8()
    pool, test = holdout_split(dataset, test_fraction=0.25, seed=0)
    X, y = dataset.X / 16.0, dataset.y
    X_pool, y_pool, X_test, y_test = X[pool], y[pool], X[test], y[test]
    splits = {
        seed: partition_dirichlet(
            y_pool, [f"node{i}" for i in range(NODES)], alpha=ALPHA, seed=seed, min_rows=10
        )
        for seed in seeds
    }
    print(
        f"digits 8×8: {len(pool)} training rows on {NODES} nodes by Dirichlet({ALPHA}), "
        f"{len(test)} held out; torch MLP, {LOCAL_EPOCHS} local epochs, {rounds} rounds, "
        f"seeds {seeds}"
    )
    for seed, parts in splits.items():
        classes = [int(np.sum(np.bincount(y_pool[r], minlength=10) >= 5)) for r in parts.values()]
        sizes = [len(r) for r in parts.values()]
        print(f"  seed {seed}: rows per node {sizes}, classes (≥5 rows) per node {classes}")
    print(f"  {'method':<18}{'optimizer':<11}{'accuracy':>16}{'best round':>16}{'s/run':>8}")
    create_model("torch-mlp", **BASE).fit(X_pool[:50], y_pool[:50])  # torch warm-up
    for optimizer, extra in OPTIMIZERS.items():
        finals, seconds = [], []
        for seed in seeds:
            params = {**BASE, **extra, "epochs": LOCAL_EPOCHS * rounds, "random_state": seed}
            started = time.perf_counter()
            model = create_model("torch-mlp", **params).fit(X_pool, y_pool)
            seconds.append(time.perf_counter() - started)
            finals.append(model.score(X_test, y_test))
        _row("centralized", optimizer, finals, finals, seconds)
    for label, name, kwargs, optimizer in METHODS:
        params = {**BASE, **OPTIMIZERS[optimizer]}
        finals, bests, seconds = [], [], []
        for seed, parts in splits.items():
            nodes = {n: (X_pool[rows], y_pool[rows]) for n, rows in parts.items()}
            started = time.perf_counter()
            history = run_simulation(
                nodes, family="torch-mlp", hyperparameters=params,
                strategy=create_strategy(name, **kwargs), rounds=rounds,
                evaluation=(X_test, y_test), seed=seed,
            )  # fmt: skip
            seconds.append(time.perf_counter() - started)
            accuracies = history.accuracies()
            finals.append(accuracies[-1])
            bests.append(max(accuracies))
        _row(label, optimizer, finals, bests, seconds)


def _row(
    label: str, optimizer: str, finals: list[float], bests: list[float], seconds: list[float]
) -> None:
    final, best = _mean_std(finals), _mean_std(bests)
    print(f"  {label:<18}{optimizer:<11}{final:>16}{best:>16}{np.mean(seconds):8.2f}")


def _mean_std(values: list[float]) -> str:
    """Mean ± sample standard deviation (ddof 1; 0 for a single seed)."""
    spread = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return f"{np.mean(values):.3f} ± {spread:.3f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    run(args.rounds, args.seeds)


if __name__ == "__main__":
    main()
