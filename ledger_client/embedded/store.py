"""The embedded ledger's SQLite file: blocks, world state, and indexes derived from blocks.

One file holds everything, so a commit is one SQLite transaction: a process killed mid-commit
leaves the ledger at the previous block. WAL mode lets readers (endorsement, queries) run
while one writer commits; ``BEGIN IMMEDIATE`` serializes writers across processes, which is
what makes block numbers and MVCC checks safe when several processes share the file.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ledger_client.errors import LedgerFileError

FORMAT = "fedspec-ledger-v2"
# v1 ledgers carry no state commitments, so nothing could check their state: refused.
OLD_FORMATS = ("fedspec-ledger-v1",)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    number INTEGER PRIMARY KEY, header_hash BLOB NOT NULL, tx_count INTEGER NOT NULL, block BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS txs (
    tx_id TEXT PRIMARY KEY, block INTEGER NOT NULL, idx INTEGER NOT NULL, code INTEGER NOT NULL,
    function TEXT NOT NULL, creator TEXT NOT NULL, timestamp INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS txs_by_block ON txs (block, idx);
CREATE TABLE IF NOT EXISTS state (
    key TEXT PRIMARY KEY, value BLOB NOT NULL, block INTEGER NOT NULL, txn INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    block INTEGER NOT NULL, idx INTEGER NOT NULL, tx_id TEXT NOT NULL, chaincode TEXT NOT NULL,
    name TEXT NOT NULL, payload BLOB NOT NULL, PRIMARY KEY (block, idx)
);
"""


@dataclass(frozen=True)
class Version:
    block: int
    txn: int


class Store:
    """Thread-safe access to one ledger file: a connection per thread, writes serialized."""

    def __init__(self, path: Path, *, create: bool = False, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        if not create:
            check_ledger_file(self.path)
        self._local = threading.local()
        self._synchronous = synchronous
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._lock_fd: int | None = None
        if create:
            self.connection().executescript(SCHEMA)

    def connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=60.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA busy_timeout=60000")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One atomic write transaction, exclusive across threads and processes.

        Writers first take an advisory ``flock`` on ``<ledger>.lock``: the kernel wakes the
        next waiter the moment it is released, where SQLite's own busy handler would sleep
        with a growing back-off (1, 2, 5, 10 … ms) and waste most of a busy ledger's time.
        """
        conn = self.connection()
        with self._write_lock:
            fd = self._lock_file()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _lock_file(self) -> int:
        if self._lock_fd is None:
            self._lock_fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        return self._lock_fd

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A consistent read view for one simulation (WAL gives snapshot isolation).

        Reentrant: inside a transaction already open on this thread's connection (an outer
        snapshot) it joins that one. The peer opens one snapshot around a whole endorsement
        (configuration check, duplicate-id check, simulation), so those reads share one
        SQLite read transaction — and one look at the WAL — instead of starting one each."""
        conn = self.connection()
        if conn.in_transaction:
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("ROLLBACK")

    def meta(self, key: str) -> bytes | None:
        row = self.connection().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def height(self) -> int:
        """The number of blocks (the next block's number)."""
        row = self.connection().execute("SELECT MAX(number) FROM blocks").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
        self._local = threading.local()


def check_ledger_file(path: Path) -> None:
    """Refuse anything that is not a fedspec ledger, with a message that says what it is."""
    try:
        exists, is_file = path.exists(), path.is_file()
    except OSError as exc:  # a name too long for the file system, a component not a folder…
        raise LedgerFileError(f"cannot use {str(path)[:80]}…: {exc.strerror}") from exc
    if not exists:
        raise LedgerFileError(f"{path} does not exist; create it with `fedspec ledger init`")
    if not is_file:
        raise LedgerFileError(f"{path} is not a file")
    try:
        with path.open("rb") as f:
            magic = f.read(16)
    except OSError as exc:
        raise LedgerFileError(f"cannot read {path}: {exc}") from exc
    if magic != b"SQLite format 3\x00":
        raise LedgerFileError(f"{path} is not a fedspec ledger (not an SQLite file)")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise LedgerFileError(f"{path} is not a fedspec ledger ({exc})") from exc
    marker = bytes(row[0]) if row is not None and isinstance(row[0], bytes) else b""
    if marker.decode("utf-8", "replace") in OLD_FORMATS:
        raise LedgerFileError(
            f"{path} is a {marker.decode()} ledger, which has no state commitments; "
            "re-create it with `fedspec ledger init --force` (or the demo)"
        )
    if row is None or marker != FORMAT.encode():
        raise LedgerFileError(f"{path} is not a fedspec ledger (no {FORMAT} marker)")
