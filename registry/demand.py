"""Demand for specializations nobody offers yet: recorded from unmatched model queries,
and turned into profile proposals once enough members ask.

:func:`note_demand` runs after a model query (``fedspec model find``): when no active
profile fits the query well — the best *eligible* profile scores below the policy's
threshold, or none is eligible — the query's characteristics (never its rows, never its
schema's values) go on the ledger (``RecordDemand``), counted per requester and per
normalized characteristic set. :func:`suggest_profiles` reads the ledger's demand
(``ListDemand``) and, for every characteristic set asked often enough by enough identities
and covered by no proposed or active profile, builds a profile document from the closest
existing profile; :func:`propose_suggestions` proposes them, and the consortium votes as on
any other proposal. Ledger reads and writes only: no MLflow.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from chaincode.demand import signature
from registry.errors import QueryError
from registry.matching import Match, rank_profiles
from registry.query import Query, parse_query, resolution_of

if TYPE_CHECKING:
    from ledger_client.facade import FedspecLedger
    from ledger_client.records import DemandGroup, Profile

MAX_KEYS = 32  # as the profile schema allows
MAX_TEXT = 200


@dataclass(frozen=True)
class DemandPolicy:
    """When a query counts as unmatched, and when demand becomes a proposal."""

    score_threshold: float = 0.5
    min_requests: int = 3
    min_requesters: int = 2

    @classmethod
    def from_settings(cls, settings: Any) -> DemandPolicy:
        """From :class:`fedspec.app.settings.SpecializationSettings`."""
        return cls(
            score_threshold=float(settings.demand_score),
            min_requests=int(settings.demand_min_requests),
            min_requesters=int(settings.demand_min_requesters),
        )


@dataclass(frozen=True)
class DemandNote:
    """What :func:`note_demand` did: why the query was unmatched, what it recorded, and the
    characteristic set's demand so far (requests, distinct requesters)."""

    reason: str
    characteristics: Mapping[str, Any]
    signature: str
    requests: int
    requesters: int
    ready: bool  # past the policy's thresholds: ``fedspec profile suggest`` proposes it

    def to_json(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "characteristics": dict(self.characteristics),
            "signature": self.signature,
            "requests": self.requests,
            "requesters": self.requesters,
            "ready": self.ready,
        }


def unmatched(matches: Sequence[Match], threshold: float) -> str:
    """Why no profile fits well (``""`` if one does): the best eligible score is below
    ``threshold``, or no profile is eligible."""
    eligible = [m for m in matches if m.eligible]
    if not eligible:
        return "no eligible profile" if matches else "no active profile"
    best = max(eligible, key=lambda m: m.score)
    if best.score < threshold:
        return (
            f"the best eligible profile, {best.profile_id}, scores {best.score:.2f} < {threshold:g}"
        )
    return ""


def demand_characteristics(query: Query) -> dict[str, Any]:
    """The query's characteristics in the ledger's form (strings, integers, booleans, lists
    of strings): what is recorded, and all that is."""
    out: dict[str, Any] = {}
    for key in sorted(query.characteristics)[:MAX_KEYS]:
        value = query.characteristics[key]
        if isinstance(value, bool | int):
            out[key] = value
        elif isinstance(value, float):
            # Consensus never sees floats: an exact decimal string instead.
            out[key] = format(Decimal(repr(value)).normalize(), "f")
        elif isinstance(value, list | tuple):
            out[key] = [str(v)[:MAX_TEXT] for v in value][:MAX_KEYS]
        else:
            out[key] = str(value)[:MAX_TEXT]
    return out


def note_demand(
    ledger: FedspecLedger,
    query: Query,
    matches: Sequence[Match],
    policy: DemandPolicy | None = None,
) -> DemandNote | None:
    """Record the query's characteristics as demand if no profile fits it well; ``None``
    when one does, or when the query states no characteristics (nothing to specialize on)."""

    policy = policy or DemandPolicy()
    reason = unmatched(matches, policy.score_threshold)
    characteristics = demand_characteristics(query)
    if not reason or not characteristics:
        return None
    record = ledger.record_demand(characteristics)
    sig = signature(characteristics)
    group = next((g for g in ledger.list_demand() if g.signature == sig), None)
    requests = group.requests if group else record.requests
    requesters = len(group.requesters) if group else 1
    return DemandNote(
        reason=reason,
        characteristics=record.characteristics,
        signature=sig,
        requests=requests,
        requesters=requesters,
        ready=requests >= policy.min_requests and requesters >= policy.min_requesters,
    )


