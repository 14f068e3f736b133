"""Model access on real components: champions found on the embedded ledger after real
federated rounds, bytes fetched from MLflow and verified against the ledger's hash before
they are decoded, predictions equal to the registered model's, refusals of a tampered
artifact and of a profile the ledger has no model for, and the weighted ensemble as an
MLflow pyfunc that verifies its members."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

import registry
from federated.datasets import load_digits_8x8
from federated.exchange import encode_global_model
from federated.types import GlobalModel
from ledger_client.records import from_fixed
from registry.access import build_ensemble, load_verified
from registry.ensemble import FORMAT, save_ensemble, staged_ensemble
from registry.errors import (
    ArtifactIntegrityError,
    InputError,
    LedgerRecordMissingError,
    QueryError,
)
from registry.matching import SchemaFit, find_matches, fit_schema
from registry.query import InputSchema, parse_query
from registry.rows import adapt_rows, read_rows
from tests.registry.conftest import MLFLOW_WARNINGS
from tests.registry.model_family import TRAINED, UNTRAINED, Family, family_home

pytestmark = MLFLOW_WARNINGS


@pytest.fixture(scope="session")
def family(tmp_path_factory: pytest.TempPathFactory) -> Family:
    return family_home(tmp_path_factory)


@pytest.fixture
def family_store(family: Family) -> Family:
    """The family, with MLflow pointed at its store (the autouse ``store`` fixture points
    every test at the registry tests' own store first)."""
    family.configure_mlflow()
    return family


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    return load_digits_8x8().X[:40]


def _artifact(family: Family, profile_id: str, sha256: str) -> Path:
    """The stored exchange file of the version with this hash, in the file store."""
    client = MlflowClient(family.settings.mlflow_tracking_uri)
    info = registry.find_version(profile_id, sha256)
    assert info is not None
    source = client.get_model_version(profile_id, str(info.version)).source
    model = client.get_logged_model(str(source).removeprefix("models:/"))
    return Path(urlparse(model.artifact_location).path) / "artifacts" / "global_model.safetensors"


@pytest.fixture
def tampered(family: Family, family_store: Family) -> Iterator[str]:
    """digits-8x8's stored champion replaced by other, valid weights; restored after."""
    champion = family.ledger().latest_model("digits-8x8")
    path = _artifact(family, "digits-8x8", champion.sha256)
    original = path.read_bytes()
    verified = load_verified(family.ledger(), "digits-8x8")
    params = [np.asarray(p) + 0.5 for p in verified.model.adapter.get_parameters()]
    path.write_bytes(encode_global_model(GlobalModel("torch-mlp", params)))
    try:
        yield champion.sha256
    finally:
        path.write_bytes(original)


def _raw(profile_id: str) -> np.ndarray:
    from federated.datasets import load_mnist_28x28

    return (load_digits_8x8() if profile_id == "digits-8x8" else load_mnist_28x28()).X[:40]


# ---------------------------------------------------------------------------- one model
@pytest.mark.parametrize("profile_id", TRAINED)
def test_the_verified_champion_predicts_what_the_registered_champion_predicts(
    family_store: Family, profile_id: str
) -> None:
    verified = load_verified(family_store.ledger(), profile_id)
    record = family_store.ledger().latest_model(profile_id)
    assert verified.sha256 == record.sha256 and verified.champion.round == record.round
    assert verified.champion.metrics == {k: from_fixed(v) for k, v in record.metrics.items()}
    registered = registry.load_pyfunc(profile_id, alias="champion")
    assert registered.model_config["sha256"] == verified.sha256
    X = _raw(profile_id)
    prediction = verified.predict(X)
    assert list(prediction.labels) == registered.predict(X).tolist()
    proba = registered.predict(X, params={"output": "proba"})
    assert prediction.classes == tuple(proba.columns)
    np.testing.assert_allclose(prediction.probabilities, proba.to_numpy())
    with pytest.raises(InputError, match=r"takes 64 features per row|takes 784 features per row"):
        verified.predict(X[:, :-1])


def test_a_tampered_artifact_is_refused_before_it_is_decoded(family: Family, tampered: str) -> None:
    ledger_sha = tampered
    with pytest.raises(ArtifactIntegrityError) as caught:
        load_verified(family.ledger(), "digits-8x8")
    assert caught.value.code == "ARTIFACT_INTEGRITY"
    assert caught.value.expected == ledger_sha and caught.value.actual != ledger_sha


def test_a_profile_the_ledger_has_no_model_for_is_refused(family_store: Family) -> None:
    with pytest.raises(LedgerRecordMissingError, match="no committed champion") as caught:
        load_verified(family_store.ledger(), UNTRAINED)
    assert caught.value.code == "LEDGER_RECORD_MISSING"
    with pytest.raises(LedgerRecordMissingError, match="not on the ledger"):
        load_verified(family_store.ledger(), "no-such-profile")


# ---------------------------------------------------------------------------- find
def test_find_ranks_the_ledger_s_profiles_with_their_recorded_metrics(family: Family) -> None:
    ledger = family.ledger()
    query = parse_query({"modality": "image", "resolution": "28x28"}, optimize="accuracy")
    matches = find_matches(ledger, query)
    assert [m.profile_id for m in matches] == ["digits-28x28", "digits-8x8", UNTRAINED]
    best, other, untrained = matches
    assert best.eligible and best.score == 1.0
    assert "resolution: 28x28 = 28x28 (1.00)" in best.explanation
    record = ledger.latest_model("digits-28x28")
    assert best.champion_sha256 == record.sha256
    assert best.objective_value == from_fixed(record.metrics["accuracy"])
    assert "resolution: 28x28 vs 8x8, graded 0.29" in other.explanation
    assert not untrained.eligible and untrained.reasons == ("no model committed on the ledger",)
    strict = find_matches(ledger, parse_query({}, require=["accuracy>=0.999"]))
    assert not any(m.eligible for m in strict)


# ---------------------------------------------------------------------------- ensemble
def test_the_ensemble_pyfunc_logs_reloads_verifies_and_mixes_probabilities(
    family_store: Family, rows: np.ndarray, tmp_path: Path
) -> None:
    ledger = family_store.ledger()
    schema = InputSchema(64, side=8)
    query = parse_query({"modality": "image", "resolution": "8x8"}, schema=schema)
    matches = find_matches(ledger, query)
    ensemble = build_ensemble(ledger, matches, schema, k=2)
    members = {m.profile_id: m for m in ensemble.members}
    assert set(members) == set(TRAINED)
    assert sum(m.weight for m in ensemble.members) == pytest.approx(1.0)
    scores = {m.profile_id: m.score for m in matches}
    raw = {p: scores[p] * m.model.champion.metrics["accuracy"] for p, m in members.items()}
    for profile_id, member in members.items():
        assert member.weight == pytest.approx(raw[profile_id] / sum(raw.values()))
    assert members["digits-8x8"].fit.kind == "same"
    assert members["digits-28x28"].fit.kind == "resample"
    assert ensemble.schema.bounds == (0.0, 16.0)  # from the member that takes the rows as-is
    assert any("→ weight" in line for line in ensemble.explanation)

    # The mix, from each registered champion on rows adapted as the ensemble adapts them.
    expected = np.zeros((rows.shape[0], 10))
    for profile_id, member in members.items():
        adapted = adapt_rows(rows, member.fit, ensemble.schema.bounds)
        proba = registry.load_pyfunc(profile_id, alias="champion").predict(
            adapted, params={"output": "proba"}
        )
        expected += member.weight * proba[[str(c) for c in range(10)]].to_numpy()
    np.testing.assert_allclose(ensemble.proba(rows), expected, rtol=1e-6)

    mlflow.set_experiment("fedspec-ensembles")
    with mlflow.start_run(), staged_ensemble(ensemble, rows[:5]) as kwargs:
        logged = mlflow.pyfunc.log_model(name="ensemble", **kwargs)
    model = mlflow.pyfunc.load_model(logged.model_uri)
    assert model.model_config["format"] == FORMAT
    assert model.model_config["members_sha256"].split(",") == [m.sha256 for m in ensemble.members]
    proba = model.predict(rows, params={"output": "proba"})
    assert list(proba.columns) == [str(c) for c in range(10)]
    np.testing.assert_allclose(proba.to_numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(proba.to_numpy().sum(axis=1), 1.0, rtol=1e-6)
    assert model.predict(rows).tolist() == np.argmax(expected, axis=1).tolist()

    # A member whose bytes changed stops the whole ensemble from loading.
    saved = save_ensemble(ensemble, tmp_path / "ensemble", rows[:5])
    assert not list(saved.rglob("*.pkl"))  # models from code: nothing to unpickle
    member_file = next((saved / "artifacts").glob("member-1-*.safetensors"))
    member_file.write_bytes(member_file.read_bytes()[:-1] + b" ")
    with pytest.raises(ArtifactIntegrityError):
        mlflow.pyfunc.load_model(str(saved))


def test_an_ensemble_needs_an_eligible_profile(family: Family) -> None:
    ledger = family.ledger()
    query = parse_query({}, require=["accuracy>=0.999"])
    with pytest.raises(QueryError, match="no eligible profile"):
        build_ensemble(ledger, find_matches(ledger, query), InputSchema(64), k=2)


# ---------------------------------------------------------------------------- client rows
def test_rows_are_read_from_csv_with_or_without_a_header_and_from_npy(tmp_path: Path) -> None:
    plain = tmp_path / "plain.csv"
    plain.write_text("1,2,3\n4,5,6\n\n")
    assert read_rows(plain).values.tolist() == [[1, 2, 3], [4, 5, 6]]
    assert read_rows(plain).columns is None
    named = tmp_path / "named.csv"
    named.write_text("ax, ay,az\n1,2,3\n")
    assert read_rows(named).columns == ("ax", "ay", "az")
    images = tmp_path / "images.npy"
    np.save(images, np.arange(2 * 8 * 8).reshape(2, 8, 8))
    assert read_rows(images).values.shape == (2, 64)
    one = tmp_path / "one.npy"
    np.save(one, np.arange(4.0))
    assert read_rows(one).values.shape == (1, 4)


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("missing.csv", None, "no such file"),
        ("rows.txt", b"1,2\n", "unknown input format"),
        ("bad.csv", b"1,2\n3,x\n", "row 2, column 2: 'x' is not a number"),
        ("ragged.csv", b"1,2\n3\n", "row 2 has 1 values, expected 2"),
        ("empty.csv", b"a,b\n", "no data rows"),
        ("nan.csv", b"1,nan\n", "'nan' is not a number"),
        ("dup.csv", b"a,a\n1,2\n", "distinct"),
        ("pickled.npy", pickle.dumps([1, 2]), "not a numeric .npy"),
    ],
)
def test_unreadable_rows_are_input_invalid(
    tmp_path: Path, name: str, content: bytes | None, fragment: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=fragment) as caught:
        read_rows(path)
    assert caught.value.code == "INPUT_INVALID"


