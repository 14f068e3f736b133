"""A waiter on a round wakes on the round's chaincode event, on both backends: the embedded
peer's events table and a Fabric peer's ChaincodeEvents stream (ledger_client.round_watch)."""

from __future__ import annotations

import threading
import time

import pytest

from ledger_client import round_watch
from ledger_client.records import new_seed_secret
from ledger_client.round_watch import watching

from .conftest import LedgerEnv
from .test_round_watch import PROFILE, VOLUNTEERS, _open_round

LEDGER_BACKENDS = ("embedded", "fabric")


@pytest.fixture
def no_safety_net(monkeypatch: pytest.MonkeyPatch) -> None:
    # A waiter then wakes only by an event (or the deadline the test gives it, far away).
    monkeypatch.setattr(round_watch, "SAFETY_S", 600.0)


def test_a_waiter_wakes_on_an_event_of_its_round_not_at_its_deadline(
    env: LedgerEnv, no_safety_net: None
) -> None:
    n = _open_round(env)
    key = (PROFILE, n)
    with watching(env.ledger(VOLUNTEERS[0])) as watch:
        rnd, seen = watch.read(key)
        assert rnd.joined == []
        woke = threading.Event()

        def waiter() -> None:
            watch.wait(key, seen, time.time() + 600, poll_s=600)
            woke.set()

        thread = threading.Thread(target=waiter, daemon=True)
        thread.start()
        # Another organization's node joins, through its own connection (its own peer on
        # Fabric): only the ledger's event can tell this process.
        env.ledger(VOLUNTEERS[1]).join_round(PROFILE, n, new_seed_secret()[1])
        assert woke.wait(timeout=120), "the join's event did not wake the waiter"
        rnd, _ = watch.read(key)
        assert rnd.joined == [VOLUNTEERS[1]]
        assert watch.events_seen >= 1
