"""Shared reads (ledger_client.coalesce): a burst of identical reads costs at most two, and no
caller is served a read that began before it asked."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from ledger_client.coalesce import Coalescer

WAIT_S = 30.0


def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.001)


class Ledger:
    """A value that a test changes, and reads of it that can be held open."""

    def __init__(self) -> None:
        self.value = "v0"
        self.reads = 0
        self.started = threading.Event()
        self.hold = threading.Event()
        self.hold.set()
        self.fail_next = False

    def read(self) -> str:
        self.reads += 1
        seen = self.value
        self.started.set()
        assert self.hold.wait(WAIT_S)
        if self.fail_next:
            self.fail_next = False
            raise PermissionError("refused for this caller")
        return seen


def test_reads_one_after_another_are_never_shared() -> None:
    ledger, shared = Ledger(), Coalescer[str]()
    assert shared.call("k", ledger.read) == "v0"
    ledger.value = "v1"
    assert shared.call("k", ledger.read) == "v1"
    assert ledger.reads == shared.reads == 2


def test_a_burst_shares_the_read_that_began_after_it_asked() -> None:
    ledger, shared = Ledger(), Coalescer[str]()
    ledger.hold.clear()
    results: dict[int, str] = {}

    def call(i: int) -> None:
        results[i] = shared.call("k", ledger.read)

    first = threading.Thread(target=call, args=(0,))
    first.start()
    assert ledger.started.wait(WAIT_S)  # read 1 under way, seeing v0
    ledger.value = "v1"  # a commit while it runs: the callers below ask after it
    others = [threading.Thread(target=call, args=(i,)) for i in range(1, 20)]
    for t in others:
        t.start()
    _until(lambda: "k" in shared._next and shared._next["k"].callers == 19)
    ledger.hold.set()
    for t in [first, *others]:
        t.join(WAIT_S)
    assert results[0] == "v0"
    assert {results[i] for i in range(1, 20)} == {"v1"}  # never the read from before they asked
    assert ledger.reads == 2


def test_a_failed_shared_read_is_not_handed_to_the_others() -> None:
    ledger, shared = Ledger(), Coalescer[str]()
    ledger.hold.clear()
    outcomes: dict[int, str] = {}

    def call(i: int) -> None:
        try:
            outcomes[i] = shared.call("k", ledger.read)
        except PermissionError:
            outcomes[i] = "refused"

    first = threading.Thread(target=call, args=(0,))
    first.start()
    assert ledger.started.wait(WAIT_S)
    others = [threading.Thread(target=call, args=(i,)) for i in range(1, 4)]
    for t in others:
        t.start()
    _until(lambda: "k" in shared._next and shared._next["k"].callers == 3)
    ledger.fail_next = True  # read 1 fails; the others' shared read then succeeds
    ledger.hold.set()
    for t in [first, *others]:
        t.join(WAIT_S)
    assert outcomes[0] == "refused"
    assert {outcomes[i] for i in range(1, 4)} == {"v0"}


def test_different_keys_are_read_apart() -> None:
    ledger, shared = Ledger(), Coalescer[str]()
    assert shared.call("a", ledger.read) == "v0"
    assert shared.call("b", ledger.read) == "v0"
    assert ledger.reads == 2


@pytest.mark.parametrize("callers", [2, 50])
def test_every_caller_gets_an_answer(callers: int) -> None:
    shared = Coalescer[int]()
    counter = iter(range(10_000))
    lock = threading.Lock()

    def read() -> int:
        with lock:
            return next(counter)

    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(shared.call("k", read)))
        for _ in range(callers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT_S)
    assert len(results) == callers
    assert shared.reads <= callers
