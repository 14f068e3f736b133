"""Smartwatch shoulder-exercise recognition (seglearn's ``load_watch``) as feature rows.

140 recordings at 50 Hz from 10 subjects (both wrists), channels ``ax ay az``
(accelerometer, g) and ``wx wy wz`` (gyroscope, rad/s), 7 exercises. Each recording is cut
into fixed windows and every window becomes one row of summary statistics per channel, so
tree and linear models see fixed-size rows. Rows of one recording share a ``series`` key:
splits keep a recording on one side, otherwise near-identical overlapping windows would sit
in both training and test data.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from federated.datasets.info import Dataset, DatasetInfo
from federated.errors import DatasetError
from federated.types import NDArray

Sensor = Literal["accelerometer", "gyroscope", "both"]

SAMPLING_RATE_HZ = 50
_CHANNELS = {"accelerometer": ("ax", "ay", "az"), "gyroscope": ("wx", "wy", "wz")}
# Physical full-scale ranges of common smartwatch IMUs (±16 g, ±2000 °/s ≈ ±35 rad/s):
# values beyond them mean a broken or mislabelled channel, not an unusual exercise.
_FULL_SCALE = {"accelerometer": 16, "gyroscope": 35}
STATISTICS = ("mean", "std", "min", "max", "median", "mad")  # mad: mean absolute difference


def _window_stats(series: NDArray, window: int, step: int) -> NDArray:
    """(n_windows, n_channels * len(STATISTICS)) statistics, channel-major."""
    windows = sliding_window_view(series, window, axis=0)[::step]  # (n_win, channels, window)
    stats = [
        windows.mean(axis=2),
        windows.std(axis=2),
        windows.min(axis=2),
        windows.max(axis=2),
        np.median(windows, axis=2),
        np.abs(np.diff(windows, axis=2)).mean(axis=2),
    ]
    stacked = np.stack(stats, axis=2)  # (n_win, channels, stats)
    return stacked.reshape(stacked.shape[0], -1)


def _columns(sensor: Sensor) -> list[tuple[str, int]]:
    kinds = ["accelerometer", "gyroscope"] if sensor == "both" else [sensor]
    return [(ch, _FULL_SCALE[kind]) for kind in kinds for ch in _CHANNELS[kind]]


def load_watch_windows(
    sensor: Sensor = "both", *, window_s: float = 4.0, overlap: float = 0.5
) -> Dataset:
    """Windowed summary features, selected by sensor; natural keys ``subject``, ``wrist``,
    ``series``.
    """
    if sensor not in ("accelerometer", "gyroscope", "both"):
        raise DatasetError(f"unknown sensor {sensor!r}")
    if not 0.0 <= overlap < 1.0 or window_s <= 0:
        raise DatasetError("window_s must be positive and overlap in [0, 1)")
    # Deferred: loads seglearn only when used.
    from seglearn.datasets import load_watch

    raw = load_watch()
    labels = [str(c) for c in raw["X_labels"]]
    columns = _columns(sensor)
    picks = [labels.index(ch) for ch, _ in columns]
    window = round(window_s * SAMPLING_RATE_HZ)
    step = max(1, round(window * (1.0 - overlap)))

    rows, ys, subjects, wrists, series_ids = [], [], [], [], []
    for i, series in enumerate(raw["X"]):
        data = np.asarray(series, dtype=np.float64)[:, picks]
        if data.shape[0] < window:
            continue
        feats = _window_stats(data, window, step)
        n = feats.shape[0]
        rows.append(feats)
        ys.append(np.full(n, int(raw["y"][i]), dtype=np.int64))
        subjects.append(np.full(n, f"subject-{int(raw['subject'][i]):02d}"))
        wrists.append(np.full(n, "right" if int(raw["side"][i]) == 1 else "left"))
        series_ids.append(np.full(n, f"series-{i:03d}"))
    if not rows:
        raise DatasetError(f"no recording is as long as a {window_s} s window")

    names, schema_columns = [], []
    for ch, scale in columns:
        for stat in STATISTICS:
            names.append(f"{ch}_{stat}")
            low = 0 if stat in ("std", "mad") else -scale
            high = 2 * scale if stat == "mad" else scale
            schema_columns.append(
                {
                    "name": f"{ch}_{stat}",
                    "dtype": "float",
                    "min": str(low),
                    "max": str(high),
                    "nullable": False,
                }
            )
    info = DatasetInfo(
        name=f"watch-{sensor}",
        feature_names=tuple(names),
        task_type="classification",
        classes=tuple(range(len(raw["y_labels"]))),
        characteristics={
            "modality": "inertial-timeseries",
            "sensor": "accelerometer+gyroscope" if sensor == "both" else sensor,
            "channels": [ch for ch, _ in columns],
            "sampling_rate_hz": SAMPLING_RATE_HZ,
            "window_samples": window,
            "device": "smartwatch",
            "content": "shoulder-exercises",
            "source": "seglearn.load_watch",
            "class_names": [str(c) for c in raw["y_labels"]],
        },
        feature_schema={"columns": schema_columns},
        min_rows=10,
        group_key="series",
    )
    return Dataset(
        X=np.concatenate(rows),
        y=np.concatenate(ys),
        info=info,
        keys={
            "subject": np.concatenate(subjects),
            "wrist": np.concatenate(wrists),
            "series": np.concatenate(series_ids),
        },
    )
