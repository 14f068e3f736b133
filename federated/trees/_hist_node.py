"""What one node runs, in its own process, during histogram-based federated training.

XGBoost's communicator is global to a process, so each node is a separate (spawned)
process. It reads only its own data directory, optionally validates it, joins the
federated server with its client certificate and trains; every outcome, including a
failure, goes back to the coordinator as one message of plain data.
"""

from __future__ import annotations

import hashlib
import time
from multiprocessing.queues import Queue
from typing import Any

from federated.datasets.store import load_node_data
from federated.errors import DataValidationError
from federated.validation import validate_node_data


def _train(job: dict[str, Any]) -> dict[str, Any]:
    data = load_node_data(job["data_dir"])
    validation = None
    if job["validation_spec"] is not None:
        validation = validate_node_data(data, job["validation_spec"]).canonical_json

    # Deferred: loads xgboost only when used.
    import xgboost as xgb

    communicator = {
        "dmlc_communicator": "federated",
        "federated_server_address": job["server_address"],
        "federated_world_size": job["world_size"],
        "federated_rank": job["rank"],
        "federated_server_cert_path": job["ca_cert_path"],
        "federated_client_key_path": job["client_key_path"],
        "federated_client_cert_path": job["client_cert_path"],
        "dmlc_timeout": job["timeout_s"],
    }
    with xgb.collective.CommunicatorContext(**communicator):
        dtrain = xgb.DMatrix(
            data.train.X, label=data.train.y, feature_names=list(data.info.feature_names)
        )
        wall, cpu = time.perf_counter(), time.process_time()
        booster = xgb.train(dict(job["params"]), dtrain, num_boost_round=job["num_boost_round"])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    model = bytes(booster.save_raw(raw_format="ubj"))
    return {
        "status": "ok",
        "num_examples": int(data.train.n_rows),
        "train_seconds": wall,
        "cpu_seconds": cpu,
        "model_sha256": hashlib.sha256(model).hexdigest(),
        # Every rank holds the same model; one copy is enough.
        "model": model if job["rank"] == 0 else None,
        "validation": validation,
    }


def run_node(job: dict[str, Any], queue: Queue[dict[str, Any]]) -> None:
    """Process entry point: train, then put exactly one message on ``queue``."""
    base = {"node_id": job["node_id"], "rank": job["rank"]}
    try:
        message = _train(job)
    except DataValidationError as exc:
        message = {"status": "invalid", "message": exc.message, "result": exc.result}
    except Exception as exc:  # any failure is reported, so the coordinator need not wait it out
        message = {"status": "error", "message": f"{type(exc).__name__}: {exc}"}
    queue.put({**base, **message})
