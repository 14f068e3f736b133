"""Prefect flows: rounds of a profile, and the node work each organization runs.

``federated_round`` opens a round on the ledger, creates the round's parent run in MLflow,
and dispatches the round to every node that volunteers for the profile:

* ``dispatch="local"`` (the embedded default): node agents run as concurrent tasks of this
  flow, each with its own identity and data directory;
* ``dispatch="deployments"`` (a consortium): each node's agent runs as the ``node-round``
  deployment on its organization's work pool, on that organization's worker, beside its
  data and keys (see ``prefect.yaml``).

Node agents coordinate only through the ledger and MLflow (:mod:`flows.node_agent`), so a
node that fails or times out is simply left out (k-of-n) with its reason recorded, and an
elected coordinator that disappears is replaced after its deadline.
"""

from __future__ import annotations

import contextvars
import dataclasses
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from prefect import flow, get_run_logger, task
from prefect.task_runners import ThreadPoolTaskRunner

from fedspec.app.settings import Settings
from fedspec.errors import ErrorCode
from flows import tracking
from flows.node_agent import NodeOutcome, run_node
from flows.specialization import run_check
from ledger_client import (
    Consortium,
    EndorseError,
    FedspecLedger,
    LedgerError,
    Round,
    UpdateRecord,
    from_fixed,
    open_ledger,
)
from registry import round_params

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

    from flows.local_api import LocalApi

NODE_RETRY_DELAY_S = 2
MARGIN_S = 60  # beyond the profile's own windows, before a node's work is timed out
# A node's work after its round ended on the ledger (fetching the model, its local
# evaluation) is given this long; a flow run still not final then is one whose worker died
# with it (nothing on a Prefect server marks such a run crashed by itself).
AFTER_ROUND_S = 60


def _settings(home: str | None) -> Settings:
    return Settings.load(home)


LOCAL_API_RETRIES = 8


@contextmanager
def local_api_settings(api: LocalApi | None = None) -> Iterator[None]:
    """Flow settings for Prefect's temporary local API (no ``PREFECT_API_URL``): no flow
    heartbeats. Nothing there watches for crashed runs, and a flow's heartbeat thread sleeps
    in 1 s steps that its end waits out: 1.1 s per flow call with it, 0.13 s without,
    measured here — most of a small round's orchestration. A real server keeps them.

    ``api``: the temporary API the command line started ahead (:mod:`flows.local_api`);
    the flows use it instead of starting Prefect's own. Unused (and stopped) where Prefect's
    settings name a server after all, or forbid a temporary one.

    More client retries than Prefect's 5: the temporary API keeps its runs in one SQLite file,
    and when many flow runs start at once (20 profiles' rounds, benchmarks/scale.py) their
    inserts collide ("database is locked", answered 503); Prefect's backoff doubles from 2 s,
    so 5 retries gave up after about a minute, 8 after about eight."""
    # Deferred: loads prefect only when used.
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_CLIENT_MAX_RETRIES,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_SERVER_EPHEMERAL_ENABLED,
        PREFECT_UI_URL,
        temporary_settings,
    )

    if PREFECT_API_URL.value() or (
        api is not None and not PREFECT_SERVER_EPHEMERAL_ENABLED.value()
    ):
        if api is not None:
            api.stop()
        yield
        return
    updates: dict[Any, Any] = {
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
        PREFECT_CLIENT_MAX_RETRIES: max(LOCAL_API_RETRIES, PREFECT_CLIENT_MAX_RETRIES.value()),
    }
    if api is not None:
        # No "View at" links in the logs: the temporary API serves no UI (nor did Prefect's).
        updates.update({PREFECT_API_URL: api.wait(), PREFECT_UI_URL: ""})
    with temporary_settings(updates=updates):
        yield


def open_tracking(home: str | None) -> None:
    """Open the MLflow store the rounds of ``home`` log to, as :func:`federated_round` does
    (a new SQLite store creates its tables: seconds). A command calls it while Prefect's
    temporary API starts in its own process, rather than inside the first round."""
    # Deferred: registry.tracking loads mlflow.
    from registry.tracking import client

    settings = _settings(home)
    tracking.configure(settings.mlflow_tracking_uri, settings.home / "mlflow" / "artifacts")
    client()  # MLflow keeps the store per URI: the round's calls reuse it


