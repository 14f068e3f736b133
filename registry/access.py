"""Model access for clients: a profile's champion, verified against the ledger, predicting
on the client's rows; or a weighted ensemble of the best-fitting profiles.

The ledger decides which model a profile serves and what its bytes hash to; MLflow only
stores them. :func:`load_verified` reads the champion's sha256 from the ledger, fetches the
exchange bytes from MLflow, and checks them against that hash before anything parses them.
A profile or model the ledger does not know raises ``LedgerRecordMissingError``
(``LEDGER_RECORD_MISSING``); bytes with another hash raise ``ArtifactIntegrityError``.

Prediction reuses the served pyfunc (:class:`registry.pyfunc.FedspecGlobalModel`): the same
scaling of raw rows by the profile's ``feature_schema``, the same probability columns.
An :class:`Ensemble` soft-votes its members' probabilities with weights from match score ×
recorded performance, adapting the client's rows to each member (columns selected by name,
square images resampled); :mod:`registry.ensemble` makes it an MLflow pyfunc.

MLflow is imported only when a model is loaded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from federated.errors import FederatedError
from federated.exchange import sha256_hex
from federated.plan import TrainingPlan
from federated.types import NDArray
from fedspec.errors import ErrorCode
from registry.errors import (
    ArtifactIntegrityError,
    InputError,
    InvalidModelError,
    LedgerRecordMissingError,
    QueryError,
)
from registry.matching import (
    Champion,
    Match,
    SchemaFit,
    fit_schema,
    ledger_champion,
    profile_bounds,
)
from registry.models import fetch_model_bytes
from registry.profiles import (
    load_global_adapter,
    n_features_of,
    resolve_hyperparameters,
    task_type_of,
)
from registry.query import METRICS, InputSchema
from registry.rows import adapt_rows

if TYPE_CHECKING:
    from mlflow.pyfunc.model import PythonModelContext

    from ledger_client.facade import FedspecLedger
    from registry.pyfunc import FedspecGlobalModel

# A member's probabilities of raw rows, and the class of each column (as text).
ProbaFn = Callable[[NDArray], tuple[NDArray, tuple[str, ...]]]


# ---------------------------------------------------------------------------- one model
@dataclass(frozen=True)
class Prediction:
    """Labels (or values) per row and, for classification, class probabilities."""

    labels: tuple[Any, ...]
    classes: tuple[str, ...] | None = None
    probabilities: NDArray | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "predictions": list(self.labels),
            "classes": list(self.classes) if self.classes is not None else None,
            "probabilities": None if self.probabilities is None else self.probabilities.tolist(),
        }

    def table(self) -> tuple[list[str], list[list[Any]]]:
        """Column names and rows for a CSV: ``row``, ``prediction``, ``proba_<class>``…"""
        header = ["row", "prediction"] + [f"proba_{c}" for c in self.classes or ()]
        rows: list[list[Any]] = []
        for i, label in enumerate(self.labels):
            probs = [] if self.probabilities is None else [float(p) for p in self.probabilities[i]]
            rows.append([i, label, *probs])
        return header, rows


@dataclass(frozen=True)
class VerifiedModel:
    """A profile's champion whose bytes hash to what the ledger committed, ready to
    predict on raw rows (through the served pyfunc's own ``predict``)."""

    profile_id: str
    profile: Mapping[str, Any]  # the profile document, from the ledger
    champion: Champion
    hyperparameters: Mapping[str, Any]
    model: FedspecGlobalModel

    @property
    def sha256(self) -> str:
        return self.champion.sha256

    @property
    def model_bytes(self) -> bytes:
        return self.model.model_bytes

    @property
    def labels(self) -> tuple[Any, ...]:
        return tuple((self.profile.get("task") or {}).get("labels") or ())

    def predict(self, rows: NDArray) -> Prediction:
        X = self._check(rows)
        labels = self._call(X, "label")
        if task_type_of(self.profile) == "regression":
            return Prediction(tuple(_plain(v) for v in labels))
        proba, classes = self.proba(X)
        return Prediction(tuple(_plain(v) for v in labels), classes, proba)

    def proba(self, rows: NDArray) -> tuple[NDArray, tuple[str, ...]]:
        """Class probabilities of raw rows and the class (as text) of each column."""
        frame = self._call(self._check(rows), "proba")
        return np.asarray(frame, dtype=np.float64), tuple(str(c) for c in frame.columns)

    def _check(self, rows: NDArray) -> NDArray:
        X = np.asarray(rows, dtype=np.float64)
        width = n_features_of(self.profile)
        if X.ndim != 2 or (width is not None and X.shape[1] != width):
            got = X.shape[1] if X.ndim == 2 else X.shape
            raise InputError(
                f"{self.profile_id} takes {width} features per row, the input has {got}"
            )
        return X

    def _call(self, X: NDArray, output: str) -> Any:
        # Deferred: loads mlflow only when used.
        from mlflow.exceptions import MlflowException

        try:
            # The pyfunc's predict never reads its context (MLflow passes one when serving).
            context = cast("PythonModelContext", None)
            return self.model.predict(context, X, params={"output": output})
        except MlflowException as exc:  # the pyfunc's way of saying "bad input"
            raise InputError(f"{self.profile_id}: {exc.message}") from exc


def load_verified(ledger: FedspecLedger, profile_id: str) -> VerifiedModel:
    """The profile's champion as the ledger records it, its bytes fetched from MLflow and
    verified against the **ledger's** sha256 before they are decoded.

    Raises ``LedgerRecordMissingError`` when the ledger has no such profile or no champion
    for it, ``ModelNotFoundError`` when MLflow has no version with the ledger's hash, and
    ``ArtifactIntegrityError`` when the stored bytes hash to something else.
    """
    # Deferred: loads fabric_protos, google only when used.
    from ledger_client.errors import LedgerError
    from registry.pyfunc import FedspecGlobalModel

    try:
        profile = ledger.get_profile(profile_id)
    except LedgerError as exc:
        if exc.code != ErrorCode.NOT_FOUND:
            raise
        raise LedgerRecordMissingError(
            f"profile {profile_id} is not on the ledger", profile_id=profile_id
        ) from exc
    champion = ledger_champion(ledger, profile_id)
    if champion is None:
        raise LedgerRecordMissingError(
            f"the ledger has no committed champion for {profile_id}: nothing to serve",
            profile_id=profile_id,
        )
    data = fetch_model_bytes(profile_id, champion.sha256)
    # fetch_model_bytes checked the download against the same hash; checked again here so
    # that the rule "ledger hash before decoding" does not rest on another module.
    actual = sha256_hex(data)
    if actual != champion.sha256:
        uri = champion.uri or f"models:/{profile_id}"
        raise ArtifactIntegrityError(uri, expected=champion.sha256, actual=actual)
    spec = dict(profile.spec)
    hyperparameters = _hyperparameters(profile_id, spec)
    model = FedspecGlobalModel()
    model.adapter = load_global_adapter(spec, data, hyperparameters=hyperparameters)
    model.profile = spec
    model.model_bytes = data
    model.sha256 = champion.sha256
    return VerifiedModel(profile_id, spec, champion, hyperparameters, model)


def _hyperparameters(profile_id: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """Those the rounds trained with: the flows' plan, derived from the ledger's profile
    (the coordinator registers every version with them)."""

    try:
        planned = TrainingPlan.from_profile(profile_id, spec).hyperparameters
    except (FederatedError, KeyError, TypeError, ValueError):
        return resolve_hyperparameters(spec)  # a profile the flows cannot plan: its defaults
    return resolve_hyperparameters(spec, planned)


# ---------------------------------------------------------------------------- ensemble
@dataclass(frozen=True)
class EnsembleMember:
    """One profile in an ensemble: its weight and why, and how the client's rows fit it."""

    profile_id: str
    weight: float
    score: float
    performance: float
    fit: SchemaFit
    model: VerifiedModel

    @property
    def sha256(self) -> str:
        return self.model.sha256


@dataclass(frozen=True)
class Ensemble:
    """Top-k profiles soft-voting over the union of their ``task.labels``."""

    members: tuple[EnsembleMember, ...]
    labels: tuple[Any, ...]
    schema: InputSchema  # the client's rows (bounds: the value range used to resample)
    metric: str  # the recorded performance metric in the weights
    explanation: tuple[str, ...] = field(default=())

    def proba(self, rows: NDArray) -> NDArray:
        parts = [(m.weight, m.fit, m.model.proba) for m in self.members]
        return soft_vote(np.asarray(rows, dtype=np.float64), parts, self.labels, self.schema)

    def predict(self, rows: NDArray) -> Prediction:
        proba = self.proba(rows)
        labels = tuple(_plain(self.labels[i]) for i in np.argmax(proba, axis=1))
        return Prediction(labels, tuple(str(c) for c in self.labels), proba)

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "labels": [_plain(v) for v in self.labels],
            "schema": self.schema.to_json(),
            "explanation": list(self.explanation),
            "members": [
                {
                    "profile": m.profile_id,
                    "weight": m.weight,
                    "score": m.score,
                    "performance": m.performance,
                    "round": m.model.champion.round,
                    "sha256": m.sha256,
                    "fit": m.fit.to_json(),
                }
                for m in self.members
            ],
        }


def soft_vote(
    rows: NDArray,
    parts: Sequence[tuple[float, SchemaFit, ProbaFn]],
    labels: Sequence[Any],
    schema: InputSchema,
) -> NDArray:
    """``Σ weight × P_member`` over ``labels`` (a member gives 0 to labels it lacks), the
    rows adapted to each member first. Weights sum to 1, so each row sums to 1."""
    if schema.width is not None and rows.shape[1] != schema.width:
        raise InputError(f"the ensemble takes {schema.width} features per row, got {rows.shape[1]}")
    column = {str(label): i for i, label in enumerate(labels)}
    total = np.zeros((rows.shape[0], len(labels)), dtype=np.float64)
    for weight, fit, proba_of in parts:
        proba, classes = proba_of(adapt_rows(rows, fit, schema.bounds))
        unknown = [c for c in classes if c not in column]
        if unknown:
            raise InvalidModelError(f"a member predicts classes {unknown} outside {list(labels)}")
        for j, cls in enumerate(classes):
            total[:, column[cls]] += weight * proba[:, j]
    return total


def build_ensemble(
    ledger: FedspecLedger,
    matches: Sequence[Match],
    schema: InputSchema,
    *,
    k: int,
    metric: str | None = None,
) -> Ensemble:
    """The top ``k`` eligible ``matches`` (as :func:`registry.matching.rank_profiles`
    returns them), each champion loaded with :func:`load_verified`.

    Weight ∝ match score × recorded performance on ``metric`` (default ``accuracy``): for
    a metric to maximize its value (negative counts 0), for one to minimize
    ``best / value``; normalized to sum 1. Classification profiles only.
    """
    if k < 1:
        raise QueryError(f"an ensemble needs k >= 1, got {k}")
    metric = metric or "accuracy"
    direction = METRICS.get(metric)
    if direction is None:
        raise QueryError(f"{metric!r} cannot weight an ensemble: it has no natural direction")
    chosen = [m for m in matches if m.eligible][:k]
    if not chosen:
        top = matches[0] if matches else None
        why = f"; best: {top.profile_id}: {'; '.join(top.reasons)}" if top else ""
        raise QueryError(f"no eligible profile for this query{why}")
    lines: list[str] = []
    members = _members(ledger, chosen, schema, metric, lines)
    performance, raw, weights = _weights([m[3] for m in members], members, direction, metric)
    out: list[EnsembleMember] = []
    for (match, verified, fit, value), perf, r, w in zip(
        members, performance, raw, weights, strict=True
    ):
        shown = f"{metric} {value:.4g}" + (f" → {perf:.3f}" if direction == "minimize" else "")
        lines.append(
            f"{match.profile_id}: score {match.score:.2f} × {shown} = {r:.3f} → weight {w:.3f}"
            f" ({fit.line.removeprefix('schema: ')})"
        )
        out.append(EnsembleMember(match.profile_id, w, match.score, perf, fit, verified))
    labels = _union(m.model.labels for m in out)
    resolved = replace(schema, bounds=schema.bounds or _anchor_bounds(out))
    if resolved.bounds is None and any(m.fit.kind == "resample" for m in out):
        lines.append("no value range for the input: resampled pixels are not rescaled")
    return Ensemble(tuple(out), labels, resolved, metric, (*lines,))


_Member = tuple[Match, VerifiedModel, SchemaFit, float]


def _members(
    ledger: FedspecLedger,
    chosen: Sequence[Match],
    schema: InputSchema,
    metric: str,
    lines: list[str],
) -> list[_Member]:
    """The chosen profiles whose champion is a classifier, has ``metric`` on the ledger and
    can take the client's rows; why each other one is left out goes to ``lines``."""
    members: list[_Member] = []
    for match in chosen:
        verified = load_verified(ledger, match.profile_id)
        if task_type_of(verified.profile) != "classification":
            raise InvalidModelError(f"{match.profile_id} is not a classifier: no soft vote")
        value = verified.champion.metrics.get(metric)
        if value is None or math.isnan(value):
            lines.append(f"{match.profile_id} left out: {metric} not recorded on the ledger")
            continue
        fit = fit_schema(schema, verified.profile)
        if not fit.adaptable:
            lines.append(f"{match.profile_id} left out: {fit.line}")
            continue
        members.append((match, verified, fit, value))
    if not members:
        raise QueryError(f"no chosen profile can take the rows and has {metric} recorded: {lines}")
    return members


def _weights(
    values: Sequence[float], members: Sequence[_Member], direction: str, metric: str
) -> tuple[list[float], list[float], list[float]]:
    """(performance, score × performance, normalized weight) per member."""
    if direction == "maximize":
        performance = [max(v, 0.0) for v in values]
    else:
        best = min((v for v in values if v > 0), default=0.0)
        performance = [best / v if v > 0 else 1.0 for v in values]
    raw = [m.score * p for (m, *_), p in zip(members, performance, strict=True)]
    if sum(raw) <= 0:
        raise QueryError(f"every chosen profile has weight 0 (score × {metric})")
    return performance, raw, [r / sum(raw) for r in raw]


def _anchor_bounds(members: Sequence[EnsembleMember]) -> tuple[float, float] | None:
    """The value range of the first member that takes the rows as they are: the client's
    data is most likely what that profile was trained on."""
    for member in members:
        bounds = profile_bounds(member.model.profile.get("feature_schema") or {})
        if member.fit.kind == "same" and bounds is not None:
            return bounds
    return None


def _union(label_lists: Iterable[Sequence[Any]]) -> tuple[Any, ...]:
    seen: dict[str, Any] = {}
    for labels in label_lists:
        for label in labels:
            seen.setdefault(str(label), label)
    return tuple(seen.values())


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value (for JSON and CSV)."""
    return value.item() if isinstance(value, np.generic) else value
