"""Waiting on a round without polling it: one follower of the chaincode's events per ledger
connection in a process, shared by every node agent of that process.

Node agents used to re-read their round every 50 ms while they waited for joining to close,
for the election, for the model. Every read costs O(N) (the round lists its joined and
revealed nodes) and N agents read, so waiting cost O(N^2): at 200 nodes a GetRound averaged
6.6 s and the reveal and election waits grew as N^1.8 (benchmarks/scale.py). Here an agent
waits until an event names its round — every round transaction emits one with the profile
and round in its payload — or until one of the round's deadlines, which no event marks.
And the agents of one process share one read of a round per change: a read is reused until
an event or a write of the round, or a deadline of the round, makes it stale.

The follower is only a hint, never the authority: reads still go to the ledger, the waits
end at the round's deadlines whatever the stream says, and while the stream is broken (a
peer restarting) the cache is off and a waiter falls back to polling at its own interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ledger_client.errors import LedgerError
from ledger_client.facade import FedspecLedger
from ledger_client.gateway import Checkpoint
from ledger_client.records import Round

log = logging.getLogger("fedspec.ledger.watch")

RoundKey = tuple[str, int]

# A Fabric events stream is one gRPC call with a deadline: the follower renews it this often
# (and notices a release within this long). The embedded stream ends after this much idle.
STREAM_S = 2.0
# The longest a waiter sleeps without an event, even with a healthy stream: a safety net for
# an event the stream did not deliver, not the way rounds advance.
SAFETY_S = 5.0


@dataclass(frozen=True)
class _Read:
    version: int  # the round's change count when the read began
    writes: int  # this process's committed writes when the read began (``wrote``)
    at: float  # wall-clock time the read began (round deadlines are wall-clock seconds)
    round: Round


class RoundWatch:
    """Rounds of one ledger connection, as its events say they change.

    ``read(key)`` returns the round and its version; ``wait(key, seen, until)`` blocks until
    the version moves past ``seen`` (an event), ``until`` (a deadline of the round), or the
    safety interval. ``wrote()`` is what a writer calls after its own transaction committed;
    it passes what it returns to ``read(key, after=...)`` so that its next read began after
    the commit, and sees it without waiting for the event. Reads of one round are
    single-flight: concurrent readers share one GetRound.

    A writer's own commit does not make the shared read stale for the others: it used to,
    and then at 200 nodes each of the 200 reveals cost a GetRound of O(N) (the reveal phase
    grew as N^1.3, benchmarks/scale.py). The others learn of it from its event, once per
    block; the writers of one block share the first read that began after their commits.
    """

    def __init__(self, ledger: FedspecLedger) -> None:
        self._ledger = ledger
        self._lock = threading.Lock()
        self._conditions: dict[RoundKey, threading.Condition] = {}
        self._read_locks: dict[RoundKey, threading.Lock] = {}
        self._versions: dict[RoundKey, int] = {}
        self._reads: dict[RoundKey, _Read] = {}
        self._writes = 0  # committed writes of this process's agents (``wrote``)
        self._events: dict[RoundKey, list[tuple[str, dict[str, object]]]] = {}
        self._healthy = True
        self._blind = False  # no start height: never trusted to announce every change
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.events_seen = 0  # for benchmarks and tests
        self.reads = 0

    # ------------------------------------------------------------------ the follower
    def start(self) -> None:
        try:
            start: int | None = self._ledger.height()
        except LedgerError as exc:
            # A reader without the right to the chain's height: the stream still wakes the
            # waiters, but a renewed stream starts at the next commit and could miss events
            # in between, so reads are never cached and waits poll as without a watch.
            log.debug("round watch without the height, polling: %s", exc)
            start, self._blind = None, True
            self._set_healthy(False)
        self._thread = threading.Thread(
            target=self._follow, args=(start,), name="round-watch", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        # Not joined: a Fabric stream ends at its deadline (STREAM_S), and the thread is a
        # daemon that touches nothing after the stop.
        self._stop.set()

    def _follow(self, start: int | None) -> None:
        network = self._ledger.contract.network
        chaincode = self._ledger.contract.chaincode
        checkpoint = Checkpoint()
        while not self._stop.is_set():
            opened, seen = time.monotonic(), self.events_seen
            try:
                blocks = network.get_chaincode_event_blocks(
                    chaincode,
                    start_block=start if checkpoint.block_number is None else None,
                    checkpoint=checkpoint if checkpoint.block_number is not None else None,
                    timeout=STREAM_S,
                )
                for block in blocks:
                    # Waiters wake once per block that changed their round, not once per
                    # event: N agents woken by each of N joins in a block was O(N^2)
                    # wake-ups for nothing (benchmarks/scale.py).
                    changed: dict[RoundKey, None] = {}
                    for event in block:
                        checkpoint.checkpoint_event(event)
                        key = self._saw(event.name, event.json())
                        if key is not None:
                            changed[key] = None
                    for key in changed:
                        self.changed(key)
                    if self._stop.is_set():
                        return
                self._set_healthy(True)
                if self.events_seen == seen and time.monotonic() - opened < STREAM_S / 2:
                    self._stop.wait(0.5)  # a closed service ends its stream at once: no spin
            except Exception as exc:  # the follower must outlive any stream error
                # A peer resetting the stream or restarting, a connection closed: reads stop
                # being cached (an event may be late) until the stream is back, from where it
                # stopped. The waits' deadlines and polling carry the rounds meanwhile.
                log.debug("round watch: events stream broke: %s", exc)
                self._set_healthy(False)
                self._stop.wait(0.5)

    def _saw(self, name: str, payload: object) -> RoundKey | None:
        """Record a round's event; returns its round (to wake its waiters), else ``None``."""
        if not isinstance(payload, dict):
            return None
        profile, number = payload.get("profile"), payload.get("round")
        if not isinstance(profile, str) or not isinstance(number, int):
            return None
        self._set_healthy(True)
        self.events_seen += 1
        key = (profile, number)
        with self._lock:
            self._events.setdefault(key, []).append((name, payload))
        return key

    def _set_healthy(self, healthy: bool) -> None:
        healthy = healthy and not self._blind
        with self._lock:
            if self._healthy == healthy:
                return
            self._healthy = healthy
            for key in self._conditions:  # waiters switch between events and polling
                self._versions[key] = self._versions.get(key, 0) + 1
                self._conditions[key].notify_all()

    # ------------------------------------------------------------------ waiters
    def _condition(self, key: RoundKey) -> threading.Condition:
        condition = self._conditions.get(key)
        if condition is None:
            condition = self._conditions[key] = threading.Condition(self._lock)
            self._read_locks[key] = threading.Lock()
        return condition

    def version(self, key: RoundKey) -> int:
        with self._lock:
            self._condition(key)
            return self._versions.get(key, 0)

    @property
    def healthy(self) -> bool:
        """Whether the events stream is up: events may be trusted to announce changes."""
        with self._lock:
            return self._healthy

    def events(self, key: RoundKey, start: int = 0) -> list[tuple[str, dict[str, object]]]:
        """The round's events (name, payload) this watch saw, from the ``start``-th on:
        ``len(events(key))`` taken before a read is where to look for what came after it."""
        with self._lock:
            return list(self._events.get(key, [])[start:])

    def wrote(self) -> int:
        """After a write of this process committed: pass the answer to :meth:`read` as
        ``after``, and that read will have begun after the commit."""
        with self._lock:
            self._writes += 1
            return self._writes

    def changed(self, key: RoundKey) -> None:
        """The round changed: an event named it (or a test says so)."""
        with self._lock:
            condition = self._condition(key)
            self._versions[key] = self._versions.get(key, 0) + 1
            condition.notify_all()

    def read(self, key: RoundKey, *, after: int = 0) -> tuple[Round, int]:
        """The round, and the version it is current for; read after the write for which
        :meth:`wrote` answered ``after``."""
        with self._lock:
            self._condition(key)
            read_lock = self._read_locks[key]
        with read_lock:
            with self._lock:
                version = self._versions.get(key, 0)
                cached = self._reads.get(key) if self._healthy else None
            if (
                cached is not None
                and cached.version == version
                and cached.writes >= after
                and _fresh(cached, time.time())
            ):
                return cached.round, version
            with self._lock:
                writes = self._writes
            at = time.time()
            rnd = self._ledger.get_round(*key)
            self.reads += 1
            with self._lock:
                self._reads[key] = _Read(version, writes, at, rnd)
            return rnd, version

    def wait(self, key: RoundKey, seen: int, until: float, *, poll_s: float) -> None:
        """Until the round changes after version ``seen``, or wall-clock ``until``; at most
        ``poll_s`` while the events stream is down, at most ``SAFETY_S`` otherwise."""
        with self._lock:
            condition = self._condition(key)
            cap = SAFETY_S if self._healthy else poll_s
            timeout = max(0.0, min(until - time.time(), cap))
            condition.wait_for(lambda: self._versions.get(key, 0) != seen, timeout)


def _fresh(read: _Read, now: float) -> bool:
    """No deadline of the round passed since the read: past one, the round's phase (joining
    → revealing) and who may elect or replace change with no transaction to announce it."""
    rnd = read.round
    deadlines = (rnd.join_deadline, rnd.reveal_deadline, rnd.coordinator_deadline)
    return not any(read.at < d <= now for d in deadlines)


_watches: dict[int, tuple[RoundWatch, int]] = {}
_registry_lock = threading.Lock()


@contextmanager
def watching(ledger: FedspecLedger) -> Iterator[RoundWatch]:
    """The process's watch of ``ledger``'s connection, started by its first user and stopped
    when its last one leaves (node agents of one process share it)."""
    key = id(ledger.contract.gateway.client)  # one per ledger service (backends.open_service)
    with _registry_lock:
        watch, users = _watches.get(key, (None, 0))
        if watch is None:
            watch = RoundWatch(ledger)
            watch.start()
        _watches[key] = (watch, users + 1)
    try:
        yield watch
    finally:
        with _registry_lock:
            watch, users = _watches[key]
            if users == 1:
                del _watches[key]
                watch.stop()
            else:
                _watches[key] = (watch, users - 1)
