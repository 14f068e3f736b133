"""What the flows record in MLflow, in the layout of :mod:`registry.tracking`.

Thin compositions over :mod:`registry` (which owns the MLflow layout and integrity checks):
the round's parent run opened and closed with its summary, a node's child run, the round's
evaluation and exclusions, and the registered version tagged with its ledger transaction.

Every MLflow call is a request to the tracking server and a transaction of its store, paid
by every node every round: what one step of a round records goes in one call where MLflow
has one (params, metrics and tags in one ``log_batch``, a node's files in one
``log_artifacts``, a new run's tags in its ``create_run``). A node makes, per round: one
``create_run``, one ``log_batch`` and one ``log_artifacts`` for its update (its
:class:`RunRecord`), one ``set_terminated``, and after the round one ``log_batch`` of its
local evaluation, besides the downloads of the base model and the round's model, which the
agents of one process share (``registry.fetch_model_bytes(..., shared=True)``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import registry
from flows.timing import span
from registry import configure as _configure
from registry.artifacts import artifact_uri, log_files
from registry.tracking import client as tracking_client
from registry.tracking import create_node_run, ensure_experiment, reopen_run, writer
from registry.tracking import log_batch as _log_batch

# On a coordinator's own round run (see coordinator_run): the round's run it stands for.
ROUND_RUN_TAG = "fedspec.round_run"

F = TypeVar("F", bound=Callable[..., Any])


def _mlflow(fn: F) -> F:
    """``fn``, recorded as an "mlflow" span of the round benchmark (flows.timing)."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        with span("mlflow"):
            return fn(*args, **kwargs)

    return cast(F, call)


end_run = _mlflow(registry.end_run)
fetch_bytes = _mlflow(registry.fetch_bytes)
log_bytes = _mlflow(registry.log_bytes)
log_json = _mlflow(registry.log_json)
log_metrics = _mlflow(registry.log_metrics)
log_params = _mlflow(registry.log_params)
log_batch = _mlflow(_log_batch)
log_table = _mlflow(registry.log_table)
set_tags = _mlflow(registry.set_tags)
start_round_run = _mlflow(registry.start_round_run)

__all__ = [
    "NodeRun",
    "RunRecord",
    "configure",
    "coordinator_run",
    "end_round_run",
    "end_run",
    "fetch_bytes",
    "log_batch",
    "log_bytes",
    "log_json",
    "log_metrics",
    "log_node_evaluation",
    "log_params",
    "log_round_evaluation",
    "set_tags",
    "start_node_run",
    "start_round_run",
    "write_record",
]


def configure(tracking_uri: str, artifact_root: Path) -> None:
    """This process's tracking store; a local directory holds artifacts of a SQLite store."""

    local = tracking_uri.startswith(("sqlite:", "file:")) or "://" not in tracking_uri
    _configure(tracking_uri, artifact_root=artifact_root if local else None)


@dataclass(frozen=True)
class NodeRun:
    """A node's run in a round, and what the node keeps of it in its private state."""

    parent_run_id: str
    run_id: str

    @property
    def kept(self) -> bytes:
        return f"{self.parent_run_id} {self.run_id}".encode()


@_mlflow
def start_node_run(
    parent_run_id: str | None,
    profile_id: str,
    round_no: int,
    node: str,
    *,
    kept: bytes | None = None,
) -> NodeRun:
    """The node's child run under the round's run (the round's found or opened, so a node
    started on its own still lands under its round): the run ``kept`` names (a retried node:
    reopened) if it is under the same round's run, else a new one. A node keeps its run in
    its private state (``NodeRun.kept``) rather than search the store for it: one call
    fewer per node per round; and its ``node`` param goes with its :class:`RunRecord`."""
    parent = parent_run_id or start_round_run(profile_id, round_no)
    kept_parent, _, kept_run = (kept or b"").decode().partition(" ")
    if kept_run and kept_parent == parent:
        reopen_run(kept_run)
        return NodeRun(parent, kept_run)
    return NodeRun(parent, create_node_run(parent, node, profile_id=profile_id, round_no=round_no))


