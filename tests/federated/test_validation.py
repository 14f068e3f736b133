"""Great Expectations validation of a node's local data, and the ledger summary."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from federated.datasets import (
    Dataset,
    load_digits_8x8,
    load_flights,
    load_node_data,
    materialize_partitions,
    partition_iid,
)
from federated.errors import DataValidationError
from federated.validation import (
    build_expectations,
    check_local_data,
    plan_from_spec,
    suite_sha256,
    summarize_validation,
    validate_local_data,
    validate_node_data,
)


@pytest.fixture(scope="module")
def flights() -> Dataset:
    return load_flights(sample_size=2000, seed=5)


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_digits_8x8()


def _failure(data: Dataset, X, y, **kwargs) -> DataValidationError:
    with pytest.raises(DataValidationError) as info:
        validate_local_data(X, y, data.info, feature_names=data.info.feature_names, **kwargs)
    return info.value


def test_clean_data_passes_with_a_deterministic_summary(flights) -> None:
    first = validate_local_data(flights.X, flights.y, flights.info)
    second = validate_local_data(flights.X.copy(), flights.y.copy(), flights.info)
    assert first.success and first.rows == flights.n_rows
    assert first == second and hash(first) == hash(second)
    assert first.sha256 == hashlib.sha256(first.canonical_json.encode()).hexdigest()
    body = first.as_dict()
    assert body["failed"] == [] and body["passed"] == body["checks"]
    assert json.dumps(body, sort_keys=True, separators=(",", ":")) == first.canonical_json
    assert first.quality == 1.0


def test_suite_is_derived_from_the_profile_and_named_by_its_hash(flights, digits) -> None:
    spec = flights.info.profile_spec()
    plan = plan_from_spec(spec)
    assert plan.feature_names == flights.info.feature_names
    assert plan.labels == (0, 1) and plan.min_rows == 20
    assert plan.lower[0] == 1.0 and plan.upper[0] == 12.0  # month
    names = [name for name, _ in build_expectations(plan)]
    assert "ExpectTableColumnsToMatchOrderedList" in names
    assert "ExpectTableRowCountToBeBetween" in names
    summary = validate_local_data(flights.X, flights.y, spec)
    assert summary.as_dict()["suite_sha256"] == suite_sha256(build_expectations(plan))
    image_plan = plan_from_spec(digits.info)
    assert image_plan.n_features == 64 and image_plan.feature_names is None
    assert suite_sha256(build_expectations(image_plan)) != suite_sha256(build_expectations(plan))


def test_out_of_range_missing_and_unknown_labels_fail_with_ge_result(flights) -> None:
    X, y = flights.X.copy(), flights.y.copy()
    distance = flights.info.feature_names.index("distance")
    X[3, distance] = 99_999.0
    X[5, 0] = np.nan
    y[7] = 2
    error = _failure(flights, X, y, node_id="node-7")
    assert error.code == "DATA_VALIDATION_FAILED" and error.node_id == "node-7"
    assert "distance (1 rows)" in str(error) and "month (1 rows)" in str(error)
    assert error.result["success"] is False
    json.dumps(error.result)  # JSON-able as it is
    summary = summarize_validation(error.result)
    assert not summary.success and summary.quality == 0.0
    failed = {(f["expectation"], f["column"]) for f in summary.as_dict()["failed"]}
    assert failed == {
        ("expect_column_values_to_be_between", "__above_max__"),
        ("expect_column_values_to_be_between", "__nonfinite__"),
        ("expect_column_values_to_be_in_set", "__label__"),
    }
    # The ledger summary holds counts and names, never the offending values.
    assert "99999" not in summary.canonical_json


def test_wrong_width_names_dtype_and_too_few_rows_fail(flights) -> None:
    width = check_local_data(flights.X[:, :-1], flights.y, flights.info).summary.as_dict()
    assert ("expect_column_values_to_be_in_set", "__width__") in {
        (f["expectation"], f["column"]) for f in width["failed"]
    }
    renamed = check_local_data(
        flights.X, flights.y, flights.info, feature_names=flights.info.feature_names[::-1]
    ).summary.as_dict()
    assert [f["expectation"] for f in renamed["failed"]] == [
        "expect_table_columns_to_match_ordered_list"
    ]
    ints = check_local_data(flights.X.astype(np.int64), flights.y, flights.info).summary
    assert ints.as_dict()["failed"][0]["observed"] == "int64"
    few = check_local_data(flights.X[:5], flights.y[:5], flights.info).summary.as_dict()
    assert few["failed"][0]["expectation"] == "expect_table_row_count_to_be_between"
    assert few["rows"] == 5


def test_image_values_are_checked_by_shape_and_range(digits) -> None:
    assert validate_local_data(digits.X, digits.y, digits.info).success
    X = digits.X.copy()
    X[0, 0] = 17.0
    X[1, 1] = -1.0
    error = _failure(digits, X, digits.y)
    failed = {f["column"] for f in summarize_validation(error.result).as_dict()["failed"]}
    assert failed == {"__above_max__", "__below_min__"}


def test_mostly_tolerates_a_few_bad_rows_and_lowers_quality(flights) -> None:
    X = flights.X.copy()
    X[:10, 0] = 13.0  # ten impossible months in 2000 rows
    summary = validate_local_data(X, flights.y, flights.info, mostly=0.99)
    assert summary.success
    assert summary.worst_unexpected_ppm == 5000
    assert summary.quality == pytest.approx(0.995)
    with pytest.raises(DataValidationError):
        validate_local_data(X, flights.y, flights.info, mostly=0.999)


def test_node_validates_its_own_directory(tmp_path, flights) -> None:
    parts = partition_iid(flights.n_rows, ["n1", "n2"], seed=0)
    dirs = materialize_partitions(flights, parts, tmp_path)
    node = load_node_data(dirs["n1"])
    summary = validate_node_data(node, flights.info.profile_spec())
    assert summary.success and summary.rows == len(parts["n1"])


def test_nothing_is_written_to_the_working_directory(tmp_path, monkeypatch, flights) -> None:
    monkeypatch.chdir(tmp_path)
    validate_local_data(flights.X, flights.y, flights.info)
    assert list(tmp_path.iterdir()) == []
