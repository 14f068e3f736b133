"""Servers that require credentials, over TLS: a real Prefect server with an API auth string
and a real ``mlflow server --app-name basic-auth``, both on 127.0.0.1 with a certificate from
a private CA, set up by ``fedspec servers credentials`` / ``setup`` / ``grant``.

Prefect runs as ``prefect server start --background`` runs it (``uvicorn --factory
prefect.server.api.server:create_app``), plus uvicorn's TLS options: Prefect's own command has
none. MLflow passes the same options to uvicorn (``--uvicorn-opts``).

What must hold: no credentials and wrong credentials are refused by both (401), as one line
naming the member and the endpoint; org1 creates and logs its own runs; org2 reads them but
cannot end, log to or delete them, nor delete the model version org1 registered (403); only
the admin deletes a version; a member that created a registered model itself (MLflow made it
MANAGE there) holds EDIT after ``servers grant``.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from fedspec.app import servers
from fedspec.cli.app import main
from fedspec.errors import ErrorCode
from registry.errors import TrackingAuthError
from tests.processes import Processes, bin_path, free_port, venv_env

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(600),  # a bound of last resort: every wait below has its own
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

ORGS = ["org1", "org2"]
PROFILE = "auth-profile"
SERVER_START_S = 240  # both servers import their stacks at once on a loaded 2-core machine
_LOGINS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "PREFECT_API_AUTH_STRING")


def _tls(folder: Path) -> tuple[Path, Path, Path]:
    """A private CA and a server certificate for 127.0.0.1: (ca.pem, server.pem, server.key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True)
    now = datetime.datetime.now(datetime.UTC)

    def cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
             signer: ec.EllipticCurvePrivateKey, ca: bool) -> x509.Certificate:  # fmt: skip
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test servers CA")])
    ca_cert = cert("test servers CA", ca_key, ca_name, ca_key, ca=True)
    server = cert("127.0.0.1", key, ca_name, ca_key, ca=False)
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    paths[2].chmod(0o600)
    return paths


def _wait_https(url: str, proc: subprocess.Popen[bytes], processes: Processes, log: str,
                ca: Path) -> None:  # fmt: skip
    """Until ``url`` answers 200 over TLS verified against ``ca``; fail early if ``proc``
    exits."""
    context = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{log}: exited with {proc.returncode}:\n{processes.log(log)}")
        try:
            with urllib.request.urlopen(url, timeout=5, context=context) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    pytest.fail(f"{url} not ready after {SERVER_START_S} s:\n{processes.log(log)}")


def _cli(*argv: str) -> int:
    with pytest.raises(SystemExit) as done:
        main(list(argv))
    return int(done.value.code or 0)


def _login(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for key in _LOGINS:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def test_servers_refuse_strangers_and_keep_each_organization_to_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    assert _cli("--home", str(home), "servers", "credentials", *(f"--org={o}" for o in ORGS)) == 0
    folder = home / "servers"
    creds = servers.load(folder)
    members = {org: servers.read_env(creds.member_env(org)) for org in ORGS}
    ca = _tls(tmp_path / "tls")
    with Processes(tmp_path / "logs") as processes:
        api, url = _start_servers(tmp_path, folder, ca, processes)
        monkeypatch.setenv("PREFECT_API_SSL_CERT_FILE", str(ca[0]))
        monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(ca[0]))
        _assert_prefect(api, members, monkeypatch, capsys)
        # The admin makes the MLflow users and the profile's resources.
        _login(monkeypatch, {})
        assert _cli("--home", str(home), "servers", "setup", "--mlflow", url) == 0
        assert _cli("--home", str(home), "servers", "grant", PROFILE, "--mlflow", url) == 0
        _assert_mlflow(url, members, servers.read_env(folder / servers.ADMIN_ENV), monkeypatch)
        _assert_grant_takes_back_a_creators_manage(url, home, members["org1"], monkeypatch)
    assert not processes.leftover, f"processes still running: {sorted(processes.leftover)}"


def _base_env() -> dict[str, str]:
    env = {
        k: v for k, v in venv_env().items() if not k.startswith(("FEDSPEC_", "PREFECT_", "MLFLOW_"))
    }
    env.update(MLFLOW_DISABLE_TELEMETRY="true", PREFECT_SERVER_ANALYTICS_ENABLED="false")
    return env


