"""Where a round's wall time goes: spans by category on one timeline, for the round benchmark.

Node agents and coordinators run concurrently, so per-thread durations overlap and do not
add up to the round's wall time. Instead every span goes on one process-wide timeline and
:func:`breakdown` gives each instant of the round to the most important category active at
that instant (training before aggregation before evaluation before MLflow before the
ledger); instants in no span are orchestration (Prefect, scheduling, waiting on windows).
The categories then sum exactly to the round's wall time.

Recording is off unless :func:`recording` is active (a lock and an append per span).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

# Most important first: an instant where a node trains and another uploads counts as training.
CATEGORIES = ("training", "aggregation", "evaluation", "validation", "mlflow", "ledger")
ORCHESTRATION = "orchestration"

_lock = threading.Lock()
_recording: dict[str, list[tuple[str, float, float]]] = {}  # "spans" → the list while recording


@contextmanager
def recording() -> Iterator[list[tuple[str, float, float]]]:
    """Record spans while the block runs; yields the list of ``(category, start, end)``."""
    spans: list[tuple[str, float, float]] = []
    with _lock:
        _recording["spans"] = spans
    try:
        yield spans
    finally:
        with _lock:
            _recording.pop("spans", None)


@contextmanager
def span(category: str) -> Iterator[None]:
    spans = _recording.get("spans")
    if spans is None:
        yield
        return
    start = time.perf_counter()
    try:
        yield
    finally:
        end = time.perf_counter()
        with _lock:
            spans.append((category, start, end))


def timed_call(category: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    with span(category):
        return fn(*args, **kwargs)


class TimedProxy:
    """Every method call on ``target`` is a span of ``category`` (a ledger client, say)."""

    def __init__(self, target: Any, category: str) -> None:
        self._target = target
        self._category = category

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            with span(self._category):
                return value(*args, **kwargs)

        return call


def breakdown(spans: list[tuple[str, float, float]], start: float, end: float) -> dict[str, float]:
    """Seconds per category (plus orchestration) over ``[start, end]``; they sum to the wall."""
    rank = {c: i for i, c in enumerate(CATEGORIES)}
    events: list[tuple[float, int, str]] = []
    for category, began, ended in spans:
        s, e = max(began, start), min(ended, end)
        if e > s:
            events += [(s, 1, category), (e, -1, category)]
    events.sort()
    totals = dict.fromkeys((*CATEGORIES, ORCHESTRATION), 0.0)
    active: dict[str, int] = {}
    last = start
    for at, delta, category in events:
        current = min(active, key=lambda c: rank.get(c, len(rank))) if active else ORCHESTRATION
        totals[current if current in totals else ORCHESTRATION] += at - last
        last = at
        active[category] = active.get(category, 0) + delta
        if active[category] == 0:
            del active[category]
    totals[ORCHESTRATION] += end - last
    return totals
