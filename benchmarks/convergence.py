"""Rounds and time to a target accuracy, federated against centralized training.

Digits 8×8 (5 IID nodes) with ``sklearn-linear`` and ``torch-mlp`` under every averaging
strategy; NYC flights 2013 (one node per origin airport, the natural non-IID split) with
XGBoost tree bagging from :mod:`federated.trees`. Centralized training is the same model
on the union of the nodes' rows, trained one epoch (or boosting round) at a time until it
reaches the same target.

Run: ``.venv/bin/python -m benchmarks.convergence [--skip-flights]``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from federated.datasets import (
    holdout_split,
    load_digits_8x8,
    load_flights,
    partition_iid,
    partition_natural,
)
from federated.models import create_model
from federated.simulation import run_simulation
from federated.strategies import create_strategy
from federated.types import FitResult, GlobalModel

CLASSES = list(range(10))
FAMILIES: dict[str, tuple[dict[str, Any], float]] = {
    # family: (hyper-parameters with 1 local epoch per round, target accuracy)
    "sklearn-linear": (
        {"classes": CLASSES, "n_features": 64, "epochs": 1, "learning_rate": 0.05}, 0.93
    ),
    "torch-mlp": (
        {"classes": CLASSES, "n_features": 64, "epochs": 1, "hidden_sizes": (64,),
         "learning_rate": 0.005, "num_threads": 1},
        0.93,
    ),
}  # fmt: skip
STRATEGIES: dict[str, dict[str, Any]] = {
    "fedavg": {},
    "fedprox": {"proximal_mu": 0.01},
    "fedadam": {"eta": 0.3},
    "fedyogi": {"eta": 0.3},
    "median": {},
    "trimmed-mean": {"proportion": 0.2},
    "multi-krum": {"num_malicious": 1},
}


def centralized(
    family: str, params: dict[str, Any], data: tuple[Any, ...], target: float, limit: int
) -> tuple[int | None, float, float]:
    """Epochs and seconds until ``target`` (one epoch per fit, warm-started)."""
    X, y, X_test, y_test = data
    model = create_model(family, **{**params, "random_state": 0})
    started = time.perf_counter()
    accuracy = 0.0
    for epoch in range(1, limit + 1):
        model.fit(X, y)
        accuracy = model.score(X_test, y_test)
        if accuracy >= target:
            return epoch, time.perf_counter() - started, accuracy
    return None, time.perf_counter() - started, accuracy


def digits(rounds: int) -> None:
    dataset = load_digits_8x8()
    pool, test = holdout_split(dataset, test_fraction=0.25, seed=0)
    X = dataset.X / 16.0
    data = (X[pool], dataset.y[pool], X[test], dataset.y[test])
    parts = partition_iid(len(pool), [f"node{i}" for i in range(5)], seed=0)
    nodes = {n: (X[pool][rows], dataset.y[pool][rows]) for n, rows in parts.items()}
    print(f"\ndigits 8×8: {len(pool)} training rows on 5 IID nodes, {len(test)} held out")
    print(f"  {'family':<16}{'training':<16}{'to target':>10}{'seconds':>9}{'final acc':>11}")
    for family, (params, target) in FAMILIES.items():
        # Warm-up: the first torch fit pays for lazy imports and kernel set-up.
        create_model(family, **params).fit(data[0][:50], data[1][:50])
        epochs, seconds, accuracy = centralized(family, params, data, target, rounds)
        shown = f"{epochs} epochs" if epochs else f">{rounds} epochs"
        print(f"  {family:<16}{'centralized':<16}{shown:>10}{seconds:9.2f}{accuracy:11.3f}")
        for name, kwargs in STRATEGIES.items():
            started = time.perf_counter()
            history = run_simulation(
                nodes, family=family, hyperparameters=params,
                strategy=create_strategy(name, **kwargs), rounds=rounds,
                evaluation=(data[2], data[3]), seed=0, target_accuracy=target,
            )  # fmt: skip
            seconds = time.perf_counter() - started
            accuracies = history.accuracies()
            reached = accuracies[-1] >= target
            shown = f"{len(accuracies)} rounds" if reached else f">{rounds} rounds"
            print(f"  {'':<16}{name:<16}{shown:>10}{seconds:9.2f}{accuracies[-1]:11.3f}")
        print(f"  (target accuracy {target})")


def flights(rounds: int, sample_size: int) -> None:
    import xgboost as xgb

    from federated.trees import XGBBagging, bagging_local_update
    from federated.trees.booster_json import load_booster

    dataset = load_flights(sample_size, seed=0)
    pool, test = holdout_split(dataset, test_fraction=0.2, seed=0)
    origin = np.asarray(dataset.keys["origin"])[pool]
    X, y = dataset.X[pool], dataset.y[pool]
    X_test, y_test = dataset.X[test], dataset.y[test]
    parts = partition_natural(origin)
    params = {"objective": "binary:logistic", "max_depth": 6, "eta": 0.3, "nthread": 1}
    dtest = xgb.DMatrix(X_test)

    def accuracy(booster: Any) -> float:
        return float(((booster.predict(dtest) > 0.5) == y_test).mean())

    started = time.perf_counter()
    central = xgb.train(params, xgb.DMatrix(X, label=y), num_boost_round=rounds * len(parts))
    central_seconds = time.perf_counter() - started
    target = accuracy(central) - 0.01

    print(f"\nflights 2013: {len(pool)} rows on {len(parts)} nodes by origin, {len(test)} held out")
    print(f"  centralized {central.num_boosted_rounds()} trees: accuracy "
          f"{accuracy(central):.3f} in {central_seconds:.2f} s; target {target:.3f}")  # fmt: skip
    strategy, current = XGBBagging(), GlobalModel("xgboost-classifier", b"")
    started = time.perf_counter()
    reached = None
    for server_round in range(1, rounds + 1):
        results = [
            FitResult(node, bagging_local_update(
                current.parameters if isinstance(current.parameters, bytes) else b"",
                X[rows], y[rows], params, local_rounds=1,
            ), len(rows))
            for node, rows in parts.items()
        ]  # fmt: skip
        model = strategy.aggregate_fit(server_round, current, results, []).model
        if model is None:
            break
        current = model
        assert isinstance(current.parameters, bytes)
        score = accuracy(load_booster(current.parameters))
        if reached is None and score >= target:
            reached = (server_round, time.perf_counter() - started, score)
    elapsed = time.perf_counter() - started
    final = (
        accuracy(load_booster(current.parameters)) if isinstance(current.parameters, bytes) else 0
    )
    if reached:
        print(f"  xgb-bagging reached the target in {reached[0]} rounds, {reached[1]:.2f} s "
              f"(accuracy {reached[2]:.3f})")  # fmt: skip
    else:
        print(f"  xgb-bagging did not reach the target in {rounds} rounds")
    print(f"  xgb-bagging after {rounds} rounds: accuracy {final:.3f}, {elapsed:.2f} s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--skip-flights", action="store_true")
    parser.add_argument("--flights-rounds", type=int, default=20)
    parser.add_argument("--flights-rows", type=int, default=20_000)
    args = parser.parse_args(argv)
    digits(args.rounds)
    if not args.skip_flights:
        flights(args.flights_rounds, args.flights_rows)


if __name__ == "__main__":
    main()