@dataclass(frozen=True)
class Suggestion:
    """A profile proposed for one characteristic set's demand."""

    demand: DemandGroup
    document: Mapping[str, Any] | None  # None: no profile to start the document from
    template: str  # the existing profile the document was made from
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "demand": self.demand.to_json(),
            "profile": dict(self.document) if self.document is not None else None,
            "template": self.template,
            "reason": self.reason,
        }


def suggest_profiles(
    ledger: FedspecLedger, policy: DemandPolicy | None = None, *, template: str | None = None
) -> list[Suggestion]:
    """A profile document for every characteristic set whose demand passes the policy and
    that no proposed or active profile covers yet."""
    policy = policy or DemandPolicy()
    groups = [
        g for g in ledger.list_demand(policy.min_requests, policy.min_requesters) if not g.profiles
    ]
    if not groups:
        return []
    profiles = ledger.list_profiles("active")
    if template is not None:
        chosen = ledger.get_profile(template)
        profiles = [chosen]
    out = []
    for group in groups:
        base = _closest(profiles, group.characteristics)
        if base is None:
            out.append(Suggestion(group, None, "", "no active profile to start the document from"))
            continue
        out.append(
            Suggestion(
                group,
                profile_from_demand(group, base.id, base.spec),
                base.id,
                f"{group.requests} requests by {len(group.requesters)} identities "
                f"({', '.join(group.orgs)}); document from {base.id}",
            )
        )
    return out


def propose_suggestions(
    ledger: FedspecLedger, suggestions: Sequence[Suggestion]
) -> list[dict[str, Any]]:
    """Propose each suggestion's document as the ledger's caller; the vote follows."""
    proposed = []
    for suggestion in suggestions:
        if suggestion.document is None:
            continue
        profile = ledger.propose_profile(suggestion.document)
        proposed.append(
            {"id": profile.id, "status": profile.status, "template": suggestion.template}
        )
    return proposed


def profile_from_demand(
    group: DemandGroup, template_id: str, template: Mapping[str, Any]
) -> dict[str, Any]:
    """The template profile's document with the demanded characteristics, a new id, and the
    template as its parent (so its first round may start from the template's champion, when
    the two models are compatible). A demanded square ``resolution`` resizes a flat image
    feature schema."""
    wanted = dict(group.characteristics)
    spec = copy.deepcopy(dict(template))
    spec["characteristics"] = {**spec["characteristics"], **wanted}
    spec["id"] = profile_id(["demand", *(_text(v) for _, v in sorted(wanted.items()))], group)
    shown = ", ".join(f"{k}={_text(v)}" for k, v in sorted(wanted.items()))
    spec["name"] = f"Demand: {shown}"[:120]
    spec["description"] = (
        f"Proposed from demand: {group.requests} requests by {len(group.requesters)} "
        f"identities of {', '.join(group.orgs)} found no profile fitting {shown}. "
        f"Document from {template_id}."
    )[:2000]
    spec["parent"] = template_id
    side = resolution_of(wanted.get("resolution"))
    shape = (spec.get("feature_schema") or {}).get("shape")
    if side is not None and isinstance(shape, list) and len(shape) == 1:
        spec["feature_schema"] = {**spec["feature_schema"], "shape": [side[0] * side[1]]}
    return spec


def profile_id(parts: Sequence[str], group: DemandGroup | None = None) -> str:
    """A valid profile id from readable parts (``demand-image-16x16``), with the demand's
    signature appended so that two demands never collide."""
    slug = "-".join(_slug(p) for p in parts if _slug(p))
    suffix = f"-{group.signature[:8]}" if group is not None else ""
    return (slug[: 63 - len(suffix)].rstrip("-._") or "profile") + suffix


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9._]+", "-", text.lower()).strip("-._")


def _text(value: Any) -> str:
    return "+".join(str(v) for v in value) if isinstance(value, list) else str(value)


def _closest(profiles: Sequence[Profile], characteristics: Mapping[str, Any]) -> Profile | None:
    if not profiles:
        return None
    try:
        query = parse_query(characteristics)
    except QueryError:
        query = Query(characteristics=dict(characteristics))
    best = rank_profiles(profiles, {}, query)[0]  # champions do not matter for the document
    return next(p for p in profiles if p.id == best.profile_id)
