"""Tracking layout: one experiment per profile, a parent run per round, a child run per node.

On a server with credentials (``MLFLOW_TRACKING_USERNAME`` set: one MLflow user per
organization, docs/deploy.md "Servers with credentials"), each user writes only into its own
experiment of the profile, ``fedspec/<profile>/<user>``: MLflow's permissions are per
experiment (a run's are its experiment's), so another organization, which holds READ there,
can read those runs but neither change nor delete them. The round's parent run lives in the
coordinator's experiment, a node's run in its own organization's; reads (``node_runs``,
``find_round_run``) look in every experiment of the profile. Without a user, one shared
experiment ``fedspec/<profile>`` as before.

Every function takes run ids explicitly and talks to MLflow through an ``MlflowClient``, never
through MLflow's fluent "active run", which is thread-local: Prefect runs tasks in other
threads and other processes, and a node's child run may be opened by a worker that knows
only the parent run id.

Embedded default: ``configure_embedded(dir)`` (SQLite ``dir/mlflow.db``, artifacts under
``dir/artifacts``). Distributed: ``configure("http://host:5000")`` against an ``mlflow
server`` with proxied artifacts (``mlflow-artifacts:``). Same code either way. Each process
calls ``configure`` once (or sets ``MLFLOW_TRACKING_URI``); the setting is process-wide,
because MLflow's own URI resolution (``models:/`` URIs, model loading) is process-wide.
"""

from __future__ import annotations

import functools
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from registry.errors import NotConfiguredError, RegistryError, TrackingAuthError, TrackingError

if TYPE_CHECKING:
    from mlflow import MlflowClient

RunStatus = Literal["FINISHED", "FAILED", "KILLED"]

EXPERIMENT_PREFIX = "fedspec/"
TAG_KIND = "fedspec.kind"  # "round" or "node"
TAG_PROFILE = "fedspec.profile"
TAG_ROUND = "fedspec.round"
TAG_NODE = "fedspec.node"
TAG_PARENT = "mlflow.parentRunId"  # MLflow's own nesting tag: the UI draws the tree from it

_MAX_PARAM_CHARS = 6000  # MLflow refuses longer param values
_PARAMS_PER_BATCH = 100  # MLflow's log_batch limits: params and tags each,
_METRICS_PER_BATCH = 1000  # metrics,
_ENTITIES_PER_BATCH = 1000  # and all three together


@dataclass(frozen=True)
class TrackingConfig:
    """Where runs and registered models live. ``artifact_root`` (a ``file:`` URI) is where
    new experiments put their artifacts; ``None`` leaves it to the server (proxied
    ``mlflow-artifacts:``)."""

    tracking_uri: str
    artifact_root: str | None = None


_lock = threading.Lock()
_state: dict[str, TrackingConfig] = {}  # "config" → this process's store
_experiments: dict[tuple[str, str, str], str] = {}
# MLflow's REST client names the endpoint and the HTTP status in its exception's message.
_REFUSAL = re.compile(r"endpoint (\S+) failed with error code (\d{3})")


def configure(tracking_uri: str, *, artifact_root: str | Path | None = None) -> TrackingConfig:
    """Point this process at a tracking store (``sqlite:////abs/mlflow.db`` or an HTTP URL).

    ``artifact_root`` is a local directory for the artifacts of experiments this process
    creates (needed with SQLite, whose default is ``./mlruns`` under the working directory).
    """
    # Deferred: loads mlflow only when used.
    import mlflow

    root = None
    if artifact_root is not None:
        root = (
            Path(artifact_root).absolute().as_uri()
            if _is_path(artifact_root)
            else str(artifact_root)
        )
    config = TrackingConfig(tracking_uri=tracking_uri, artifact_root=root)
    # MLflow resolves models:/ URIs and loads models through its process-wide URIs.
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    # Download progress bars would interleave with flow logs.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if tracking_uri.startswith("sqlite:"):
        # MLflow's SQL store opens a second session inside some calls (create_run reads the
        # experiment inside its own session), so with its default pool (5 + 10 overflow)
        # fifteen threads creating runs at once each hold one connection and wait for
        # another: every one times out after 30 s. A round of 25 nodes in one process
        # failed so. Without a pool a SQLite connection is opened per session (cheap, and
        # SQLite serializes writers itself); read when the store for a URI is first built.
        os.environ.setdefault("MLFLOW_SQLALCHEMYSTORE_POOLCLASS", "NullPool")
    with _lock:
        # Experiment ids stay cached while the store does: every node agent of a process
        # configures the same store again, and would otherwise look its experiment up anew.
        if _state.get("config") != config:
            _experiments.clear()
        _state["config"] = config
    return config


