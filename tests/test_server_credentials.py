"""``fedspec servers credentials``: per-deployment secrets, private files, one per holder."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from fedspec.app import servers
from fedspec.cli.app import main
from fedspec.errors import ConfigError, ErrorCode


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as done:
        main(argv)
    return int(done.value.code or 0)


def test_every_file_is_private_and_each_member_holds_only_its_own_login(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    assert (
        _run(["--home", str(home), "servers", "credentials", "--org", "org2", "--org", "org1"]) == 0
    )
    printed = capsys.readouterr()
    folder = home / "servers"
    creds = servers.load(folder)
    assert creds.orgs == ["org1", "org2"]
    assert _mode(folder) == 0o700 and _mode(folder / servers.MEMBERS) == 0o700
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert len(files) == 7  # credentials, 2 server env files, the ini, admin, 2 members
    assert all(_mode(p) == 0o600 for p in files), {p.name: oct(_mode(p)) for p in files}
    secrets = [
        creds.prefect_auth_string,
        creds.mlflow_admin_password,
        *creds.org_passwords.values(),
    ]
    assert len(set(secrets)) == len(secrets)  # nothing shared but the Prefect string
    for secret in secrets:  # paths are printed, never a secret
        assert secret not in printed.out and secret not in printed.err
    for org in creds.orgs:
        env = servers.read_env(creds.member_env(org))
        assert env == {
            "MLFLOW_TRACKING_USERNAME": org,
            "MLFLOW_TRACKING_PASSWORD": creds.org_passwords[org],
            "PREFECT_API_AUTH_STRING": creds.prefect_auth_string,
        }
        others = [p for o, p in creds.org_passwords.items() if o != org]
        text = creds.member_env(org).read_text()
        assert creds.mlflow_admin_password not in text and not any(p in text for p in others)
    server_env = servers.read_env(folder / servers.MLFLOW_SERVER_ENV)
    ini = Path(server_env["MLFLOW_AUTH_CONFIG_PATH"]).read_text()
    assert "default_permission = READ" in ini
    assert f"admin_password = {creds.mlflow_admin_password}" in ini
    assert f"database_uri = sqlite:///{folder / servers.MLFLOW_AUTH_DB}" in ini
    assert servers.read_env(folder / servers.PREFECT_SERVER_ENV) == {
        "PREFECT_SERVER_API_AUTH_STRING": creds.prefect_auth_string
    }


def test_an_existing_set_is_replaced_only_with_force_and_keeps_the_user_database(
    tmp_path: Path,
) -> None:
    folder = servers.generate(tmp_path / "servers", ["org1"])
    first = servers.load(folder)
    (folder / servers.MLFLOW_AUTH_DB).write_bytes(b"users")  # what the MLflow server made
    with pytest.raises(ConfigError, match="--force"):
        servers.generate(folder, ["org1"])
    assert servers.load(folder) == first
    servers.generate(folder, ["org1", "org2"], force=True)
    second = servers.load(folder)
    assert second.orgs == ["org1", "org2"]
    assert second.org_passwords["org1"] != first.org_passwords["org1"]
    assert (folder / servers.MLFLOW_AUTH_DB).read_bytes() == b"users"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


@pytest.mark.parametrize(
    ("orgs", "message"),
    [
        ([], "at least one organization"),
        (["Org1"], "is not"),
        (["org1", servers.MLFLOW_ADMIN], "MLflow admin"),
    ],
)
def test_bad_organization_names_are_refused(tmp_path: Path, orgs: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        servers.generate(tmp_path / "servers", orgs)
    assert not (tmp_path / "servers").exists()


def test_a_folder_that_is_not_a_credentials_folder_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        servers.generate(tmp_path, ["org1"])
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_a_readable_credentials_file_is_refused(tmp_path: Path) -> None:
    folder = servers.generate(tmp_path / "servers", ["org1"])
    (folder / servers.CREDENTIALS).chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600") as caught:
        servers.load(folder)
    assert caught.value.code == ErrorCode.CONFIG_INVALID
    doc = json.loads((folder / servers.CREDENTIALS).read_text())
    assert doc["format"] == servers.FORMAT


def test_setup_without_credentials_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _run(["--home", str(tmp_path), "servers", "setup", "--mlflow", "http://127.0.0.1:9"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "CONFIG_INVALID" in err and "fedspec servers credentials" in err
