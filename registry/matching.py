"""Which profile's model fits a client: a graded score per profile, and why.

A client's :class:`registry.query.Query` states its data (``sensor=gyroscope``,
``resolution=8x8``, optionally the schema of its rows) and its criteria (a metric to
optimize, constraints such as ``latency_ms<=5``). :func:`rank_profiles` scores every profile against the query and checks the constraints
against the performance recorded **on the ledger** for the profile's champion; each
:class:`Match` carries its score, whether it is eligible, and one readable line per part of
the score. It is a pure function: no MLflow, no ledger (:func:`find_matches` reads the
ledger and calls it).

Scoring, per characteristic the client states (the profile's other keys are ignored):

- equal values (strings compared case-insensitively, ``"1"`` equal to ``1``): 1.0;
- resolutions ``WxH``: ``sqrt(smaller pixel count / larger)`` (8x8 against 28x28: 0.29);
- numbers: ``smaller / larger`` magnitude (50 Hz against 100 Hz: 0.5; 0 across signs);
- lists, and ``a+b`` compound strings: Jaccard overlap (``gyroscope`` against
  ``accelerometer+gyroscope``: 0.5);
- anything else that differs: 0.0; a key the profile does not declare:
  :data:`MISSING_KEY_SCORE`.

With an input schema, its fit to the profile's ``feature_schema`` is one more component
(:func:`fit_schema`): same width 1.0, columns selectable by name
:data:`COLUMN_SELECTION_SCORE`, a square image resampled to another side ``small / large``
side, not adaptable 0.0 (and ineligible). The score is the mean of the components (1.0 for
an empty query). A profile is eligible when its schema can be adapted, it has a champion on
the ledger and that champion's recorded metrics meet every constraint (an unrecorded metric
does not). Ranking: eligible first, then score, then the metric to optimize, then the id.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from registry.profiles import n_features_of
from registry.query import InputSchema, Query, decimal_number, resolution_of, square_side

if TYPE_CHECKING:
    from ledger_client.facade import FedspecLedger

MISSING_KEY_SCORE = 0.5  # the profile does not say: maybe fits, maybe not
COLUMN_SELECTION_SCORE = 0.9  # lossless, but the data was not collected for this profile
NO_SCHEMA_SCORE = 0.5  # the profile declares no feature schema: cannot check the fit


# ---------------------------------------------------------------------------- champions
@dataclass(frozen=True)
class Champion:
    """The model a profile serves, as committed on the ledger (metrics as floats)."""

    profile_id: str
    round: int
    sha256: str
    metrics: Mapping[str, float]
    uri: str = ""


class ProfileLike(Protocol):
    """A ledger profile (``ledger_client.records.Profile``): its id and its document."""

    @property
    def id(self) -> str: ...

    @property
    def spec(self) -> Mapping[str, Any]: ...


def ledger_champion(ledger: FedspecLedger, profile_id: str) -> Champion | None:
    """The profile's champion on the ledger, or ``None`` if it has none.

    The chaincode keeps a champion pointer but no query for it; the newest committed model
    whose alias is ``champion`` is what that pointer names (a challenger is recorded, not
    served). ``profile_history`` lists the committed models, ``get_model`` their alias.
    """
    # Deferred: loads fabric_protos, google only when used.
    from ledger_client.records import from_fixed

    rounds = ledger.profile_history(profile_id).rounds
    for number in sorted((r.number for r in rounds if r.model), reverse=True):
        record = ledger.get_model(profile_id, number)
        if record.alias == "champion":
            return Champion(
                profile_id,
                record.round,
                record.sha256,
                {k: from_fixed(v) for k, v in record.metrics.items()},
                record.uri,
            )
    return None


def find_matches(ledger: FedspecLedger, query: Query) -> list[Match]:
    """Every active profile on the ledger, ranked for ``query`` (a few reads per profile)."""
    profiles = ledger.list_profiles("active")
    champions = {}
    for profile in profiles:
        found = ledger_champion(ledger, profile.id)
        if found is not None:
            champions[profile.id] = found
    return rank_profiles(profiles, champions, query)


# ---------------------------------------------------------------------------- scoring
FitKind = Literal["same", "columns", "resample", "none"]


@dataclass(frozen=True)
class SchemaFit:
    """How the client's rows fit a profile's ``feature_schema``: as they are (``same``),
    by selecting columns by name (``indices`` into the client's columns), by resampling a
    square image from ``source_side`` to ``target_side`` (pixel values mapped from the
    client's ``bounds`` to the profile's ``target_bounds``), or not at all."""

    kind: FitKind
    score: float
    line: str
    indices: tuple[int, ...] = ()
    source_side: int = 0
    target_side: int = 0
    target_bounds: tuple[float, float] | None = None

    @property
    def adaptable(self) -> bool:
        return self.kind != "none"

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> SchemaFit:
        bounds = doc.get("target_bounds")
        return cls(
            kind=doc["kind"],
            score=float(doc["score"]),
            line=str(doc["line"]),
            indices=tuple(int(i) for i in doc.get("indices") or ()),
            source_side=int(doc.get("source_side") or 0),
            target_side=int(doc.get("target_side") or 0),
            target_bounds=(float(bounds[0]), float(bounds[1])) if bounds else None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "score": round(self.score, 6),
            "line": self.line,
            "indices": list(self.indices),
            "source_side": self.source_side,
            "target_side": self.target_side,
            "target_bounds": list(self.target_bounds) if self.target_bounds else None,
        }


@dataclass(frozen=True)
class Match:
    """One profile's fit to a query. ``explanation`` has a line per component, constraint
    and decision; ``reasons`` the lines that make it ineligible."""

    profile_id: str
    score: float
    eligible: bool
    explanation: tuple[str, ...]
    metrics: Mapping[str, float]
    champion_sha256: str | None
    champion_round: int | None
    components: Mapping[str, float] = field(default_factory=dict)
    reasons: tuple[str, ...] = ()
    objective_value: float | None = None
    schema_fit: SchemaFit | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile_id,
            "score": round(self.score, 6),
            "eligible": self.eligible,
            "explanation": list(self.explanation),
            "reasons": list(self.reasons),
            "components": {k: round(v, 6) for k, v in self.components.items()},
            "metrics": dict(self.metrics),
            "champion": None
            if self.champion_sha256 is None
            else {"round": self.champion_round, "sha256": self.champion_sha256},
            "objective_value": self.objective_value,
            "schema_fit": self.schema_fit.to_json() if self.schema_fit else None,
        }


def rank_profiles(
    profiles: Sequence[ProfileLike], champions: Mapping[str, Champion], query: Query
) -> list[Match]:
    """Every profile scored against ``query``, best first (see the module docstring).
    ``champions`` maps profile ids to their champion; a profile without one is listed,
    ineligible."""
    matches = [_match(p.id, p.spec, champions.get(p.id), query) for p in profiles]

    def order(m: Match) -> tuple[bool, float, float, str]:
        value = m.objective_value
        if query.optimize is None or value is None or math.isnan(value):
            tie = math.inf
        else:
            tie = -value if query.optimize.direction == "maximize" else value
        # Rounded: scores equal up to float noise tie, and the metric decides.
        return (not m.eligible, -round(m.score, 9), tie, m.profile_id)

    return sorted(matches, key=order)


def grade(key: str, wanted: Any, have: Any) -> tuple[float, str]:
    """The score of one characteristic the client wants against the profile's value
    (``None``: the profile does not declare it), and its explanation line."""
    shown = _show(wanted)
    if have is None:
        return MISSING_KEY_SCORE, (
            f"{key}: {shown} wanted, not declared by the profile ({MISSING_KEY_SCORE:.2f})"
        )
    want_set, have_set = _as_set(wanted), _as_set(have)
    if len(want_set) > 1 or len(have_set) > 1 or isinstance(wanted, list) or isinstance(have, list):
        common, union = len(want_set & have_set), len(want_set | have_set)
        score = common / union if union else 1.0
        if score == 1.0:
            return 1.0, f"{key}: {shown} = {_show(have)} (1.00)"
        return score, f"{key}: {shown} vs {_show(have)}, overlap {common}/{union} ({score:.2f})"
    if _norm(wanted) == _norm(have):
        return 1.0, f"{key}: {shown} = {_show(have)} (1.00)"
    want_px, have_px = _pixels(wanted), _pixels(have)
    if want_px is not None and have_px is not None:
        small, large = sorted((want_px, have_px))
        score = math.sqrt(small / large) if large else 0.0
        return score, f"{key}: {shown} vs {_show(have)}, graded {score:.2f}"
    a, b = _plain_number(wanted), _plain_number(have)
    if a is not None and b is not None:
        score = min(abs(a), abs(b)) / max(abs(a), abs(b)) if a * b > 0 else 0.0
        return score, f"{key}: {shown} vs {_show(have)}, graded {score:.2f}"
    return 0.0, f"{key}: {shown} ≠ {_show(have)} (0.00)"


def fit_schema(client: InputSchema, spec: Mapping[str, Any]) -> SchemaFit:
    """How rows described by ``client`` fit the profile document ``spec`` (see
    :class:`SchemaFit`)."""
    schema = spec.get("feature_schema") or {}
    width = n_features_of(spec)
    if width is None:
        return SchemaFit(
            "same", NO_SCHEMA_SCORE, f"schema: the profile declares none ({NO_SCHEMA_SCORE:.2f})"
        )
    names = [str(c["name"]) for c in schema.get("columns") or ()]
    if names and client.columns:
        if list(client.columns) == names:
            return SchemaFit("same", 1.0, f"schema: the same {len(names)} columns (1.00)")
        missing = [n for n in names if n not in client.columns]
        if not missing:
            indices = tuple(client.columns.index(n) for n in names)
            return SchemaFit(
                "columns",
                COLUMN_SELECTION_SCORE,
                f"schema: selects {len(names)} of {len(client.columns)} columns by name "
                f"({COLUMN_SELECTION_SCORE:.2f})",
                indices=indices,
            )
        more = f" (+{len(missing) - 3} more)" if len(missing) > 3 else ""
        return SchemaFit("none", 0.0, f"schema: lacks columns {', '.join(missing[:3])}{more}")
    if client.width == width:
        return SchemaFit("same", 1.0, f"schema: {width} features, same shape (1.00)")
    target, source = _profile_side(spec, width), _client_side(client)
    if target is not None and source is not None:
        score = min(source, target) / max(source, target)
        return SchemaFit(
            "resample",
            score,
            f"schema: {source}x{source} image resampled to {target}x{target} ({score:.2f})",
            source_side=source,
            target_side=target,
            target_bounds=profile_bounds(schema),
        )
    return SchemaFit(
        "none", 0.0, f"schema: the input ({client.describe()}) cannot feed {width} features"
    )


def _match(
    profile_id: str, spec: Mapping[str, Any], champion: Champion | None, query: Query
) -> Match:
    lines: list[str] = []
    reasons: list[str] = []
    components: dict[str, float] = {}
    declared = spec.get("characteristics") or {}
    for key, wanted in query.characteristics.items():
        components[key], line = grade(key, wanted, declared.get(key))
        lines.append(line)
    fit = None
    if query.schema is not None and query.schema.width is not None:
        fit = fit_schema(query.schema, spec)
        components["schema"] = fit.score
        lines.append(fit.line)
        if not fit.adaptable:
            reasons.append(fit.line)
    score = sum(components.values()) / len(components) if components else 1.0
    lines.append(f"score {score:.2f}: mean of {len(components)} components")
    metrics: Mapping[str, float] = {}
    if champion is None:
        reasons.append("no model committed on the ledger")
        lines.append("champion: none on the ledger")
    else:
        metrics = champion.metrics
        lines.append(f"champion: round {champion.round}, sha256 {champion.sha256[:12]} (ledger)")
    for requirement in query.requirements:
        ok, line = requirement.check(metrics)
        lines.append(line)
        if not ok and champion is not None:
            reasons.append(line)
    value = None
    if query.optimize is not None:
        value = metrics.get(query.optimize.metric)
        recorded = "not recorded" if value is None else f"{value:.4g}"
        lines.append(f"optimize {query.optimize.metric} ({query.optimize.direction}): {recorded}")
    if reasons:
        lines.append("ineligible: " + "; ".join(reasons))
    return Match(
        profile_id=profile_id,
        score=score,
        eligible=not reasons,
        explanation=tuple(lines),
        metrics=dict(metrics),
        champion_sha256=champion.sha256 if champion else None,
        champion_round=champion.round if champion else None,
        components=components,
        reasons=tuple(reasons),
        objective_value=value,
        schema_fit=fit,
    )


# ---------------------------------------------------------------------------- helpers
def _plain_number(value: Any) -> float | None:
    """A number given as a number or as its text (``"50"``), not a resolution or boolean."""
    if isinstance(value, bool):
        return None
    return decimal_number(value)


def _norm(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    number = _plain_number(value)
    if number is not None:
        return repr(number)  # "1", 1 and 1.0 are equal
    return str(value).strip().lower()


def _as_set(value: Any) -> set[str]:
    """The items of a list, or of a compound ``a+b`` string, normalized."""
    if isinstance(value, list):
        return {_norm(v) for v in value}
    if isinstance(value, str) and "+" in value:
        return {_norm(v) for v in value.split("+") if v.strip()}
    return {_norm(value)}


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _pixels(value: Any) -> int | None:
    found = resolution_of(value)
    return found[0] * found[1] if found else None


def _profile_side(spec: Mapping[str, Any], width: int) -> int | None:
    """The side of the square image a profile takes: a 2-D square ``shape``, or a flat one
    whose width is the square of its ``resolution`` (or of an ``image`` modality)."""
    schema = spec.get("feature_schema") or {}
    shape = schema.get("shape") or []
    if schema.get("columns"):
        return None
    if len(shape) == 2 and shape[0] == shape[1]:
        return int(shape[0])
    chars = spec.get("characteristics") or {}
    side = square_side(chars.get("resolution"))
    if side is not None and side * side == width:
        return side
    root = math.isqrt(width)
    if str(chars.get("modality", "")).lower() == "image" and root * root == width:
        return root
    return None


def _client_side(client: InputSchema) -> int | None:
    """The side of the client's rows as a square image: stated, or a square width."""
    if client.side is not None:
        return client.side
    if client.columns or client.width is None:
        return None
    root = math.isqrt(client.width)
    return root if root * root == client.width else None


def profile_bounds(schema: Mapping[str, Any]) -> tuple[float, float] | None:
    """A profile's one value range for every feature, if it declares one."""
    low, high = decimal_number(schema.get("min")), decimal_number(schema.get("max"))
    return (low, high) if low is not None and high is not None and low < high else None