def configure_embedded(directory: str | Path) -> TrackingConfig:
    """SQLite store ``directory/mlflow.db`` with artifacts under ``directory/artifacts``."""
    base = Path(directory).absolute()
    (base / "artifacts").mkdir(parents=True, exist_ok=True)
    return configure(f"sqlite:///{base / 'mlflow.db'}", artifact_root=base / "artifacts")


def current_config() -> TrackingConfig:
    """The configured store, else ``MLFLOW_TRACKING_URI``; raises ``NotConfiguredError``."""
    if "config" in _state:
        return _state["config"]
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise NotConfiguredError("no tracking store: call registry.configure(...) first")
    return configure(uri)


# SQLite takes one writer at a time, and MLflow's SQL store reads and then writes inside one
# session (create_run reads the experiment, then inserts the run): two such sessions can each
# hold the read lock the other's write waits for, and SQLite then answers "database is
# locked" at once instead of waiting (its deadlock rule: busy_timeout does not apply). Five
# profiles of 25 node agents in one process (benchmarks/scale.py) failed so. The calls of
# one process on a SQLite store therefore take turns; processes sharing the file still rely
# on SQLite's own waiting, and a server store (HTTP) is left to the server.
_sqlite_turn = threading.RLock()


class _TakingTurns:
    """An ``MlflowClient`` whose calls take turns with this process's other calls."""

    def __init__(self, inner: MlflowClient) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr
        method = cast("Callable[..., Any]", attr)

        @functools.wraps(method)
        def in_turn(*args: Any, **kwargs: Any) -> Any:
            with _sqlite_turn:
                return method(*args, **kwargs)

        return in_turn


def client() -> MlflowClient:
    """A client bound to the configured store (cheap: MLflow caches the store per URI); on a
    SQLite store its calls take turns within this process (see ``_sqlite_turn``)."""
    # Deferred: loads mlflow only when used.
    from mlflow import MlflowClient

    config = current_config()
    inner = MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.tracking_uri)
    if config.tracking_uri.startswith("sqlite:"):
        return cast("MlflowClient", _TakingTurns(inner))
    return inner


def writer() -> str:
    """The MLflow user this process logs in as (``MLFLOW_TRACKING_USERNAME``); ``""`` on a
    store without credentials."""
    return os.environ.get("MLFLOW_TRACKING_USERNAME", "").strip()


def experiment_name(profile_id: str, user: str = "") -> str:
    """``fedspec/<profile>``, or ``fedspec/<profile>/<user>``: the experiment ``user`` writes."""
    return f"{EXPERIMENT_PREFIX}{profile_id}" + (f"/{user}" if user else "")


def ensure_experiment(profile_id: str) -> str:
    """The id of the experiment this process writes the profile's runs to, created on first
    use: ``fedspec/<profile_id>``, or ``fedspec/<profile_id>/<user>`` with credentials."""
    config = current_config()
    user = writer()
    key = (config.tracking_uri, profile_id, user)
    if key in _experiments:
        return _experiments[key]
    name = experiment_name(profile_id, user)
    with translate(f"experiment {name}"):
        mlflow_client = client()
        found = mlflow_client.get_experiment_by_name(name)
        if found is not None:
            experiment_id = str(found.experiment_id)
            if found.lifecycle_stage == "deleted":  # deleted in the UI: runs could not start
                mlflow_client.restore_experiment(experiment_id)
        else:
            location = None
            if config.artifact_root is not None:
                suffix = f"{profile_id}/{user}" if user else profile_id
                location = f"{config.artifact_root.rstrip('/')}/{suffix}"
            experiment_id = _create_experiment(name, location, profile_id)
    _experiments[key] = experiment_id
    return experiment_id