def _node_timeout(schedule: dict[str, Any]) -> int:
    return (
        int(schedule["join_window_s"])
        + int(schedule["reveal_window_s"])
        + 2 * int(schedule["coordinator_window_s"])
        + MARGIN_S
    )


# A round's node tasks start once all of them are launched. Each task's thread must get the
# interpreter lock before the launching loop may go on to the next (``Thread.start`` waits
# for it), and at 200 nodes the agents already started kept it busy: the last agent started
# 2.3 s after the first, which every other node then waited for at the reveal
# (benchmarks/scale.py). Nothing can hold the tasks back for long: the launch is a loop of
# submits, and its end sets the event whatever happens.
_launches: dict[tuple[str, int], threading.Event] = {}
_launches_lock = threading.Lock()
LAUNCH_WAIT_S = 60.0


@contextmanager
def _launching(profile_id: str, round_no: int) -> Iterator[None]:
    key, launched = (profile_id, round_no), threading.Event()
    with _launches_lock:
        _launches[key] = launched
    try:
        yield
    finally:
        launched.set()
        with _launches_lock:
            if _launches.get(key) is launched:
                del _launches[key]


def _launched(profile_id: str, round_no: int) -> None:
    """Until this process's launch of the round's node tasks ended (none under way: now)."""
    with _launches_lock:
        launched = _launches.get((profile_id, round_no))
    if launched is not None:
        launched.wait(LAUNCH_WAIT_S)


# Retrying a node is safe: its agent resumes with the same secret and the same update.
@task(name="node-round", retries=1, retry_delay_seconds=NODE_RETRY_DELAY_S)
def node_round_task(
    node: str,
    profile_id: str,
    round_no: int,
    parent_run_id: str | None,
    home: str | None,
) -> dict[str, Any]:
    _launched(profile_id, round_no)
    return run_node(node, profile_id, round_no, parent_run_id, home)


@flow(name="node-round", log_prints=True)
def node_round(
    node: str,
    profile_id: str,
    round_no: int,
    parent_run_id: str | None = None,
    home: str | None = None,
) -> dict[str, Any]:
    """The node work a consortium member's worker runs for one round of one profile."""
    return run_node(node, profile_id, round_no, parent_run_id, home)


@task(name="open-round", retries=2, retry_delay_seconds=1)
def open_round_task(profile_id: str, opener: str, home: str | None) -> dict[str, Any]:
    settings = _settings(home)
    ledger = open_ledger(settings.ledger, opener)
    try:
        rnd = ledger.open_round(profile_id)
    except EndorseError as exc:
        # A round left open by an earlier run (a crash, a timeout): resume it instead.
        if exc.code != ErrorCode.FAILED_PRECONDITION:
            raise
        rnd = ledger.round_status(profile_id)
    return {
        "round": rnd.number,
        "base_model": rnd.base_model,
        "base_profile": rnd.base_profile,
        "base_reason": rnd.base_reason,
        "schedule": ledger.get_profile(profile_id).spec["schedule"],
    }


@task(name="settle-round", timeout_seconds=None)
def settle_round_task(profile_id: str, round_no: int, opener: str, home: str | None) -> Round:
    """Make sure the round ends. Node agents drive it; if every agent is gone (crashed,
    timed out) the opener elects at the reveal deadline and replaces each coordinator that
    misses its deadline, until the round closes or fails with "no participant is left"."""

    ledger = open_ledger(_settings(home).ledger, opener)
    rnd = ledger.get_round(profile_id, round_no)
    logger = get_run_logger()
    # Each replacement excludes one more participant: the loop ends (bounded by their count).
    while rnd.status not in ("closed", "failed"):
        deadline = rnd.reveal_deadline if rnd.status == "joining" else rnd.coordinator_deadline
        if time.time() < deadline + 1:
            time.sleep(min(1.0, deadline + 1 - time.time()))
        else:
            try:
                if rnd.status == "joining":
                    ledger.elect_coordinator(profile_id, round_no)
                else:
                    ledger.replace_coordinator(profile_id, round_no)
                    logger.warning(
                        "%s round %d: replaced %s", profile_id, round_no, rnd.coordinator
                    )
            except EndorseError as exc:
                if exc.code != ErrorCode.FAILED_PRECONDITION:
                    raise
        rnd = ledger.get_round(profile_id, round_no)
    return rnd


