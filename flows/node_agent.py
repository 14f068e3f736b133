"""A node's part in one round, coordinated only through the ledger and MLflow.

Every participating node runs this, in its own organization: join with a seed commitment,
reveal once joining closes, take part in the election, train on its own data, commit its
update's hash, and — if it is the elected coordinator, or becomes it because the elected one
missed its deadline — aggregate and commit the round's model (:mod:`flows.coordinator`).
Nothing here needs to know in advance who will coordinate.

Each step is resumable: the election secret and the trained update are kept in the node's
private state directory, so a retried agent re-joins with the same commitment and
re-submits the same update (which the ledger accepts as the same content).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np

from federated.errors import DatasetError, FederatedError, PrivacyBudgetError, TrainingError
from federated.exchange import decode_global_model, decode_update, encode_update, sha256_hex
from federated.plan import TrainingPlan
from federated.privacy import PrivacySpend
from federated.simulation import train_node
from federated.trees import bagging_local_update
from federated.types import FitResult, GlobalModel, NDArrays, Scalar
from federated.validation import ValidationSummary, canonical_json, check_local_data, explain
from federated.validation.runner import warm_up
from fedspec.app.settings import Settings
from fedspec.errors import ErrorCode, FedspecError
from fedspec.fileio import write_atomic
from flows import control_variates, timing, tracking
from flows.coordinator import Coordinator
from flows.environment import NodeEnvironment
from flows.local_work import local_work_slot
from flows.models import ProfileModel
from flows.secure import SecureNode, secure_threshold
from flows.updates import TRAINED_FROM, TRAINED_ROUND, keep_uploaded
from ledger_client import (
    Budget,
    EndorseError,
    Round,
    UpdateCommitment,
    new_seed_secret,
    to_fixed,
)
from ledger_client.round_watch import RoundWatch, watching
from registry.models import fetch_model_bytes

if TYPE_CHECKING:
    from federated.validation import ValidationSummary

log = logging.getLogger("fedspec.node")
# The ledger needs a validation-summary hash even for a node excluded before it read its data.
NOT_VALIDATED = hashlib.sha256(b"fedspec: excluded before validation").hexdigest()
# Provenance an update carries (in its signed-by-hash metadata), checked by the coordinator.
_CHARACTERISTIC_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")  # as in the profile schema


@dataclass
class NodeOutcome:
    node: str
    profile: str
    round: int
    role: str = "participant"  # participant, coordinator, observer, excluded
    status: str = "ok"  # ok, excluded, failed, stopped
    reason: str = ""
    update_sha256: str = ""
    model_sha256: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


class RoundAborted(Exception):
    """The round failed on the ledger (quorum, aborted): nothing more for this node to do."""


# Should the ledger's events stream be down, rounds up to this many nodes poll at
# ``poll_s``, larger ones proportionally less often (ledger_client.round_watch).
POLL_PEERS = 10
# How long the other nodes wait for the first joined node's reveal, which lets theirs prove
# that joining closed with one key read, before they prove it themselves (O(N) reads each).
FIRST_REVEAL_WAIT_S = 10.0


class NodeAgent:
    _watch: RoundWatch  # for the length of run(): this process's follower of round events

    def __init__(
        self,
        env: NodeEnvironment,
        profile_id: str,
        round_no: int,
        *,
        parent_run_id: str | None = None,
        poll_s: float = 0.05,
        on_progress: Callable[[str], None] | None = None,
    ) -> None:
        self.env = env
        self.ledger = env.ledger
        self.profile_id = profile_id
        self.round_no = round_no
        self.parent_run_id = parent_run_id
        self.poll_s = poll_s
        self.progress = on_progress or (lambda _: None)
        self.outcome = NodeOutcome(env.node, profile_id, round_no)
        self._budget: Budget | None = None  # the ledger's budget record, read before training
        self.run_id = ""  # the node's MLflow child run, once it has one
        self._record = tracking.RunRecord()  # what its run records of the round's update
        self._seen = 0  # the round's version at the last read, where a wait starts from
        self._wrote_at = 0  # its last committed write, as the watch counts them (a read's floor)

    # ------------------------------------------------------------------ the protocol
    def run(self) -> NodeOutcome:
        profile = self.ledger.get_profile(self.profile_id)
        self.plan = TrainingPlan.from_profile(self.profile_id, profile.spec)
        self._secure = (
            SecureNode(self.env, self.plan, self.round_no)
            if secure_threshold(self.plan) is not None
            else None
        )
        # Paid once per process, before joining: never inside the round's later deadlines.
        self._timed("prepare", warm_up)
        with watching(self.ledger) as self._watch:
            return self._take_part()

    def _take_part(self) -> NodeOutcome:
        try:
            self._timed("join", self._join)
            rnd = self._timed("reveal", self._reveal)
            rnd = self._timed("election", lambda: self._elected(rnd))
            if self.env.node not in rnd.participants:
                self.outcome.role, self.outcome.status = "observer", "excluded"
                self.outcome.reason = (
                    "withheld its reveal"
                    if self.env.node in rnd.raw.get("withheld", [])
                    else "not a participant"
                )
                return self.outcome
            self._timed("train", lambda: self._train_and_commit(rnd))
            self._timed("await_model", self._await_model)
        except RoundAborted as exc:
            if self.outcome.status == "ok":  # an excluded node keeps its own reason
                self.outcome.status, self.outcome.reason = "failed", str(exc)
        return self.outcome

    def _timed(self, name: str, step: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            return step()
        finally:
            self.outcome.seconds[name] = (
                self.outcome.seconds.get(name, 0.0) + time.perf_counter() - start
            )

    # ------------------------------------------------------------------ election
    def _join(self) -> None:
        secret = self.env.read_state(self.profile_id, self.round_no, "secret")
        if secret is None:
            hex_secret, _ = new_seed_secret()
            self.env.write_state(self.profile_id, self.round_no, "secret", hex_secret.encode())
            secret = hex_secret.encode()
        commitment = hashlib.sha256(bytes.fromhex(secret.decode())).hexdigest()
        rnd = self._round()
        if self.env.node in rnd.joined_set:
            return  # a retried agent: already in, with this same commitment
        if rnd.status != "joining" or rnd.phase != "joining":
            raise RoundAborted(f"joining round {self.round_no} had closed ({rnd.status})")
        try:
            if self._secure is not None:  # with this round's public keys (flows.secure)
                self._secure.join(commitment)
            else:
                self.ledger.join_round(self.profile_id, self.round_no, commitment)
            self._wrote()
        except EndorseError as exc:
            if exc.code != ErrorCode.FAILED_PRECONDITION:
                raise
            raise RoundAborted(f"joining round {self.round_no} had closed") from exc
        self.progress("joined")

    def _round(self) -> Round:
        """The round as this process last read it, if nothing changed it since; the version
        a wait starts from is kept for :meth:`_wait`."""
        rnd, self._seen = self._watch.read(self._key, after=self._wrote_at)
        return rnd

    @property
    def _key(self) -> tuple[str, int]:
        return (self.profile_id, self.round_no)

    def _wait(self, deadline: float, rnd: Round) -> None:
        """Until the round changes (an event names it) or ``deadline`` passes."""
        self._watch.wait(self._key, self._seen, deadline, poll_s=self._poll_interval(rnd))

    def _wrote(self) -> None:
        """After this node's own committed write: its next read must see it."""
        self._wrote_at = self._watch.wrote()

    def _reveal(self) -> Round:
        secret = self.env.read_state(self.profile_id, self.round_no, "secret")
        assert secret is not None  # written by _join
        opened = 0.0  # when this node first saw reveals open, waiting for the first reveal
        while True:
            rnd = self._round()
            if rnd.status != "joining":
                return rnd
            if self.env.node in rnd.revealed_set:
                return rnd
            if rnd.phase == "revealing":
                # Joining closed because every volunteer joined: the first joined node
                # reveals first, proving it by scanning the joins; every other reveal names a
                # committed reveal as its proof, one key read (chaincode.rounds
                # reveal_seed_after). Should the first node not reveal in time, the others
                # prove it themselves.
                after = rnd.revealed[0] if rnd.revealed else ""
                if not after and self.env.node != rnd.first_joined:
                    opened = opened or time.monotonic()
                    left = FIRST_REVEAL_WAIT_S - (time.monotonic() - opened)
                    if left > 0 and time.time() < rnd.join_deadline:
                        self._wait(min(rnd.join_deadline, time.time() + left), rnd)
                        continue
                try:
                    self.ledger.reveal_seed(
                        self.profile_id, self.round_no, secret.decode(), after=after
                    )
                    self.progress("revealed")
                except EndorseError as exc:
                    if exc.code != ErrorCode.FAILED_PRECONDITION:
                        raise
                self._wrote()  # revealed, or refused because the round moved on: read again
                continue
            self._wait(rnd.join_deadline, rnd)

    def _elected(self, rnd: Round) -> Round:
        while rnd.status == "joining":
            # Once everyone revealed, one node elects (the first joined, by id): every node
            # trying at once made N - 1 transactions lose an MVCC race and retry (election
            # grew as N^2, benchmarks/scale.py). The others elect after the reveal window,
            # should that node be gone.
            if (
                rnd.all_revealed and self.env.node == rnd.first_joined
            ) or time.time() >= rnd.reveal_deadline:
                try:
                    rnd = self.ledger.elect_coordinator(self.profile_id, self.round_no)
                    self._wrote()
                    continue
                except EndorseError as exc:
                    if exc.code != ErrorCode.FAILED_PRECONDITION:
                        raise
            self._wait(rnd.reveal_deadline, rnd)
            rnd = self._round()
        if rnd.status == "failed":
            raise RoundAborted(f"round failed: {rnd.failure}")
        self.progress(f"coordinator {rnd.coordinator}")
        return rnd

    def _poll_interval(self, rnd: Round) -> float:
        """How often to read the round while the events stream is down: ``poll_s``,
        stretched with the round's size so that all its nodes together read about
        ``POLL_PEERS / poll_s`` times a second (a read of the round costs more the more nodes
        joined: at a fixed 50 ms every node's polling cost O(N^2), benchmarks/scale.py)."""
        return self.poll_s * max(1.0, len(rnd.joined) / POLL_PEERS)

    # ------------------------------------------------------------------ local training
    def _global_model(self, rnd: Round) -> GlobalModel:
        if not rnd.base_model:
            return self.plan.initial_model()

        # Verified against the ledger's hash before a single byte is deserialized; a child
        # profile's first round starts from its parent's champion, registered under the
        # parent (the ledger names whose lineage holds it).
        return decode_global_model(fetch_model_bytes(rnd.base_profile, rnd.base_model, shared=True))

    def _train_and_commit(self, rnd: Round) -> None:
        # The node's run is created while it validates and trains: nothing needs the run's id
        # before the update is uploaded, and creating it (MLflow I/O) before training cost
        # 0.05–0.1 s of every round's critical path (benchmarks/round_time.py).
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="node-run")
        starting = pool.submit(self._start_run)
        pool.shutdown(wait=False)
        # Params, metrics, tags and files of the update, written together (flows.tracking).
        self._record = tracking.RunRecord(params={"node": self.env.node})
        try:
            commitment = self._update(rnd, starting.result)
            run_id = starting.result()
            # Before the ledger commit points at the update and its validation summary.
            record, self._record = self._record, tracking.RunRecord()
            keep_uploaded(tracking.write_record(run_id, record))
            self.ledger.submit_update(self.profile_id, self.round_no, commitment)
            self.outcome.update_sha256 = commitment.sha256
            self.run_id = run_id
            tracking.end_run(
                run_id, status="FINISHED" if commitment.validation_passed else "FAILED"
            )
            self.progress(
                "update committed" if commitment.validation_passed else "excluded (validation)"
            )
        except BaseException:
            if starting.exception() is None:  # a run to record the failure in
                run_id = starting.result()
                try:  # what the node found before it failed, if not written yet
                    tracking.write_record(run_id, self._record)
                except FedspecError as exc:  # the failure that brought us here is the one to raise
                    log.warning("%s: could not record its failed update: %s", self.env.node, exc)
                tracking.end_run(run_id, status="FAILED")
            raise

    def _start_run(self) -> str:
        """The node's run of the round (a retried node's, reopened), kept in its state."""
        run = tracking.start_node_run(
            self.parent_run_id,
            self.profile_id,
            self.round_no,
            self.env.node,
            kept=self.env.read_state(self.profile_id, self.round_no, "run"),
        )
        self.env.write_state(self.profile_id, self.round_no, "run", run.kept)
        return run.run_id

    def _exclusion(self, reason: str, rows: int, validation_sha256: str) -> UpdateCommitment:
        # Params are immutable and a retried node may be excluded for another reason: tags.
        self._record.tags["fedspec.excluded"] = reason
        self.outcome.role, self.outcome.status, self.outcome.reason = "excluded", "excluded", reason
        return UpdateCommitment(
            sha256="",
            num_samples=rows,
            validation_sha256=validation_sha256,
            validation_passed=False,
            validation_reason=reason,
        )

    def _update(self, rnd: Round, run_id: Callable[[], str]) -> UpdateCommitment:
        """The update's commitment; ``run_id()`` waits for the node's run (being created)."""
        if self._secure is not None:
            try:  # deal the shares first: sharing closes once every participant has dealt
                self._secure.deal(rnd, run_id())
            except FederatedError as exc:
                return self._exclusion(f"{exc.code}: {_short(exc)}", 0, NOT_VALIDATED)
        if (
            self.plan.privacy is not None
            and self.env.read_state(self.profile_id, self.round_no, "update") is None
        ):
            try:  # before the data is even read: a round over budget touches nothing
                self._check_budget()
            except PrivacyBudgetError as exc:
                return self._exclusion(f"{exc.code}: {_short(exc)}", 0, NOT_VALIDATED)
        # The node's local work (read, validate, train) takes one of the process's slots:
        # agents co-located in one process (the demo, a simulation, benchmarks/scale.py) all
        # leave the election at once, and 200 of them doing Python work together starved the
        # ones still waking up of the interpreter lock for seconds. Waiting here holds no lock
        # and no other node waits on it (secure aggregation's dealing happened above).
        with local_work_slot():
            try:
                data = self.env.local_data(dict(self.plan.characteristics))
            except DatasetError as exc:  # its data is gone or no longer fits: say so on the ledger
                return self._exclusion(f"{exc.code}: {_short(exc)}", 0, NOT_VALIDATED)
            X, y = self._training_rows(data.train.X, data.train.y)
            names = data.info.feature_names
            with timing.span("validation"):
                summary, failure = self._validated(X, y, names)
            self._record.params.update(
                {"node": self.env.node, "rows": len(y), "validation_sha256": summary.sha256}
            )
            # The coordinator checks this against the hash on the ledger before scoring quality.
            self._record.files["validation.json"] = summary.canonical_json.encode()
            if not summary.success:
                reason = "DATA_VALIDATION_FAILED: " + _clip(failure)
                return self._exclusion(reason, len(y), summary.sha256)
            stored = self.env.read_state(self.profile_id, self.round_no, "update")
            if stored is None:
                try:
                    result, spend = self._fit(rnd, X, y)
                except FederatedError as exc:
                    # Empty data, an incompatible model…: record the exclusion now, with its
                    # reason, rather than leave the coordinator waiting for its deadline.
                    return self._exclusion(f"{exc.code}: {_short(exc)}", len(y), summary.sha256)
                stored = encode_update(result, self.plan.family)
                self.env.write_state(self.profile_id, self.round_no, "update", stored)
                eps, delta = (spend.epsilon, spend.delta) if spend is not None else (0.0, 0.0)
                self.env.write_state(
                    self.profile_id, self.round_no, "spend", f"{eps!r} {delta!r}".encode()
                )
        try:  # after the update is stored, so that a retry applies its Δc_i exactly once
            self._keep_control(stored)
        except FederatedError as exc:
            return self._exclusion(f"{exc.code}: {_short(exc)}", len(y), summary.sha256)
        eps_text, delta_text = (
            (self.env.read_state(self.profile_id, self.round_no, "spend") or b"0.0 0.0")
            .decode()
            .split()
        )
        published = stored
        if self._secure is not None:  # only the masked vector leaves the node
            try:
                published = self._secure.mask(rnd, stored)
            except FederatedError as exc:
                return self._exclusion(f"{exc.code}: {_short(exc)}", len(y), summary.sha256)
        digest = sha256_hex(published)
        uri = self._record.add_file(run_id(), "update.safetensors", self._upload_bytes(published))

        result, _ = decode_update(stored)
        metrics = {
            k: float(v)
            for k, v in result.metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and k != TRAINED_ROUND
        }
        self._record.metrics.update(metrics | {"num_examples": float(result.num_examples)})
        self.outcome.metrics.update(metrics)
        return UpdateCommitment(
            sha256=digest,
            num_samples=result.num_examples,
            validation_sha256=summary.sha256,
            epsilon=_declared_spend(self.plan, eps_text, delta_text)[0],
            delta=_declared_spend(self.plan, eps_text, delta_text)[1],
            metrics={k: to_fixed(v) for k, v in metrics.items() if abs(v) < 1e9},
            uri=uri,
            characteristics=advertised_characteristics(data.info.characteristics),
        )

    def _validated(self, X: Any, y: Any, names: Any) -> tuple[ValidationSummary, str]:
        """The validation summary of these rows under the profile's suite, and why it failed.

        Validation is deterministic in (suite, rows): its result is kept in the node's state
        and reused while neither changes, rather than re-run every round (Great Expectations
        takes ~0.1–0.5 s per node per round, a large share of a small round).
        """

        key = hashlib.sha256()
        key.update(canonical_json(dict(self.plan.spec)).encode())
        for array in (X, y):
            key.update(str((array.dtype.str, array.shape)).encode())
            key.update(np.ascontiguousarray(array).tobytes())
        cache = self.env.state_dir / f"validation-{key.hexdigest()}.json"
        if cache.is_file():
            cached = json.loads(cache.read_text())
            return ValidationSummary.from_canonical_json(cached["summary"]), cached["failure"]
        outcome = check_local_data(X, y, self.plan.spec, feature_names=names)
        failure = "" if outcome.summary.success else explain(outcome, X, self.plan.spec, names)
        text = json.dumps({"summary": outcome.summary.canonical_json, "failure": failure})
        write_atomic(cache, text)
        return outcome.summary, failure

    def _check_budget(self) -> None:
        self._budget = self.ledger.budget(self.env.node, self.profile_id)
        _check_ledger_budget(self._budget, self.plan)

    def _fit(self, rnd: Round, X: Any, y: Any) -> tuple[FitResult, Any]:
        with timing.span("mlflow"):
            global_model = self._global_model(rnd)
        X = self.plan.prepare(X)  # validation saw raw rows; models see the profile's scaling
        wall, cpu = time.perf_counter(), time.thread_time()
        with timing.span("training"):
            result, spend = self._fit_scaled(global_model, X, y)
        seconds = {
            "train_seconds": time.perf_counter() - wall,
            "cpu_seconds": time.thread_time() - cpu,
        }
        metrics = {**result.metrics, **seconds, **self._provenance(rnd)}
        return dataclasses.replace(result, metrics=metrics), spend  # Δc_i travels with it

    def _fit_scaled(self, global_model: GlobalModel, X: Any, y: Any) -> tuple[FitResult, Any]:
        if self.plan.is_tree:
            trees = bagging_local_update(
                global_model.parameters if isinstance(global_model.parameters, bytes) else b"",
                X,
                y,
                {**self.plan.xgb_params, "seed": self.plan.seed(self.round_no, self.env.node)},
                local_rounds=self.plan.local_rounds,
            )
            return FitResult(self.env.node, trees, len(y), {}), None

        spent: list[PrivacySpend] = []
        if self.plan.privacy is not None:
            budget = self._budget  # read by _check_budget, before the data was
            assert budget is not None
            # The local accountant composes this (the ledger's total) with the round's spend.
            spent = [PrivacySpend(float(budget.spent.epsilon), float(budget.spent.delta))]
            if self.plan.privacy.mechanism == "dp-sgd":
                spent = []  # composed by RDP, family-wide: _check_ledger_budget checked it
        # FedProx's proximal_mu and the like: what the strategy needs every node to train with.
        hp = {**self.plan.hyperparameters, **self.plan.strategy().node_config(self.round_no)}
        return train_node(
            global_model,
            X,
            y,
            family=self.plan.family,
            hyperparameters=hp,
            privacy=self.plan.privacy,
            spent=spent,
            node_id=self.env.node,
            seed=self.plan.seed(self.round_no, self.env.node),
            control=self._control(global_model),
        )

    def _control(self, global_model: GlobalModel) -> NDArrays | None:
        """SCAFFOLD's ``c_i`` from the node's private state (:mod:`flows.control_variates`),
        ``None`` for every other strategy."""
        if not self.plan.uses_control_variates:
            return None
        shapes = control_variates.shapes_of(global_model)
        stored = control_variates.load_control(self.env, self.profile_id, self.plan.family, shapes)
        if stored.round_no >= self.round_no:
            # Its update for this round is gone from the state, but its Δc_i was applied:
            # training again would correct by a c_i that already counts this round.
            raise TrainingError(
                f"the node's control variate already holds round {stored.round_no}'s change "
                f"and its update for round {self.round_no} is gone",
                node_id=self.env.node,
            )
        return stored.control

    def _keep_control(self, stored: bytes) -> None:
        """SCAFFOLD: ``c_i ← c_i + Δc_i`` with the stored update's ``Δc_i``, once per round."""
        if not self.plan.uses_control_variates:
            return
        result, _ = decode_update(stored)
        if result.control_delta is None:
            raise TrainingError("the stored update has no Δc_i", node_id=self.env.node)
        control_variates.apply_delta(
            self.env, self.profile_id, self.plan.family, self.round_no, result.control_delta
        )

    # ------------------------------------------------------------------ what a node sends
    # The three places where a node's data meets what it publishes. Tests subclass the agent
    # and override them to inject faults (bad labels, tampered bytes, replayed updates); the
    # deployable flows expose no such switch.
    def _training_rows(self, X: Any, y: Any) -> tuple[Any, Any]:
        """The rows this node validates and trains on."""
        return X, y

    def _upload_bytes(self, stored: bytes) -> bytes:
        """The bytes uploaded for the update whose hash goes on the ledger."""
        return stored

    def _provenance(self, rnd: Round) -> dict[str, Scalar]:
        """What the update was trained for: the coordinator refuses one replayed from another
        round or trained from another base model (a stale update), even with a valid hash."""
        return {TRAINED_ROUND: self.round_no, TRAINED_FROM: rnd.base_model or "initial"}

    # ------------------------------------------------------------------ after the update
    def _await_model(self) -> None:
        """Wait for the model; coordinate if elected; replace a coordinator that is late."""
        while True:
            rnd = self._round()
            if rnd.status == "closed":
                if not self.outcome.model_sha256:  # as its coordinator, it has evaluated it
                    self._evaluate(rnd.raw.get("model", ""))
                return
            if rnd.status == "failed":
                raise RoundAborted(f"round failed: {rnd.failure}")
            if self._secure is not None:
                self._secure.answer_if_asked(rnd, self.run_id or self.parent_run_id or "")
            if rnd.coordinator == self.env.node:
                self.outcome.role = "coordinator"
                Coordinator(
                    self.env,
                    self.plan,
                    self.parent_run_id,
                    progress=self.progress,
                    watch=self._watch,
                ).run(rnd, meanwhile=self._evaluate)
                self._wrote()
                continue
            if time.time() >= rnd.coordinator_deadline + 1:
                try:
                    self.ledger.replace_coordinator(self.profile_id, self.round_no)
                    self.progress("replaced a coordinator that missed its deadline")
                except EndorseError as exc:
                    if exc.code not in (ErrorCode.FAILED_PRECONDITION, ErrorCode.FORBIDDEN):
                        raise
                self._wrote()
                continue
            self._wait(rnd.coordinator_deadline + 1, rnd)

    def _evaluate(self, model_sha256: str) -> None:
        self.outcome.model_sha256 = model_sha256
        self._evaluate_locally()

    def _evaluate_locally(self) -> None:
        """The round's model on this node's own validation split (stays in its MLflow run)."""
        if self.outcome.status != "ok" or not self.outcome.model_sha256:
            return
        try:
            # A slot, as training takes (flows.local_work): the N agents of a process wake at
            # the model's commit together, and their scoring starved the ledger's committer
            # of the coordinator's last transaction (1.4 s of its 1.4 s at 200 nodes).
            with local_work_slot():
                model = decode_global_model(
                    fetch_model_bytes(self.profile_id, self.outcome.model_sha256, shared=True)
                )
                data = self.env.local_data(dict(self.plan.characteristics))
                with timing.span("evaluation"):  # the scoring only: its MLflow call is overhead
                    metrics = ProfileModel.of(self.plan, model).metrics(data.valid.X, data.valid.y)
            self.outcome.metrics.update({f"local_valid_{k}": float(v) for k, v in metrics.items()})
            tracking.log_node_evaluation(self.run_id, metrics)
        except FederatedError as exc:  # evaluation is a report, never a reason to fail the node
            log.warning("%s: local evaluation failed: %s", self.env.node, exc)


