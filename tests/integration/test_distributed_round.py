"""A consortium on 127.0.0.1, as README's "Run a consortium" runs one: a real ``prefect
server``, a real ``mlflow server`` with proxied artifacts, one work pool and one ``prefect
worker`` process per organization, ``prefect deploy --all``, then one round of a profile
through its training deployment.

Each organization's worker has a home of its own (``FEDSPEC_HOME``) holding only its own
nodes' data, the consortium's shared evaluation set, and a consortium folder with every
certificate but only its own organization's private keys. The embedded ledger file stands in
for the Fabric network: every worker points ``FEDSPEC_LEDGER_PATH`` at it, and the network's
own keys (each organization's peer, which endorses, and the orderer) stay in every copy of
the folder, since whoever opens the embedded ledger plays the whole network. Updates and
models travel only through the MLflow server. Every process the test starts is stopped by
PID, also when it fails.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import numpy as np
import pytest

from fedspec.app.settings import Settings
from tests.processes import Processes, bin_path, free_port, venv_env, wait_http

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(1200),  # a bound of last resort: every wait below has its own
    pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow"),
]

REPO = Path(__file__).resolve().parents[2]
ORGS = ["org1", "org2", "org3", "org4"]
NODE = "node0"  # each organization's one training node
PROFILE_ID = "watch-gyroscope"  # XGBoost bagging: the cheapest profile of the demo
NODES = [f"{org}/{NODE}" for org in ORGS]
# Joining closes as soon as every volunteer has joined and the election follows the last
# reveal, so the windows cost nothing on a quiet machine: they only bound a dead step. They
# are wide because starting four node runs (a process each, importing the flows and Great
# Expectations) took over 90 s on a loaded 2-core CI machine, where a 90 s join window left
# every node out.
SCHEDULE = {"join_window_s": 300, "reveal_window_s": 120, "coordinator_window_s": 240}
SERVER_START_S = 120
ROUND_S = 600  # from `prefect deployment run` to the training flow run's end


# ---------------------------------------------------------------------- the consortium
def _network(root: Path) -> Settings:
    """What the founders set up: identities, the ledger, the profile voted in, volunteers.
    ``root`` stands in for the Fabric network (the ledger file, every key)."""
    from fedspec.app.bootstrap import init_ledger
    from fedspec.app.consortium import init_consortium
    from fedspec.demo.setup import PROFILES, profile_document
    from ledger_client import close_services, open_ledger

    settings = Settings.load(root, env={})
    init_consortium(ORGS, settings.ledger.consortium_dir, nodes_per_org=1)
    init_ledger(settings)
    profile = next(p for p in PROFILES if p.id == PROFILE_ID)
    document = {
        **profile_document(profile, profile.load()),
        "min_nodes": len(ORGS),
        "schedule": SCHEDULE,
    }
    admins = [open_ledger(settings.ledger, f"{org}/admin") for org in ORGS]
    admins[0].propose_profile(document)
    for admin in admins:
        if admin.vote_profile(PROFILE_ID).outcome == "active":
            break
    for node in NODES:
        open_ledger(settings.ledger, node).volunteer(PROFILE_ID)
    close_services()
    return settings


def _homes(root: Path, consortium: Path) -> dict[str, Path]:
    """Each organization's home: its own nodes' data, the shared evaluation set, the
    consortium folder without the other organizations' private keys."""
    from federated.datasets import (
        holdout_split,
        materialize_partitions,
        partition_natural,
        write_holdout,
    )
    from fedspec.demo.setup import PROFILES

    dataset = next(p for p in PROFILES if p.id == PROFILE_ID).load()
    train_rows, test_rows = holdout_split(dataset, test_fraction=0.2, seed=0)
    pool = dataset.subset(np.asarray(train_rows))
    assert pool.keys is not None
    # Natural partition, as in the demo: each organization holds its own subjects' recordings.
    subjects = np.asarray(pool.keys["subject"]).astype(str)
    owner = {s: ORGS[i % len(ORGS)] for i, s in enumerate(sorted(set(subjects.tolist())))}
    parts = partition_natural(np.array([owner[s] for s in subjects.tolist()]))
    homes = {}
    for org in ORGS:
        home = root / org
        write_holdout(dataset, test_rows, home / "data" / "evaluation")
        materialize_partitions(
            pool, {NODE: parts[org]}, home / "data" / "nodes", orgs={NODE: org}, seed=0
        )
        shutil.copytree(consortium, home / "consortium")
        for other in ORGS:
            if other != org:
                for key in _private_keys(home / "consortium", other):
                    key.unlink()
        homes[org] = home
    return homes


