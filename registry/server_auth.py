"""Users and permissions on an MLflow server that runs the basic-auth app, set by its admin.

MLflow's permissions are per experiment and per registered model (READ, USE, EDIT, MANAGE);
a run's are its experiment's. The layout of :mod:`registry.tracking` gives each organization
its own experiment per profile (``fedspec/<profile>/<org>``), and the server's
``default_permission = READ`` lets every other organization read it and nothing more:

==============================  ==========================  ==============================
resource                        its organization            every other organization
==============================  ==========================  ==============================
experiment ``fedspec/P/<org>``  EDIT (create, log, end)     READ
registered model ``P``          EDIT (add versions, tags,   EDIT (the same); deleting a
                                move aliases)               version or the model: admin only
==============================  ==========================  ==============================

The admin creates both before the profile's first round (:func:`grant_profile`), because
MLflow gives whoever creates an experiment or a registered model MANAGE on it (delete, grant):
a registered model first created by one organization's coordinator would let that
organization delete the others' versions. Granting EDIT afterwards replaces that MANAGE.

Everything here goes through MLflow's own auth client (``get_app_client("basic-auth")``) and
``MlflowClient``, logged in as the admin for the duration of one call.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from registry.tracking import EXPERIMENT_PREFIX, TAG_PROFILE, experiment_name, translate

EDIT = "EDIT"
_LOGIN = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


@dataclass(frozen=True)
class Admin:
    """The MLflow admin's login; never printed."""

    tracking_uri: str
    username: str
    password: str

    def __repr__(self) -> str:  # a traceback or a log line must not show the password
        return f"Admin(tracking_uri={self.tracking_uri!r}, username={self.username!r})"


@contextmanager
def _logged_in(admin: Admin) -> Iterator[None]:
    # MLflow's clients read the login from the environment at each request: set it for this
    # block only, then restore what this process had (a member's own login, or none).
    saved = {key: os.environ.get(key) for key in _LOGIN}
    os.environ.update(dict(zip(_LOGIN, (admin.username, admin.password), strict=True)))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def create_users(admin: Admin, passwords: Mapping[str, str]) -> dict[str, str]:
    """Create each organization's MLflow user, or set its password if it exists (new
    credentials after ``fedspec servers credentials --force``); ``{user: "created"|"updated"}``.
    """
    # Deferred: loads mlflow only when used.
    from mlflow.exceptions import MlflowException
    from mlflow.server import get_app_client

    done: dict[str, str] = {}
    with _logged_in(admin):
        auth = get_app_client("basic-auth", tracking_uri=admin.tracking_uri)
        for user, password in sorted(passwords.items()):
            with translate(f"MLflow user {user}"):
                try:
                    auth.create_user(user, password)
                    done[user] = "created"
                except MlflowException as exc:
                    if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                        raise
                    auth.update_user_password(user, password)
                    done[user] = "updated"
    return done


def grant_profile(admin: Admin, profile_id: str, orgs: list[str]) -> dict[str, str]:
    """Create the profile's registered model and each organization's experiment (where they
    do not exist) as the admin, and grant each organization EDIT on the registered model and
    on its own experiment; ``{resource: experiment id or model name}``."""
    # Deferred: loads mlflow only when used.
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.server import get_app_client

    made: dict[str, str] = {}
    with _logged_in(admin):
        mlflow_client = MlflowClient(
            tracking_uri=admin.tracking_uri, registry_uri=admin.tracking_uri
        )
        auth = get_app_client("basic-auth", tracking_uri=admin.tracking_uri)
        with translate(f"registered model {profile_id}"):
            try:
                mlflow_client.create_registered_model(profile_id)
            except MlflowException as exc:
                if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                    raise
            made[f"registered model {profile_id}"] = profile_id
            for org in sorted(orgs):
                _set_permission(auth, org, "registered_model", profile_id)
        for org in sorted(orgs):
            name = experiment_name(profile_id, org)
            with translate(f"experiment {name}"):
                found = mlflow_client.get_experiment_by_name(name)
                experiment_id = (
                    str(found.experiment_id)
                    if found is not None
                    else str(mlflow_client.create_experiment(name, tags={TAG_PROFILE: profile_id}))
                )
                _set_permission(auth, org, "experiment", experiment_id)
            made[f"experiment {name}"] = experiment_id
    return made


def _set_permission(auth: Any, user: str, resource_type: str, resource_id: str) -> None:
    """``user`` holds EDIT on the resource, whatever it held before: the MANAGE that MLflow
    gave its creator is a grant of its own that a second grant does not replace
    (``RESOURCE_ALREADY_EXISTS``), so it is revoked first."""
    # Deferred: loads mlflow only when used.
    from mlflow.exceptions import MlflowException

    try:
        auth.grant_user_permission(user, resource_type, resource_id, EDIT)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        auth.revoke_user_permission(user, resource_type, resource_id)
        auth.grant_user_permission(user, resource_type, resource_id, EDIT)


def check_login(tracking_uri: str) -> str:
    """One read as this process's MLflow user (``MLFLOW_TRACKING_USERNAME``); raises
    ``TrackingAuthError`` naming the endpoint when the server refuses it. Returns the user."""
    # Deferred: loads mlflow only when used.
    from mlflow import MlflowClient

    with translate(f"login check against {tracking_uri}"):
        MlflowClient(tracking_uri=tracking_uri).search_experiments(
            max_results=1, filter_string=f"name LIKE '{EXPERIMENT_PREFIX}%'"
        )
    return os.environ.get("MLFLOW_TRACKING_USERNAME", "")
