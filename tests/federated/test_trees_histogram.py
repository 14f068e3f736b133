"""Histogram-based federated XGBoost over real processes on 127.0.0.1 with mutual TLS."""

from __future__ import annotations

import multiprocessing
import socket
import ssl

import numpy as np
import pytest
import xgboost as xgb
from sklearn.metrics import roc_auc_score

from federated.contribution import NodeReport, contribution_scores
from federated.datasets import (
    holdout_split,
    load_flights,
    load_node_data,
    materialize_partitions,
    partition_iid,
    partition_natural,
)
from federated.errors import DataValidationError, InvalidInputError, TrainingError
from federated.trees import (
    HistogramNode,
    federated_server,
    issue_credentials,
    train_histogram_federated,
)

PARAMS = {"objective": "binary:logistic", "max_depth": 5, "eta": 0.3, "nthread": 1, "seed": 0}
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


@pytest.fixture(autouse=True)
def _no_process_left_behind():
    yield
    assert multiprocessing.active_children() == []


def _talk(port: int, ca: str, cert: tuple[str, str] | None) -> bytes:
    """Open TLS to the server and send gRPC's HTTP/2 preface; return what comes back."""
    context = ssl.create_default_context(cafile=ca)
    context.set_alpn_protocols(["h2"])
    if cert is not None:
        context.load_cert_chain(*cert)
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(HTTP2_PREFACE)
            return tls.recv(64)
    except (ssl.SSLError, ConnectionError):
        return b""


@pytest.mark.integration
def test_server_answers_only_clients_with_a_certificate_from_the_run_ca(tmp_path) -> None:
    creds = issue_credentials(tmp_path / "run", ["node-a"])
    stranger = issue_credentials(tmp_path / "other", ["node-a"]).clients["node-a"]
    member = creds.clients["node-a"]
    assert oct(member.key_path.stat().st_mode & 0o777) == "0o600"
    with federated_server(1, creds, timeout_s=60) as port:
        ca = str(creds.ca_cert_path)
        # An HTTP/2 SETTINGS frame (type 4) comes back to a member...
        reply = _talk(port, ca, (str(member.cert_path), str(member.key_path)))
        assert len(reply) >= 9 and reply[3] == 4
        # ...nothing to a client without a certificate, or with one from another CA.
        assert _talk(port, ca, None) == b""
        assert _talk(port, ca, (str(stranger.cert_path), str(stranger.key_path))) == b""


@pytest.mark.integration
@pytest.mark.slow
def test_flights_federation_matches_centralized_training(tmp_path) -> None:
    data = load_flights(sample_size=12_000, seed=1)
    pool_rows, test_rows = holdout_split(data, test_fraction=0.25, seed=0)
    pool = data.subset(pool_rows)
    parts = partition_natural(pool.keys["origin"])
    dirs = materialize_partitions(pool, parts, tmp_path / "nodes", valid_fraction=0.1, seed=0)
    nodes = [HistogramNode(node_id, directory) for node_id, directory in dirs.items()]

    result = train_histogram_federated(
        nodes, PARAMS, 20, timeout_s=240, validation_spec=data.info.profile_spec()
    )

    # Centralized: the same rows the nodes trained on, pooled in one place.
    local = [load_node_data(d) for d in dirs.values()]
    names = list(data.info.feature_names)
    union = xgb.DMatrix(
        np.concatenate([n.train.X for n in local]),
        np.concatenate([n.train.y for n in local]),
        feature_names=names,
    )
    central = xgb.train({**PARAMS, "tree_method": "hist"}, union, 20)
    federated = xgb.Booster()
    federated.load_model(bytearray(result.model))
    test = xgb.DMatrix(data.X[test_rows], feature_names=names)
    auc_federated = roc_auc_score(data.y[test_rows], federated.predict(test))
    auc_central = roc_auc_score(data.y[test_rows], central.predict(test))
    assert abs(auc_federated - auc_central) < 0.005
    assert auc_federated > 0.65
    np.testing.assert_allclose(federated.predict(test), central.predict(test), atol=1e-6)

    assert [r.node_id for r in result.nodes] == ["EWR", "JFK", "LGA"]
    assert sum(r.num_examples for r in result.nodes) == union.num_row()
    assert {r.model_sha256 for r in result.nodes} == {result.model_sha256}
    assert all(r.cpu_seconds > 0 and r.train_seconds > 0 for r in result.nodes)

    # The nodes' reports are what contribution scores are computed from.
    reports = []
    for r in result.nodes:
        assert r.validation is not None and r.validation.success
        assert r.validation.rows == len(parts[r.node_id])
        reports.append(
            NodeReport(r.node_id, r.num_examples, r.train_seconds, r.cpu_seconds, r.validation)
        )
    scores = contribution_scores(reports, total=1_000_000)
    assert sum(scores.tokens().values()) == 1_000_000
    assert all(n.tokens > 0 for n in scores.nodes)


@pytest.mark.integration
@pytest.mark.slow
def test_a_node_failing_validation_stops_the_whole_run(tmp_path) -> None:
    data = load_flights(sample_size=1_000, seed=2)
    parts = partition_iid(data.n_rows, ["clean", "dirty"], seed=0)
    dirs = materialize_partitions(data, parts, tmp_path, seed=0)
    dirty = dirs["dirty"] / "train.npz"
    with np.load(dirty, allow_pickle=False) as archive:
        X, y = archive["X"].copy(), archive["y"]
    X[:, 0] = 13.0  # no thirteenth month
    np.savez(dirty, X=X, y=y)
    nodes = [HistogramNode(n, d) for n, d in dirs.items()]
    with pytest.raises(DataValidationError) as info:
        train_histogram_federated(nodes, PARAMS, 5, timeout_s=120, validation_spec=data.info)
    assert info.value.node_id == "dirty"
    assert info.value.result["success"] is False


@pytest.mark.integration
def test_deadline_and_missing_data_end_in_training_error(tmp_path) -> None:
    data = load_flights(sample_size=600, seed=2)
    dirs = materialize_partitions(data, partition_iid(600, ["a", "b"], seed=0), tmp_path, seed=0)
    nodes = [HistogramNode(n, d) for n, d in dirs.items()]
    with pytest.raises(TrainingError):
        train_histogram_federated(nodes, PARAMS, 5, timeout_s=1.0)
    missing = [nodes[0], HistogramNode("ghost", tmp_path / "nowhere")]
    with pytest.raises(TrainingError) as info:
        train_histogram_federated(missing, PARAMS, 5, timeout_s=120)
    assert info.value.node_id == "ghost"


def test_histogram_federation_refuses_other_tree_methods(tmp_path) -> None:
    with pytest.raises(InvalidInputError):
        train_histogram_federated(
            [HistogramNode("a", tmp_path)], {**PARAMS, "tree_method": "exact"}, 1
        )
    with pytest.raises(InvalidInputError):
        train_histogram_federated([HistogramNode("a", tmp_path)] * 2, PARAMS, 1)
