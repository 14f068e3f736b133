"""A generic profile that holds naturally different data: the specialization scenario.

One ``digits-8x8`` profile (8×8 handwritten digits, values 0–16: what the profile asks
for) whose nodes hold either scikit-learn's digits or MNIST resampled to 8×8
(:func:`federated.datasets.load_mnist_8x8`): the same feature space and labels, different
writers, framing and stroke width. Both fit the profile; one model serves them worse than
two. Used by ``benchmarks.specialization`` and ``tests/flows/test_specialization.py``.

Held-out sets: one per source (a child profile is evaluated on its own source's), and a
mixed one, which is what the generic profile is evaluated on (of the sets that fit a
profile, a round is evaluated on the one that says least beyond the profile:
:meth:`flows.environment.NodeEnvironment.evaluation_data`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from federated.datasets import (
    Dataset,
    holdout_split,
    load_digits_8x8,
    load_mnist_8x8,
    materialize_partitions,
    partition_iid,
    write_holdout,
)
from fedspec.app.settings import Settings
from flows.environment import volunteer_fitting

PROFILE = "digits-8x8"
MIXED = "digits-8x8-mixed"


def sources(mnist_rows: int) -> dict[str, Dataset]:
    return {"digits-8x8": load_digits_8x8(), "mnist-8x8": load_mnist_8x8(n_rows=mnist_rows)}


def setup(
    settings: Settings,
    holders: Mapping[str, str],
    *,
    hyperparameters: Mapping[str, Any],
    schedule: Mapping[str, int] | None = None,
    min_nodes: int = 3,
    mnist_rows: int = 1500,
    seed: int = 0,
) -> dict[str, Dataset]:
    """A fresh consortium (one node, ``node0``, per organization of ``holders``) whose
    node holds the dataset ``holders[org]`` names; the generic profile proposed, voted in
    and volunteered for. Returns the held-out sets by name."""
    # Deferred: the command line starts without it.
    from fedspec.app.bootstrap import init_ledger
    from fedspec.app.consortium import init_consortium
    from fedspec.demo.setup import PROFILES, profile_document
    from ledger_client import open_ledger

    orgs = sorted(holders)
    init_consortium(orgs, settings.ledger.consortium_dir, nodes_per_org=1, force=True)
    init_ledger(settings, force=True)
    root = settings.data_dir
    holdouts: dict[str, Dataset] = {}
    for name, dataset in sources(mnist_rows).items():
        owners = [org for org in orgs if holders[org] == name]
        train_rows, test_rows = holdout_split(dataset, test_fraction=0.2, seed=seed)
        write_holdout(dataset, test_rows, root / "evaluation")
        holdouts[name] = dataset.subset(np.asarray(test_rows))
        if not owners:
            continue
        pool = dataset.subset(np.asarray(train_rows))
        for org, rows in partition_iid(pool.n_rows, owners, seed=seed).items():
            materialize_partitions(
                pool, {"node0": rows}, root / "nodes", orgs={"node0": org}, seed=seed
            )
    mixed = _mixed(list(holdouts.values()))
    write_holdout(mixed, np.arange(mixed.n_rows), root / "evaluation")
    holdouts[MIXED] = mixed
    demo = replace(
        next(p for p in PROFILES if p.id == PROFILE), hyperparameters=dict(hyperparameters)
    )
    document = profile_document(demo, holdouts["digits-8x8"])
    document["min_nodes"] = min_nodes
    if schedule is not None:
        document["schedule"] = dict(schedule)
    admins = [open_ledger(settings.ledger, f"{org}/admin") for org in orgs]
    admins[0].propose_profile(document)
    vote_in(settings, PROFILE, orgs)
    volunteer_fitting(settings, PROFILE, [f"{org}/node0" for org in orgs])  # every one fits
    return holdouts


def vote_in(settings: Settings, profile_id: str, orgs: Sequence[str]) -> str:
    """Each organization's admin votes for ``profile_id`` until a majority activates it."""
    # Deferred: the command line starts without it.
    from ledger_client import open_ledger

    for org in orgs:
        outcome = open_ledger(settings.ledger, f"{org}/admin").vote_profile(profile_id)
        if outcome.status == "active":
            return "active"
    return outcome.status


def accuracy(settings: Settings, profile_id: str, data: Dataset) -> float:
    """Accuracy of ``profile_id``'s champion, as the ledger names it (the bytes verified
    against its ledger hash), on ``data``."""
    # Deferred: loads safetensors only when used.
    from federated.exchange import decode_global_model
    from federated.plan import TrainingPlan
    from flows.models import ProfileModel
    from ledger_client import open_ledger
    from registry.models import fetch_model_bytes

    ledger = open_ledger(settings.ledger, "org1/admin")
    plan = TrainingPlan.from_profile(profile_id, ledger.get_profile(profile_id).spec)
    closed = [r for r in ledger.list_rounds(profile_id) if r.status == "closed"]
    records = [ledger.get_model(profile_id, r.number) for r in reversed(closed)]
    best = next((m for m in records if m.alias == "champion"), None)
    if best is None:
        raise LookupError(f"{profile_id} has no champion")
    model = decode_global_model(fetch_model_bytes(profile_id, best.sha256))
    return float(ProfileModel.of(plan, model).metrics(data.X, data.y)["accuracy"])


def _mixed(parts: Sequence[Dataset]) -> Dataset:
    """Every source's held-out rows together, described by what they all share."""
    first = parts[0].info
    shared = {
        k: v
        for k, v in first.characteristics.items()
        if all(p.info.characteristics.get(k) == v for p in parts[1:])
    }
    info = replace(first, name=MIXED, characteristics=shared)
    return Dataset(
        X=np.concatenate([p.X for p in parts]),
        y=np.concatenate([p.y for p in parts]),
        info=info,
    )
