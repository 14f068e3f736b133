"""After a round: should the profile split, and has demand for a new profile built up?

Runs after each round of a profile (``federated-round`` calls :func:`run_check` in its own
flow run)
and on demand (``fedspec specialize check``). Two sources of proposals:

* **divergence** inside the profile (:mod:`federated.divergence`): each committed round's
  included updates are fetched the way the coordinator fetches them (each verified against
  its ledger sha256 before it is decoded), turned into deltas against the round's base model
  and tested with Sattler et al.'s clustered-FL criterion; a bipartition that holds for
  ``split_patience`` committed rounds in a row — or nodes whose local loss stays an outlier
  for ``loss_patience`` rounds, when they and the rest are each big enough to federate —
  becomes two child profiles named by what their nodes' data advertises
  (:mod:`flows.children`);
* **demand** recorded on the ledger by unmatched model queries (:mod:`registry.demand`).

Proposals are ``ProposeProfile`` transactions by the round's coordinator (by the caller when
the coordinator's key is not here); the consortium votes as on any other proposal. Nothing
is proposed twice: a child whose id, or whose parent and characteristics, are already on the
ledger is reported and skipped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prefect import flow

from federated.divergence import (
    DivergenceReport,
    LossCriteria,
    SplitCriteria,
    detect_split,
    flatten_delta,
    loss_outliers,
    persistent_split,
)
from federated.errors import FederatedError
from federated.plan import TrainingPlan
from fedspec.app.settings import Settings, SpecializationSettings
from flows import tracking
from flows.children import Child, ChildPlan, plan_children
from ledger_client import Consortium, EndorseError, IdentityError, from_fixed, open_ledger

if TYPE_CHECKING:
    from ledger_client import FedspecLedger, Round, RoundSummary, UpdateRecord
    from ledger_client.records import Profile

log = logging.getLogger("fedspec.specialization")
# The local loss a node reports with its update (absent under differential privacy: training
# metrics are data-dependent values the DP guarantee does not cover).
LOSS_METRICS = ("train_log_loss", "train_rmse")


@dataclass
class RoundCheck:
    """What one committed round's updates say."""

    round: int
    divergence: DivergenceReport | None = None
    losses: dict[str, float] = field(default_factory=dict)
    note: str = ""  # why there is no divergence report for this round

    def to_json(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "divergence": self.divergence.to_json() if self.divergence else None,
            "losses": {k: round(v, 6) for k, v in sorted(self.losses.items())},
            "note": self.note,
        }


@dataclass
class SpecializationReport:
    """What was checked, each criterion's numbers and verdict, what was proposed and why."""

    profile: str
    rounds: list[RoundCheck] = field(default_factory=list)
    split: dict[str, Any] | None = None  # the persistent bipartition (or loss-outlier split)
    loss_outliers: dict[str, str] = field(default_factory=dict)
    children: list[dict[str, Any]] = field(default_factory=list)
    demand: list[dict[str, Any]] = field(default_factory=list)
    proposer: str = ""
    lines: list[str] = field(default_factory=list)

    @property
    def proposed(self) -> list[str]:
        return [c["id"] for c in self.children + self.demand if c.get("status") == "proposed"]

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "rounds": [r.to_json() for r in self.rounds],
            "split": self.split,
            "loss_outliers": dict(self.loss_outliers),
            "children": self.children,
            "demand": self.demand,
            "proposed": self.proposed,
            "proposer": self.proposer,
            "lines": list(self.lines),
        }


def split_criteria(settings: SpecializationSettings) -> SplitCriteria:
    return SplitCriteria(
        max_norm_ratio=settings.split_max_norm_ratio,
        max_cross_similarity=settings.split_max_cross_similarity,
        min_gap=settings.split_min_gap,
        min_cluster_size=settings.split_min_cluster_size,
    )


def loss_criteria(settings: SpecializationSettings) -> LossCriteria:
    return LossCriteria(
        z=settings.loss_z, min_relative=settings.loss_min_relative, patience=settings.loss_patience
    )


