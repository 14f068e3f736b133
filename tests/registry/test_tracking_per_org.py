"""The layout with a login (one MLflow user per organization): each organization writes its
own experiment of the profile, reads find the runs of all of them. On the embedded store the
login is not checked, which is what lets the layout be tested without a server
(tests/integration/test_server_auth.py runs it against a server that checks it)."""

from __future__ import annotations

from typing import Any

import pytest
from mlflow import MlflowClient

import registry
from registry.tracking import TAG_PARENT, experiment_name, profile_experiments
from tests.registry.conftest import MLFLOW_WARNINGS

pytestmark = MLFLOW_WARNINGS


def _experiment_of(store: registry.TrackingConfig, run_id: str) -> str:
    client = MlflowClient(store.tracking_uri)
    return str(client.get_experiment(client.get_run(run_id).info.experiment_id).name)


def test_each_organization_writes_its_own_experiment_and_reads_all(
    store: registry.TrackingConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "org1")
    rid = registry.start_round_run("per-org", 1)  # org1 coordinates
    org1_node = registry.start_node_run(rid, "org1/node0")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "org2")
    org2_node = registry.start_node_run(rid, "org2/node0")

    assert _experiment_of(store, rid) == "fedspec/per-org/org1"
    assert _experiment_of(store, org1_node) == "fedspec/per-org/org1"
    assert _experiment_of(store, org2_node) == "fedspec/per-org/org2"
    parent = MlflowClient(store.tracking_uri).get_run(org2_node).data.tags[TAG_PARENT]
    assert parent == rid  # still nested under the coordinator's round run
    assert registry.node_runs(rid) == {"org1/node0": org1_node, "org2/node0": org2_node}
    assert registry.find_round_run("per-org", 1) == rid
    assert registry.start_node_run(rid, "org2/node0") == org2_node  # a retry finds its run
    assert len(profile_experiments("per-org")) == 2


def test_reads_keep_to_the_profile_even_where_like_would_match_another(
    store: registry.TrackingConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "org1")
    other = registry.start_round_run("preXa1", 1)  # older, and matched by LIKE 'pre_a1/%'
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "org2")
    own = registry.start_round_run("pre_a1", 1)
    assert registry.find_round_run("pre_a1", 1) == own != other
    assert experiment_name("p", "org1") == "fedspec/p/org1" and experiment_name("p") == "fedspec/p"


def test_without_a_login_one_shared_experiment(
    store: registry.TrackingConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    rid = registry.start_round_run("shared-exp", 1)
    nid = registry.start_node_run(rid, "org2/node0")
    assert _experiment_of(store, rid) == _experiment_of(store, nid) == "fedspec/shared-exp"
    assert profile_experiments("shared-exp") == [
        str(MlflowClient(store.tracking_uri).get_run(rid).info.experiment_id)
    ]


def test_with_a_login_a_member_does_not_create_the_registered_model(
    base_profile: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Created by a member, MLflow would give it MANAGE there (deleting anyone's versions):
    with a login, the model must exist already (`fedspec servers grant` makes it)."""
    from registry.errors import TrackingAuthError
    from registry.models import _ensure_registered_model
    from tests.registry.conftest import profile_for

    profile = profile_for(base_profile, "ungranted")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "org1")
    with pytest.raises(TrackingAuthError) as refused:
        _ensure_registered_model(profile)
    assert refused.value.code == "TRACKING_FORBIDDEN"
    assert "fedspec servers grant ungranted" in str(refused.value)
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    _ensure_registered_model(profile)  # without a login (one shared store) it creates it
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "org1")
    _ensure_registered_model(profile)  # and with one, an existing model is used as it is


def test_a_host_header_refusal_says_to_allow_the_host_not_that_the_user_may_not() -> None:
    """MLflow 3 answers a Host it does not know with 403 before reading any login: the error
    must not read as a permission refusal."""
    from mlflow.exceptions import MlflowException

    from registry.errors import RegistryError
    from registry.tracking import TrackingAuthError, translate

    text = (
        "API request to endpoint /api/2.0/mlflow/runs/create failed with error code 403 != 200."
        " Response body: 'Invalid Host header - possible DNS rebinding attack detected'"
    )
    with pytest.raises(RegistryError) as refused, translate("starting a run"):
        raise MlflowException(text)
    assert not isinstance(refused.value, TrackingAuthError)
    assert "--allowed-hosts" in str(refused.value) and "/api/2.0/mlflow/runs/create" in str(
        refused.value
    )