# No bound on the pool (threads start on demand, one per node of the round). Node agents block
# on one another until the round ends (join window, election, the model), so a node task
# queued behind a full pool would start only after the round had closed without it: with
# max_workers=16 a round of 24 nodes ran with 16 and left 8 out as failed. An explicit
# sys.maxsize, not None: None falls back to a global Prefect setting that may be small.
@flow(name="federated-round", task_runner=ThreadPoolTaskRunner(max_workers=sys.maxsize))  # type: ignore[arg-type]
def federated_round(
    profile_id: str,
    opener: str,
    nodes: list[str] | None = None,
    home: str | None = None,
    dispatch: str = "local",
    specialize: bool = True,
) -> dict[str, Any]:
    """One round of ``profile_id``: open it, dispatch it to the volunteering nodes, report;
    then (``specialize``) check whether the profile should split or demand calls for a new
    profile (:mod:`flows.specialization`)."""

    settings = _settings(home)
    tracking.configure(settings.mlflow_tracking_uri, settings.home / "mlflow" / "artifacts")
    ledger = open_ledger(settings.ledger, opener)
    nodes = nodes if nodes is not None else ledger.volunteers(profile_id)
    round_no, parent, timeout_s = _open_round(ledger, profile_id, opener, nodes, home)
    started = time.perf_counter()
    outcomes = _dispatch(
        nodes,
        profile_id,
        round_no,
        parent,
        home,
        dispatch,
        timeout_s,
        round_ended=lambda: _has_ended(ledger, profile_id, round_no),
    )
    rnd = _settled_round(ledger, profile_id, round_no, opener, home)
    if dispatch == "deployments":
        outcomes = _outcomes_from_ledger(ledger, profile_id, round_no, rnd, outcomes)
    elif dispatch == "own":
        outcomes = _with_members_outcomes(ledger, profile_id, round_no, rnd, nodes, outcomes)
    summary = _summary(profile_id, round_no, rnd, outcomes, time.perf_counter() - started, parent)
    if rnd.status == "closed":
        summary["alias"], summary["evaluation"] = _committed_model(ledger, profile_id, round_no)
    # The table in Prefect's UI (Prefect API calls) while the specialization check and the
    # round's MLflow run (ledger, MLflow) finish: neither needs the other. In this flow run's
    # context: Prefect links the artifacts to the run it finds there.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="publish") as pool:
        publishing = pool.submit(contextvars.copy_context().run, _publish, dict(summary))
        if rnd.status == "closed" and specialize:
            summary["specialization"] = _specialize(
                profile_id, home, rnd.coordinator, opener, parent
            )
        tracking.end_round_run(parent, summary)
        publishing.result()
    return summary


def _open_round(
    ledger: FedspecLedger, profile_id: str, opener: str, nodes: list[str], home: str | None
) -> tuple[int, str, int]:
    """Open the next round of ``profile_id`` as ``opener`` (or resume one left open) and
    start its MLflow parent run; logs the opening. Must run inside the round's flow (it
    calls :func:`open_round_task`). Returns the round number, the parent run's id and the
    time (s) each node's work is given.
    """
    opened = open_round_task(profile_id, opener, home)
    round_no = int(opened["round"])
    parent = _start_parent_run(ledger, profile_id, round_no, opened, nodes, opener)
    logger = get_run_logger()
    logger.info("%s round %d opened; dispatching to %d nodes", profile_id, round_no, len(nodes))
    if opened["base_reason"]:
        logger.info("%s round %d starts from: %s", profile_id, round_no, opened["base_reason"])
    return round_no, parent, _node_timeout(opened["schedule"])