def test_pickled_object_arrays_are_never_loaded(tmp_path: Path) -> None:
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError):
        read_rows(path)


def test_rows_are_adapted_by_column_name_and_by_resampling() -> None:
    rows = np.arange(12.0).reshape(2, 6)
    picked = adapt_rows(rows, SchemaFit("columns", 0.9, "", indices=(4, 0)))
    assert picked.tolist() == [[4.0, 0.0], [10.0, 6.0]]
    flat = np.full((1, 64), 8.0)  # mid-range 8x8 pixels (0..16)
    mnist = {
        "feature_schema": {"shape": [784], "min": "0", "max": "255"},
        "characteristics": {"resolution": "28x28"},
    }
    up = adapt_rows(flat, fit_schema(InputSchema(64, side=8), mnist), (0.0, 16.0))
    assert up.shape == (1, 784) and np.allclose(up, 127.5)  # same brightness, new range
    down = SchemaFit("resample", 0.3, "", source_side=28, target_side=8, target_bounds=(0, 16))
    back = adapt_rows(up, down, (0.0, 255.0))
    assert back.shape == (1, 64) and np.allclose(back, 8.0)
    with pytest.raises(InputError, match="cannot feed"):
        adapt_rows(rows, fit_schema(InputSchema(6), {"feature_schema": {"shape": [5]}}))