def profile_experiments(profile_id: str) -> list[str]:
    """Every experiment holding the profile's runs: the one this process writes, and with
    credentials every other organization's ``fedspec/<profile_id>/<org>`` it may read."""
    own = ensure_experiment(profile_id)
    if not writer():
        return [own]
    base = experiment_name(profile_id)
    with translate(f"experiments of {base}"):
        # LIKE's "_" matches any character: the exact prefix is checked below.
        found = client().search_experiments(filter_string=f"name LIKE '{_quote(base)}/%'")
    others = [str(e.experiment_id) for e in found if e.name.startswith(f"{base}/")]
    return [own, *sorted(set(others) - {own})]


def _create_experiment(name: str, location: str | None, profile_id: str) -> str:
    # Deferred: loads mlflow only when used.
    from mlflow.exceptions import MlflowException

    mlflow_client = client()
    try:
        return str(
            mlflow_client.create_experiment(
                name, artifact_location=location, tags={TAG_PROFILE: profile_id}
            )
        )
    except MlflowException:
        # Another process created it between our lookup and our create.
        found = mlflow_client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)


def start_round_run(
    profile_id: str,
    round_no: int,
    *,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
) -> str:
    """Open (or reopen, on a retry) the parent run of ``round_no``; returns its run id.

    Idempotent: a second call for the same profile and round returns the same run, marked
    running again, so a retried flow does not scatter one round over several runs.
    """
    experiment_id = ensure_experiment(profile_id)
    run_tags = {TAG_KIND: "round", TAG_PROFILE: profile_id, TAG_ROUND: str(round_no)}
    found = _find_run(
        experiment_id,
        f"tags.`{TAG_KIND}` = 'round' and tags.`{TAG_ROUND}` = '{round_no}'",
    )
    if found is None:  # a new run carries its tags from the start: one call fewer
        extra = flatten(tags or {})  # over the layout's, as when they were set afterwards
        run_id = _create_run(experiment_id, f"round-{round_no:04d}", {**run_tags, **extra})
        log_batch(run_id, params=params)
        return run_id
    reopen_run(found)
    log_batch(found, params=params, tags=tags)
    return found


def start_node_run(
    parent_run_id: str,
    node_id: str,
    *,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
) -> str:
    """Open (or reopen) the child run of ``node_id`` under ``parent_run_id``; returns its id.

    Needs only the parent's run id: a worker in another thread or process can call it.
    """
    with translate(f"parent run {parent_run_id}"):
        parent = client().get_run(parent_run_id)
    experiment_id = str(parent.info.experiment_id)
    profile_id = parent.data.tags.get(TAG_PROFILE)
    if writer() and profile_id:
        # The parent may be another organization's (the coordinator's): ours is where we write.
        experiment_id = ensure_experiment(profile_id)
    inherited = {k: v for k, v in parent.data.tags.items() if k in (TAG_PROFILE, TAG_ROUND)}
    run_tags = {**inherited, TAG_KIND: "node", TAG_NODE: node_id, TAG_PARENT: parent_run_id}
    safe_node = node_id.replace("'", "")
    found = _find_run(
        experiment_id,
        f"tags.`{TAG_PARENT}` = '{parent_run_id}' and tags.`{TAG_NODE}` = '{safe_node}'",
    )
    run_id = found or _create_run(experiment_id, f"node-{node_id}", run_tags)
    if found:
        reopen_run(found)
    log_batch(run_id, params=params, tags=tags)
    return run_id


def create_node_run(parent_run_id: str, node_id: str, *, profile_id: str, round_no: int) -> str:
    """A new child run of ``node_id`` under ``parent_run_id`` (of round ``round_no`` of
    ``profile_id``), tagged as :func:`start_node_run` tags it, in one MLflow call.

    For a caller that knows its parent's profile and round and that it has no run yet (the
    node agent keeps its run's id in its private state and reopens it on a retry with
    :func:`reopen_run`): it reads neither the parent run nor searches for an earlier run,
    two calls per node per round that :func:`start_node_run` pays to find or open. The
    round's run is in this experiment too (:func:`start_round_run` opens it in
    :func:`ensure_experiment`'s, whose id is cached per process), or, with credentials, the
    node writes into its own organization's, as :func:`start_node_run` does.
    """
    run_tags = {
        TAG_PROFILE: profile_id,
        TAG_ROUND: str(round_no),
        TAG_KIND: "node",
        TAG_NODE: node_id,
        TAG_PARENT: parent_run_id,
    }
    return _create_run(ensure_experiment(profile_id), f"node-{node_id}", run_tags)


