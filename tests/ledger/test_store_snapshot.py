"""Store.snapshot is reentrant: an inner snapshot joins the outer read transaction.

The peer relies on it to run an endorsement's configuration check, duplicate-id check and
simulation in one read transaction; these tests pin what that means: the inner view is the
outer one (a commit made meanwhile stays invisible until the outer snapshot ends), and
leaving the inner one does not end the outer.
"""

from __future__ import annotations

import threading
from pathlib import Path

from ledger_client.embedded.store import Store


def _store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "ledger.sqlite", create=True)
    store.connection().execute("PRAGMA journal_mode=WAL")
    with store.write() as db:
        db.execute("INSERT INTO state (key, value, block, txn) VALUES ('k', x'01', 1, 0)")
    return store


def _write_from_another_thread(store: Store, value: bytes) -> None:
    def write() -> None:
        with store.write() as db:
            db.execute("UPDATE state SET value = ? WHERE key = 'k'", (value,))

    t = threading.Thread(target=write)
    t.start()
    t.join()


def _value(db: object) -> bytes:
    row = db.execute("SELECT value FROM state WHERE key = 'k'").fetchone()  # type: ignore[attr-defined]
    return bytes(row[0])


def test_an_inner_snapshot_reads_the_outer_snapshots_view(tmp_path: Path) -> None:
    store = _store(tmp_path)
    try:
        with store.snapshot() as outer:
            assert _value(outer) == b"\x01"  # the read transaction starts here
            _write_from_another_thread(store, b"\x02")
            with store.snapshot() as inner:
                assert inner is outer
                assert _value(inner) == b"\x01"  # still the outer view, not the new commit
            # Leaving the inner snapshot did not end the outer read transaction.
            assert outer.in_transaction
            assert _value(outer) == b"\x01"
        assert not store.connection().in_transaction
        with store.snapshot() as fresh:
            assert _value(fresh) == b"\x02"
    finally:
        store.close()


def test_a_snapshot_ends_its_transaction_when_the_body_raises(tmp_path: Path) -> None:
    store = _store(tmp_path)
    try:
        try:
            with store.snapshot() as db:
                _value(db)
                raise KeyError("boom")
        except KeyError:
            pass
        assert not store.connection().in_transaction
    finally:
        store.close()
