"""Real package datasets, partitioners and per-node directories."""

from __future__ import annotations

import json

import numpy as np
import pytest

from federated.datasets import (
    Dataset,
    check_partition,
    holdout_split,
    load_dataset,
    load_digits_8x8,
    load_flights,
    load_holdout,
    load_mnist_28x28,
    load_node_data,
    load_watch_windows,
    materialize_partitions,
    node_data_dir,
    partition_dirichlet,
    partition_iid,
    partition_natural,
    split_rows,
    write_holdout,
)
from federated.errors import DatasetError, EmptyPartitionError


@pytest.fixture(scope="module")
def flights() -> Dataset:
    return load_flights(sample_size=3000, seed=3)


@pytest.fixture(scope="module")
def gyro() -> Dataset:
    return load_watch_windows("gyroscope")


# ----------------------------------------------------------------------------- loaders


def test_digits_are_8x8_images_with_ten_classes() -> None:
    data = load_digits_8x8()
    assert data.X.shape == (1797, 64)
    assert data.X.dtype == np.float64
    assert set(np.unique(data.y)) == set(range(10))
    assert data.info.characteristics["resolution"] == "8x8"
    assert data.info.characteristics["modality"] == "image"
    assert data.info.feature_schema == {"shape": [64], "min": "0", "max": "16"}
    assert data.X.min() >= 0 and data.X.max() <= 16


def test_mnist_subset_is_28x28_with_labels_from_the_last_column() -> None:
    data = load_mnist_28x28()
    assert data.X.shape == (5000, 784)
    assert np.bincount(data.y).tolist() == [500] * 10
    assert data.X.max() == 255
    assert data.info.characteristics["resolution"] == "28x28"
    assert data.info.profile_spec()["task"] == {
        "type": "classification",
        "min_rows": 10,
        "labels": list(range(10)),
    }


@pytest.mark.parametrize(
    ("sensor", "channels", "magnitudes"),
    [
        ("accelerometer", ["ax", "ay", "az"], ["amag"]),
        ("gyroscope", ["wx", "wy", "wz"], ["wmag"]),
        ("both", ["ax", "ay", "az", "wx", "wy", "wz"], ["amag", "wmag"]),
    ],
)
def test_watch_windows_select_channels_by_sensor(sensor, channels, magnitudes) -> None:
    data = load_watch_windows(sensor)
    # Per axis and per magnitude: 6 statistics and 6 frequency-band shares.
    assert data.X.shape[1] == 12 * (len(channels) + len(magnitudes))
    assert data.info.characteristics["channels"] == channels
    assert {name.split("_")[0] for name in data.info.feature_names} == {*channels, *magnitudes}
    assert len(np.unique(data.keys["subject"])) == 10
    assert len(np.unique(data.keys["series"])) == 140
    assert set(np.unique(data.y)) == set(range(7))
    assert np.isfinite(data.X).all()


def test_watch_sensor_characteristic_names_the_sensor(gyro) -> None:
    assert gyro.info.characteristics["sensor"] == "gyroscope"
    assert gyro.info.characteristics["sampling_rate_hz"] == 50
    assert gyro.info.group_key == "series"
    assert load_watch_windows("both").info.characteristics["sensor"] == "accelerometer+gyroscope"


def test_watch_rejects_unknown_sensor() -> None:
    with pytest.raises(DatasetError):
        load_watch_windows("magnetometer")  # type: ignore[arg-type]


def test_flights_features_never_include_arrival_measurements(flights) -> None:
    names = set(flights.info.feature_names)
    assert not names & {"arr_time", "arr_delay", "air_time", "dep_time", "dep_delay"}
    assert flights.info.characteristics["horizon"] == "schedule"
    assert flights.X.shape == (3000, len(names))
    assert set(np.unique(flights.y)) == {0, 1}
    assert set(np.unique(flights.keys["origin"])) == {"EWR", "JFK", "LGA"}