def _start_servers(
    tmp_path: Path, folder: Path, tls: tuple[Path, Path, Path], processes: Processes
) -> tuple[str, str]:
    """Both servers with this deployment's server env files and TLS; (Prefect API, MLflow)."""
    ca, cert, key = tls
    tls_opts = ["--ssl-keyfile", str(key), "--ssl-certfile", str(cert)]
    prefect_port, mlflow_port = free_port(), free_port()
    prefect_args = ["--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1"]
    prefect_server = processes.start(
        [
            bin_path("python"),
            "-m",
            "uvicorn",
            *prefect_args,
            "--port",
            str(prefect_port),
            *tls_opts,
        ],
        {
            **_base_env(),
            **servers.read_env(folder / servers.PREFECT_SERVER_ENV),
            "PREFECT_HOME": str(tmp_path / "prefect-server"),
            "PREFECT__SERVER_FINAL": "1",  # as `prefect server start` sets it
        },
        "prefect-server.log",
    )
    stores = [
        "--backend-store-uri",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        "--artifacts-destination",
        str(tmp_path / "artifacts"),
    ]
    mlflow_server = processes.start(
        [bin_path("mlflow"), "server", "--app-name", "basic-auth", *stores, "--host", "127.0.0.1",
         "--port", str(mlflow_port), "--workers", "1", "--uvicorn-opts", " ".join(tls_opts)],
        {
            **_base_env(),
            **servers.read_env(folder / servers.MLFLOW_SERVER_ENV),
            # Job execution (GenAI scorers) would start seven more worker processes.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        },
        "mlflow-server.log",
    )  # fmt: skip
    api, url = f"https://127.0.0.1:{prefect_port}/api", f"https://127.0.0.1:{mlflow_port}"
    _wait_https(f"{api}/health", prefect_server, processes, "prefect-server.log", ca)
    _wait_https(f"{url}/health", mlflow_server, processes, "mlflow-server.log", ca)
    return api, url


def _assert_prefect(
    api: str,
    members: dict[str, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No auth string and a wrong one are refused, each as one line naming the member and the
    endpoint; the member's own file is accepted, by Prefect's own client too."""
    from prefect.client.schemas.actions import WorkPoolCreate

    from flows.server_check import check_prefect

    for auth in (None, "fedspec:wrong"):
        with pytest.raises(servers.ServerAuthError) as refused:
            check_prefect(api, auth, member="org2")
        assert refused.value.code == ErrorCode.SERVER_UNAUTHORIZED
        assert "member org2" in refused.value.message
        assert "401 on POST /flows/filter" in refused.value.message
        assert "PREFECT_API_AUTH_STRING" in refused.value.message
    check_prefect(api, members["org1"]["PREFECT_API_AUTH_STRING"], member="org1")
    _login(monkeypatch, {**members["org2"], "PREFECT_API_AUTH_STRING": "fedspec:wrong"})
    assert _cli("servers", "check", "--prefect", api) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "SERVER_UNAUTHORIZED" in err and "org2" in err
    # Prefect's own client, as a worker makes it, with the member's file and the private CA.
    from prefect.client.orchestration import get_client
    from prefect.settings import (
        PREFECT_API_AUTH_STRING,
        PREFECT_API_SSL_CERT_FILE,
        PREFECT_API_URL,
        temporary_settings,
    )

    settings = {
        PREFECT_API_URL: api,
        PREFECT_API_AUTH_STRING: members["org1"]["PREFECT_API_AUTH_STRING"],
        PREFECT_API_SSL_CERT_FILE: os.environ["PREFECT_API_SSL_CERT_FILE"],
    }
    with temporary_settings(settings), get_client(sync_client=True) as client:
        pool = client.create_work_pool(WorkPoolCreate(name="org1", type="process"))
        assert [p.name for p in client.read_work_pools()] == [pool.name]


def _assert_mlflow(
    url: str,
    members: dict[str, dict[str, str]],
    admin: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import registry

    registry.configure(url)
    # No login, then a wrong password: refused (401), one line naming endpoint and fix.
    for env, says in (({}, "MLFLOW_TRACKING_USERNAME"), (_wrong(members["org1"]), "'org1'")):
        _login(monkeypatch, env)
        with pytest.raises(TrackingAuthError) as refused:
            registry.start_round_run(PROFILE, 1)
        assert refused.value.code == ErrorCode.TRACKING_UNAUTHORIZED
        assert refused.value.details["status"] == 401
        assert refused.value.details["endpoint"] in str(refused.value)
        assert says in str(refused.value) and "\n" not in str(refused.value)

    # org1 writes its own runs, in its own experiment of the profile, and a model version.
    _login(monkeypatch, members["org1"])
    client = _mlflow_client(url)
    with registry.round_run(PROFILE, 1) as round_id:
        with registry.node_run(round_id, "org1/node0") as node_id:
            registry.log_metrics(node_id, {"loss": 0.5}, step=1)
        registry.log_metrics(round_id, {"accuracy": 0.9}, step=1)
    experiment = client.get_experiment(client.get_run(round_id).info.experiment_id)
    assert experiment.name == f"fedspec/{PROFILE}/org1"
    version = client.create_model_version(PROFILE, source=f"runs:/{round_id}/m", run_id=round_id)

    # org2 reads org1's runs and version, and adds its own node run under org1's round.
    _login(monkeypatch, members["org2"])
    client = _mlflow_client(url)
    assert client.get_run(node_id).data.metrics == {"loss": 0.5}
    assert registry.find_round_run(PROFILE, 1) == round_id
    org2_node = registry.start_node_run(round_id, "org2/node0")
    registry.end_run(org2_node)
    assert registry.node_runs(round_id) == {"org1/node0": node_id, "org2/node0": org2_node}
    assert client.get_model_version(PROFILE, version.version).run_id == round_id

    # ... but cannot end, log to or delete them, nor delete org1's model version (403).
    with pytest.raises(TrackingAuthError) as forbidden:
        registry.end_run(round_id, status="FAILED")
    assert forbidden.value.code == ErrorCode.TRACKING_FORBIDDEN
    assert "'org2'" in str(forbidden.value) and "/runs/update" in str(forbidden.value)
    for attempt in (
        lambda: client.delete_run(node_id),
        lambda: client.log_metric(node_id, "loss", 99.0),
        lambda: client.set_tag(round_id, "fedspec.status", "forged"),
        lambda: client.delete_model_version(PROFILE, version.version),
        lambda: client.delete_registered_model(PROFILE),
    ):
        _assert_forbidden(attempt)
    assert client.get_run(node_id).info.lifecycle_stage == "active"
    assert client.get_run(node_id).data.metrics == {"loss": 0.5}
    assert client.get_run(round_id).info.status == "FINISHED"

    # Members add versions but delete none, not even their own; the admin does.
    _login(monkeypatch, members["org1"])
    _assert_forbidden(lambda: _mlflow_client(url).delete_model_version(PROFILE, version.version))
    _login(monkeypatch, admin)
    _mlflow_client(url).delete_model_version(PROFILE, version.version)


def _assert_grant_takes_back_a_creators_manage(
    url: str, home: Path, org1: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registered model a member created itself (MLflow made it MANAGE there): after the
    admin's ``servers grant`` that member holds EDIT, and deletes no version."""
    _login(monkeypatch, org1)
    client = _mlflow_client(url)
    client.create_registered_model("early-profile")
    run = client.create_run(client.get_experiment_by_name(f"fedspec/{PROFILE}/org1").experiment_id)
    version = client.create_model_version(
        "early-profile", source=f"runs:/{run.info.run_id}/m", run_id=run.info.run_id
    )
    assert _cli("--home", str(home), "servers", "grant", "early-profile", "--mlflow", url) == 0
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "org1"  # the admin's login was for the call
    _assert_forbidden(lambda: client.delete_model_version("early-profile", version.version))
    client.set_model_version_tag("early-profile", version.version, "checked", "yes")  # EDIT


def _wrong(env: dict[str, str]) -> dict[str, str]:
    return {**env, "MLFLOW_TRACKING_PASSWORD": "wrong"}


def _mlflow_client(url: str):  # type: ignore[no-untyped-def]
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=url, registry_uri=url)


def _assert_forbidden(attempt) -> None:  # type: ignore[no-untyped-def]
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException) as refused:
        attempt()
    assert refused.value.error_code == "PERMISSION_DENIED", refused.value
    assert os.environ.get("MLFLOW_TRACKING_USERNAME")  # refused as a known user, not a stranger
