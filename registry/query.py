"""The model query language: what a client says about its data and what it requires.

- ``characteristics``: ``{"sensor": "gyroscope", "resolution": "8x8"}`` (command line:
  ``--char KEY=VALUE``; ``true``/``false``, numbers and ``a,b`` lists are parsed);
- an :class:`InputSchema` of its rows: ``shape`` (``64``, ``8x8``, ``[8, 8]``),
  ``columns`` (names), ``n_features``, ``min``/``max`` (the raw value range);
- a metric to optimize, ``accuracy`` or ``latency_ms`` (natural direction) or
  ``METRIC:max`` / ``METRIC:min``, as an :class:`registry.profiles.Objective`;
- constraints ``METRIC OP VALUE`` (``OP`` one of ``<= < >= > ==``), as
  :class:`registry.profiles.Constraint` on the recorded metric.

Metric names are those :func:`registry.evaluation.evaluate_global_model` records
(:data:`METRICS`); :data:`METRIC_ALIASES` adds short names and units (``latency_ms`` is
``latency_ms_p95``, ``size_mb`` is ``model_size_bytes`` / 10^6). Anything else raises
:class:`registry.errors.QueryError` (``QUERY_INVALID``). Pure Python: no MLflow, no ledger.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from registry.errors import QueryError
from registry.profiles import Constraint, Direction, Objective

OPERATORS = ("<=", ">=", "==", "<", ">")

# What evaluate_global_model records (registry/evaluation.py), with the natural direction to
# optimize; None: no natural direction, name one (``n_rows:max``).
METRICS: dict[str, Direction | None] = {
    "accuracy": "maximize",
    "f1_macro": "maximize",
    "log_loss": "minimize",
    "roc_auc": "maximize",
    "rmse": "minimize",
    "mae": "minimize",
    "r2": "maximize",
    "objective": None,  # each profile's own objective metric: not comparable across profiles
    "latency_ms_p50": "minimize",
    "latency_ms_p95": "minimize",
    "batch_latency_ms_p50": "minimize",
    "batch_latency_ms_p95": "minimize",
    "cpu_s_per_1k_predictions": "minimize",
    "model_size_bytes": "minimize",
    "n_rows": None,
    "evaluation_seconds": None,
}


@dataclass(frozen=True)
class MetricAlias:
    """A short name for a recorded metric; the recorded value is ``written × scale``."""

    metric: str
    scale: float = 1.0


METRIC_ALIASES: dict[str, MetricAlias] = {
    "latency_ms": MetricAlias("latency_ms_p95"),  # a promise about the slow calls
    "latency": MetricAlias("latency_ms_p95"),
    "batch_latency_ms": MetricAlias("batch_latency_ms_p95"),
    "size_bytes": MetricAlias("model_size_bytes"),
    "size_kb": MetricAlias("model_size_bytes", 1e3),  # SI units: 1 kB = 1,000 bytes
    "size_mb": MetricAlias("model_size_bytes", 1e6),
    "cpu": MetricAlias("cpu_s_per_1k_predictions"),
    "energy": MetricAlias("cpu_s_per_1k_predictions"),  # the evaluation's energy proxy
    "f1": MetricAlias("f1_macro"),
    "auc": MetricAlias("roc_auc"),
}

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")  # the profile schema's characteristic names
_CONSTRAINT = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_.]*)\s*([<>=!~]+)\s*(\S+)\s*$")
_RESOLUTION = re.compile(r"^\s*(\d+)\s*[x×]\s*(\d+)\s*$", re.IGNORECASE)
# Query keys that describe the client's rows rather than its data's provenance.
SCHEMA_KEYS = ("shape", "columns", "n_features", "min", "max")


# ---------------------------------------------------------------------------- the query
@dataclass(frozen=True)
class Requirement:
    """A constraint as the client wrote it (``size_mb <= 10``) and as recorded metrics are
    checked (``model_size_bytes <= 1e+07``)."""

    name: str
    op: str
    value: float
    constraint: Constraint

    def __str__(self) -> str:
        return f"{self.name} {self.op} {self.value:g}"

    def check(self, metrics: Mapping[str, float]) -> tuple[bool, str]:
        """Whether ``metrics`` meet it, and the line that says so."""
        measured = metrics.get(self.constraint.metric)
        if measured is None or math.isnan(measured):
            return False, f"{self}: {self.constraint.metric} not recorded ✗"
        ok = self.constraint.holds(metrics)
        shown = measured / _alias(self.name).scale
        line = f"{self.name} {shown:.4g} {self.op} {self.value:g} {'✓' if ok else '✗'}"
        if self.name != self.constraint.metric:
            line += f" ({self.constraint.metric} {measured:.6g})"
        return ok, line


@dataclass(frozen=True)
class InputSchema:
    """The client's rows: their width or column names, whether they are a square image, and
    the range raw values lie in (used to rescale pixels when resampling an image)."""

    n_features: int | None = None
    columns: tuple[str, ...] | None = None
    side: int | None = None
    bounds: tuple[float, float] | None = None

    @property
    def width(self) -> int | None:
        return len(self.columns) if self.columns else self.n_features

    def describe(self) -> str:
        if self.side is not None:
            return f"{self.side}x{self.side} image"
        if self.columns:
            return f"{len(self.columns)} named columns"
        return f"{self.width} features"

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> InputSchema:
        columns, bounds = doc.get("columns"), doc.get("bounds")
        return cls(
            n_features=doc.get("n_features"),
            columns=tuple(columns) if columns else None,
            side=doc.get("side"),
            bounds=(float(bounds[0]), float(bounds[1])) if bounds else None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "n_features": self.width,
            "columns": list(self.columns) if self.columns else None,
            "side": self.side,
            "bounds": list(self.bounds) if self.bounds else None,
        }


@dataclass(frozen=True)
class Query:
    """What a client asks for. ``optimize`` reuses the profiles' :class:`Objective` (its
    ``better`` breaks ties); ``requirements`` hold the client's constraints."""

    characteristics: Mapping[str, Any] = field(default_factory=dict)
    schema: InputSchema | None = None
    optimize: Objective | None = None
    optimize_name: str = ""  # as written (an alias such as ``latency_ms``)
    requirements: tuple[Requirement, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "characteristics": dict(self.characteristics),
            "schema": self.schema.to_json() if self.schema else None,
            "optimize": None
            if self.optimize is None
            else {
                "name": self.optimize_name,
                "metric": self.optimize.metric,
                "direction": self.optimize.direction,
            },
            "require": [str(r) for r in self.requirements],
        }


