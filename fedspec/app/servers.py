"""Credentials for the consortium's Prefect and MLflow servers, generated per deployment.

``generate(out, orgs)`` writes, all mode 0600 in a folder of mode 0700 (``<home>/servers``
by default, outside any checkout):

- ``credentials.json``: everything below, for the setup step (``fedspec servers setup``);
- ``prefect-server.env``: ``PREFECT_SERVER_API_AUTH_STRING`` for ``prefect server start``;
- ``mlflow-server.env`` and ``mlflow-basic-auth.ini``: MLflow's basic-auth app (its admin,
  its user database, ``default_permission = READ``, the Flask secret key its CSRF check needs);
- ``admin.env``: the consortium admin's MLflow login and the Prefect auth string;
- ``members/<org>.env``: one per organization, holding only that organization's MLflow login
  and the Prefect auth string. Each member gets its own file and ``source``-s it.

Prefect's open-source server has one shared secret (basic auth), no per-user accounts: every
member holds the same Prefect auth string. MLflow has one user per organization, so what one
organization may write is enforced per user (:mod:`registry.server_auth`).

Secrets are never printed or logged: the functions here return paths, never values, and the
error messages name files and variables, not their contents.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedspec.errors import ConfigError, ErrorCode, FedspecError
from fedspec.fileio import write_atomic

FORMAT = "fedspec-servers-v1"
CREDENTIALS = "credentials.json"
PREFECT_SERVER_ENV = "prefect-server.env"
MLFLOW_SERVER_ENV = "mlflow-server.env"
MLFLOW_AUTH_INI = "mlflow-basic-auth.ini"
MLFLOW_AUTH_DB = "mlflow-auth.db"
ADMIN_ENV = "admin.env"
MEMBERS = "members"
# The MLflow admin user; refused as an organization name so that no member logs in as it.
MLFLOW_ADMIN = "mlflow-admin"
PREFECT_USER = "fedspec"
# MLflow user names are organization names (fedspec.app.orgs.ORG_NAME).
_ORG = re.compile(r"[a-z][a-z0-9-]{0,30}")
_PLAIN_PATH = re.compile(r"[\w./ +-]{1,1024}")
_SECRET_BYTES = 32  # 256 bits, URL-safe base64: no character a shell or an .ini quotes


class ServerAuthError(FedspecError):
    """A server refused the credentials it was given (``SERVER_UNAUTHORIZED``) or refused
    an action to the user they name (``SERVER_FORBIDDEN``); the message names the member,
    the endpoint and what to fix, never a secret."""

    code = ErrorCode.SERVER_UNAUTHORIZED


class ServerUnreachableError(FedspecError):
    """A server that did not answer at all (``SERVER_UNREACHABLE``): wrong URL, not started,
    or a TLS certificate the client cannot verify."""

    code = ErrorCode.SERVER_UNREACHABLE


@dataclass(frozen=True)
class ServerCredentials:
    """What ``credentials.json`` holds; read by the setup step, never printed."""

    folder: Path
    prefect_auth_string: str
    mlflow_admin: str
    mlflow_admin_password: str
    org_passwords: dict[str, str]

    @property
    def orgs(self) -> list[str]:
        return sorted(self.org_passwords)

    def member_env(self, org: str) -> Path:
        return self.folder / MEMBERS / f"{org}.env"


def default_folder(home: Path) -> Path:
    return home / "servers"


def generate(
    out: Path, orgs: list[str], *, auth_db: Path | None = None, force: bool = False
) -> Path:
    """Write a fresh set of credentials for ``orgs`` into ``out``; returns ``out``.

    The files are written into a temporary folder beside ``out`` and moved into place in one
    step, so an interrupted run leaves the old set or the new one, never half of one.
    ``auth_db`` is where the MLflow server keeps its users (default ``out/mlflow-auth.db``).
    Refuses to replace an existing set unless ``force`` (then the MLflow users' passwords
    change at the next ``fedspec servers setup``).
    """
    names = _check_orgs(orgs)
    out = out.absolute()
    if auth_db is not None and not _PLAIN_PATH.fullmatch(str(auth_db)):
        # It goes into an .ini line and a SQLAlchemy URL: no line breaks, no URL syntax.
        raise ConfigError(f"--auth-db {str(auth_db)[:80]!r} is not a plain file path")
    if (out / CREDENTIALS).exists() and not force:
        raise ConfigError(
            f"{out} already holds server credentials: pass --force to replace them "
            "(then run `fedspec servers setup` again and hand out the new member files)"
        )
    if out.exists() and not (out / CREDENTIALS).exists() and any(out.iterdir()):
        raise ConfigError(
            f"{out} is not empty and holds no server credentials: choose another --out"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        _write_all(staging, out, names, auth_db.absolute() if auth_db else out / MLFLOW_AUTH_DB)
        _swap_in(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def load(folder: Path) -> ServerCredentials:
    """The credentials in ``folder`` (``credentials.json``), checked to be private."""
    path = folder / CREDENTIALS
    try:
        mode = path.stat().st_mode & 0o777
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"no server credentials in {folder}: run `fedspec servers credentials --org ...` first"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} cannot be read: {type(exc).__name__}") from None
    if mode & 0o077:
        raise ConfigError(f"{path} is readable by others (mode {mode:o}): chmod 600 it")
    try:
        if doc["format"] != FORMAT:
            raise ConfigError(f"{path} is not a fedspec server credentials file")
        return ServerCredentials(
            folder=folder.absolute(),
            prefect_auth_string=str(doc["prefect"]["auth_string"]),
            mlflow_admin=str(doc["mlflow"]["admin"]),
            mlflow_admin_password=str(doc["mlflow"]["admin_password"]),
            org_passwords={str(k): str(v) for k, v in doc["mlflow"]["users"].items()},
        )
    except (KeyError, TypeError):
        raise ConfigError(f"{path} lacks a field: generate it again") from None


def read_env(path: Path) -> dict[str, str]:
    """The variables an env file of this module sets (``export K=V`` lines, shell-quoted):
    what ``source`` would set, for a program that starts a server or client itself."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            key, _, quoted = line.removeprefix("export ").partition("=")
            (values[key],) = shlex.split(quoted) or [""]
    return values