def _private_keys(consortium: Path, org: str) -> list[Path]:
    """An organization's own private keys: its CAs', its admin's and its nodes'. Its peer's
    key belongs to the network (the embedded ledger endorses with it)."""
    base = consortium / "peerOrganizations" / org
    return sorted(
        [
            *base.glob("ca*/priv_sk"),
            *base.glob("users/*/msp/keystore/*"),
            *base.glob("users/*/tls/*.key"),
        ]
    )


# ---------------------------------------------------------------------- processes
def _base_env() -> dict[str, str]:
    """This interpreter's tools first on PATH, and nothing of the outer run's settings."""
    env = {
        k: v for k, v in venv_env().items() if not k.startswith(("FEDSPEC_", "PREFECT_", "MLFLOW_"))
    }
    env.update(
        MLFLOW_DISABLE_TELEMETRY="true",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def _prefect(*args: str) -> list[str]:
    return [bin_path("prefect"), *args]


def test_a_round_across_organizations_workers(tmp_path: Path) -> None:
    root = tmp_path
    network = _network(root / "network")
    homes = _homes(root / "homes", network.ledger.consortium_dir)
    _assert_homes_hold_only_their_own(homes)

    base = _base_env()
    prefect_port, mlflow_port = free_port(), free_port()
    api = f"http://127.0.0.1:{prefect_port}/api"
    mlflow_url = f"http://127.0.0.1:{mlflow_port}"
    served = root / "mlflow-server" / "artifacts"
    served.mkdir(parents=True)
    operator = {**base, "PREFECT_HOME": str(root / "operator"), "PREFECT_API_URL": api}
    processes = Processes(root / "logs")
    failed = True
    try:
        with processes:
            # 1. A Prefect server and an MLflow server (proxied artifacts).
            prefect_server = processes.start(
                _prefect("server", "start", "--host", "127.0.0.1", "--port", str(prefect_port)),
                {**base, "PREFECT_HOME": str(root / "prefect-server")},
                "prefect-server.log",
            )
            mlflow_server = processes.start(
                [
                    bin_path("mlflow"),
                    "server",
                    "--backend-store-uri",
                    f"sqlite:///{root / 'mlflow-server' / 'mlflow.db'}",
                    "--artifacts-destination",
                    str(served),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(mlflow_port),
                    "--workers",
                    "1",
                ],
                # Job execution (GenAI scorers) would start seven more worker processes.
                {**base, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
                "mlflow-server.log",
            )
            wait_http(
                f"{api}/health",
                prefect_server,
                processes.logs / "prefect-server.log",
                timeout=SERVER_START_S,
            )
            wait_http(
                f"{mlflow_url}/health",
                mlflow_server,
                processes.logs / "mlflow-server.log",
                timeout=SERVER_START_S,
            )

            # 2. One work pool per organization, then every deployment of prefect.yaml.
            pools = [
                processes.start(
                    _prefect("work-pool", "create", org, "--type", "process"),
                    operator,
                    f"pool-{org}.log",
                )
                for org in ORGS
            ]
            for org, proc in zip(ORGS, pools, strict=True):
                assert proc.wait(timeout=120) == 0, processes.log(f"pool-{org}.log")
            # No FEDSPEC_REPO here: the pull step keeps it a placeholder that each worker
            # fills with its own checkout.
            processes.run(
                _prefect("--no-prompt", "deploy", "--all"),
                operator,
                "deploy.log",
                timeout=240,
                cwd=REPO,
            )

            # 3. Each member's worker, beside its own data and keys.
            for org, home in homes.items():
                processes.start(
                    _prefect("worker", "start", "--pool", org, "--name", f"{org}-worker"),
                    {
                        **base,
                        "PREFECT_HOME": str(home / ".prefect"),
                        "PREFECT_API_URL": api,
                        "PREFECT_WORKER_QUERY_SECONDS": "2",
                        "FEDSPEC_HOME": str(home),
                        "FEDSPEC_LEDGER_PATH": str(network.ledger.ledger_path),
                        "MLFLOW_TRACKING_URI": mlflow_url,
                        "FEDSPEC_REPO": str(REPO),
                    },
                    f"worker-{org}.log",
                    cwd=home,
                )

            # 4. One round through the profile's training deployment (on org1's pool).
            started = time.monotonic()
            out = processes.run(
                _prefect(
                    "deployment",
                    "run",
                    f"federated-training/train-{PROFILE_ID}",
                    "--param",
                    "rounds=1",
                    "--watch",
                    "--watch-timeout",
                    str(ROUND_S),
                ),
                operator,
                "run.log",
                timeout=ROUND_S + 60,
            )
            print(f"round through the deployments in {time.monotonic() - started:.0f} s")
            training_run = re.search(r"UUID: ([0-9a-f-]{36})", out)
            assert training_run, out

            model, updates = _assert_ledger(network)
            _assert_mlflow(network, mlflow_url, served, model)
            _assert_prefect(api, training_run.group(1), root, updates)
            _assert_homes_hold_only_their_own(homes)
            _assert_node_work_ran_at_home(homes)
        failed = False
    finally:
        if failed:
            _print_logs(processes)
    assert not processes.leftover, f"processes still running: {sorted(processes.leftover)}"


# ---------------------------------------------------------------------- what must hold
def _assert_ledger(network: Settings) -> tuple[str, dict[str, str]]:
    """The round closed with a model; every node took part and committed a valid update
    whose bytes live in MLflow (``runs:/`` URIs)."""
    from ledger_client import close_services, open_ledger

    ledger = open_ledger(network.ledger, "org1/admin")
    try:
        rnd = ledger.get_round(PROFILE_ID, 1)
        assert rnd.status == "closed", (rnd.status, rnd.failure)
        assert sorted(rnd.participants) == NODES
        assert rnd.coordinator in NODES
        model = ledger.get_model(PROFILE_ID, 1)
        assert model.sha256 == rnd.raw["model"] and re.fullmatch(r"[0-9a-f]{64}", model.sha256)
        updates = {u.node: u for u in ledger.list_updates(PROFILE_ID, 1)}
        assert sorted(updates) == NODES
        for node, update in updates.items():
            assert update.validation.passed, (node, update.validation)
            assert re.fullmatch(r"[0-9a-f]{64}", update.sha256), node
            assert update.uri.startswith("runs:/"), (node, update.uri)
        return model.sha256, {node: u.sha256 for node, u in updates.items()}
    finally:
        close_services()


def _assert_mlflow(network: Settings, url: str, served: Path, model_sha256: str) -> None:
    """The model is registered under the profile with the ledger's hash; every update is
    there, uploaded through the server (proxied ``mlflow-artifacts:``), and its bytes,
    downloaded through the server, match the hash its node committed. (A client of its own:
    this process's MLflow settings stay as they were.)"""
    from mlflow import MlflowClient

    from ledger_client import close_services, open_ledger
    from registry.pyfunc import MODEL_FILE

    client = MlflowClient(tracking_uri=url, registry_uri=url)
    (version,) = client.search_model_versions(f"name = '{PROFILE_ID}'")
    assert version.tags.get("sha256") == model_sha256
    # Where the registry keeps the version (``models:/`` URIs resolve through the process-wide
    # registry setting, which this test leaves alone).
    model_dir = client.get_model_version_download_uri(PROFILE_ID, version.version)
    assert model_dir.startswith("mlflow-artifacts:")
    model_file = f"{model_dir}/artifacts/{MODEL_FILE}"
    assert _sha256(_download(model_file, url, served.parent / "downloads")) == model_sha256
    ledger = open_ledger(network.ledger, "org1/admin")
    try:
        updates = ledger.list_updates(PROFILE_ID, 1)
    finally:
        close_services()
    for update in updates:
        run_id = update.uri.removeprefix("runs:/").split("/", 1)[0]
        assert client.get_run(run_id).info.artifact_uri.startswith("mlflow-artifacts:")
        downloaded = _download(update.uri, url, served.parent / "downloads" / run_id)
        assert _sha256(downloaded) == update.sha256, update.node
    # Written by the server, under its own destination: no worker was given that path.
    assert len(list(served.rglob("update.safetensors"))) == len(NODES)


def _download(uri: str, url: str, into: Path) -> Path:
    import mlflow.artifacts

    return Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=str(into), tracking_uri=url, registry_uri=url
        )
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_prefect(api: str, training_run: str, root: Path, updates: dict[str, str]) -> None:
    """The training flow run completed on org1's pool; each node's work ran as its own
    organization's ``node-round`` deployment on that organization's pool, given ids only,
    never a path, from the checkout its worker names; the round's table (what the training
    flow read back from the ledger) shows every node ok with its committed update."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        FlowFilter,
        FlowFilterName,
    )
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        training = client.read_flow_run(UUID(training_run))
        assert training.state is not None and training.state.is_completed()
        assert training.work_pool_name == "org1"
        node_runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["node-round"])), limit=50, offset=0
        )
        assert sorted(r.parameters["node"] for r in node_runs) == NODES
        for run in node_runs:
            org = run.parameters["node"].partition("/")[0]
            assert run.state is not None and run.state.is_completed(), (org, run.state)
            assert run.work_pool_name == org
            assert set(run.parameters) <= {"node", "profile_id", "round_no", "parent_run_id"}
            assert str(root) not in json.dumps(run.parameters)
            deployment = client.read_deployment_by_name(f"node-round/node-round-{org}")
            assert json.dumps(deployment.pull_steps).count("{{ $FEDSPEC_REPO }}") == 1
        (table,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"{PROFILE_ID}-round-1"])),
            limit=10,
            offset=0,
        )
        data = table.data  # the rows, as JSON text
        rows = cast("list[dict[str, Any]]", json.loads(data) if isinstance(data, str) else data)
        assert sorted(r["node"] for r in rows) == NODES
        for row in rows:
            assert row["status"] == "ok", row
            assert updates[row["node"]].startswith(row["update"]) and row["update"], row
        assert sum(r["role"] == "coordinator" for r in rows) == 1, rows


def _assert_homes_hold_only_their_own(homes: dict[str, Path]) -> None:
    """Each home: only its own organization's node data and private keys."""
    from ledger_client import Consortium
    from ledger_client.errors import IdentityError

    for org, home in homes.items():
        assert sorted(p.name for p in (home / "data" / "nodes").iterdir()) == [org]
        consortium = Consortium.load(home / "consortium")
        consortium.identity(f"{org}/{NODE}")  # its own identities load
        for other in ORGS:
            if other != org:
                assert not _private_keys(home / "consortium", other)
                with pytest.raises(IdentityError):
                    consortium.identity(f"{other}/{NODE}")


def _assert_node_work_ran_at_home(homes: dict[str, Path]) -> None:
    """Each node's private round state (election secret, update) was written in its own
    organization's home, by that organization's worker, and nowhere else."""
    for org, home in homes.items():
        state = home / "state"
        assert sorted(p.name for p in state.iterdir()) == [org]
        files = {p.name for p in (state / org / NODE).iterdir()}
        assert {f"{PROFILE_ID}.000001.secret", f"{PROFILE_ID}.000001.update"} <= files, files


def _print_logs(processes: Processes) -> None:
    for path in sorted(processes.logs.glob("*.log")):
        print(f"\n===== {path.name} (tail)", file=sys.stderr)
        print(processes.log(path.name, tail=4000), file=sys.stderr)