def check_profile(
    profile_id: str,
    settings: Settings,
    *,
    propose: bool = False,
    proposer: str | None = None,
    reader: str | None = None,
    demand: bool = True,
) -> SpecializationReport:
    """Run divergence detection on ``profile_id``'s last committed rounds (and the demand
    check); with ``propose``, propose what it finds as ``proposer`` (default: the latest
    checked round's coordinator)."""

    tracking.configure(settings.mlflow_tracking_uri, settings.home / "mlflow" / "artifacts")
    ledger = open_ledger(settings.ledger, reader or _default_admin(settings))
    report = SpecializationReport(profile_id)
    spec = settings.specialization
    profile = ledger.get_profile(profile_id)
    closed = [r for r in ledger.list_rounds(profile_id) if r.status == "closed"]
    window = closed[-max(spec.split_patience, spec.loss_patience, 1) :]
    coordinator = ledger.get_round(profile_id, window[-1].number).coordinator if window else ""
    proposer = proposer or coordinator or None
    plan_or_none = _divergence(ledger, profile, window, settings, report)
    if plan_or_none is not None and plan_or_none.children:
        _children(ledger, profile, plan_or_none, report)
    if demand:
        _demand(ledger, settings, report)
    if propose and any(c["status"] == "new" for c in report.children + report.demand):
        writer, report.proposer = _proposer(settings, proposer, reader)
        _propose(writer, report)
    elif not propose:
        report.lines.append("nothing proposed (check only)")
    return report


def _divergence(
    ledger: FedspecLedger,
    profile: Profile,
    window: Sequence[RoundSummary],
    settings: Settings,
    report: SpecializationReport,
) -> ChildPlan | None:
    """A split of ``profile`` into children, when its nodes' updates or losses have
    diverged for long enough; every finding goes to ``report``."""
    spec = settings.specialization
    lines = report.lines
    if profile.status != "active":
        lines.append(f"divergence: skipped, {profile.id} is {profile.status}")
        return None
    plan = TrainingPlan.from_profile(profile.id, profile.spec)
    split_rounds = window[-spec.split_patience :] if spec.split_patience else []
    report.rounds.extend(_round_checks(ledger, profile.id, plan, window, split_rounds, spec))
    _divergence_lines(profile.id, plan, len(window), len(split_rounds), spec, report)
    advertised = _advertised(ledger, profile.id, window)
    reports = [c.divergence for c in report.rounds if c.divergence is not None]
    checked = [c for c in report.rounds if c.round in {r.number for r in split_rounds}]
    split = (
        persistent_split(reports, spec.split_patience)
        if len(reports) == len(checked) and not plan.is_tree
        else None
    )
    criteria = _loss_lines(spec, report)
    if split is not None:
        report.split = {"criterion": "update clusters", **split.to_json()}
        lines.append(
            f"split: the same bipartition for {spec.split_patience} rounds: "
            + " | ".join("{" + ", ".join(g) + "}" for g in split.groups)
        )
        why = (
            f"updates of {', '.join(split.groups[0])} vs {', '.join(split.groups[1])}: "
            f"cross-group cosine ≤ {split.cross_max:.2f}, gap {split.gap:.2f}, "
            f"{spec.split_patience} rounds in a row"
        )
        return _named(profile, split.groups, advertised, why, lines)
    nodes = sorted({n for c in report.rounds for n in c.losses})
    outliers = sorted(report.loss_outliers)
    rest = [n for n in nodes if n not in outliers]
    if outliers and min(len(outliers), len(rest)) >= spec.split_min_cluster_size:
        report.split = {"criterion": "loss outliers", "groups": [outliers, rest]}
        why = f"local loss of {', '.join(outliers)} far from the others' for {criteria.patience} rounds"
        return _named(profile, (tuple(outliers), tuple(rest)), advertised, why, lines)
    if outliers:
        lines.append(
            f"loss outliers not split off: a child needs {spec.split_min_cluster_size} nodes "
            "on each side"
        )
    lines.append("divergence: no split")
    return None


def _round_checks(
    ledger: FedspecLedger,
    profile_id: str,
    plan: TrainingPlan,
    window: Sequence[RoundSummary],
    split_rounds: Sequence[RoundSummary],
    spec: SpecializationSettings,
) -> list[RoundCheck]:
    """Per committed round: the included nodes' local losses and, for the rounds a split
    must hold over, the divergence test on their updates (never for trees)."""
    checks = []
    for summary in window:
        number = summary.number
        check = RoundCheck(number)
        records = _included_updates(ledger, profile_id, number)
        check.losses = _losses(records)
        if plan.is_tree:
            check.note = "trees are not averaged: an update is new trees, not a weight step"
        elif summary in split_rounds:
            try:
                check.divergence, check.note = _round_divergence(
                    ledger.get_round(profile_id, number), plan, records, split_criteria(spec)
                )
            except FederatedError as exc:  # an unreadable update: this round proves nothing
                check.note = f"{exc.code}: {exc.message}"
        checks.append(check)
    return checks