def test_flights_at_departure_is_a_separate_dataset_with_dep_delay() -> None:
    data = load_flights(sample_size=500, seed=0, at_departure=True)
    assert data.info.feature_names[-1] == "dep_delay"
    assert data.info.name == "flights-2013-departure"


def test_flights_sample_is_seeded_and_carrier_codes_are_global(flights) -> None:
    again = load_flights(sample_size=3000, seed=3)
    assert np.array_equal(again.X, flights.X)
    carrier = flights.info.feature_names.index("carrier_code")
    # The code comes from the published airline list, not from the sample's own carriers.
    codes = dict(zip(flights.keys["carrier"], flights.X[:, carrier], strict=True))
    assert codes["9E"] == 0 and codes["YV"] == 15


def test_flights_rejects_impossible_sample_size() -> None:
    with pytest.raises(DatasetError):
        load_flights(sample_size=0)


def test_load_dataset_by_name_and_unknown_name() -> None:
    assert load_dataset("watch", sensor="accelerometer").info.name == "watch-accelerometer"
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_dataset("cifar")


# ------------------------------------------------------------------------- partitioners


def test_iid_partition_covers_every_row_once_and_is_seeded() -> None:
    parts = partition_iid(101, ["a", "b", "c"], seed=7)
    check_partition(parts, 101)
    assert sorted(len(p) for p in parts.values()) == [33, 34, 34]
    again = partition_iid(101, ["a", "b", "c"], seed=7)
    assert all(np.array_equal(parts[k], again[k]) for k in parts)
    other = partition_iid(101, ["a", "b", "c"], seed=8)
    assert not all(np.array_equal(parts[k], other[k]) for k in parts)


def test_iid_partition_with_more_nodes_than_rows_is_an_empty_partition() -> None:
    with pytest.raises(EmptyPartitionError) as info:
        partition_iid(2, ["a", "b", "c"], seed=0)
    assert info.value.code == "EMPTY_PARTITION"
    assert info.value.node_id == "c"


def test_natural_partition_by_origin(flights) -> None:
    parts = partition_natural(flights.keys["origin"])
    assert sorted(parts) == ["EWR", "JFK", "LGA"]
    check_partition(parts, flights.n_rows)
    for origin, rows in parts.items():
        assert set(flights.keys["origin"][rows]) == {origin}


def test_natural_partition_with_a_mapping_must_cover_every_value(flights) -> None:
    parts = partition_natural(
        flights.keys["origin"], node_of={"EWR": "nj", "JFK": "ny", "LGA": "ny"}
    )
    assert sorted(parts) == ["nj", "ny"]
    check_partition(parts, flights.n_rows)
    with pytest.raises(DatasetError, match="without a node"):
        partition_natural(flights.keys["origin"], node_of={"EWR": "nj"})


def test_dirichlet_small_alpha_skews_labels_more_than_large_alpha() -> None:
    data = load_digits_8x8()
    ids = [f"n{i}" for i in range(5)]

    def skew(alpha: float) -> float:
        parts = partition_dirichlet(data.y, ids, alpha=alpha, seed=1)
        check_partition(parts, data.n_rows)
        # Mean over nodes of the largest class's share of that node's rows.
        return float(np.mean([np.bincount(data.y[r]).max() / len(r) for r in parts.values()]))

    assert skew(0.1) > 0.4
    assert skew(100.0) < 0.2


def test_dirichlet_is_seeded() -> None:
    y = np.repeat(np.arange(4), 50)
    a = partition_dirichlet(y, ["x", "y", "z"], alpha=0.5, seed=3)
    b = partition_dirichlet(y, ["x", "y", "z"], alpha=0.5, seed=3)
    assert sorted(a) == sorted(b) == ["x", "y", "z"]
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_dirichlet_that_cannot_fill_every_node_raises_typed_error() -> None:
    y = np.array([0, 0, 1])
    with pytest.raises(EmptyPartitionError) as info:
        partition_dirichlet(y, ["a", "b", "c", "d"], alpha=0.5, seed=0, max_attempts=3)
    assert info.value.node_id in {"a", "b", "c", "d"}


