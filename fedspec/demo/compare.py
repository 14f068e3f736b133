"""The family of specialized models against one global model trained on everyone's data.

The global model ignores what makes each profile special: digits at 8×8 are upsampled to
28×28 and pooled with MNIST into one image model; accelerometer and gyroscope windows (the
same 18 summary features per window) are pooled into one inertial model regardless of the
sensor. It is trained centrally on the union of every node's training rows — the strongest
non-specialized baseline, with no federation and no privacy noise — and evaluated on each
profile's held-out set, beside that profile's federated model.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from federated.datasets import load_holdout, load_node_data
from federated.datasets.info import Dataset
from federated.models import create_model
from federated.preprocessing import scale_features
from federated.types import NDArray
from fedspec.app.settings import Settings

GROUPS = {
    "images": ["digits-8x8", "digits-28x28"],
    "inertial": ["watch-accelerometer", "watch-gyroscope"],
}


def _to_28x28(X: NDArray, scale: float) -> NDArray:
    """8×8 digits (0–16) as 28×28 images (0–255), the way the global image model sees them."""
    # Deferred: loads scipy only when used.
    from scipy.ndimage import zoom

    images = X.reshape(-1, 8, 8) * (255.0 / scale)
    return np.stack([zoom(img, 28 / 8, order=1) for img in images]).reshape(len(X), 784)


def _common(profile_id: str, data: Dataset) -> NDArray:
    """Rows in the global model's shared input space."""
    if profile_id == "digits-8x8":
        return _to_28x28(data.X, 16.0) / 255.0
    if profile_id == "digits-28x28":
        return data.X / 255.0
    # Inertial windows: each sensor scaled by its own declared bounds, as its profile does.
    return scale_features(data.X, data.info.feature_schema)


def _training_rows(settings: Settings, profile_id: str) -> Dataset:
    parts = []
    for node_dir in sorted((settings.data_dir / "nodes").glob("*/*")):
        for dataset_dir in node_dir.iterdir():
            data = load_node_data(dataset_dir)
            if _dataset_of(profile_id) == data.info.name:
                parts.append(data.train)
    return Dataset(
        X=np.concatenate([d.X for d in parts]),
        y=np.concatenate([d.y for d in parts]),
        info=parts[0].info,
    )


def _dataset_of(profile_id: str) -> str:
    return {
        "digits-8x8": "digits-8x8",
        "digits-28x28": "mnist-28x28",
        "watch-accelerometer": "watch-accelerometer",
        "watch-gyroscope": "watch-gyroscope",
    }[profile_id]


def _holdout(settings: Settings, profile_id: str) -> Dataset:
    return load_holdout(settings.data_dir / "evaluation" / _dataset_of(profile_id))


def family_vs_global(
    settings: Settings, profile_ids: list[str], family_accuracy: Mapping[str, float]
) -> dict[str, tuple[float, float]]:
    """``{profile: (specialized accuracy, global accuracy)}`` on each profile's held-out set."""
    out: dict[str, tuple[float, float]] = {}
    for members in GROUPS.values():
        present = [p for p in members if p in profile_ids and p in family_accuracy]
        if not present:
            continue
        pools = {p: _training_rows(settings, p) for p in present}
        X = np.concatenate([_common(p, pools[p]) for p in present])
        y = np.concatenate([pools[p].y for p in present])
        classes = sorted({int(v) for v in y})
        model = create_model(
            "torch-mlp",
            classes=classes,
            n_features=X.shape[1],
            hidden_sizes=[128],
            epochs=10,
            learning_rate=0.003,
            random_state=0,
        )
        model.fit(X.astype(np.float32), y)
        for p in present:
            holdout = _holdout(settings, p)
            accuracy = model.score(_common(p, holdout).astype(np.float32), holdout.y)
            out[p] = (family_accuracy[p], float(accuracy))
    return out