def run_node(
    node: str,
    profile_id: str,
    round_no: int,
    parent_run_id: str | None,
    home: str | None,
) -> dict[str, Any]:
    """One node's agent for one round, as a plain function (no Prefect: the round flow's
    tasks, the node-round deployment and ``fedspec round node`` all call it)."""

    env = NodeEnvironment(node, Settings.load(home))
    tracking.configure(env.settings.mlflow_tracking_uri, env.settings.home / "mlflow" / "artifacts")
    agent = NodeAgent(env, profile_id, round_no, parent_run_id=parent_run_id)
    return dataclasses.asdict(agent.run())


def advertised_characteristics(characteristics: Mapping[str, Any]) -> dict[str, Any]:
    """What a node tells the consortium about its data with each update: its dataset's
    characteristics (resolution, sensor, source…; never rows), in the form the ledger
    accepts for a profile's characteristics. Lets a coordinator name the groups of a profile
    whose nodes' updates diverge (``flows.specialization``)."""
    out: dict[str, Any] = {}
    for key, value in sorted(characteristics.items()):
        if len(out) == 32 or not _CHARACTERISTIC_NAME.fullmatch(key):
            continue
        if isinstance(value, bool | int) or (isinstance(value, str) and len(value) <= 200):
            out[key] = value
        elif (
            isinstance(value, list | tuple)
            and len(value) <= 32
            and all(isinstance(v, str) and len(v) <= 200 for v in value)
        ):
            out[key] = list(value)
    return out


