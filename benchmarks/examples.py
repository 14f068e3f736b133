"""The example profiles (examples/profiles/*.yaml): held-out accuracy with the profile's
privacy mode and without it, for the consortium sizes the docs use.

Each profile's own training plan (model, hyper-parameters, strategy, feature scaling,
privacy) runs in-process (``federated.simulation``) over real data: digits 8×8 split IID over
3 nodes (the README's tour: three organizations) and 8 nodes (the demo: four organizations
with two nodes each); flights by origin airport, 3 nodes (docs/data.md's worked example).
20 % of the rows are held out for the evaluation. The figures are quoted in each example file.
``digits-8x8-private`` (record-level DP-SGD) runs the 10 rounds its budget is planned for,
and its 'without' column is the non-private ``digits-8x8`` for as many rounds.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from federated.datasets import (
    holdout_split,
    load_digits_8x8,
    load_flights,
    partition_iid,
    partition_natural,
)
from federated.models import load_model
from federated.plan import TrainingPlan
from federated.simulation import run_simulation
from federated.trees import bagging_rounds

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "profiles"
# profile id → (data, how it is split: "iid:N" or a natural key, rounds: None for --rounds)
SETUPS: dict[str, tuple[str, list[str], int | None]] = {
    "digits-8x8": ("digits", ["iid:3", "iid:8"], None),
    # A dp-sgd budget is spent over a planned number of rounds: the profile's 10.
    "digits-8x8-private": ("digits", ["iid:3", "iid:8"], 10),
    "flights-delay": ("flights", ["origin"], None),
}
# The 'without' column of a profile whose hyper-parameters only make sense with its privacy
# mode (DP-SGD's large SGD steps on clipped, noised gradients diverge without them): the
# non-private profile of the same data and model, for the same rounds.
WITHOUT = {"digits-8x8-private": "digits-8x8"}


def _data(name: str) -> Any:
    return load_digits_8x8() if name == "digits" else load_flights(6_000, seed=0)


def evaluate(
    spec: dict[str, Any], split: str, data: Any, *, private: bool, rounds: int
) -> dict[str, float]:
    """Held-out metrics after ``rounds`` rounds of the profile's plan over ``split``."""
    if not private:
        spec = {**spec, "privacy": {"mode": "none"}}
    plan = TrainingPlan.from_profile(str(spec["id"]), spec)
    pool, test = holdout_split(data, test_fraction=0.2, seed=0)
    X, y = plan.prepare(data.X[pool]), data.y[pool]
    X_test, y_test = plan.prepare(data.X[test]), data.y[test]
    if split.startswith("iid:"):
        nodes = [f"node{i}" for i in range(int(split[4:]))]
        parts = partition_iid(len(pool), nodes, seed=0)
    else:
        parts = partition_natural(np.asarray(data.keys[split])[pool])
    if plan.is_tree:  # the flows' tree round: each node boosts, the strategy appends
        model = bagging_rounds(
            {node: (X[rows], y[rows]) for node, rows in parts.items()}, plan.xgb_params,
            rounds=rounds, local_rounds=plan.local_rounds, strategy=plan.strategy(),
            initial=plan.initial_model(),
        )  # fmt: skip
        assert isinstance(model.parameters, bytes)
        return load_model(plan.family, model.parameters).metrics(X_test, y_test)
    history = run_simulation(
        {node: (X[rows], y[rows]) for node, rows in parts.items()},
        family=plan.family,
        hyperparameters=plan.hyperparameters,
        strategy=plan.strategy(),
        rounds=rounds,
        initial=plan.initial_model(),
        evaluation=(X_test, y_test),
        privacy=plan.privacy,
        seed=0,
    )
    evaluated = [r.evaluation for r in history.rounds if r.evaluation]
    return evaluated[-1] if evaluated else {}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="the demo's three rounds")
    parser.add_argument("--profiles", default=",".join(SETUPS), help="comma-separated ids")
    args = parser.parse_args(argv)
    print(f"{'profile':<20}{'privacy':<9}{'split':<8}{'rounds':>6}  {'metric':<10}{'with':>7}"
          f"{'without':>9}   ('with': the profile's privacy mode; 'without': none, {WITHOUT})")  # fmt: skip
    for profile_id in args.profiles.split(","):
        name, splits, own_rounds = SETUPS[profile_id]
        rounds = own_rounds or args.rounds
        spec = yaml.safe_load((EXAMPLES / f"{profile_id}.yaml").read_text())
        data = _data(name)
        mode = str(spec["privacy"]["mode"])
        baseline = spec
        if profile_id in WITHOUT:
            baseline = yaml.safe_load((EXAMPLES / f"{WITHOUT[profile_id]}.yaml").read_text())
        for split in splits:
            plain = evaluate(baseline, split, data, private=False, rounds=rounds)
            private = (
                evaluate(spec, split, data, private=True, rounds=rounds)
                if mode != "none"
                else plain
            )
            for metric in ("accuracy", "roc_auc"):
                if metric in plain:
                    print(
                        f"{profile_id:<20}{mode:<9}{split:<8}{rounds:>6}  {metric:<10}"
                        f"{private.get(metric, float('nan')):>7.3f}{plain[metric]:>9.3f}",
                        flush=True,
                    )
    majority = 1 - float(_data("flights").y.mean())
    print(f"(flights: always predicting 'on time' scores accuracy {majority:.3f}, AUC 0.5)")


if __name__ == "__main__":
    main()
