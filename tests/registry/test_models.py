"""Registered models: a pyfunc per global model, versions tagged with their hash, verified
loading, and equality of the pyfunc's predictions with the adapter's."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

import registry
from federated.exchange import encode_global_model
from federated.types import GlobalModel
from registry.models import pip_requirements
from tests.registry.conftest import MLFLOW_WARNINGS, Digits, Trained, profile_for

pytestmark = MLFLOW_WARNINGS


def _register(profile: dict[str, Any], trained: Trained, digits: Digits, round_no: int = 1):
    with registry.round_run(profile["id"], round_no) as rid:
        return registry.register_global_model(
            profile, round_no, trained.data, run_id=rid, input_example=digits.X_test[:8]
        )


def _model_dir(store: registry.TrackingConfig, info: registry.ModelVersionInfo) -> Path:
    client = MlflowClient(store.tracking_uri)
    source = client.get_model_version(info.profile_id, str(info.version)).source
    model = client.get_logged_model(str(source).removeprefix("models:/"))
    return Path(urlparse(model.artifact_location).path)


def test_register_logs_a_verified_pyfunc_with_signature_example_and_tags(
    store: registry.TrackingConfig,
    base_profile: dict[str, Any],
    strong: Trained,
    digits: Digits,
) -> None:
    profile = profile_for(base_profile, "reg-a")
    info = _register(profile, strong, digits, round_no=4)
    assert (info.profile_id, info.version, info.round_no) == ("reg-a", 1, 4)
    assert info.sha256 == strong.sha256 and info.uri == "models:/reg-a/1"
    assert info.tags["family"] == "torch-mlp"
    assert registry.find_version("reg-a", strong.sha256) == info
    assert registry.find_version("reg-a", "0" * 64) is None

    # Registering the same bytes again (a retried flow) returns the same version.
    assert _register(profile, strong, digits, round_no=4).version == 1

    model_dir = _model_dir(store, info)
    mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text())
    config = mlmodel["flavors"]["python_function"]["config"]
    assert config["sha256"] == strong.sha256 and config["family"] == "torch-mlp"
    assert mlmodel["signature"]["inputs"] and mlmodel["run_id"] == info.run_id
    assert (model_dir / "input_example.json").is_file()
    assert (model_dir / "artifacts" / "global_model.safetensors").read_bytes() == strong.data
    assert not list(model_dir.rglob("*.pkl"))  # models from code: nothing is unpickled
    requirements = (model_dir / "requirements.txt").read_text().split()
    assert requirements == pip_requirements("torch-mlp")
    assert any(r.startswith("torch==") for r in requirements)

    run = MlflowClient(store.tracking_uri).get_run(info.run_id or "")
    assert run.outputs is not None
    assert [o.step for o in run.outputs.model_outputs] == [4]  # linked to the round's run

    assert registry.fetch_model_bytes("reg-a", strong.sha256) == strong.data
    tagged = registry.record_ledger_commit("reg-a", strong.sha256, tx_id="ab" * 32, block=12)
    assert tagged.tags["ledger_tx_id"] == "ab" * 32 and tagged.tags["ledger_block"] == "12"
    # Given the version as the caller has it (a coordinator: as it registered it), the tags
    # are set without searching for it, and the store has them, not only the answer.
    again = registry.record_ledger_commit(
        "reg-a", strong.sha256, tx_id="cd" * 32, block=13, version=info
    )
    stored = registry.find_version("reg-a", strong.sha256)
    assert again.tags["ledger_block"] == "13" and again.tags["family"] == "torch-mlp"
    assert stored is not None and stored.tags["ledger_tx_id"] == "cd" * 32
    assert stored.tags["ledger_block"] == "13"


def test_the_pyfunc_predicts_what_the_adapter_predicts(
    base_profile: dict[str, Any], strong: Trained, digits: Digits
) -> None:
    profile = profile_for(base_profile, "reg-b")
    info = _register(profile, strong, digits)
    model = registry.load_pyfunc("reg-b", sha256=info.sha256)
    X = digits.X_test
    expected = strong.predict(X)
    assert np.array_equal(model.predict(X), expected)
    columns = [f"px_{i}" for i in range(64)]
    assert np.array_equal(model.predict(pd.DataFrame(X, columns=columns)), expected)
    proba: pd.DataFrame = model.predict(X, params={"output": "proba"})
    assert list(proba.columns) == [str(c) for c in range(10)]
    np.testing.assert_allclose(proba.to_numpy(), strong.predict_proba(X))
    with pytest.raises(MlflowException, match=r"params\.output"):
        model.predict(X, params={"output": "logits"})
    with pytest.raises(MlflowException):
        model.predict(X[:, :63])  # the signature refuses the wrong width


def test_tampered_model_bytes_are_refused_on_load_and_fetch(
    store: registry.TrackingConfig, base_profile: dict[str, Any], weak: Trained, digits: Digits
) -> None:
    profile = profile_for(base_profile, "reg-c")
    info = _register(profile, weak, digits)
    stored = _model_dir(store, info) / "artifacts" / "global_model.safetensors"
    # Still a valid safetensors file, with other weights: only the hash tells.
    params = [np.asarray(p) + 1.0 for p in weak.adapter.get_parameters()]
    stored.write_bytes(encode_global_model(GlobalModel("torch-mlp", params)))
    with pytest.raises(registry.ArtifactIntegrityError) as caught:
        registry.load_pyfunc("reg-c", sha256=weak.sha256)
    assert caught.value.code == "ARTIFACT_INTEGRITY" and caught.value.expected == weak.sha256
    with pytest.raises(registry.ArtifactIntegrityError):
        registry.fetch_model_bytes("reg-c", weak.sha256)


def test_bytes_that_do_not_fit_the_profile_are_not_registered(
    base_profile: dict[str, Any], weak: Trained, digits: Digits
) -> None:
    other_family = profile_for(base_profile, "reg-d")
    other_family["model"] = {"family": "sklearn-linear"}
    with pytest.raises(registry.InvalidModelError, match="torch-mlp"):
        _register(other_family, weak, digits)
    wider = profile_for(base_profile, "reg-d")
    wider["feature_schema"] = {"shape": [65]}
    with pytest.raises(registry.InvalidModelError, match="INVALID_UPDATE"):
        _register(wider, weak, digits)
    other_run = registry.start_round_run("reg-other", 1)
    with pytest.raises(registry.InvalidModelError, match="reg-other"):
        registry.register_global_model(
            profile_for(base_profile, "reg-d"),
            1,
            weak.data,
            run_id=other_run,
            input_example=digits.X_test[:5],
        )
    registry.end_run(other_run)
    with pytest.raises(registry.ModelNotFoundError) as caught:
        registry.fetch_model_bytes("reg-d", weak.sha256)
    assert caught.value.code == "MODEL_NOT_FOUND"
    with pytest.raises(registry.ModelNotFoundError):
        registry.get_version("reg-d", alias="champion")
