"""The watch profiles' recipe: window features, their bounds, and federated learning on
held-out subjects through the profile's own plan."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from chaincode.schema import validate_profile
from federated.datasets import Dataset, load_watch_windows, partition_natural
from federated.datasets.watch import (
    BANDS_HZ,
    MOVEMENT_RANGE,
    SAMPLING_RATE_HZ,
    STATISTICS,
    band_shares,
    feature_columns,
    window_features,
    window_statistics,
    with_magnitude,
)
from federated.plan import TrainingPlan
from federated.preprocessing import feature_bounds, scale_features
from federated.simulation import run_simulation
from federated.validation import validate_local_data
from fedspec.demo.setup import PROFILES, profile_document

WINDOW = 4 * SAMPLING_RATE_HZ  # the loader's default 4 s window
PER_CHANNEL = len(STATISTICS) + len(BANDS_HZ)


@pytest.fixture(scope="module")
def accelerometer() -> Dataset:
    return load_watch_windows("accelerometer")


def _sine(freq_hz: float, amplitude: float = 1.0, offset: float = 0.0) -> np.ndarray:
    t = np.arange(WINDOW) / SAMPLING_RATE_HZ
    return offset + amplitude * np.sin(2 * np.pi * freq_hz * t)


def _band_of(freq_hz: float) -> int:
    return next(i for i, (low, high) in enumerate(BANDS_HZ) if low < freq_hz <= high)


# ---------------------------------------------------------------------------- features


@pytest.mark.parametrize("freq_hz", [0.5, 0.75, 1.5, 3.0, 6.0, 12.5])
def test_a_sine_puts_its_power_in_the_band_of_its_frequency(freq_hz) -> None:
    # Whole periods in the window, so the rFFT has one line: no leakage to share out.
    shares = band_shares(_sine(freq_hz, 2.0, offset=1.0)[None, None, :])[0, 0]
    expected = np.zeros(len(BANDS_HZ))
    expected[_band_of(freq_hz)] = 1.0
    assert np.allclose(shares, expected, atol=1e-9)


def test_band_shares_split_two_tones_by_their_power_and_a_flat_window_has_none() -> None:
    # Amplitudes 2 and 1: powers 4 : 1, whatever the constant offset (it is removed).
    two = _sine(0.75, 2.0, offset=-3.0) + _sine(6.0, 1.0)
    shares = band_shares(np.stack([two, np.full(WINDOW, 0.7)])[:, None, :])
    assert shares[0, 0, _band_of(0.75)] == pytest.approx(0.8)
    assert shares[0, 0, _band_of(6.0)] == pytest.approx(0.2)
    assert shares[0, 0].sum() == pytest.approx(1.0)
    assert np.array_equal(shares[1, 0], np.zeros(len(BANDS_HZ)))


def test_magnitude_is_the_vector_norm_and_statistics_are_exact() -> None:
    samples = with_magnitude(np.array([[3.0, 4.0, 0.0], [0.0, 0.0, -2.0], [1.0, 2.0, 2.0]]))
    assert samples[:, 3].tolist() == [5.0, 2.0, 3.0]
    ramp = np.array([[[0.0, 1.0, 3.0, 6.0]]])  # mean 2.5, median 2, steps 1 2 3
    stats = dict(zip(STATISTICS, window_statistics(ramp)[0, 0], strict=True))
    assert stats == pytest.approx(
        {"mean": 2.5, "std": np.std([0, 1, 3, 6]), "min": 0, "max": 6, "median": 2, "mad": 2}
    )


def test_window_rows_are_channel_major_statistics_then_bands() -> None:
    samples = np.stack([_sine(1.5, 0.5), _sine(6.0, 0.2, offset=1.0)], axis=1)
    rows = window_features(samples, WINDOW, WINDOW // 2)
    assert rows.shape == (1, 2 * PER_CHANNEL)
    second = rows[0, PER_CHANNEL:]
    assert second[STATISTICS.index("mean")] == pytest.approx(1.0)
    assert second[len(STATISTICS) + _band_of(6.0)] == pytest.approx(1.0)


def test_the_schema_names_each_column_of_the_rows(accelerometer) -> None:
    names = accelerometer.info.feature_names
    assert accelerometer.X.shape[1] == len(names) == 4 * PER_CHANNEL
    assert names[:2] == ("ax_mean", "ax_std")
    assert names[len(STATISTICS)] == "ax_band_0_0p5hz"
    assert names[3 * PER_CHANNEL] == "amag_mean"
    assert [c["name"] for c in feature_columns("accelerometer")] == list(names)


# ------------------------------------------------------------------------------ bounds


@pytest.mark.parametrize("sensor", ["accelerometer", "gyroscope"])
def test_bounds_hold_for_the_most_extreme_movement_the_range_allows(sensor) -> None:
    # Every sample at ±range, flipping each sample (largest std and step), on all three
    # axes at once (largest magnitude): each statistic at or inside its declared bound.
    limit = MOVEMENT_RANGE[sensor]
    flip = np.where(np.arange(WINDOW) % 2 == 0, limit, -limit).astype(float)
    extremes = [np.stack([flip] * 3, axis=1), np.full((WINDOW, 3), -float(limit))]
    low, high = feature_bounds({"columns": feature_columns(sensor)}, 4 * PER_CHANNEL)
    for axes in extremes:
        row = window_features(with_magnitude(axes), WINDOW, WINDOW)[0]
        assert np.all(row >= low) and np.all(row <= high)
    flipped = window_features(with_magnitude(extremes[0]), WINDOW, WINDOW)[0]
    assert flipped[STATISTICS.index("std")] == pytest.approx(high[STATISTICS.index("std")])
    assert flipped[STATISTICS.index("mad")] == pytest.approx(high[STATISTICS.index("mad")])


@pytest.mark.parametrize("sensor", ["accelerometer", "gyroscope", "both"])
def test_real_windows_lie_inside_the_bounds_and_spread_across_them(sensor) -> None:
    data = load_watch_windows(sensor)
    low, high = feature_bounds(data.info.feature_schema, data.X.shape[1])
    assert np.all(low <= data.X)
    assert np.all(high >= data.X)
    # The node-side check the profile's schema drives (Great Expectations) passes too.
    summary = validate_local_data(
        data.X, data.y, data.info.profile_spec(), feature_names=data.info.feature_names
    )
    assert summary.success and summary.rows == data.n_rows
    # Scaled by the bounds, features use a real part of [0, 1] (full-scale bounds left
    # them in a band ~0.013 wide): the middle half of the windows spans > 0.05 for most.
    scaled = scale_features(data.X, data.info.feature_schema)
    spread = np.percentile(scaled, 75, axis=0) - np.percentile(scaled, 25, axis=0)
    assert np.median(spread) > 0.05


def test_bounds_are_exact_decimals_derived_from_the_movement_range() -> None:
    columns = {c["name"]: c for c in feature_columns("gyroscope")}
    assert (columns["wx_mean"]["min"], columns["wx_mean"]["max"]) == ("-10", "10")
    assert columns["wx_std"]["max"] == "10" and columns["wx_mad"]["max"] == "20"
    assert Fraction(columns["wmag_max"]["max"]) >= Fraction(10) * Fraction(17320508, 10**7)
    assert Fraction(columns["wmag_std"]["max"]) == Fraction(columns["wmag_max"]["max"]) / 2
    assert {columns[f"wy_band_{n}"]["max"] for n in ("0_0p5hz", "8_25hz")} == {"1"}


@pytest.mark.parametrize("profile", [p for p in PROFILES if p.id.startswith("watch-")])
def test_watch_profile_documents_pass_the_ledgers_schema(profile) -> None:
    validate_profile(profile_document(profile, profile.load()))


# ----------------------------------------------------------------------- federated smoke


def test_federated_mlp_recognizes_exercises_of_subjects_it_never_saw(accelerometer) -> None:
    """Two rounds of the demo's accelerometer plan over 4 nodes (2 subjects each) reach
    well above chance (1/7) on two held-out subjects."""
    profile = next(p for p in PROFILES if p.id == "watch-accelerometer")
    plan = TrainingPlan.from_profile(profile.id, profile_document(profile, accelerometer))
    X, y = plan.prepare(accelerometer.X), accelerometer.y
    subjects = np.asarray(accelerometer.keys["subject"]).astype(str)
    held = np.isin(subjects, ["subject-03", "subject-08"])
    train = np.flatnonzero(~held)
    owners = {s: f"node{i % 4}" for i, s in enumerate(sorted(set(subjects[train])))}
    parts = partition_natural(np.array([owners[s] for s in subjects[train]]))
    history = run_simulation(
        {node: (X[train[rows]], y[train[rows]]) for node, rows in parts.items()},
        family=plan.family,
        hyperparameters={**plan.hyperparameters, "epochs": 5},
        strategy=plan.strategy(),
        rounds=2,
        initial=plan.initial_model(),
        evaluation=(X[held], y[held]),
        seed=0,
    )
    assert history.accuracies()[-1] > 0.5


def test_the_gyroscope_plan_hands_its_regularizers_to_xgboost() -> None:
    """The profile's row/column sampling and leaf weight reach the nodes' XGBoost params;
    a tree profile that states none keeps XGBoost's defaults (no key at all)."""
    profile = next(p for p in PROFILES if p.id == "watch-gyroscope")
    document = profile_document(profile, profile.load())
    params = TrainingPlan.from_profile(profile.id, document).xgb_params
    assert {k: params[k] for k in ("subsample", "colsample_bytree", "min_child_weight")} == {
        "subsample": 0.8,
        "colsample_bytree": 0.5,
        "min_child_weight": 3.0,
    }
    hyperparameters = {
        k: v
        for k, v in document["model"]["hyperparameters"].items()
        if k not in ("subsample", "colsample_bytree", "min_child_weight")
    }
    bare = {**document, "model": {**document["model"], "hyperparameters": hyperparameters}}
    assert not {"subsample", "colsample_bytree", "min_child_weight"} & set(
        TrainingPlan.from_profile(profile.id, bare).xgb_params
    )
