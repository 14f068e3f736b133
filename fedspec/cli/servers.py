"""``fedspec servers``: credentials for the Prefect and MLflow servers, and MLflow's users and
permissions (docs/deploy.md, "Servers with credentials"). Secrets go to files of mode 0600,
never to the terminal: every command here prints paths, names and statuses only."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fedspec.cli.context import State
from fedspec.cli.options import JsonOption, ProfileArgument
from fedspec.console.output import console, emit_json

if TYPE_CHECKING:
    from fedspec.app.servers import ServerCredentials
    from registry.server_auth import Admin

app = typer.Typer(
    help="Credentials for the Prefect and MLflow servers; MLflow users and permissions.",
    no_args_is_help=True,
)

DirOption = Annotated[
    Path | None,
    typer.Option("--dir", help="The credentials folder", show_default="<home>/servers"),
]
MlflowOption = Annotated[
    str | None,
    typer.Option(
        "--mlflow",
        envvar="MLFLOW_TRACKING_URI",
        help="The MLflow server, e.g. https://mlflow.example:5000",
    ),
]


def _folder(state: State, given: Path | None) -> Path:
    # Deferred: the command line starts without it.
    from fedspec.app.servers import default_folder

    return given if given is not None else default_folder(state.settings.home)


def _admin(
    state: State, folder: Path | None, mlflow: str | None
) -> tuple[Admin, ServerCredentials]:
    # Deferred: the command line starts without them.
    from fedspec.app.servers import load
    from registry.server_auth import Admin

    url = _server_url(mlflow, "--mlflow")
    creds = load(_folder(state, folder))
    return Admin(url, creds.mlflow_admin, creds.mlflow_admin_password), creds


def _server_url(value: str | None, option: str) -> str:
    """An http(s) URL with a host: anything else would reach MLflow's local stores (a path
    is a file store) instead of a server."""
    # Deferred: the command line starts without it.
    from urllib.parse import urlparse

    text = value or ""
    parsed = urlparse(text)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or text != text.strip():
        variable = "MLFLOW_TRACKING_URI" if option == "--mlflow" else "PREFECT_API_URL"
        raise typer.BadParameter(
            f"an http(s) URL of the server (or set {variable})", param_hint=option
        )
    return text


@app.command("credentials")
def credentials(
    ctx: typer.Context,
    orgs: Annotated[
        list[str] | None,
        typer.Option("--org", help="An organization (repeat); default: the consortium's members"),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "--dir", help="The credentials folder", show_default="<home>/servers"
        ),
    ] = None,
    auth_db: Annotated[
        Path | None,
        typer.Option(
            "--auth-db",
            help="Where the MLflow server keeps its users (a path on the server's host)",
            show_default="<dir>/mlflow-auth.db",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing set (new secrets for everyone)")
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """Generate this deployment's server credentials (mode 0600, never printed)."""
    # Deferred: the command line starts without it.
    from fedspec.app.servers import (
        ADMIN_ENV,
        MLFLOW_SERVER_ENV,
        PREFECT_SERVER_ENV,
        generate,
        load,
    )

    state: State = ctx.obj
    names = list(orgs or []) or _consortium_members(state)
    folder = generate(_folder(state, out), names, auth_db=auth_db, force=force)
    creds = load(folder)
    files = {
        "prefect server": str(folder / PREFECT_SERVER_ENV),
        "mlflow server": str(folder / MLFLOW_SERVER_ENV),
        "consortium admin": str(folder / ADMIN_ENV),
        **{org: str(creds.member_env(org)) for org in creds.orgs},
    }
    if json_out:
        emit_json({"folder": str(folder), "files": files})
        return
    console.print(f"server credentials in {folder} (mode 0600; hand each file to its holder only)")
    for holder, path in files.items():
        console.print(f"  {holder}: {path}")
    console.print(
        "next: start the servers with their env files, then "
        "[bold]fedspec servers setup --mlflow URL[/]"
    )


