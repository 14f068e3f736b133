"""The demo's watch profiles: federated held-out accuracy against centralized training, on
held-out recordings and on held-out subjects.

Each profile of :data:`fedspec.demo.setup.PROFILES` whose id starts with ``watch-`` is
proposed from its own dataset (:func:`~fedspec.demo.setup.profile_document`), and its
training plan (model, hyper-parameters, strategy, feature scaling by the profile's bounds)
runs in-process: ``federated.simulation`` for the MLP, :func:`federated.trees.bagging_rounds`
for XGBoost, as the flows run them. The training rows are shared among the demo's four
organizations by subject (each holds the recordings of its own subjects, as
:func:`~fedspec.demo.setup.prepare_profile_data` does). Two kinds of held-out data:

* ``recording``: 20 % of the recordings (all windows of a recording on one side), the
  demo's held-out set; one split per seed;
* ``subjects``: leave subjects out: the 10 subjects cut into 5 groups of 2 (the grouping
  drawn per seed), each group held out in turn while the other 8 subjects train.

The baseline, measured in the same run on the same rows: the same family and
hyper-parameters trained centrally on the pooled training rows for as much training as one
node does over the run (MLP: rounds × epochs; XGBoost: rounds × local iterations).
Printed: mean ± standard deviation over seeds × held-out sets, the ratio
federated / centralized, and the targets of issue 13 (accelerometer ≥ 0.75, gyroscope ≥ 0.72).

Run: ``.venv/bin/python -m benchmarks.sensor [--rounds 3] [--seeds 0,1,2,3,4]
[--profiles watch-gyroscope]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from federated.datasets import Dataset, holdout_split, partition_natural
from federated.models import create_model, load_model
from federated.plan import TrainingPlan
from federated.simulation import run_simulation
from federated.trees import bagging_rounds
from federated.types import NDArray
from fedspec.demo.setup import ORGS, PROFILES, DemoProfile, profile_document

TARGETS = {"watch-accelerometer": 0.75, "watch-gyroscope": 0.72}
SUBJECT_GROUPS = 5


def held_out_sets(data: Dataset, kind: str, seed: int) -> Iterator[tuple[NDArray, NDArray]]:
    """``(training rows, held-out rows)`` pairs of one seed: one recording split, or one
    pair per group of held-out subjects."""
    if kind == "recording":
        yield holdout_split(data, test_fraction=0.2, seed=seed)
        return
    subjects = np.asarray(data.keys["subject"]).astype(str)
    order = np.random.default_rng(seed).permutation(np.unique(subjects))
    for group in np.array_split(order, SUBJECT_GROUPS):
        held = np.isin(subjects, group)
        yield np.flatnonzero(~held), np.flatnonzero(held)


def by_subject(data: Dataset, rows: NDArray) -> dict[str, NDArray]:
    """The demo's partition of ``rows``: subjects dealt round-robin to the organizations."""
    subjects = np.asarray(data.keys["subject"]).astype(str)[rows]
    owner = {s: ORGS[i % len(ORGS)] for i, s in enumerate(sorted(set(subjects.tolist())))}
    parts = partition_natural(np.array([owner[s] for s in subjects]))
    return {org: rows[local] for org, local in parts.items()}


def federated_accuracy(
    plan: TrainingPlan,
    parts: dict[str, tuple[NDArray, NDArray]],
    test: tuple[NDArray, NDArray],
    *,
    rounds: int,
    seed: int,
) -> float:
    """Held-out accuracy of the global model after ``rounds`` rounds over ``parts``."""
    if plan.is_tree:
        model = bagging_rounds(
            parts, {**plan.xgb_params, "seed": seed}, rounds=rounds,
            local_rounds=plan.local_rounds, strategy=plan.strategy(),
            initial=plan.initial_model(),
        )  # fmt: skip
        assert isinstance(model.parameters, bytes)
        return float(load_model(plan.family, model.parameters).metrics(*test)["accuracy"])
    history = run_simulation(
        parts,
        family=plan.family,
        hyperparameters=plan.hyperparameters,
        strategy=plan.strategy(),
        rounds=rounds,
        initial=plan.initial_model(),
        evaluation=test,
        seed=seed,
    )
    return history.accuracies()[-1]


def central_accuracy(
    plan: TrainingPlan,
    train: tuple[NDArray, NDArray],
    test: tuple[NDArray, NDArray],
    *,
    rounds: int,
    seed: int,
) -> float:
    """Held-out accuracy of the same family trained on the pooled rows, as long as one
    node trains over the run."""
    if plan.is_tree:
        trees = bagging_rounds(
            {"central": train}, {**plan.xgb_params, "seed": seed}, rounds=1,
            local_rounds=rounds * plan.local_rounds,
        )  # fmt: skip
        assert isinstance(trees.parameters, bytes)
        return float(load_model(plan.family, trees.parameters).metrics(*test)["accuracy"])
    params: dict[str, Any] = dict(plan.hyperparameters)
    params.update(epochs=int(params.get("epochs", 10)) * rounds, random_state=seed)
    model = create_model(plan.family, **params)
    model.fit(*train)
    return float(model.score(*test))


def measure(
    profile: DemoProfile, kind: str, *, rounds: int, seeds: list[int]
) -> tuple[list[float], list[float]]:
    """Federated and centralized accuracies over every seed and held-out set of ``kind``."""
    data = profile.load()
    plan = TrainingPlan.from_profile(profile.id, profile_document(profile, data))
    X = plan.prepare(data.X)
    federated, central = [], []
    for seed in seeds:
        for train_rows, test_rows in held_out_sets(data, kind, seed):
            test = (X[test_rows], data.y[test_rows])
            parts = {
                org: (X[rows], data.y[rows]) for org, rows in by_subject(data, train_rows).items()
            }
            federated.append(federated_accuracy(plan, parts, test, rounds=rounds, seed=seed))
            train = (X[train_rows], data.y[train_rows])
            central.append(central_accuracy(plan, train, test, rounds=rounds, seed=seed))
    return federated, central


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="the demo's three rounds")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--profiles", default=",".join(TARGETS), help="ids, comma-separated")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    wanted = set(args.profiles.split(",")) & set(TARGETS)
    profiles = [p for p in PROFILES if p.id in wanted]
    for profile in profiles:
        print(f"{profile.id}: {profile.family} ({profile.strategy}) {profile.hyperparameters}")
    print(
        f"{len(ORGS)} nodes by subject, {args.rounds} rounds, seeds {seeds}; held-out sets: "
        f"recording = 20 % of the recordings per seed, subjects = {SUBJECT_GROUPS} groups of "
        f"held-out subjects per seed"
    )
    print(f"{'profile':<21}{'held out':<11}{'sets':>5}{'federated':>15}{'centralized':>15}"
          f"{'fed/central':>12}{'target':>8}{'met':>5}{'seconds':>9}")  # fmt: skip
    for profile in profiles:
        for kind in ("recording", "subjects"):
            started = time.perf_counter()
            fed, cen = measure(profile, kind, rounds=args.rounds, seeds=seeds)
            target = TARGETS[profile.id]
            mean = float(np.mean(fed))
            print(
                f"{profile.id:<21}{kind:<11}{len(fed):>5}"
                f"{mean:>9.3f} ±{np.std(fed):.3f}{np.mean(cen):>9.3f} ±{np.std(cen):.3f}"
                f"{mean / float(np.mean(cen)):>12.3f}{target:>8.2f}"
                f"{'yes' if mean >= target else 'no':>5}{time.perf_counter() - started:>9.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