def _start_parent_run(
    ledger: FedspecLedger,
    profile_id: str,
    round_no: int,
    opened: dict[str, Any],
    nodes: list[str],
    opener: str,
) -> str:
    """Start the round's MLflow parent run and return its id: params are the profile's
    round params (without participants), the volunteers and the opener; tags say which
    base model the round starts from and why (``opened`` is :func:`open_round_task`'s
    result).
    """
    profile = {**ledger.get_profile(profile_id).spec, "id": profile_id}
    # Participants are fixed by the election; the coordinator logs them (params are immutable).
    params = {k: v for k, v in round_params(profile, []).items() if "participants" not in k}
    return tracking.start_round_run(
        profile_id,
        round_no,
        params={**params, "volunteers": ",".join(nodes), "opener": opener},
        tags={
            "fedspec.base_model": opened["base_model"] or "initial",
            "fedspec.base_profile": opened["base_profile"],
            "fedspec.base_reason": opened["base_reason"][:5000],
        },
    )


def _has_ended(ledger: FedspecLedger, profile_id: str, round_no: int) -> bool:
    """Whether the ledger has the round closed or failed; a read that failed says no (the
    dispatch waits on, bounded by its own deadline)."""
    try:
        return ledger.get_round(profile_id, round_no).status in ("closed", "failed")
    except LedgerError:
        return False


def _settled_round(
    ledger: FedspecLedger, profile_id: str, round_no: int, opener: str, home: str | None
) -> Round:
    """The round once its nodes' work has returned, closed or failed: if the ledger has
    it still running (every agent is gone), :func:`settle_round_task` drives it to its end
    first. Must run inside the round's flow.
    """
    rnd = ledger.get_round(profile_id, round_no)
    if rnd.status not in ("closed", "failed"):  # every agent is gone: make sure it ends
        rnd = settle_round_task(profile_id, round_no, opener, home)
    return rnd


def _outcomes_from_ledger(
    ledger: FedspecLedger,
    profile_id: str,
    round_no: int,
    rnd: Round,
    runs: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Each deployment run's outcome (``runs``, from :func:`_dispatch_deployments`)
    rewritten as the ledger records what its node did in the settled round ``rnd``
    (:func:`_ledger_outcome`), in the same order.
    """
    # The ledger, not the node flows' results, says what each node did: those results
    # live in each worker's own result storage, out of this flow's reach.
    updates = {u.node: u for u in ledger.list_updates(profile_id, round_no)}
    return [_ledger_outcome(rnd, updates.get(o["node"]), o) for o in runs]


def _with_members_outcomes(
    ledger: FedspecLedger,
    profile_id: str,
    round_no: int,
    rnd: Round,
    nodes: list[str],
    local: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """This home's nodes' outcomes as their agents returned them, and every other member's
    nodes' as the ledger records them (their agents ran in their own homes)."""
    updates = {u.node: u for u in ledger.list_updates(profile_id, round_no)}
    ran_here = {o["node"]: o for o in local}
    return [
        ran_here.get(n)
        or _ledger_outcome(rnd, updates.get(n), {"node": n, "status": "ok", "reason": ""})
        for n in nodes
    ]


def _summary(
    profile_id: str,
    round_no: int,
    rnd: Round,
    outcomes: list[dict[str, Any]],
    seconds: float,
    parent: str,
) -> dict[str, Any]:
    """The round's summary from its final ledger state and the nodes' outcomes, with
    ``alias`` empty and ``evaluation`` empty (a closed round's caller fills them in from
    :func:`_committed_model`).
    """
    return {
        "profile": profile_id,
        "round": round_no,
        "status": rnd.status,
        "coordinator": rnd.coordinator,
        "participants": rnd.participants,
        "model": rnd.raw.get("model", ""),
        "failure": rnd.failure,
        "rewards": rnd.rewards or {},
        "outcomes": outcomes,
        "seconds": seconds,
        "parent_run_id": parent,
        "alias": "",
        "evaluation": {},
    }


def _committed_model(
    ledger: FedspecLedger, profile_id: str, round_no: int
) -> tuple[str, dict[str, float]]:
    """A closed round's model as committed on the ledger: its alias (champion or
    challenger) and its held-out evaluation metrics as floats, sorted by name.
    """
    model = ledger.get_model(profile_id, round_no)
    return model.alias, {k: from_fixed(v) for k, v in sorted(model.metrics.items())}


def _specialize(
    profile_id: str, home: str | None, coordinator: str, opener: str, run_id: str
) -> dict[str, Any]:
    """The specialization check, as the round's coordinator. The round is committed
    whatever happens here: a failed check is logged and reported, never the round's
    failure."""

    try:
        return run_check(
            profile_id,
            home,
            get_run_logger(),
            propose=True,
            proposer=coordinator,
            reader=opener,
            run_id=run_id,
        )
    except Exception as exc:  # detection is advice; the committed round stands
        get_run_logger().warning("%s: specialization check failed: %s", profile_id, exc)
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}


