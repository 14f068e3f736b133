"""Waiting on a round by its events (ledger_client.round_watch; issue 17, point 2).

Node agents wait for joining to close, for the election and for the model on the chaincode's
events instead of re-reading the round every 50 ms, and the agents of one process share one
read of the round per change. The wake-up itself is tested on both backends in
test_round_watch_events.py; what is here is the backend-independent logic.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ledger_client.errors import LedgerError
from ledger_client.records import Round, new_seed_secret
from ledger_client.round_watch import RoundWatch, _fresh, _Read, watching
from tests.round_records import round_record

from .conftest import LedgerEnv

PROFILE = "digits-8x8"
VOLUNTEERS = ["org1/node0", "org2/node0", "org3/node0"]


def _open_round(env: LedgerEnv) -> int:
    env.bootstrap()
    env.active_profile()
    for ref in VOLUNTEERS:
        env.ledger(ref).volunteer(PROFILE)
    return env.ledger(VOLUNTEERS[0]).open_round(PROFILE).number


def test_reads_are_shared_until_the_round_changes(env: LedgerEnv) -> None:
    n = _open_round(env)
    key = (PROFILE, n)
    ledger = env.ledger(VOLUNTEERS[0])
    with watching(ledger) as watch:
        first, version = watch.read(key)
        again, same = watch.read(key)
        assert (again, same, watch.reads) == (first, version, 1)

        ledger.join_round(PROFILE, n, new_seed_secret()[1])
        after = watch.wrote()  # what an agent does after its own committed write
        mine, _ = watch.read(key, after=after)
        assert watch.reads == 2
        assert mine.joined == [VOLUNTEERS[0]]


def test_a_write_needs_a_read_begun_after_it_only_for_its_writer(env: LedgerEnv) -> None:
    n = _open_round(env)
    key = (PROFILE, n)
    a, b = env.ledger(VOLUNTEERS[0]), env.ledger(VOLUNTEERS[1])
    watch = RoundWatch(a)  # never started: no event arrives while the test runs
    watch.read(key)
    a.join_round(PROFILE, n, new_seed_secret()[1])
    a_wrote = watch.wrote()
    others, _ = watch.read(key)  # another agent: the shared read stands until the event
    assert (watch.reads, others.joined) == (1, [])
    mine, _ = watch.read(key, after=a_wrote)
    assert (watch.reads, mine.joined) == (2, [VOLUNTEERS[0]])

    b.join_round(PROFILE, n, new_seed_secret()[1])
    b_wrote = watch.wrote()
    again, _ = watch.read(key, after=a_wrote)  # a's floor: the read after its write will do
    assert (watch.reads, again.joined) == (2, [VOLUNTEERS[0]])
    theirs, _ = watch.read(key, after=b_wrote)
    assert watch.reads == 3
    assert set(theirs.joined) == {VOLUNTEERS[0], VOLUNTEERS[1]}
    # Writers whose commits came before one read share it: b's floor is met from now on.
    watch.read(key, after=b_wrote)
    assert watch.reads == 3


def test_agents_of_one_process_share_one_watch_and_it_stops_with_the_last(
    env: LedgerEnv,
) -> None:
    _open_round(env)
    a, b = env.ledger("org1/node0"), env.ledger("org1/node1")
    assert a.contract.gateway.client is b.contract.gateway.client  # one service per org
    with watching(a) as first, watching(b) as second:
        assert first is second
        thread = first._thread
        assert thread is not None and thread.is_alive()
    with watching(a) as third:
        assert third is not first  # the last user left: a new one starts afresh
    thread.join(timeout=60)
    assert not thread.is_alive()


def test_reads_are_not_cached_while_the_events_stream_is_down(
    env: LedgerEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = _open_round(env)
    key = (PROFILE, n)
    ledger = env.ledger(VOLUNTEERS[0])
    network = ledger.contract.network
    broken = threading.Event()

    def refuse(*args: Any, **kwargs: Any) -> Iterator[Any]:
        broken.set()
        raise LedgerError("chaincode events: the peer is restarting", code="UNAVAILABLE")

    monkeypatch.setattr(network, "get_chaincode_event_blocks", refuse)
    watch = RoundWatch(ledger)
    watch.start()
    try:
        assert broken.wait(timeout=60)
        while watch.healthy:  # set by the follower right after its stream failed
            time.sleep(0.01)
        watch.read(key)
        watch.read(key)
        assert watch.reads == 2  # nothing announces changes: every read goes to the ledger
        start = time.monotonic()
        watch.wait(key, watch.version(key), time.time() + 600, poll_s=0.05)
        assert time.monotonic() - start < 300  # it polled, rather than waiting for an event
    finally:
        watch.stop()


def _round(**deadlines: int) -> Round:
    return round_record(status="joining", coordinator="", participants=[], **deadlines)


def test_a_read_goes_stale_when_a_deadline_of_the_round_passes() -> None:
    rnd = _round(join_deadline=100, reveal_deadline=200, coordinator_deadline=0)
    assert _fresh(_Read(0, 0, 50.0, rnd), 99.0)
    assert not _fresh(_Read(0, 0, 50.0, rnd), 100.0)  # joining closed with no transaction
    assert _fresh(_Read(0, 0, 150.0, rnd), 199.5)
    assert not _fresh(_Read(0, 0, 150.0, rnd), 250.0)  # anyone may elect now
    assert _fresh(_Read(0, 0, 250.0, rnd), 10_000.0)


def test_without_the_chain_s_height_reads_are_never_cached(
    env: LedgerEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A renewed stream would then start at the next commit and could miss events between
    two streams: the watch may still wake waiters but its reads always go to the ledger."""
    n = _open_round(env)
    key = (PROFILE, n)
    ledger = env.ledger(VOLUNTEERS[0])

    def refused() -> int:
        raise LedgerError("qscc GetChainInfo: access denied", code="FORBIDDEN")

    monkeypatch.setattr(ledger, "height", refused)
    watch = RoundWatch(ledger)
    watch.start()
    try:
        assert not watch.healthy
        watch.read(key)
        env.ledger(VOLUNTEERS[1]).join_round(PROFILE, n, new_seed_secret()[1])
        rnd, _ = watch.read(key)  # whether or not the join's event arrived
        assert not watch.healthy
        assert rnd.joined == [VOLUNTEERS[1]] and watch.reads == 2
    finally:
        watch.stop()