def parse_query(
    characteristics: Mapping[str, Any] | None = None,
    *,
    schema: InputSchema | Mapping[str, Any] | None = None,
    optimize: str | None = None,
    require: Iterable[str] = (),
) -> Query:
    """A :class:`Query` from plain values, e.g. ``parse_query({"sensor": "gyroscope"},
    optimize="accuracy", require=["latency_ms<=5"])``. Keys of :data:`SCHEMA_KEYS` among the
    characteristics (``shape``, ``columns``…) describe the rows and go to the schema.
    Raises :class:`QueryError` (``QUERY_INVALID``)."""
    chars: dict[str, Any] = {}
    schema_doc: dict[str, Any] = {}
    for key, value in (characteristics or {}).items():
        if key in SCHEMA_KEYS:
            schema_doc[key] = value
            continue
        if not isinstance(key, str) or not _NAME.match(key):
            raise QueryError(f"characteristic name {key!r} is not lower_snake_case")
        chars[key] = _characteristic(key, value)
    parsed: InputSchema | None = schema if isinstance(schema, InputSchema) else None
    if parsed is not None and schema_doc:
        raise QueryError(f"schema keys {sorted(schema_doc)} given beside a parsed schema")
    if not isinstance(schema, InputSchema):
        parsed = parse_schema({**schema_doc, **(schema or {})}, chars.get("resolution"))
    objective = parse_objective(optimize) if optimize else None
    return Query(
        characteristics=chars,
        schema=parsed,
        optimize=objective,
        optimize_name=(optimize or "").partition(":")[0].strip(),
        requirements=tuple(parse_requirement(r) for r in require),
    )


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"key=value"`` from the command line: ``true``/``false``, integers and decimals
    become booleans and numbers, ``a,b`` a list, anything else stays a string."""
    key, sep, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not sep or not key or not raw:
        raise QueryError(f"{text!r} is not KEY=VALUE")
    return key, parse_value(raw)


def parse_value(raw: str) -> Any:
    if "," in raw:
        items = [item.strip() for item in raw.split(",")]
        if not all(items):
            raise QueryError(f"{raw!r} has an empty list item")
        return items
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    number = decimal_number(raw)
    if number is not None:
        return int(number) if number.is_integer() and "." not in raw else number
    return raw


def parse_constraint(text: str) -> Constraint:
    """``"latency_ms_p95<=5"`` → ``Constraint("latency_ms_p95", "<=", 5.0)``, aliases
    resolved to the recorded metric and unit (``size_mb<=10`` → ``model_size_bytes <=
    1e+07``). Raises :class:`QueryError` for an unknown metric or operator or a value that
    is not a finite number."""
    return parse_requirement(text).constraint


def parse_requirement(text: str) -> Requirement:
    """Like :func:`parse_constraint`, keeping the name and value as written."""
    found = _CONSTRAINT.match(text)
    if not found:
        raise QueryError(f"{text!r} is not METRIC OP VALUE (OP one of {', '.join(OPERATORS)})")
    name, op, raw = found.groups()
    if op not in OPERATORS:
        raise QueryError(f"{text!r}: unknown operator {op!r}; use one of {', '.join(OPERATORS)}")
    value = decimal_number(raw)
    if value is None:
        raise QueryError(f"{text!r}: {raw!r} is not a number")
    alias = _alias(name)
    return Requirement(name, op, value, Constraint(alias.metric, op, value * alias.scale))


def parse_objective(text: str) -> Objective:
    """``"accuracy"``, ``"latency_ms"`` or ``"metric:max"`` / ``"metric:min"`` → an
    :class:`Objective` on the recorded metric (known metrics have a natural direction)."""
    name, _, way = (part.strip() for part in text.partition(":"))
    metric = _alias(name).metric
    directions: dict[str, Direction] = {
        "max": "maximize",
        "maximize": "maximize",
        "min": "minimize",
        "minimize": "minimize",
    }
    if way:
        if way not in directions:
            raise QueryError(f"{text!r}: direction {way!r} is not max or min")
        return Objective(metric, directions[way])
    natural = METRICS[metric]
    if natural is None:
        raise QueryError(f"{name!r} has no natural direction: write {name}:max or {name}:min")
    return Objective(metric, natural)


def parse_schema(doc: Mapping[str, Any], resolution: Any = None) -> InputSchema | None:
    """The client's rows from ``{"shape": [64] | [8, 8] | "8x8", "columns": [...],
    "n_features": 64, "min": 0, "max": 16}``; ``None`` when it says nothing. A square
    ``resolution`` characteristic of the same width marks the rows as an image."""
    unknown = sorted(set(doc) - set(SCHEMA_KEYS))
    if unknown:
        raise QueryError(f"unknown schema keys {unknown}; known: {list(SCHEMA_KEYS)}")
    columns = _columns(doc.get("columns"))
    shape = _shape(doc.get("shape"))
    n_features = doc.get("n_features")
    if n_features is not None and (
        isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1
    ):
        raise QueryError(f"n_features must be a positive integer, got {n_features!r}")
    if shape is not None:
        width = math.prod(shape)
        if n_features is not None and n_features != width:
            raise QueryError(
                f"shape {list(shape)} is {width} features, n_features says {n_features}"
            )
        n_features = width
    if columns is not None and n_features is not None and len(columns) != n_features:
        raise QueryError(f"{len(columns)} columns named, but {n_features} features")
    bounds = _bounds(doc.get("min"), doc.get("max"))
    if columns is None and n_features is None and bounds is None:
        return None
    side = None
    if shape is not None and len(shape) == 2 and shape[0] == shape[1]:
        side = shape[0]
    elif n_features is not None and (square := square_side(resolution)) is not None:
        side = square if square * square == n_features else None
    return InputSchema(n_features, columns, side, bounds)


# ---------------------------------------------------------------------------- helpers
def _alias(name: str) -> MetricAlias:
    if name in METRICS:
        return MetricAlias(name)
    if name in METRIC_ALIASES:
        return METRIC_ALIASES[name]
    raise QueryError(
        f"unknown metric {name!r}; known: {', '.join(sorted(METRICS))}; "
        f"aliases: {', '.join(sorted(METRIC_ALIASES))}"
    )


def decimal_number(raw: Any) -> float | None:
    """A finite decimal number from ``raw`` (int, float or text), else ``None``."""
    if isinstance(raw, bool):
        return None
    try:
        value = Decimal(str(raw).strip())
    except (InvalidOperation, ValueError):
        return None
    return float(value) if value.is_finite() else None


def resolution_of(value: Any) -> tuple[int, int] | None:
    """``"8x8"`` (or ``8X8``, ``8×8``) → ``(8, 8)``; anything else → ``None``."""
    found = _RESOLUTION.match(value) if isinstance(value, str) else None
    return (int(found.group(1)), int(found.group(2))) if found else None


def square_side(value: Any) -> int | None:
    """The side of a square ``NxN`` resolution."""
    found = resolution_of(value)
    return found[0] if found and found[0] == found[1] else None


def _columns(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise QueryError(f"columns must be a non-empty list of names, got {value!r}")
    names = tuple(str(v).strip() for v in items)
    if not all(names) or len(set(names)) != len(names):
        raise QueryError("column names must be non-empty and distinct")
    return names


def _shape(value: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        found = _RESOLUTION.match(value)
        parts: Any = [found.group(1), found.group(2)] if found else value.split(",")
    elif isinstance(value, int) and not isinstance(value, bool):
        parts = [value]
    else:
        parts = value
    try:
        shape = tuple(int(str(p).strip()) for p in parts)
    except (TypeError, ValueError):
        raise QueryError(
            f"shape must be positive integers (64, 8x8, [8, 8]), got {value!r}"
        ) from None
    if not shape or len(shape) > 4 or any(s < 1 for s in shape):
        raise QueryError(f"shape must be 1 to 4 positive integers, got {value!r}")
    return shape


def _bounds(low: Any, high: Any) -> tuple[float, float] | None:
    if low is None and high is None:
        return None
    lo, hi = decimal_number(low), decimal_number(high)
    if lo is None or hi is None or hi <= lo:
        raise QueryError(f"min and max must be numbers with min < max, got {low!r} and {high!r}")
    return lo, hi


def _characteristic(key: str, value: Any) -> Any:
    if isinstance(value, str | bool | int | float) and str(value).strip():
        return value
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise QueryError(f"characteristic {key}: {value!r} is not a string, number or list of strings")