def _dispatch(
    nodes: list[str],
    profile_id: str,
    round_no: int,
    parent: str,
    home: str | None,
    dispatch: str,
    timeout_s: int,
    round_ended: Callable[[], bool] = lambda: False,
) -> list[dict[str, Any]]:
    if dispatch == "local":
        with _launching(profile_id, round_no):
            futures = [
                node_round_task.submit(node, profile_id, round_no, parent, home) for node in nodes
            ]
        outcomes = []
        for node, future in zip(nodes, futures, strict=True):
            try:
                outcomes.append(future.result(timeout=timeout_s + 30))
            except Exception as exc:  # a failed or timed-out node is left out, with its reason
                reason = f"{type(exc).__name__}: {exc}"[:300]
                failed = NodeOutcome(node, profile_id, round_no, status="failed", reason=reason)
                outcomes.append(dataclasses.asdict(failed))
        return outcomes
    if dispatch == "deployments":
        return _dispatch_deployments(nodes, profile_id, round_no, parent, timeout_s, round_ended)
    if dispatch == "own":
        # This home runs its own nodes; every other member runs its own agents (`fedspec
        # round join`) with its own keys and data, and the ledger says what they did.
        own = set(Consortium.load(_settings(home).ledger.consortium_dir).own)
        mine = [n for n in nodes if n.partition("/")[0] in own]
        return _dispatch(mine, profile_id, round_no, parent, home, "local", timeout_s)
    raise ValueError(f"dispatch must be 'local', 'own' or 'deployments', not {dispatch!r}")


def _dispatch_deployments(
    nodes: list[str],
    profile_id: str,
    round_no: int,
    parent: str,
    timeout_s: int,
    round_ended: Callable[[], bool],
) -> list[dict[str, Any]]:
    """Start ``node-round/node-round-<org>`` on each node's organization's pool and wait
    for all of them, or until :data:`AFTER_ROUND_S` after ``round_ended()`` first holds (a
    run whose worker was killed with it stays "Running" for ever). Each run gets ids only
    (never a path): the worker's own settings say where its organization's data and keys
    are. Returns each run's final state; what the node did is read from the ledger
    afterwards (:func:`_ledger_outcome`)."""
    # Deferred: loads prefect only when used.
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    runs = {
        node: cast(
            "FlowRun",  # called from a synchronous flow: the run itself, not a coroutine
            run_deployment(
                f"node-round/node-round-{node.partition('/')[0]}",
                parameters={
                    "node": node,
                    "profile_id": profile_id,
                    "round_no": round_no,
                    "parent_run_id": parent,
                },
                timeout=0,  # start it; wait below for all of them together
            ),
        )
        for node in nodes
    }
    deadline = time.monotonic() + timeout_s
    late = f"flow run not finished within {timeout_s} s"
    ended = False
    outcomes: dict[str, dict[str, Any]] = {}
    with get_client(sync_client=True) as client:
        while len(outcomes) < len(runs) and time.monotonic() < deadline:
            for node, run in runs.items():
                if node in outcomes:
                    continue
                state = client.read_flow_run(run.id).state
                if state is not None and state.is_final():
                    outcomes[node] = {
                        "node": node,
                        "flow_run": str(run.id),
                        "status": "ok" if state.is_completed() else "failed",
                        "reason": ""
                        if state.is_completed()
                        else f"flow run {state.name}: {state.message}"[:300],
                    }
            if len(outcomes) < len(runs):
                if not ended and round_ended():
                    ended = True
                    deadline = min(deadline, time.monotonic() + AFTER_ROUND_S)
                    late = f"flow run not finished {AFTER_ROUND_S} s after the round ended"
                time.sleep(1)
    for node, run in runs.items():
        outcomes.setdefault(
            node, {"node": node, "flow_run": str(run.id), "status": "failed", "reason": late}
        )
    return [outcomes[n] for n in nodes]