@dataclass
class RunRecord:
    """What a step records in a run, gathered while it runs and written when it ends by
    :func:`write_record`: params, metrics (at step 0) and tags in one MLflow ``log_batch``,
    files in one ``log_artifacts``, each at its path with its bytes."""

    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)

    def add_file(self, run_id: str, artifact_path: str, data: bytes) -> str:
        """Keep ``data`` for the run's ``artifact_path``; returns the ``runs:/`` URI it will
        have once written (nothing may point at it before :func:`write_record`)."""
        uri = artifact_uri(run_id, artifact_path)
        self.files[artifact_path] = data
        return uri


@_mlflow
def write_record(run_id: str, record: RunRecord) -> dict[str, bytes]:
    """Write ``record`` into the run: at most one ``log_batch`` and one ``log_artifacts``.
    Returns the files written, by their ``runs:/`` URIs."""
    uris = log_files(run_id, record.files)
    _log_batch(run_id, params=record.params, metrics=record.metrics, tags=record.tags)
    return {uris[path]: data for path, data in record.files.items()}


@_mlflow
def coordinator_run(parent_run_id: str | None, profile_id: str, round_no: int) -> str:
    """The run a coordinator writes its round into (params, evaluation, the registered
    model's artifacts): the round's run where this process may write it (a store without
    logins, or the round opened by this organization), else a round run in this
    organization's own experiment, tagged with the round's run. MLflow lets an organization
    write only its own experiment's runs, and the round's run is in the experiment of the
    organization that scheduled the round (the training flow's), not the coordinator's."""
    if parent_run_id is None:
        return registry.start_round_run(profile_id, round_no)
    if not writer():
        return parent_run_id
    own = ensure_experiment(profile_id)
    if str(tracking_client().get_run(parent_run_id).info.experiment_id) == own:
        return parent_run_id
    return registry.start_round_run(profile_id, round_no, tags={ROUND_RUN_TAG: parent_run_id})


@_mlflow
def log_node_evaluation(node_run_id: str, metrics: Mapping[str, float]) -> None:
    """The round's model on the node's own validation split, in the node's run."""
    log_metrics(node_run_id, {f"local_valid_{k}": float(v) for k, v in metrics.items()})


@_mlflow
def log_round_evaluation(
    run_id: str,
    round_no: int,
    metrics: Mapping[str, float],
    *,
    included: list[str],
    excluded: list[dict[str, str]],
    alias: str,
    alias_reason: str,
    seconds: Mapping[str, float],
) -> None:
    """The global model's evaluation and who was left out (and why) on the round's run:
    metrics and tags in one ``log_batch``, then the table of who was left out, if any."""
    _log_batch(
        run_id,
        metrics={
            **metrics,
            **{f"seconds_{k}": v for k, v in seconds.items()},
            "participants_included": len(included),
            "participants_excluded": len(excluded),
        },
        # Params are immutable; who was excluded is a fact found during the round: tags.
        tags={
            "fedspec.included": ",".join(included),
            "fedspec.excluded": ",".join(e["node"] for e in excluded),
            "fedspec.alias": alias,
            "fedspec.alias_reason": alias_reason,
        },
        step=round_no,
    )
    # The metrics are the run's own (MLflow's charts and run comparison show them), and in
    # round.json: no table of the same numbers, which cost four MLflow calls a round on
    # its critical path (list, upload, read the run, tag it: benchmarks/round_time.py).
    if excluded:
        log_table(run_id, "excluded.json", excluded)


@_mlflow
def end_round_run(run_id: str, summary: Mapping[str, Any]) -> None:
    """Close the round's run with its summary (``round.json``): FINISHED if the ledger
    closed the round with a model, FAILED otherwise."""
    log_json(run_id, "round.json", dict(summary))
    set_tags(
        run_id,
        {"fedspec.status": summary.get("status", ""), "fedspec.model": summary.get("model", "")},
    )
    end_run(run_id, status="FINISHED" if summary.get("status") == "closed" else "FAILED")