def _divergence_lines(
    profile_id: str,
    plan: TrainingPlan,
    committed: int,
    split_rounds: int,
    spec: SpecializationSettings,
    report: SpecializationReport,
) -> None:
    """Why the divergence test did not run, and what each round's test found."""
    lines = report.lines
    if plan.is_tree:
        lines.append(
            f"divergence: skipped for {profile_id} ({plan.family}): trees are never averaged, "
            "so updates are new trees, not steps in one weight space, and their cosine "
            "similarity means nothing"
        )
    elif split_rounds < spec.split_patience:
        lines.append(
            f"divergence: {committed} committed round(s); a split must hold for "
            f"{spec.split_patience} in a row"
        )
    for check in report.rounds:
        if check.divergence is not None:
            lines.append(f"round {check.round}: " + "; ".join(check.divergence.lines))
        elif check.note and not plan.is_tree:
            lines.append(f"round {check.round}: no divergence test ({check.note})")


def _loss_lines(spec: SpecializationSettings, report: SpecializationReport) -> LossCriteria:
    """The nodes whose local loss stays far from the others' (into ``report``); returns the
    criteria used."""
    criteria = loss_criteria(spec)
    report.loss_outliers = loss_outliers([c.losses for c in report.rounds], criteria)
    if not any(c.losses for c in report.rounds):
        report.lines.append("local loss: not reported (private rounds, or trees)")
    elif report.loss_outliers:
        report.lines.extend(
            f"local loss outlier {n}: {why}" for n, why in report.loss_outliers.items()
        )
    else:
        report.lines.append(
            f"local loss: no node an outlier for {criteria.patience} rounds in a row "
            f"(robust z > {criteria.z}, > {criteria.min_relative:.0%} from the median)"
        )
    return criteria


def _named(
    profile: Profile,
    groups: Sequence[Sequence[str]],
    advertised: Mapping[str, Mapping[str, Any]],
    why: str,
    lines: list[str],
) -> ChildPlan:
    plan = plan_children(profile.id, profile.spec, groups, advertised, why)
    if not plan.children:
        lines.append(f"split found but not proposed: {plan.reason}")
    return plan


def _round_divergence(
    rnd: Round,
    plan: TrainingPlan,
    records: Sequence[UpdateRecord],
    criteria: SplitCriteria,
) -> tuple[DivergenceReport | None, str]:
    """Sattler et al.'s test on one round's included updates, each a delta against the
    round's base model."""
    # Deferred: loads safetensors only when used.
    from federated.exchange import decode_update
    from flows.updates import base_model, prefetch, staleness

    if len(records) < 2:
        return None, f"{len(records)} included update(s)"
    fetched = prefetch([(r.uri, r.sha256) for r in records])
    base = base_model(plan, rnd)
    if isinstance(base.parameters, bytes):
        return None, "the base model is not weight arrays"
    deltas, weights = {}, {}
    for record in records:
        result, family = decode_update(fetched(record.uri, record.sha256))
        stale = staleness(result, rnd)
        if stale or family != plan.family or isinstance(result.parameters, bytes):
            # Never committed into the round's model either; the coordinator refused it.
            continue
        if not base.parameters:  # an untrained initial model has no arrays to subtract
            return None, "the round started from no weights"
        deltas[record.node] = flatten_delta(base.parameters, result.parameters)
        weights[record.node] = float(result.num_examples)
    if len(deltas) < 2:
        return None, f"{len(deltas)} usable update(s)"
    return detect_split(deltas, weights, criteria), ""


def _included_updates(ledger: FedspecLedger, profile_id: str, number: int) -> list[UpdateRecord]:
    """The update records the round's committed model includes (node and hash match)."""
    included = {(i["node"], i["sha256"]) for i in ledger.get_model(profile_id, number).inclusion}
    return [
        u
        for u in ledger.list_updates(profile_id, number)
        if (u.node, u.sha256) in included and u.uri
    ]


def _losses(records: Sequence[UpdateRecord]) -> dict[str, float]:
    out = {}
    for record in records:
        name = next((m for m in LOSS_METRICS if m in record.metrics), None)
        if name is not None:
            out[record.node] = from_fixed(int(record.metrics[name]))
    return out


def _advertised(
    ledger: FedspecLedger, profile_id: str, window: Sequence[RoundSummary]
) -> dict[str, dict[str, Any]]:
    """What each node last advertised about its data (the latest round it took part in)."""
    out: dict[str, dict[str, Any]] = {}
    for summary in window:  # oldest first: later rounds overwrite
        for record in ledger.list_updates(profile_id, summary.number):
            if record.characteristics:
                out[record.node] = dict(record.characteristics)
    return out


