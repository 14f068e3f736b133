"""Champion / challenger: a new version becomes ``champion`` only if it beats the current
champion on the profile's objective and meets the objective's constraints; otherwise it
becomes ``challenger``. :func:`decide_alias` is the pure rule; :func:`promote` applies it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from registry.errors import EvaluationError, ModelNotFoundError
from registry.models import ModelVersionInfo, get_version, record_metrics
from registry.profiles import Objective, objective_of, profile_id_of
from registry.tracking import client, translate

CHAMPION: Literal["champion"] = "champion"
CHALLENGER: Literal["challenger"] = "challenger"
Alias = Literal["champion", "challenger"]


@dataclass(frozen=True)
class AliasDecision:
    """Which alias a candidate gets, and why (``reason`` is logged and shown to people)."""

    alias: Alias
    reason: str
    candidate: float
    champion: float | None = None
    champion_version: int | None = None


def decide_alias(
    objective: Objective,
    candidate: Mapping[str, float],
    champion: Mapping[str, float] | None,
) -> AliasDecision:
    """The alias a candidate with metrics ``candidate`` earns against ``champion``'s metrics
    (``None``: there is no champion yet). A tie keeps the champion; a candidate that breaks
    a constraint, or whose objective is NaN, is a challenger; a champion with no recorded
    objective value loses to any candidate that meets the constraints."""
    if objective.metric not in candidate:
        raise EvaluationError(
            f"objective metric {objective.metric!r} is not among the candidate's metrics "
            f"{sorted(candidate)}",
            metric=objective.metric,
        )
    value = float(candidate[objective.metric])
    broken = objective.violations(candidate)
    if broken:
        return AliasDecision(CHALLENGER, f"breaks constraints: {', '.join(broken)}", value)
    if math.isnan(value):
        return AliasDecision(CHALLENGER, f"{objective.metric} is NaN", value)
    if champion is None:
        return AliasDecision(CHAMPION, "no champion yet", value)
    incumbent = float(champion.get(objective.metric, math.nan))
    if objective.better(value, incumbent):
        why = f"{objective.metric} {value:.6g} beats {incumbent:.6g} ({objective.direction})"
        return AliasDecision(CHAMPION, why, value, incumbent)
    why = f"{objective.metric} {value:.6g} does not beat {incumbent:.6g} ({objective.direction})"
    return AliasDecision(CHALLENGER, why, value, incumbent)


def promote(
    profile: Mapping[str, Any],
    sha256: str,
    metrics: Mapping[str, float],
    *,
    champion_metrics: Mapping[str, float] | None = None,
    version: ModelVersionInfo | None = None,
) -> AliasDecision:
    """Record ``metrics`` on the version with hash ``sha256`` and give it ``champion`` or
    ``challenger``.

    The champion's metrics are those recorded on it (``metric.*`` tags) unless
    ``champion_metrics`` are given, e.g. the champion re-evaluated on this round's held-out
    data, which is the fairer comparison when the held-out set changes between rounds.
    ``version``: the version as the caller has it (just registered), sparing its search.
    """
    profile_id = profile_id_of(profile)
    objective = objective_of(profile)
    candidate = record_metrics(profile_id, sha256, metrics, version=version)
    current = _alias_holder(profile_id, CHAMPION)
    if current is not None and current.version == candidate.version:
        value = float(metrics.get(objective.metric, math.nan))
        return AliasDecision(CHAMPION, "already champion", value, value, current.version)
    incumbent = None
    if current is not None:
        incumbent = dict(champion_metrics) if champion_metrics is not None else current.metrics
    decision = decide_alias(objective, metrics, incumbent)
    with translate(f"alias of {candidate.uri}"):
        client().set_registered_model_alias(profile_id, decision.alias, str(candidate.version))
    return AliasDecision(
        decision.alias,
        decision.reason,
        decision.candidate,
        decision.champion,
        current.version if current is not None else None,
    )


def champion(profile_id: str) -> ModelVersionInfo | None:
    """The current champion, or ``None``."""
    return _alias_holder(profile_id, CHAMPION)


def _alias_holder(profile_id: str, alias: str) -> ModelVersionInfo | None:
    try:
        return get_version(profile_id, alias=alias)
    except ModelNotFoundError:
        return None
