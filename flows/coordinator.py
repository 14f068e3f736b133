"""The elected coordinator's work: verify, aggregate, evaluate, register, commit, reward.

Every update is fetched from MLflow and checked against the hash its node committed on the
ledger before it is decoded; a missing, tampered or malformed update is left out with the
reason, never averaged. The strategy runs behind the profile's k-of-n quorum; if too few
good updates remain the round is failed on the ledger with that reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import fedspec
from federated.contribution import (
    NodeReport,
    aggregation_evaluator,
    contribution_scores,
    shapley_values,
)
from federated.errors import (
    ContributionError,
    FederatedError,
    PredictionError,
    QuorumNotMetError,
)
from federated.exchange import decode_update, encode_global_model, sha256_hex
from federated.models.metrics import classification_metrics, regression_metrics
from federated.plan import TrainingPlan
from federated.types import AggregateResult, FitFailure, FitResult, GlobalModel, Strategy
from federated.validation import ValidationSummary
from fedspec.errors import ErrorCode, FedspecError
from flows import timing, tracking
from flows.environment import NodeEnvironment
from flows.models import ProfileModel, adapter_for
from flows.secure import SecureAggregation, secure_threshold
from flows.updates import base_model, prefetch, staleness
from ledger_client import (
    Committed,
    EndorseError,
    ModelCommitment,
    ModelRecord,
    Round,
    UpdateRecord,
    to_fixed,
)
from ledger_client.round_watch import RoundWatch
from registry import (
    ArtifactIntegrityError,
    ArtifactMissingError,
    EvaluationError,
    champion,
    decide_alias,
    evaluate_global_model,
    node_runs,
    objective_of,
    promote,
    record_ledger_commit,
    register_global_model,
    round_params,
)

if TYPE_CHECKING:
    from registry import AliasDecision, ModelVersionInfo

log = logging.getLogger("fedspec.coordinator")
# The round benchmark's categories of the coordinator's steps (flows.timing).
_CATEGORY = {
    "verify": "mlflow",  # fetching the updates; checking hashes and decoding is negligible
    "fetch_base": "mlflow",
    "aggregate": "aggregation",
    "evaluate": "evaluation",
    "contribution": "evaluation",  # Shapley values: evaluations of sub-aggregates
    "register": "mlflow",
    "ledger": "ledger",
}
# Stop waiting for updates this share of the coordinator's window before its deadline,
# leaving time to verify, aggregate, evaluate, register and commit before it is replaced.
UPDATE_MARGIN = 0.25
MIN_UPDATE_MARGIN_S = 2.0
# Evaluations of sub-aggregates for the nodes' Shapley values: exact up to 4 nodes, else
# Monte-Carlo permutations within this budget (never fewer than one whole permutation).
SHAPLEY_EVALUATIONS = 16


# How long a coordinator waiting on UpdateCommitted events goes without listing the updates.
RELIST_S = 30.0


@dataclass
class CoordinatorReport:
    model_sha256: str = ""
    version: str = ""
    alias: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    included: list[str] = field(default_factory=list)
    excluded: list[dict[str, str]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    block: int = -1
    transaction_id: str = ""
    superseded: bool = False  # replaced (late) before it could commit: its work was dropped


class Coordinator:
    def __init__(
        self,
        env: NodeEnvironment,
        plan: TrainingPlan,
        parent_run_id: str | None,
        *,
        progress: Callable[[str], None] | None = None,
        poll_s: float = 0.05,
        watch: RoundWatch | None = None,
    ) -> None:
        self.env = env
        self.plan = plan
        self.ledger = env.ledger
        self.parent_run_id = parent_run_id
        self.progress = progress or (lambda _: None)
        self.poll_s = poll_s
        self.watch = watch  # the node agent's: waits for updates on events, not by polling
        self.report = CoordinatorReport()
        self.profile = {**plan.spec, "id": plan.profile_id}
        self.run_id = parent_run_id or ""
        self._update_bytes: dict[str, bytes] = {}  # accepted updates (masked ones, if secure)

    def _start(self, rnd: Round) -> None:
        self.run_id = tracking.coordinator_run(
            self.parent_run_id or None, self.plan.profile_id, rnd.number
        )

    def _timed(self, name: str, step: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            with timing.span(_CATEGORY.get(name, timing.ORCHESTRATION)):
                return step()
        finally:
            self.report.seconds[name] = (
                self.report.seconds.get(name, 0.0) + time.perf_counter() - start
            )

    def run(
        self, rnd: Round, *, meanwhile: Callable[[str], None] = lambda _: None
    ) -> CoordinatorReport:
        """Coordinate ``rnd``; once the model is committed, ``meanwhile(model_sha256)`` runs
        while the registry and MLflow catch up (the node agent evaluates the model)."""
        self._start(rnd)
        self.progress("coordinating")
        tracking.log_params(self.run_id, round_params(self.profile, rnd.participants))
        records = self._timed("await_updates", lambda: self._await_updates(rnd))
        secure = self._secure_aggregation(rnd)
        strategy: Strategy
        if secure is None:
            results, failures, reports = self._timed("verify", lambda: self._verified(rnd, records))
            strategy = self.plan.strategy(federation_size=self._federation_size(rnd))
        else:  # masked vectors only: the strategy runs on their unmasked mean (flows.secure)
            results, failures = self._timed("verify", lambda: secure.verified(records))
            reports, self._update_bytes, strategy = [], secure.masked_bytes, secure
        current = self._timed("fetch_base", lambda: self._current(rnd))
        aggregation = self._aggregated(rnd, strategy, current, results, failures)
        if aggregation is None or aggregation.model is None:
            return self.report
        model = aggregation.model
        included = _included(aggregation, results)
        left_out = {f.node_id: f for f in failures}
        for failure in _left_out(aggregation):
            left_out.setdefault(failure.node_id, failure)
        evaluation = self.env.evaluation_data(dict(self.plan.characteristics))
        try:
            metrics = self._timed("evaluate", lambda: self._evaluate(model, evaluation))
        except (PredictionError, EvaluationError) as exc:  # the round has no usable model
            # e.g. NaN probabilities, which the registry's evaluation reports as its own
            # EvaluationError: name the root cause, the reason readers need.
            cause = exc.__cause__ if isinstance(exc.__cause__, FedspecError) else exc
            self._fail(rnd, "EVALUATION_FAILED", f"{cause.code}: {cause.message}")
            return self.report
        data = encode_global_model(model)
        digest = sha256_hex(data)
        # Registering the version (MLflow I/O) overlaps scoring contributions (CPU): neither
        # needs the other, and the ledger commit below needs both.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="register") as pool:
            registering = pool.submit(
                self._timed, "register", lambda: self._register(rnd, data, metrics, evaluation)
            )
            kept = {i.node_id for i in included}
            tokens = self._timed(
                "contribution",
                lambda: (
                    secure.tokens(included)
                    if secure is not None
                    else self._contributions(
                        strategy,
                        rnd,
                        current,
                        included,
                        [r for r in reports if r.node_id in kept],
                        evaluation,
                    )
                ),
            )
            registered: ModelVersionInfo = registering.result()
        decision = self._decide(metrics)
        commitment = ModelCommitment(
            sha256=digest,
            uri=registered.uri,
            metrics={k: to_fixed(v) for k, v in metrics.items() if abs(v) < 1e12},
            inclusion={r.node_id: sha256_hex(r_bytes) for r, r_bytes in self._bytes_of(included)},
            contributions=tokens,
            excluded=[
                {"node": f.node_id, "code": f.code, "reason": f.reason[:1000]}
                for f in left_out.values()
            ],
            receipt=self._receipt(rnd, digest, records),
            alias=decision.alias,
        )
        committed = self._committed(rnd, commitment)
        if committed is not None:
            # The round is closed on the ledger: every node now evaluates the model. What is
            # left here (the registry serving the version under its alias, the round's
            # evaluation in MLflow: ~0.1–0.2 s of MLflow calls) overlaps this node's own
            # evaluation (``meanwhile``) instead of delaying the round's end after it.
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="finish") as pool:
                finishing = pool.submit(
                    self._finish,
                    rnd,
                    commitment,
                    committed.commit,
                    registered,
                    decision,
                    metrics,
                    included,
                )
                try:
                    meanwhile(commitment.sha256)
                finally:
                    finishing.result()
        return self.report

    def _aggregated(
        self,
        rnd: Round,
        strategy: Strategy,
        current: GlobalModel,
        results: list[FitResult],
        failures: list[FitFailure],
    ) -> AggregateResult | None:
        """The strategy's result, or ``None`` once the round is failed on the ledger with
        the reason (quorum not met, an aggregation error, no model)."""
        try:
            aggregation: AggregateResult = self._timed(
                "aggregate", lambda: strategy.aggregate_fit(rnd.number, current, results, failures)
            )
        except QuorumNotMetError as exc:
            self._fail(rnd, "QUORUM_NOT_MET", exc.message)
            return None
        except FederatedError as exc:
            self._fail(rnd, "AGGREGATION_FAILED", f"{exc.code}: {exc.message}")
            return None
        if aggregation.model is None:
            self._fail(rnd, "AGGREGATION_FAILED", aggregation.reason or "no model")
            return None
        return aggregation

    def _committed(self, rnd: Round, commitment: ModelCommitment) -> ModelRecord | None:
        """Commit the model and mint the round's rewards; returns the ledger's record of it
        (the registry's version is tagged with its commit), or ``None`` when this
        coordinator was superseded."""
        recorded = self._timed(
            "ledger",
            lambda: self._superseded_if_refused(
                rnd, lambda: self.ledger.commit_model(self.plan.profile_id, rnd.number, commitment)
            ),
        )
        if recorded is None:
            return None
        self._timed("ledger", lambda: self.ledger.mint_rewards(self.plan.profile_id, rnd.number))
        return cast("ModelRecord", recorded)

    def _finish(
        self,
        rnd: Round,
        commitment: ModelCommitment,
        committed: Committed | None,
        registered: ModelVersionInfo,
        decision: AliasDecision,
        metrics: dict[str, float],
        included: list[FitResult],
    ) -> None:
        """After the commit: with the hash on the ledger, let the registry serve the version;
        then the round in this coordinator's report and in MLflow."""
        self._timed("register", lambda: self._promote(registered, metrics, committed))
        self._publish(rnd, commitment, registered, decision, metrics, included)

    def _publish(
        self,
        rnd: Round,
        commitment: ModelCommitment,
        registered: ModelVersionInfo,
        decision: AliasDecision,
        metrics: dict[str, float],
        included: list[FitResult],
    ) -> None:
        """The committed round in this coordinator's report and in MLflow."""
        self.report.model_sha256 = commitment.sha256
        self.report.version = str(registered.version)
        self.report.alias = decision.alias
        self.report.metrics = metrics
        self.report.included = [r.node_id for r in included]
        self.report.excluded = commitment.excluded
        tracking.log_round_evaluation(
            self.run_id,
            rnd.number,
            metrics,
            included=self.report.included,
            excluded=self.report.excluded,
            alias=decision.alias,
            alias_reason=decision.reason,
            seconds=self.report.seconds,
        )
        self.progress(f"model {commitment.sha256[:12]} committed in block {self.report.block}")

    def _fail(self, rnd: Round, code: str, reason: str) -> None:
        if self._superseded_if_refused(
            rnd,
            lambda: self.ledger.fail_round(self.plan.profile_id, rnd.number, code, reason[:1000]),
        ):
            self.progress(f"round failed: {reason}")

    def _superseded_if_refused(self, rnd: Round, write: Callable[[], Any]) -> Any:
        """Run a coordinator-only ledger write and return its record; ``None`` if this
        coordinator was replaced meanwhile (it missed its deadline) or the round ended:
        nothing more to do, and nothing half-done, since the ledger refused the write whole."""
        try:
            return write()
        except EndorseError as exc:
            if exc.code not in (ErrorCode.FORBIDDEN, ErrorCode.FAILED_PRECONDITION):
                raise
            now = self.ledger.get_round(self.plan.profile_id, rnd.number)
            if now.status == "training" and now.coordinator == self.env.node:
                raise  # refused for another reason: a real error
            log.warning(
                "%s: superseded in round %d (%s, coordinator %s): %s",
                self.env.node,
                rnd.number,
                now.status,
                now.coordinator,
                exc.message,
            )
            self.report.superseded = True
            return None

    # ------------------------------------------------------------------ steps
    def _await_updates(self, rnd: Round) -> dict[str, UpdateRecord]:
        """Every participant's update record, or whatever arrived before the deadline margin.

        With a watch, the update list is read once more only when the UpdateCommitted events
        name every participant (or at the deadline): re-listing on every event would read
        O(N) records N times (benchmarks/scale.py)."""
        key = (self.plan.profile_id, rnd.number)
        until = rnd.coordinator_deadline - self._margin()
        while True:
            seen = self.watch.version(key) if self.watch is not None else 0
            cursor = len(self.watch.events(key)) if self.watch is not None else 0
            records = {
                u.node: u for u in self.ledger.list_updates(self.plan.profile_id, rnd.number)
            }
            if (
                set(rnd.participants) <= set(records)
                or time.time() >= until
                # Updates were due by the first coordinator's deadline: a replacement
                # aggregates what arrived instead of waiting a whole window again.
                or rnd.raw.get("replaced")
            ):
                return records
            if self.watch is None:
                time.sleep(self.poll_s)
                continue
            known, listed = set(records), time.monotonic()
            while self.watch.healthy and not set(rnd.participants) <= known:
                # The deadline, or a fresh list now and then: the events are a hint, the
                # ledger's list the authority (RELIST_S bounds what a lost event could cost).
                if time.time() >= until or time.monotonic() - listed >= RELIST_S:
                    break
                self.watch.wait(key, seen, until, poll_s=self.poll_s)
                seen = self.watch.version(key)
                for name, payload in self.watch.events(key, cursor):
                    cursor += 1
                    if name == "UpdateCommitted" and isinstance(payload.get("node"), str):
                        known.add(str(payload["node"]))
            if not self.watch.healthy:
                self.watch.wait(key, seen, until, poll_s=self.poll_s)

    def _secure_aggregation(self, rnd: Round) -> SecureAggregation | None:
        """The coordinator's side of secure aggregation, for a profile that has it."""
        if secure_threshold(self.plan) is None:
            return None
        window = max(2.0, rnd.coordinator_deadline - time.time() - self._margin())
        return SecureAggregation(self.env, self.plan, rnd, self.run_id, answer_window_s=window)

    def _federation_size(self, rnd: Round) -> int | None:
        """SCAFFOLD's ``N``: every node that keeps a ``c_i`` for the profile (its volunteers,
        and this round's participants should one have withdrawn since), not only the round's
        participants: a volunteer that did not join this round still counts, as the paper's
        unsampled clients do. ``None`` for every other strategy (no ledger read)."""
        if not self.plan.uses_control_variates:
            return None
        return len(set(self.ledger.volunteers(self.plan.profile_id)) | set(rnd.participants))

    def _margin(self) -> float:
        window = float(self.plan.spec["schedule"]["coordinator_window_s"])
        return max(MIN_UPDATE_MARGIN_S, UPDATE_MARGIN * window)

    def _verified(
        self, rnd: Round, records: dict[str, UpdateRecord]
    ) -> tuple[list[FitResult], list[FitFailure], list[NodeReport]]:
        """Every participant's update, fetched and checked against the ledger, or the reason
        it is left out; and a quality report for each accepted one."""
        results: list[FitResult] = []
        failures: list[FitFailure] = []
        reports: list[NodeReport] = []
        self._update_bytes = {}
        fetched = prefetch(
            [
                wanted
                for r in records.values()
                if r.validation.passed and r.uri
                for wanted in (
                    (r.uri, r.sha256),
                    (_summary_uri(r.uri), r.validation.summary_sha256),
                )
            ]
        )
        for node in rnd.participants:
            outcome = self._accepted(node, records.get(node), fetched, rnd)
            if isinstance(outcome, FitFailure):
                failures.append(outcome)
                continue
            results.append(outcome)
            reports.append(_node_report(node, outcome, records[node], fetched))
        return results, failures, reports

    def _accepted(
        self,
        node: str,
        record: UpdateRecord | None,
        fetched: Callable[[str, str], bytes],
        rnd: Round,
    ) -> FitResult | FitFailure:
        """One participant's update if it is committed, validated, intact, fresh and its
        own; else why not."""
        if record is None:
            return FitFailure(
                node, "TIMEOUT", "no update committed before the coordinator's deadline"
            )
        if not record.validation.passed:
            reason = record.validation.reason or "data validation failed"
            return FitFailure(node, reason.split(":")[0] if ":" in reason else "EXCLUDED", reason)
        try:
            data = fetched(record.uri, record.sha256)
            result, family = decode_update(data)
        except (ArtifactIntegrityError, ArtifactMissingError) as exc:
            return FitFailure(node, exc.code, str(exc))
        except FederatedError as exc:
            return FitFailure(node, exc.code, exc.message)
        stale = staleness(result, rnd)
        if stale:
            return FitFailure(node, "STALE_UPDATE", stale)
        if family != self.plan.family or result.node_id != node:
            return FitFailure(
                node, "INVALID_UPDATE", f"update of {result.node_id} ({family}) under {node}"
            )
        self._update_bytes[node] = data
        return result

    def _bytes_of(self, results: list[FitResult]) -> list[tuple[FitResult, bytes]]:
        return [(r, self._update_bytes[r.node_id]) for r in results]

    def _current(self, rnd: Round) -> GlobalModel:
        return base_model(self.plan, rnd)

    def _evaluate(self, model: GlobalModel, evaluation: Any) -> dict[str, float]:
        """The profile's objective, quality, latency, size and CPU-time on the held-out set."""

        return evaluate_global_model(
            adapter_for(self.plan, model),
            evaluation.X,  # raw rows: the evaluation scales them as serving does
            evaluation.y,
            self.profile,
            model_bytes=encode_global_model(model),
        )

    def _contributions(
        self,
        strategy: Strategy,
        rnd: Round,
        current: GlobalModel,
        included: list[FitResult],
        reports: list[Any],
        evaluation: Any,
    ) -> dict[str, int]:
        def score(candidate: GlobalModel) -> float:
            if candidate.parameters == b"":  # round 0 of trees: no ensemble yet
                metrics = _constant_predictor_metrics(self.plan, evaluation.y)
            else:
                try:
                    metrics = ProfileModel.of(self.plan, candidate).metrics(
                        evaluation.X, evaluation.y
                    )
                except PredictionError:  # a subset whose model cannot predict: no better
                    metrics = _constant_predictor_metrics(self.plan, evaluation.y)
            value = float(metrics.get(self.plan.objective_metric, metrics.get("accuracy", 0.0)))
            return value if self.plan.objective_direction == "maximize" else -value

        ids = [r.node_id for r in included]
        utility = None
        if len(ids) > 1:
            bare = strategy.unwrapped()  # subsets of accepted updates need no guards, no quorum
            evaluate = aggregation_evaluator(bare, rnd.number, current, included, score)
            # Monte-Carlo Shapley needs v(∅), v(N) and the n - 1 other prefixes of one
            # permutation: n + 1 evaluations. A fixed budget of 16 refused every round of 16
            # or more included nodes, so every coordinator (and every replacement) failed
            # before committing the model and the round never closed.
            budget = max(SHAPLEY_EVALUATIONS, len(ids) + 1)
            try:
                utility = shapley_values(ids, evaluate, max_evaluations=budget)
            except ContributionError as exc:
                # Scores split the reward; they never decide whether the round's model is
                # committed. Without a utility the split falls back to the quality reports.
                log.warning("%s round %d: no Shapley values (%s)", rnd.profile, rnd.number, exc)
        result = contribution_scores(reports, total=1_000_000, utility=utility)
        return {k: v for k, v in result.tokens().items() if k in set(ids)} or dict.fromkeys(ids, 1)

    def _register(
        self, rnd: Round, data: bytes, metrics: dict[str, float], evaluation: Any
    ) -> ModelVersionInfo:
        return register_global_model(
            self.profile,
            rnd.number,
            data,
            run_id=self.run_id,
            input_example=evaluation.X[:5],
            hyperparameters=dict(self.plan.hyperparameters),
            metrics=metrics,
        )

    def _decide(self, metrics: dict[str, float]) -> AliasDecision:
        """Champion if it beats the current champion on the profile's objective."""

        current = champion(self.plan.profile_id)
        return decide_alias(
            objective_of(self.profile), metrics, current.metrics if current else None
        )

    def _promote(
        self,
        registered: ModelVersionInfo,
        metrics: dict[str, float],
        committed: Committed | None,
    ) -> None:
        version = registered
        if committed is not None:
            version = record_ledger_commit(
                self.plan.profile_id,
                registered.sha256,
                tx_id=committed.transaction_id,
                block=committed.block_number,
                version=registered,
            )
            self.report.block = committed.block_number
            self.report.transaction_id = committed.transaction_id
        promote(self.profile, registered.sha256, metrics, version=version)

    def _receipt(self, rnd: Round, digest: str, records: dict[str, UpdateRecord]) -> dict[str, Any]:
        return {
            "code_version": fedspec.__version__,
            "strategy": self.plan.strategy_name,
            "family": self.plan.family,
            "seeds": {"initial": self.plan.seed("initial"), "election": rnd.seed},
            "privacy": dict(self.plan.spec["privacy"]),
            "participants": rnd.participants,
            "aggregate_sha256": digest,
            "base_model": rnd.base_model,
            "base_profile": rnd.base_profile,
            "validation_sha256": {
                n: r.validation.summary_sha256 for n, r in sorted(records.items())
            },
            "mlflow_run_id": self.run_id,
            # The nodes' runs are children of the round's run, not of the coordinator's own.
            "mlflow_node_runs": node_runs(self.parent_run_id or self.run_id),
        }


def _node_report(
    node: str, result: FitResult, record: UpdateRecord, fetched: Callable[[str, str], bytes]
) -> NodeReport:
    """What contribution scoring knows of an accepted update: its size, its cost and the
    node's validation summary (quality counts as 0 when the summary cannot be read)."""
    summary = None
    try:
        text = fetched(_summary_uri(record.uri), record.validation.summary_sha256).decode()
        summary = ValidationSummary.from_canonical_json(text)
    except (ArtifactIntegrityError, ArtifactMissingError, ValueError) as exc:
        log.warning("%s: validation summary unavailable (%s); quality counts as 0", node, exc)
    metrics = result.metrics
    return NodeReport(
        node_id=node,
        num_examples=result.num_examples,
        train_seconds=float(metrics.get("train_seconds", 0.0) or 0.0),
        cpu_seconds=float(metrics.get("cpu_seconds", 0.0) or 0.0),
        validation=summary,
    )


def _summary_uri(update_uri: str) -> str:
    """The node's validation summary sits beside its update, in the same run."""
    return update_uri.rsplit("/", 1)[0] + "/validation.json"


def _constant_predictor_metrics(plan: TrainingPlan, y: Any) -> dict[str, float]:
    """What knowing nothing scores: the label prior (or the mean), the value of an empty
    tree ensemble when contributions are scored against it."""
    # Deferred: loads numpy only when used.
    import numpy as np

    y = np.asarray(y)
    if plan.task_type != "classification":
        return regression_metrics(y.astype(float), np.full(len(y), float(np.mean(y))))
    classes = np.asarray(sorted(int(c) for c in plan.spec["task"]["labels"]))
    prior = np.array([np.mean(y == c) for c in classes]) + 1e-9
    proba = np.tile(prior / prior.sum(), (len(y), 1))
    return classification_metrics(y, proba, classes.astype(y.dtype))


def _included(aggregation: AggregateResult, results: list[FitResult]) -> list[FitResult]:
    """The results whose updates entered the aggregated model, in ``results``' order."""
    chosen = set(aggregation.included)
    return [r for r in results if r.node_id in chosen]


def _left_out(aggregation: AggregateResult) -> tuple[FitFailure, ...]:
    """Every node the strategy or its wrappers left out, with its code and reason intact."""
    return aggregation.failures