def _check_orgs(orgs: list[str]) -> list[str]:
    names = sorted(set(orgs))
    if not names:
        raise ConfigError("name at least one organization (--org), or run it beside a consortium")
    for name in names:
        if not _ORG.fullmatch(name):
            raise ConfigError(f"organization name {name!r} is not [a-z][a-z0-9-]{{0,30}}")
        if name == MLFLOW_ADMIN:
            raise ConfigError(f"{MLFLOW_ADMIN!r} is the MLflow admin's name, not an organization")
    return names


def _secret() -> str:
    return secrets.token_urlsafe(_SECRET_BYTES)


def _write_all(staging: Path, final: Path, orgs: list[str], auth_db: Path) -> None:
    os.chmod(staging, 0o700)
    (staging / MEMBERS).mkdir(mode=0o700)
    prefect_auth = f"{PREFECT_USER}:{_secret()}"
    admin_password = _secret()
    users = {org: _secret() for org in orgs}
    doc: dict[str, Any] = {
        "format": FORMAT,
        "prefect": {"auth_string": prefect_auth},
        "mlflow": {"admin": MLFLOW_ADMIN, "admin_password": admin_password, "users": users},
    }
    _private(staging / CREDENTIALS, json.dumps(doc, indent=2, sort_keys=True) + "\n")
    _private(staging / PREFECT_SERVER_ENV, _env({"PREFECT_SERVER_API_AUTH_STRING": prefect_auth}))
    # MLflow reads the admin's name and first password, its user database and the default
    # permission from this file (MLFLOW_AUTH_CONFIG_PATH); READ: what an organization did not
    # create, or was not granted, it may read and nothing more.
    ini = (
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{auth_db}\n"
        f"admin_username = {MLFLOW_ADMIN}\n"
        f"admin_password = {admin_password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    _private(staging / MLFLOW_AUTH_INI, ini)
    _private(
        staging / MLFLOW_SERVER_ENV,
        _env(
            {
                "MLFLOW_AUTH_CONFIG_PATH": str(final / MLFLOW_AUTH_INI),
                # The basic-auth app's CSRF protection refuses to start without a static key.
                "MLFLOW_FLASK_SERVER_SECRET_KEY": _secret(),
            }
        ),
    )
    _private(staging / ADMIN_ENV, _login(MLFLOW_ADMIN, admin_password, prefect_auth))
    for org, password in users.items():
        _private(staging / MEMBERS / f"{org}.env", _login(org, password, prefect_auth))


def _login(user: str, password: str, prefect_auth: str) -> str:
    return _env(
        {
            "MLFLOW_TRACKING_USERNAME": user,
            "MLFLOW_TRACKING_PASSWORD": password,
            "PREFECT_API_AUTH_STRING": prefect_auth,
        }
    )


def _env(values: dict[str, str]) -> str:
    lines = ["# fedspec server credentials: keep private (mode 0600), never commit"]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def _private(path: Path, text: str) -> None:
    write_atomic(path, text, mode=0o600)


def _swap_in(staging: Path, out: Path) -> None:
    if not out.exists():
        os.replace(staging, out)
        return
    # Replacing a set (--force): file by file, each atomically, credentials.json last; other
    # files there (the MLflow user database by default) stay.
    for path in sorted(staging.rglob("*"), key=lambda p: (p.name == CREDENTIALS, str(p))):
        target = out / path.relative_to(staging)
        if path.is_dir():
            target.mkdir(mode=0o700, exist_ok=True)
        else:
            os.replace(path, target)
    shutil.rmtree(staging, ignore_errors=True)
