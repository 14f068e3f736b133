"""Model (and update) bytes this process has fetched and verified, by their hash.

A process that runs many node agents (the round flow's local dispatch, a member's several
nodes, a simulation worker) fetched each round's base model and new model once per node:
2N version searches and downloads a round, the largest share of MLflow's time at 200 nodes
(benchmarks/scale.py). The bytes are content-addressed by the ledger's hash, so one fetch
serves every agent of the process; concurrent agents wait for the one fetch in flight
rather than each downloading. The hash is checked again on every load from here, as on
every load from MLflow: a cached copy changed in memory is refused, never returned.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable

from registry.errors import ArtifactIntegrityError

# Enough for a round's base and new models of many profiles at once; least recently used
# models leave first.
MAX_BYTES = 256 * 1024 * 1024


class VerifiedBytes:
    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._fetching: dict[tuple[str, str], threading.Lock] = {}
        self._kept: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._size = 0
        self.fetches = 0  # for tests and benchmarks

    def get(self, scope: str, sha256: str, fetch: Callable[[], bytes]) -> bytes:
        """The bytes of ``sha256`` in ``scope`` (a profile): kept ones, checked again, else
        ``fetch()``'s (which verifies them against ``sha256`` itself), then kept."""
        key = (scope, sha256)
        with self._lock:
            in_flight = self._fetching.setdefault(key, threading.Lock())
        try:
            with in_flight:
                kept = self._take(key)
                if kept is not None:
                    return kept
                data = fetch()
                self.fetches += 1
                _check(f"bytes fetched for {scope}", data, sha256)
                self._keep(key, data)
                return data
        finally:
            # One lock per fetch in flight, not per hash ever seen: a long-running process
            # would otherwise keep a lock for every model and update of every round.
            with self._lock:
                if self._fetching.get(key) is in_flight and not in_flight.locked():
                    del self._fetching[key]

    def put(self, scope: str, data: bytes) -> str:
        """Keep ``data``, which this process has just stored itself (an uploaded update, a
        registered model), under its own hash; returns the hash. Write-through: where the
        coordinator runs in the process of the node agents that uploaded (the local
        dispatch), it reads their updates from here instead of downloading each again
        (benchmarks/round_time.py). Keyed by the hash of the bytes as stored, so bytes that
        differ from what the ledger names are never served for it: the ledger's hash then
        misses here and the fetch from the store decides."""
        sha256 = hashlib.sha256(data).hexdigest()
        self._keep((scope, sha256), data)
        return sha256

    def _take(self, key: tuple[str, str]) -> bytes | None:
        with self._lock:
            data = self._kept.get(key)
            if data is None:
                return None
            self._kept.move_to_end(key)
        try:
            _check(f"bytes of {key[0]} kept in memory", data, key[1])
        except ArtifactIntegrityError:
            self.forget(key)
            raise
        return data

    def _keep(self, key: tuple[str, str], data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        with self._lock:
            if key not in self._kept:
                self._kept[key] = data
                self._size += len(data)
            while self._size > self.max_bytes:
                _, dropped = self._kept.popitem(last=False)
                self._size -= len(dropped)

    def forget(self, key: tuple[str, str]) -> None:
        with self._lock:
            dropped = self._kept.pop(key, None)
            if dropped is not None:
                self._size -= len(dropped)

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()
            self._fetching.clear()
            self._size = 0


def _check(what: str, data: bytes, sha256: str) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise ArtifactIntegrityError(what, expected=sha256, actual=actual)