def reopen_run(run_id: str) -> None:
    """Mark a run RUNNING again (a retried round or node writes on into its earlier run)."""
    with translate(f"run {run_id}"):
        client().update_run(run_id, status="RUNNING")


def end_run(run_id: str, *, status: RunStatus = "FINISHED") -> None:
    with translate(f"run {run_id}"):
        client().set_terminated(run_id, status=status)


@contextmanager
def round_run(
    profile_id: str,
    round_no: int,
    *,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
) -> Iterator[str]:
    """``with round_run(...) as run_id``: FINISHED on exit, FAILED if the body raised."""
    run_id = start_round_run(profile_id, round_no, params=params, tags=tags)
    with _terminating(run_id):
        yield run_id


@contextmanager
def node_run(
    parent_run_id: str,
    node_id: str,
    *,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
) -> Iterator[str]:
    """``with node_run(parent_run_id, node) as run_id``: FINISHED, or FAILED on an error."""
    run_id = start_node_run(parent_run_id, node_id, params=params, tags=tags)
    with _terminating(run_id):
        yield run_id


@contextmanager
def _terminating(run_id: str) -> Iterator[None]:
    try:
        yield
    except BaseException as exc:
        end_run(run_id, status="KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    end_run(run_id)


def find_round_run(profile_id: str, round_no: int) -> str | None:
    """The parent run id of ``round_no`` (the first started, in any organization's
    experiment of the profile), or ``None`` if none was started."""
    return _find_run(
        profile_experiments(profile_id),
        f"tags.`{TAG_KIND}` = 'round' and tags.`{TAG_ROUND}` = '{round_no}'",
    )


def node_runs(parent_run_id: str) -> dict[str, str]:
    """``{node_id: run_id}`` of the child runs under ``parent_run_id``."""
    with translate(f"run {parent_run_id}"):
        mlflow_client = client()
        parent = mlflow_client.get_run(parent_run_id)
    profile_id = parent.data.tags.get(TAG_PROFILE)
    experiments = [str(parent.info.experiment_id)]
    if writer() and profile_id:  # each organization's node runs are in its own experiment
        experiments = sorted({*experiments, *profile_experiments(profile_id)})
    with translate(f"run {parent_run_id}"):
        runs = mlflow_client.search_runs(experiments, f"tags.`{TAG_PARENT}` = '{parent_run_id}'")
    return {r.data.tags.get(TAG_NODE, r.info.run_id): r.info.run_id for r in runs}


def log_batch(
    run_id: str,
    *,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    tags: Mapping[str, Any] | None = None,
    step: int | None = None,
) -> None:
    """Params, metrics (at ``step``, one timestamp) and tags together, in as few MLflow
    ``log_batch`` calls as its limits allow: one for what a step of a round records (every
    call is a request and a transaction of the store, paid by every node every round).
    Params and tags as :func:`log_params` and :func:`set_tags` write them; nothing to write
    makes no call."""
    # Deferred: loads mlflow only when used.
    from mlflow.entities import Metric, Param, RunTag

    stamp = int(time.time() * 1000)
    param_items = [Param(k, v) for k, v in sorted(flatten(params or {}).items())]
    tag_items = [RunTag(k, v) for k, v in sorted(flatten(tags or {}).items())]
    metric_items = [
        Metric(k, float(v), stamp, step or 0) for k, v in sorted((metrics or {}).items())
    ]
    with translate(f"params, metrics and tags of run {run_id}"):
        while param_items or tag_items or metric_items:
            these_params, param_items = _split(param_items, _PARAMS_PER_BATCH)
            these_tags, tag_items = _split(tag_items, _PARAMS_PER_BATCH)
            room = min(
                _METRICS_PER_BATCH, _ENTITIES_PER_BATCH - len(these_params) - len(these_tags)
            )
            these_metrics, metric_items = _split(metric_items, room)
            client().log_batch(run_id, metrics=these_metrics, params=these_params, tags=these_tags)


def log_params(run_id: str, params: Mapping[str, Any]) -> None:
    """Log params; nested mappings are flattened with dots (``privacy.mode``), other
    non-strings are written as JSON. Re-logging an equal value is fine; a different value
    for a logged key raises ``TrackingError`` (MLflow params are immutable)."""
    log_batch(run_id, params=params)


def log_metrics(run_id: str, metrics: Mapping[str, float], *, step: int | None = None) -> None:
    """Log metrics at ``step`` (flows use the round number), one timestamp for the batch."""
    log_batch(run_id, metrics=metrics, step=step)


def set_tags(run_id: str, tags: Mapping[str, Any]) -> None:
    """Set run tags (mutable, unlike params); values are written as strings."""
    log_batch(run_id, tags=tags)


def log_table(run_id: str, artifact_file: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Log rows as an MLflow table artifact (``*.json``; the UI's artifact view shows a grid)."""
    # Deferred: loads pandas only when used.
    import pandas as pd

    with translate(f"table {artifact_file} of run {run_id}"):
        client().log_table(run_id, data=pd.DataFrame(list(rows)), artifact_file=artifact_file)


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"privacy": {"mode": "none"}}`` → ``{"privacy.mode": "none"}``; values as strings."""
    flat: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            if len(text) > _MAX_PARAM_CHARS:
                raise TrackingError(f"value of {name!r} is over {_MAX_PARAM_CHARS} characters")
            flat[name] = text
    return flat


@contextmanager
def translate(what: str) -> Iterator[None]:
    """Turn MLflow and connection failures into ``TrackingError`` (ours pass through)."""
    # Deferred: loads mlflow only when used.
    from mlflow.exceptions import MlflowException

    try:
        yield
    except RegistryError:
        raise
    except MlflowException as exc:
        refusal = _REFUSAL.search(str(exc))
        if refusal and "Invalid Host header" in str(exc):
            # MLflow 3's DNS-rebinding guard answers 403 too, before any login is read.
            raise TrackingError(
                f"{what}: MLflow at {_configured_uri()} refused the Host header of "
                f"{refusal.group(1)} (403): start the server with --allowed-hosts naming the "
                "host:port its clients dial (it answers only localhost by default)"
            ) from exc
        if refusal and refusal.group(2) in ("401", "403"):
            raise _auth_error(what, refusal.group(1), int(refusal.group(2))) from exc
        raise TrackingError(f"{what}: {type(exc).__name__}: {exc}") from exc
    except OSError as exc:
        raise TrackingError(f"{what}: {type(exc).__name__}: {exc}") from exc


def _auth_error(what: str, endpoint: str, status: int) -> TrackingAuthError:
    """One line naming the user, the server, the endpoint and what to fix; no secret."""
    user = writer()
    uri = _configured_uri()
    where = f"MLflow{f' at {uri}' if uri else ''} ({status} on {endpoint})"
    if status == 401:
        fix = (
            f"it refused the login of user {user!r}: source this member's current "
            f"<home>/servers/members/{user}.env (from `fedspec servers credentials`; ask the "
            "operator if the set was replaced)"
            if user
            else "it needs a login: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
            "(source <home>/servers/members/<org>.env)"
        )
    else:
        fix = (
            f"user {user!r} may not do this: an organization writes only its own experiment "
            f"{EXPERIMENT_PREFIX}<profile>/<org> and adds versions to a registered model the "
            "consortium admin granted it (fedspec servers grant <profile>)"
        )
    return TrackingAuthError(
        f"{what}: {where}: {fix}",
        forbidden=status == 403,
        user=user,
        endpoint=endpoint,
        status=status,
    )


def _configured_uri() -> str:
    config = _state.get("config")
    return config.tracking_uri if config else os.environ.get("MLFLOW_TRACKING_URI", "")


def _quote(value: str) -> str:
    return value.replace("'", "\\'")


def _find_run(experiment_ids: str | list[str], filter_string: str) -> str | None:
    ids = [experiment_ids] if isinstance(experiment_ids, str) else experiment_ids
    with translate(f"search in experiment {', '.join(ids)}"):
        runs = client().search_runs(
            ids, filter_string, max_results=1, order_by=["attributes.start_time ASC"]
        )
    return str(runs[0].info.run_id) if runs else None


def _create_run(experiment_id: str, name: str, tags: Mapping[str, str]) -> str:
    with translate(f"new run {name}"):
        run = client().create_run(experiment_id, run_name=name, tags=dict(tags))
    return str(run.info.run_id)


def _split(items: list[Any], size: int) -> tuple[list[Any], list[Any]]:
    return items[:size], items[size:]


def _is_path(value: str | Path) -> bool:
    return isinstance(value, Path) or "://" not in value