def _children(
    ledger: FedspecLedger, profile: Profile, plan: ChildPlan, report: SpecializationReport
) -> None:
    existing = {p.id: p for p in ledger.list_profiles()}
    for child in plan.children:
        entry = {**child.to_json(), "status": "new", "reason": "", "document": child.document}
        twin = existing.get(child.id) or _same_child(existing.values(), profile.id, child)
        if twin is not None:
            entry["status"] = "skipped"
            entry["reason"] = f"{twin.id} is already {twin.status}"
        report.children.append(entry)
        report.lines.append(
            f"child {child.id} for {', '.join(child.nodes)} "
            f"({', '.join(f'{k}={v}' for k, v in child.distinguishing.items())}): "
            + (entry["reason"] or "to propose")
        )


def _same_child(profiles: Iterable[Profile], parent_id: str, child: Child) -> Profile | None:
    """A profile of the same parent for the same data, proposed earlier under another id."""
    wanted = json.dumps(dict(child.document["characteristics"]), sort_keys=True)
    for p in profiles:
        if p.spec.get("parent") == parent_id and (
            json.dumps(p.spec.get("characteristics"), sort_keys=True) == wanted
        ):
            return p
    return None


def _demand(ledger: FedspecLedger, settings: Settings, report: SpecializationReport) -> None:
    # Deferred: loads safetensors, scipy, sklearn only when used.
    from registry.demand import DemandPolicy, suggest_profiles

    policy = DemandPolicy.from_settings(settings.specialization)
    suggestions = suggest_profiles(ledger, policy)
    for s in suggestions:
        entry = s.to_json()
        entry["id"] = s.document["id"] if s.document is not None else ""
        entry["status"] = "new" if s.document is not None else "skipped"
        entry["document"] = s.document
        report.demand.append(entry)
        report.lines.append(f"demand: {entry['id'] or '(no document)'}: {s.reason}")
    if not suggestions:
        report.lines.append(
            f"demand: no characteristic set asked {policy.min_requests}+ times by "
            f"{policy.min_requesters}+ identities and not yet covered"
        )


def _propose(ledger: FedspecLedger, report: SpecializationReport) -> None:
    for entry in report.children + report.demand:
        if entry["status"] != "new" or entry.get("document") is None:
            continue
        try:
            profile = ledger.propose_profile(entry["document"])
        except EndorseError as exc:  # e.g. proposed meanwhile by another coordinator
            entry["status"], entry["reason"] = "refused", f"{exc.code}: {exc.message}"[:300]
        else:
            entry["status"] = "proposed"
            entry["reason"] = f"proposed by {profile.proposed_by}; the consortium votes"
        report.lines.append(f"{entry['id']}: {entry['status']} ({entry['reason']})")


def _proposer(
    settings: Settings, wanted: str | None, fallback: str | None
) -> tuple[FedspecLedger, str]:
    """The ledger as the round's coordinator, or — when its key is not in this home (a
    consortium member's worker holds only its own organization's keys) — as the caller."""

    for identity in (wanted, fallback, _default_admin(settings)):
        if identity:
            try:
                return open_ledger(settings.ledger, identity), identity
            except IdentityError:
                log.info("no key for %s here; proposing as the next identity", identity)
    raise IdentityError("no identity to propose as")


def _default_admin(settings: Settings) -> str:
    return Consortium.load(settings.ledger.consortium_dir).default_admin


def run_check(
    profile_id: str,
    home: str | None,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
    *,
    propose: bool = True,
    proposer: str = "",
    reader: str = "",
    run_id: str = "",
) -> dict[str, Any]:
    """The check's work, in the caller's flow run: ``federated-round`` runs it in its own
    run, because a subflow run of its own cost ~0.13 s of Prefect round trips per round
    (5 % of a demo round, benchmarks/round_time.py). Its lines go to ``logger``."""
    report = check_profile(
        profile_id,
        Settings.load(home),
        propose=propose,
        proposer=proposer or None,
        reader=reader or None,
    )
    for line in report.lines:
        logger.info("%s: %s", profile_id, line)
    doc = report.to_json()
    if run_id:
        tracking.log_bytes(run_id, "specialization.json", json.dumps(doc, indent=2).encode())
    return doc


@flow(name="specialization-check", log_prints=True)
def specialization_check(
    profile_id: str,
    home: str | None = None,
    propose: bool = True,
    proposer: str = "",
    reader: str = "",
    run_id: str = "",
) -> dict[str, Any]:
    """Divergence and demand checks after a round of ``profile_id``; the report is logged
    (and kept in the round's MLflow run as ``specialization.json``)."""
    # Deferred: loads prefect only when used.
    from prefect import get_run_logger

    return run_check(
        profile_id,
        home,
        get_run_logger(),
        propose=propose,
        proposer=proposer,
        reader=reader,
        run_id=run_id,
    )
