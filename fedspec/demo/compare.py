"""Honest baselines for the demo's federated models, all on each profile's held-out set.

For each profile three numbers sit beside the federated champion, each isolating one thing:

- **centralized**: the same plan (family, hyper-parameters, feature scaling) trained on the
  profile's pooled training rows with the same training budget (rounds × local epochs, or
  rounds × local boosting iterations). The gap to it is the price of federation alone.
- **generic**: a model of the *same* family and hyper-parameters, trained centrally on the
  union of every profile of its group (the family's data without the specialization): 8×8
  digits are upsampled to 28×28 and pooled with MNIST; accelerometer and gyroscope windows
  (the same features per window, each sensor scaled by its own declared bounds) are pooled
  regardless of the sensor. The gap between centralized and generic is what specialization
  buys, with the model class held fixed (no MLP-against-trees comparison).

The baselines see no privacy noise and no federation, so they are upper bounds of their
kind; the demo trains without DP.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from federated.datasets import load_holdout, load_node_data
from federated.datasets.info import Dataset
from federated.models import create_model, load_model
from federated.plan import TrainingPlan
from federated.types import NDArray
from fedspec.app.settings import Settings

GROUPS = {
    "images": ["digits-8x8", "digits-28x28"],
    "inertial": ["watch-accelerometer", "watch-gyroscope"],
}
_DATASETS = {
    "digits-8x8": "digits-8x8",
    "digits-28x28": "mnist-28x28",
    "watch-accelerometer": "watch-accelerometer",
    "watch-gyroscope": "watch-gyroscope",
}


@dataclass(frozen=True)
class Comparison:
    """One profile's held-out accuracy: federated and its two baselines."""

    profile: str
    family: str
    federated: float
    centralized: float
    generic: float

    def to_json(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "federated": self.federated,
            "centralized": self.centralized,
            "generic": self.generic,
        }


def _to_28x28(X: NDArray, scale: float) -> NDArray:
    """8×8 digits (0–16) as 28×28 images (0–255), the way the global image model sees them:
    bilinear interpolation (``zoom``, order 1), upsampling, so no pixel is lost."""
    # Deferred: loads scipy only when used.
    from scipy.ndimage import zoom

    images = X.reshape(-1, 8, 8) * (255.0 / scale)
    return np.stack([zoom(img, 28 / 8, order=1) for img in images]).reshape(len(X), 784)


def _common(plan: TrainingPlan, data: Dataset) -> NDArray:
    """Rows in the group's shared input space (images: 28×28 in [0, 1]; inertial: each
    sensor scaled by its own profile's bounds)."""
    if plan.profile_id == "digits-8x8":
        return _to_28x28(data.X, 16.0) / 255.0
    if plan.profile_id == "digits-28x28":
        return data.X / 255.0
    return plan.prepare(data.X)


def _training_rows(settings: Settings, profile_id: str) -> Dataset:
    parts = []
    for node_dir in sorted((settings.data_dir / "nodes").glob("*/*")):
        for dataset_dir in node_dir.iterdir():
            data = load_node_data(dataset_dir)
            if _DATASETS[profile_id] == data.info.name:
                parts.append(data.train)
    return Dataset(
        X=np.concatenate([d.X for d in parts]),
        y=np.concatenate([d.y for d in parts]),
        info=parts[0].info,
    )


def _holdout(settings: Settings, profile_id: str) -> Dataset:
    return load_holdout(settings.data_dir / "evaluation" / _DATASETS[profile_id])


def train_central(
    plan: TrainingPlan, X: NDArray, y: NDArray, *, rounds: int, n_features: int | None = None
) -> Any:
    """``plan``'s model trained on ``X, y`` (already scaled) with the budget of ``rounds``
    federated rounds: ``rounds × epochs`` for array models, ``rounds × local_rounds``
    boosting iterations for trees. ``n_features`` overrides the profile's input size (the
    generic model's shared space)."""
    if plan.is_tree:
        # Deferred: loads xgboost only when used.
        import xgboost as xgb

        booster = xgb.train(
            {**plan.xgb_params, "seed": 0},
            xgb.DMatrix(X, label=y),
            num_boost_round=rounds * plan.local_rounds,
        )
        return load_model(plan.family, bytes(booster.save_raw(raw_format="ubj")))
    params: dict[str, Any] = {**plan.hyperparameters, "random_state": 0}
    params["epochs"] = int(params.get("epochs", 1)) * rounds
    if n_features is not None and "n_features" in params:
        params["n_features"] = n_features
    model = create_model(plan.family, **params)
    model.fit(X.astype(np.float32), y)
    return model


def compare_family(
    settings: Settings,
    specs: Mapping[str, Mapping[str, Any]],
    federated_accuracy: Mapping[str, float],
    *,
    rounds: int,
) -> list[Comparison]:
    """The federated champion of each profile in ``federated_accuracy`` against its
    centralized and generic baselines (module docstring); ``specs`` are the profiles'
    ledger documents, ``rounds`` the rounds each profile ran."""
    out: list[Comparison] = []
    for members in GROUPS.values():
        present = [p for p in members if p in federated_accuracy and p in specs]
        if not present:
            continue
        plans = {p: TrainingPlan.from_profile(p, specs[p]) for p in present}
        pools = {p: _training_rows(settings, p) for p in present}
        shared = [_common(plans[p], pools[p]) for p in present]
        if len({rows.shape[1] for rows in shared}) != 1:
            raise ValueError(f"the profiles {present} have no shared input space")
        union_X = np.concatenate(shared)
        union_y = np.concatenate([pools[p].y for p in present])
        for p in present:
            plan, holdout = plans[p], _holdout(settings, p)
            central = train_central(plan, plan.prepare(pools[p].X), pools[p].y, rounds=rounds)
            generic = train_central(
                plan, union_X, union_y, rounds=rounds, n_features=union_X.shape[1]
            )
            out.append(
                Comparison(
                    profile=p,
                    family=plan.family,
                    federated=float(federated_accuracy[p]),
                    centralized=float(central.score(plan.prepare(holdout.X), holdout.y)),
                    generic=float(generic.score(_common(plan, holdout), holdout.y)),
                )
            )
    return out
