"""Smartwatch shoulder-exercise recognition (seglearn's ``load_watch``) as feature rows.

140 recordings at 50 Hz from 10 subjects (both wrists), channels ``ax ay az``
(accelerometer, g) and ``wx wy wz`` (gyroscope, rad/s), 7 exercises. Each recording is cut
into fixed windows and every window becomes one row of features, so tree and linear models
see fixed-size rows. Rows of one recording share a ``series`` key: splits keep a recording
on one side, otherwise near-identical overlapping windows would sit in both training and
test data.

Features, per sensor, for each axis and for the magnitude of the vector (``amag``,
``wmag``: independent of how the watch sits on the wrist): six statistics of the window
(:data:`STATISTICS`) and the share of the window's power in each frequency band
(:data:`BANDS_HZ`, from the rFFT of the mean-removed window; exercises differ by rhythm as
much as by posture).

Bounds: samples are first saturated at the sensor's movement range
(:data:`MOVEMENT_RANGE`), a public figure argued from the exercise domain, not fitted to
this data. Every feature's bounds then follow from that range by arithmetic (a mean lies
within the range, a standard deviation is at most half of it, a band share in [0, 1]), so
they are exact, hold for any data the loader produces, and are tight enough that the
profile's [0, 1] scaling (``federated.preprocessing``) keeps the features apart. The
sensors' full scales (±16 g, ±35 rad/s) would be exact too, but squeeze every feature
into a band ~0.01 wide, where a network trained on the scaled rows barely learns.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction
from typing import Any, Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from federated.datasets.info import Dataset, DatasetInfo
from federated.errors import DatasetError
from federated.types import NDArray

Sensor = Literal["accelerometer", "gyroscope", "both"]

SAMPLING_RATE_HZ = 50
_CHANNELS = {"accelerometer": ("ax", "ay", "az"), "gyroscope": ("wx", "wy", "wz")}
_MAGNITUDE = {"accelerometer": "amag", "gyroscope": "wmag"}
# What the wrist does in shoulder exercises (pendulum, abduction, flexion, rotations,
# shrugs, rows: controlled repetitions of ~1 s or more). A wrist swinging ±0.5 m once a
# second peaks at 0.5·(2π)² ≈ 20 m/s² ≈ 2 g, plus gravity's 1 g; turning through a
# shoulder's ~2-3 rad range in half a second peaks near 10 rad/s (≈ 570 °/s). Samples
# beyond these ranges are a knock or a glitch, not the exercise, and are saturated.
MOVEMENT_RANGE = {"accelerometer": 4, "gyroscope": 10}
STATISTICS = ("mean", "std", "min", "max", "median", "mad")  # mad: mean absolute difference
# Exercise repetitions take ~1-4 s, so most of their power lies below 2 Hz; the upper bands
# hold tremor, impacts and noise. Half-open (low, high] in Hz, up to the Nyquist frequency.
BANDS_HZ = ((0.0, 0.5), (0.5, 1.0), (1.0, 2.0), (2.0, 4.0), (4.0, 8.0), (8.0, 25.0))


def with_magnitude(samples: NDArray) -> NDArray:
    """``(n, 3)`` axis samples → ``(n, 4)``: the axes and the vector's Euclidean norm."""
    return np.concatenate([samples, np.linalg.norm(samples, axis=1, keepdims=True)], axis=1)


def window_statistics(windows: NDArray) -> NDArray:
    """``(n_windows, channels, samples)`` → ``(n_windows, channels, len(STATISTICS))``."""
    return np.stack(
        [
            windows.mean(axis=2),
            windows.std(axis=2),
            windows.min(axis=2),
            windows.max(axis=2),
            np.median(windows, axis=2),
            np.abs(np.diff(windows, axis=2)).mean(axis=2),
        ],
        axis=2,
    )


def band_shares(windows: NDArray, rate_hz: float = SAMPLING_RATE_HZ) -> NDArray:
    """``(n_windows, channels, samples)`` → ``(n_windows, channels, len(BANDS_HZ))``: the
    share of each window's power (mean removed) in each band; all zero for a flat window."""
    centred = windows - windows.mean(axis=2, keepdims=True)
    power = np.abs(np.fft.rfft(centred, axis=2)) ** 2
    freqs = np.fft.rfftfreq(windows.shape[2], d=1.0 / rate_hz)
    bands = np.stack(
        [power[..., (freqs > low) & (freqs <= high)].sum(axis=2) for low, high in BANDS_HZ],
        axis=2,
    )
    total = power.sum(axis=2, keepdims=True)
    # Relative tolerance: a flat window's power is rounding noise, not a spectrum.
    flat = total <= 1e-12 * np.maximum(1.0, (windows**2).sum(axis=2, keepdims=True))
    shares = np.where(flat, 0.0, bands / np.where(flat, 1.0, total))
    # Sums in a different order may round a sole band's share to 1 + 1 ulp: the schema's
    # bound is exactly 1 and the node's validation checks it.
    clipped: NDArray = np.clip(shares, 0.0, 1.0)
    return clipped