def test_partitioners_refuse_duplicate_ids_and_bad_alpha() -> None:
    with pytest.raises(DatasetError):
        partition_iid(10, ["a", "a"], seed=0)
    with pytest.raises(DatasetError):
        partition_dirichlet(np.zeros(10), ["a", "b"], alpha=0.0, seed=0)


def test_check_partition_detects_overlap_and_gaps() -> None:
    with pytest.raises(DatasetError):
        check_partition({"a": np.array([0, 1]), "b": np.array([1, 2])}, 3)
    with pytest.raises(DatasetError):
        check_partition({"a": np.array([0]), "b": np.array([2])}, 3)


# -------------------------------------------------------------------------------- splits


def test_group_split_keeps_each_recording_on_one_side(gyro) -> None:
    pool, test = holdout_split(gyro, test_fraction=0.25, seed=0)
    series = gyro.keys["series"]
    assert not set(series[pool]) & set(series[test])
    assert 0.15 < len(test) / gyro.n_rows < 0.35


def test_stratified_split_keeps_label_mix(flights) -> None:
    kept, held = split_rows(flights.y, fraction=0.2, seed=0)
    assert abs(flights.y[held].mean() - flights.y.mean()) < 0.01
    assert len(np.intersect1d(kept, held)) == 0
    assert len(kept) + len(held) == flights.n_rows


def test_split_never_holds_out_every_row() -> None:
    kept, held = split_rows(np.array([1]), fraction=0.5, seed=0, groups=np.array(["g"]))
    assert kept.tolist() == [0] and held.size == 0


# ---------------------------------------------------------------------- node directories


def test_materialized_nodes_each_read_only_their_own_directory(tmp_path, flights) -> None:
    pool, test = holdout_split(flights, test_fraction=0.2, seed=0)
    pooled = flights.subset(pool)
    parts = partition_natural(pooled.keys["origin"])
    orgs = {"EWR": "org-nj", "JFK": "org-ny", "LGA": "org-ny"}
    dirs = materialize_partitions(pooled, parts, tmp_path / "nodes", orgs=orgs, seed=0)
    holdout = write_holdout(flights, test, tmp_path / "coordinator")

    assert dirs["JFK"] == tmp_path / "nodes" / "org-ny" / "JFK" / "flights-2013-schedule"
    assert sorted(p.name for p in dirs["JFK"].iterdir()) == [
        "dataset.json",
        "train.npz",
        "valid.npz",
    ]
    assert not holdout.is_relative_to(tmp_path / "nodes")

    total = 0
    for node_id, directory in dirs.items():
        node = load_node_data(directory)
        assert node.node_id == node_id and node.org_id == orgs[node_id]
        assert node.info == flights.info
        rows = node.train.n_rows + node.valid.n_rows
        assert rows == len(parts[node_id])
        assert 0.15 < node.valid.n_rows / rows < 0.25
        total += rows
    test_set = load_holdout(holdout)
    assert total + test_set.n_rows == flights.n_rows
    assert json.loads((dirs["EWR"] / "dataset.json").read_text())["rows"]["train"] > 0


def test_node_directory_refuses_names_that_leave_the_root(tmp_path) -> None:
    for bad in ("..", "../x", "a/b", "", ".hidden"):
        with pytest.raises(DatasetError):
            node_data_dir(tmp_path, "org", bad, "data")


def test_arrays_that_need_pickle_are_refused(tmp_path, flights) -> None:
    parts = partition_iid(flights.n_rows, ["solo"], seed=0)
    directory = materialize_partitions(flights, parts, tmp_path)["solo"]
    np.savez(directory / "train.npz", X=np.array([{"code": "runs"}], dtype=object), y=np.zeros(1))
    with pytest.raises(DatasetError, match="cannot read"):
        load_node_data(directory)


def test_materialize_refuses_an_empty_partition(tmp_path, flights) -> None:
    with pytest.raises(EmptyPartitionError):
        materialize_partitions(flights, {"a": np.array([], dtype=np.int64)}, tmp_path)