@app.command("setup")
def setup(
    ctx: typer.Context,
    mlflow: MlflowOption = None,
    folder: DirOption = None,
    json_out: JsonOption = False,
) -> None:
    """Create each organization's MLflow user (or set its new password), as the admin."""
    # Deferred: the command line starts without it.
    from registry.server_auth import create_users

    admin, creds = _admin(ctx.obj, folder, mlflow)
    with _as_admin(admin):
        done = create_users(admin, creds.org_passwords)
    if json_out:
        emit_json({"mlflow": admin.tracking_uri, "users": done})
        return
    for user, status in done.items():
        console.print(f"MLflow user {user}: {status}")


@app.command("grant")
def grant(
    ctx: typer.Context,
    profile_id: ProfileArgument,
    mlflow: MlflowOption = None,
    folder: DirOption = None,
    json_out: JsonOption = False,
) -> None:
    """As the admin, before PROFILE's first round: its model and experiments, EDIT per org.

    Creates the registered model PROFILE and each organization's experiment
    fedspec/PROFILE/<org> where missing, and grants each organization EDIT on the model and on
    its own experiment (replacing the MANAGE MLflow gives whoever created one)."""
    # Deferred: the command line starts without it.
    from registry.server_auth import grant_profile

    admin, creds = _admin(ctx.obj, folder, mlflow)
    orgs = creds.orgs
    with _as_admin(admin):
        made = grant_profile(admin, profile_id, orgs)
    if json_out:
        emit_json({"profile": profile_id, "resources": made, "edit": orgs})
        return
    for resource in made:
        console.print(f"{resource}: ready")
    console.print(f"EDIT granted to {', '.join(orgs)}; deleting versions: admin only")


@app.command("check")
def check(
    mlflow: MlflowOption = None,
    prefect: Annotated[
        str | None,
        typer.Option(
            "--prefect",
            envvar="PREFECT_API_URL",
            help="The Prefect API, e.g. https://prefect.example:4200/api",
        ),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Whether this member's credentials (its sourced members/<org>.env) open both servers."""
    # Deferred: the command line starts without them.
    from flows.server_check import check_prefect
    from registry.server_auth import check_login

    member = os.environ.get("MLFLOW_TRACKING_USERNAME", "")
    checked: dict[str, str] = {}
    if prefect:
        prefect = _server_url(prefect, "--prefect")
        check_prefect(prefect, os.environ.get("PREFECT_API_AUTH_STRING"), member=member)
        checked["prefect"] = prefect
    if mlflow:
        mlflow = _server_url(mlflow, "--mlflow")
        check_login(mlflow)
        checked["mlflow"] = mlflow
    if not checked:
        raise typer.BadParameter("name --prefect or --mlflow (or set their variables)")
    if json_out:
        emit_json({"member": member, "accepted": checked})
        return
    for server, url in checked.items():
        console.print(f"{server} at {url}: member {member or '(none)'} accepted")


def _consortium_members(state: State) -> list[str]:
    # Deferred: the command line starts without it.
    from fedspec.errors import FedspecError
    from ledger_client import Consortium

    try:
        return [o.name for o in Consortium.load(state.settings.ledger.consortium_dir).members]
    except FedspecError:  # no consortium here: the caller says which organizations (--org)
        return []


@contextmanager
def _as_admin(admin: Admin) -> Iterator[None]:
    """The admin's refusal as one line that says which file to fix: the admin's password is
    the server's only where the server was started with this folder's files."""
    # Deferred: the command line starts without them.
    from fedspec.app.servers import MLFLOW_ADMIN, ServerAuthError
    from fedspec.errors import ErrorCode
    from registry.errors import TrackingAuthError

    try:
        yield
    except TrackingAuthError as exc:
        if exc.code != ErrorCode.TRACKING_UNAUTHORIZED:
            raise
        raise ServerAuthError(
            f"MLflow at {admin.tracking_uri} refused the admin {MLFLOW_ADMIN!r} "
            f"({exc.details.get('status')} on {exc.details.get('endpoint')}): start the server "
            "with this folder's mlflow-server.env (MLFLOW_AUTH_CONFIG_PATH); a user database "
            "made earlier keeps the admin password it was made with",
            member=MLFLOW_ADMIN,
            endpoint=exc.details.get("endpoint"),
        ) from exc