def window_features(samples: NDArray, window: int, step: int) -> NDArray:
    """``(n, channels)`` samples, already saturated → one row per window: per channel
    (channel-major) the :data:`STATISTICS` then the :data:`BANDS_HZ` shares."""
    windows = sliding_window_view(samples, window, axis=0)[::step]  # (n_win, channels, window)
    stacked = np.concatenate([window_statistics(windows), band_shares(windows)], axis=2)
    return stacked.reshape(stacked.shape[0], -1)


def feature_columns(sensor: Sensor) -> list[dict[str, Any]]:
    """The ``feature_schema`` columns, in row order, with the bounds the movement ranges
    imply (exact decimal strings, as on the ledger)."""
    columns: list[dict[str, Any]] = []
    for kind in _kinds(sensor):
        limit = Fraction(MOVEMENT_RANGE[kind])
        # Axes lie in [-r, r]; the norm of three of them in [0, r·√3], rounded up.
        norm = Fraction(math.ceil(float(limit) * math.sqrt(3) * 100), 100)
        axis_bounds = _statistic_bounds(-limit, limit)
        norm_bounds = _statistic_bounds(Fraction(0), norm)
        channels = [(ch, axis_bounds) for ch in _CHANNELS[kind]]
        for ch, bounds in [*channels, (_MAGNITUDE[kind], norm_bounds)]:
            for stat in STATISTICS:
                columns.append(_column(f"{ch}_{stat}", *bounds[stat]))
            for low, high in BANDS_HZ:
                columns.append(_column(f"{ch}_band_{_hz(low)}_{_hz(high)}hz", 0, 1))
    return columns


def _statistic_bounds(low: Fraction, high: Fraction) -> dict[str, tuple[Fraction, Fraction]]:
    """Bounds of each statistic of samples in ``[low, high]``."""
    width = high - low
    return {
        "mean": (low, high),
        "std": (Fraction(0), width / 2),  # at most half the range (half at each end)
        "min": (low, high),
        "max": (low, high),
        "median": (low, high),
        "mad": (Fraction(0), width),  # consecutive samples differ by at most the range
    }


def _column(name: str, low: Fraction | int, high: Fraction | int) -> dict[str, Any]:
    return {
        "name": name,
        "dtype": "float",
        "min": _decimal(Fraction(low)),
        "max": _decimal(Fraction(high)),
        "nullable": False,
    }


def _decimal(value: Fraction) -> str:
    """The exact decimal string of ``value`` (its denominator divides a power of ten)."""
    text = format(Decimal(value.numerator) / Decimal(value.denominator), "f")
    if Fraction(text) != value:
        raise DatasetError(f"bound {value} has no exact decimal form")
    return text


def _hz(value: float) -> str:
    return f"{value:g}".replace(".", "p")


def _kinds(sensor: Sensor) -> list[str]:
    return ["accelerometer", "gyroscope"] if sensor == "both" else [sensor]


def load_watch_windows(
    sensor: Sensor = "both", *, window_s: float = 4.0, overlap: float = 0.5
) -> Dataset:
    """Windowed features, selected by sensor; natural keys ``subject``, ``wrist``,
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
    kinds = _kinds(sensor)
    window = round(window_s * SAMPLING_RATE_HZ)
    step = max(1, round(window * (1.0 - overlap)))

    rows, ys, subjects, wrists, series_ids = [], [], [], [], []
    for i, series in enumerate(raw["X"]):
        data = np.asarray(series, dtype=np.float64)
        if data.shape[0] < window:
            continue
        parts = []
        for kind in kinds:
            picks = [labels.index(ch) for ch in _CHANNELS[kind]]
            limit = MOVEMENT_RANGE[kind]
            axes = np.clip(data[:, picks], -limit, limit)
            parts.append(window_features(with_magnitude(axes), window, step))
        feats = np.concatenate(parts, axis=1)
        n = feats.shape[0]
        rows.append(feats)
        ys.append(np.full(n, int(raw["y"][i]), dtype=np.int64))
        subjects.append(np.full(n, f"subject-{int(raw['subject'][i]):02d}"))
        wrists.append(np.full(n, "right" if int(raw["side"][i]) == 1 else "left"))
        series_ids.append(np.full(n, f"series-{i:03d}"))
    if not rows:
        raise DatasetError(f"no recording is as long as a {window_s} s window")

    schema_columns = feature_columns(sensor)
    info = DatasetInfo(
        name=f"watch-{sensor}",
        feature_names=tuple(c["name"] for c in schema_columns),
        task_type="classification",
        classes=tuple(range(len(raw["y_labels"]))),
        characteristics={
            "modality": "inertial-timeseries",
            "sensor": "accelerometer+gyroscope" if sensor == "both" else sensor,
            "channels": [ch for kind in kinds for ch in _CHANNELS[kind]],
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