def _ledger_outcome(rnd: Round, update: UpdateRecord | None, run: dict[str, Any]) -> dict[str, Any]:
    """A node's outcome as the ledger records it, with its flow run's end where that failed:
    the :class:`~flows.node_agent.NodeOutcome` a local agent returns, plus its ``flow_run``."""
    node = run["node"]
    outcome = NodeOutcome(node, rnd.profile, rnd.number)
    failed_run = run["status"] != "ok"
    if node not in rnd.participants:
        outcome.role, outcome.status = "observer", "failed" if failed_run else "excluded"
        outcome.reason = (
            run["reason"]
            if failed_run
            else "withheld its reveal"
            if node in rnd.raw.get("withheld", [])
            else "not a participant"
        )
    elif update is None:  # nothing committed: the node died or timed out
        outcome.status = "failed"
        outcome.reason = run["reason"] or "committed no update"
    elif not update.validation.passed:
        outcome.role, outcome.status = "excluded", "excluded"
        outcome.reason = update.validation.reason
    else:
        outcome.update_sha256 = update.sha256
        outcome.metrics = {k: from_fixed(v) for k, v in update.metrics.items()}
        if rnd.coordinator == node:
            outcome.role = "coordinator"
        if rnd.status == "closed":
            outcome.model_sha256 = rnd.raw.get("model", "")
        if failed_run:  # its update counts; what came after it (local evaluation…) did not end well
            outcome.reason = run["reason"]
    return {**dataclasses.asdict(outcome), "flow_run": run.get("flow_run", "")}


def _artifact_key(text: str) -> str:
    """Prefect's artifact keys allow lowercase letters, digits and dashes only; profile ids
    may also hold dots and underscores (``digits-8x8-sklearn.load_digits``)."""
    return re.sub(r"[^a-z0-9-]+", "-", text.lower())


def _publish(summary: dict[str, Any]) -> None:
    """The round as a table in the Prefect UI."""
    # Deferred: loads prefect only when used.
    from prefect.artifacts import create_table_artifact

    rows = [
        {
            "node": o.get("node", ""),
            "role": o.get("role", ""),
            "status": o.get("status", ""),
            "reason": o.get("reason", ""),
            "update": (o.get("update_sha256") or "")[:12],
            **{
                k: round(v, 4)
                for k, v in (o.get("metrics") or {}).items()
                if k.startswith("local_valid_")
            },
        }
        for o in summary["outcomes"]
    ]
    create_table_artifact(
        key=_artifact_key(f"{summary['profile']}-round-{summary['round']}"),
        table=rows,
        description=f"{summary['profile']} round {summary['round']}: {summary['status']}, coordinator "
        f"{summary['coordinator']}, model {summary['model'][:12]}",
    )
    if summary["evaluation"]:
        # The coordinator's automated evaluation, as committed on the ledger.
        create_table_artifact(
            key=_artifact_key(f"{summary['profile']}-round-{summary['round']}-evaluation"),
            table=[{"metric": k, "value": v} for k, v in summary["evaluation"].items()],
            description=f"{summary['profile']} round {summary['round']}: held-out evaluation of "
            f"model {summary['model'][:12]} ({summary['alias']})",
        )


@flow(name="federated-training", log_prints=True)
def federated_training(
    profile_id: str,
    rounds: int = 3,
    opener: str = "",
    home: str | None = None,
    dispatch: str = "local",
) -> list[dict[str, Any]]:
    """``rounds`` rounds of one profile, one after the other."""

    settings = _settings(home)
    if not opener:
        opener = Consortium.load(settings.ledger.consortium_dir).default_admin
    return [
        federated_round(profile_id, opener, home=home, dispatch=dispatch) for _ in range(rounds)
    ]
