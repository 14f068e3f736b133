"""Concurrent identical reads of one process share one evaluation.

200 node agents of one process each read their profile as they start (``GetProfile``):
200 signed evaluates of the same answer, 9 s of threads waiting in all on the embedded
ledger and 51 s on Fabric (benchmarks/scale.py). Here callers that ask for the same read
while one is under way wait for it to end and then share the *next* one, which begins after
each of them asked; so every caller still sees the ledger as of some instant after its own
call (a read is never served from before the call, unlike joining the read in flight).
A burst of any size costs at most two evaluations.

Only a success is shared. Should the shared read fail, each of the others reads on its own,
so that one identity's refusal is never handed to another. Use it only for reads whose
answer does not depend on who asks: the identities of one process see the same answer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Flight(Generic[T]):
    __slots__ = ("callers", "done", "ok", "value")

    def __init__(self) -> None:
        self.callers = 0  # who will share it (its leader included)
        self.done = threading.Event()
        self.ok = False
        self.value: T | None = None


class Coalescer(Generic[T]):
    """``call(key, read)``: ``read()``'s answer, shared with the callers of the same key that
    came while an earlier read of that key was under way."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: dict[Hashable, _Flight[T]] = {}  # gathering callers, not yet started
        self._running: dict[Hashable, threading.Lock] = {}
        self.reads = 0  # evaluations made, for tests and benchmarks

    def call(self, key: Hashable, read: Callable[[], T]) -> T:
        with self._lock:
            flight = self._next.get(key)
            leads = flight is None
            if flight is None:
                flight = self._next[key] = _Flight()
            flight.callers += 1
            running = self._running.setdefault(key, threading.Lock())
        if leads:
            with running:  # after the read under way, if any: later callers join this one
                with self._lock:
                    del self._next[key]
                try:
                    value = read()
                    with self._lock:
                        self.reads += 1
                    flight.value, flight.ok = value, True
                    return value
                finally:
                    flight.done.set()
        flight.done.wait()
        if flight.ok:
            return flight.value  # type: ignore[return-value]
        return read()  # the shared read failed: this caller's own read says why, or succeeds