def _short(error: FederatedError) -> str:
    return _clip(error.message)


def _clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _decimal(text: str) -> str:
    value = Decimal(repr(float(text)))
    return format(value.normalize(), "f") if value else "0"


def _check_ledger_budget(budget: Budget, plan: TrainingPlan) -> None:
    """Refuse before training when the ledger (Σε, Σδ, exact) would refuse the update."""

    remaining = budget.remaining
    if remaining is None or plan.privacy is None:
        return
    if plan.privacy.mechanism == "dp-sgd":
        _check_rdp_budget(budget, plan)
        return
    spend = plan.privacy.round_spend
    if Fraction(_decimal(repr(spend.epsilon))) > Fraction(remaining.epsilon) or Fraction(
        _decimal(repr(spend.delta))
    ) > Fraction(remaining.delta):
        raise PrivacyBudgetError(
            f"the ledger has ε={remaining.epsilon}, δ={remaining.delta} left for this profile; "
            f"a round spends ε={spend.epsilon}, δ={spend.delta}",
        )


def _check_rdp_budget(budget: Budget, plan: TrainingPlan) -> None:
    """DP-SGD: the ledger's own exact RDP accountant (chaincode.rdp), run here on the curves
    GetBudget returned, refuses the round exactly when SubmitUpdate would."""
    from chaincode import rdp
    from chaincode.schema import decimal, dp_sgd_round_rdp

    privacy = dict(plan.spec["privacy"])
    view = budget.raw["rdp"]
    standing = rdp.Standing(
        rdp.from_text(view["profile"]),
        rdp.from_text(view["family"]),
        Fraction(view["other"]["epsilon"]),
        Fraction(view["other"]["delta"]),
        delta=decimal(privacy["delta_budget"], "delta_budget"),
        epsilon_budget=decimal(privacy["epsilon_budget"], "epsilon_budget"),
    )
    refusal = standing.refusal(dp_sgd_round_rdp(privacy))
    if refusal is not None:
        raise PrivacyBudgetError(refusal)


def _declared_spend(plan: TrainingPlan, eps_text: str, delta_text: str) -> tuple[str, str]:
    """The (ε, δ) the update declares: what training spent, or under DP-SGD (when it spent
    anything) the round's ε at the profile's δ in the ledger's exact digits."""
    if plan.privacy is None or plan.privacy.mechanism != "dp-sgd" or float(eps_text) == 0:
        return _decimal(eps_text), _decimal(delta_text)
    from chaincode.schema import decimal_text, per_round_spend

    eps, delta = per_round_spend(dict(plan.spec["privacy"]))
    return decimal_text(eps), decimal_text(delta)
