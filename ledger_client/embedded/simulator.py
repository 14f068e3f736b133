"""Chaincode simulation: the stub the contract runs against inside the embedded peer.

It offers the same (async) surface as Fabric's Python shim, reads committed state from a
:class:`StateReader` (one SQLite snapshot in the peer, the replay's in-memory state in
``ledger verify``), and records what a Fabric peer records: the version of every key read, the
keys and versions every range query returned (for phantom detection), the writes, and the
event. The coroutines never suspend, so the peer drives them without an event loop.

Every row the contract reads can be checked before the contract sees it (``check``): the peer
compares it with the write that its version names, in the orderer-signed block, and a
mismatch stops the simulation with :class:`TamperedState` — tampered state is never endorsed
on and never served.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Protocol

from fabric_protos.ledger.rwset import rwset_pb2
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2
from fabric_protos.peer import chaincode_event_pb2
from google.protobuf import timestamp_pb2

MAX_KEY_BYTES = 4096
MAX_VALUE_BYTES = 4 * 1024 * 1024


Row = tuple[Any, Any, Any]  # (value, block, txn) as stored: types unchecked until verified
Check = Callable[[str, Any, Any, Any], None]


class TamperedState(Exception):
    """A row of the world state differs from what the signed blocks wrote (or names a write
    that does not exist): the file was edited outside the ledger."""

    def __init__(self, block: int, key: str, message: str) -> None:
        super().__init__(message)
        self.block = block
        self.key = key
        self.message = message


class StateReader(Protocol):
    """Committed state as a simulation reads it."""

    def get(self, key: str) -> Row | None: ...

    def scan(self, start: str, end: str) -> list[tuple[str, Any, Any, Any]]: ...


class SqlReader:
    """The state table of one SQLite snapshot."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def get(self, key: str) -> Row | None:
        row: Row | None = self._db.execute(
            "SELECT value, block, txn FROM state WHERE key = ?", (key,)
        ).fetchone()
        return row

    def scan(self, start: str, end: str) -> list[tuple[str, Any, Any, Any]]:
        return self._db.execute(
            "SELECT key, value, block, txn FROM state WHERE key >= ? AND key < ? ORDER BY key",
            (start, end),
        ).fetchall()


class _KV:
    __slots__ = ("key", "value")

    def __init__(self, key: str, value: bytes) -> None:
        self.key = key
        self.value = value


class _Rows:
    """An async iterator over an already-fetched range (it never suspends)."""

    def __init__(self, rows: list[_KV]) -> None:
        self._rows = iter(rows)

    def __aiter__(self) -> _Rows:
        return self

    async def __anext__(self) -> _KV:
        try:
            return next(self._rows)
        except StopIteration:
            raise StopAsyncIteration from None


class SimulationStub:
    def __init__(
        self,
        source: StateReader,
        *,
        msp_id: str,
        cert_pem: bytes,
        tx_id: str,
        timestamp: timestamp_pb2.Timestamp,
        chaincode: str,
        check: Check | None = None,
    ) -> None:
        self._source = source
        self._check = check
        self.tampered: TamperedState | None = None
        self._creator = {"mspid": msp_id, "idBytes": cert_pem}
        self._tx_id = tx_id
        self._timestamp = timestamp
        self._chaincode = chaincode
        self.reads: dict[str, tuple[int, int] | None] = {}
        self.ranges: list[kv_rwset_pb2.RangeQueryInfo] = []
        self.writes: dict[str, bytes | None] = {}
        self.event: chaincode_event_pb2.ChaincodeEvent | None = None

    # -- the stub surface the contract uses (same names and shapes as fabric_shim) --
    def get_creator(self) -> dict[str, Any]:
        return self._creator

    def get_tx_timestamp(self) -> timestamp_pb2.Timestamp:
        return self._timestamp

    def get_txid(self) -> str:
        return self._tx_id

    def _verified(self, key: str, value: Any, block: Any, txn: Any) -> None:
        if self._check is not None:
            try:
                self._check(key, value, block, txn)
            except TamperedState as exc:
                # Kept here too: the contract turns any exception into its own error.
                self.tampered = exc
                raise

    async def get_state(self, key: str) -> bytes:
        _check_key(key)
        row = self._source.get(key)
        if row is not None:
            self._verified(key, *row)
        if key not in self.reads:
            self.reads[key] = None if row is None else (row[1], row[2])
        return b"" if row is None else bytes(row[0])

    async def put_state(self, key: str, value: bytes) -> None:
        _check_key(key)
        if isinstance(value, str):
            value = value.encode()
        if len(value) > MAX_VALUE_BYTES:
            raise ValueError(f"value of {key!r} is larger than {MAX_VALUE_BYTES} bytes")
        self.writes[key] = bytes(value)

    async def delete_state(self, key: str) -> None:
        _check_key(key)
        self.writes[key] = None

    async def get_state_by_range(self, start_key: str, end_key: str) -> AsyncIterator[_KV]:
        rows = self._source.scan(start_key, end_key)
        for k, v, b, t in rows:
            self._verified(k, v, b, t)
        info = kv_rwset_pb2.RangeQueryInfo(start_key=start_key, end_key=end_key, itr_exhausted=True)
        info.raw_reads.kv_reads.extend(
            kv_rwset_pb2.KVRead(key=k, version=kv_rwset_pb2.Version(block_num=b, tx_num=t))
            for k, _, b, t in rows
        )
        self.ranges.append(info)
        return _Rows([_KV(k, bytes(v)) for k, v, _, _ in rows])

    def set_event(self, name: str, payload: bytes) -> None:
        self.event = chaincode_event_pb2.ChaincodeEvent(
            chaincode_id=self._chaincode, tx_id=self._tx_id, event_name=name, payload=payload
        )

    # -- what the peer does with the simulation --
    def rwset_bytes(self) -> bytes:
        kv = kv_rwset_pb2.KVRWSet()
        for key in sorted(self.reads):
            version = self.reads[key]
            read = kv_rwset_pb2.KVRead(key=key)
            if version is not None:
                read.version.CopyFrom(kv_rwset_pb2.Version(block_num=version[0], tx_num=version[1]))
            kv.reads.append(read)
        kv.range_queries_info.extend(self.ranges)
        for key in sorted(self.writes):
            value = self.writes[key]
            kv.writes.append(
                kv_rwset_pb2.KVWrite(key=key, is_delete=value is None, value=value or b"")
            )
        tx = rwset_pb2.TxReadWriteSet(
            data_model=rwset_pb2.TxReadWriteSet.KV,
            ns_rwset=[
                rwset_pb2.NsReadWriteSet(namespace=self._chaincode, rwset=kv.SerializeToString())
            ],
        )
        return bytes(tx.SerializeToString())


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key or len(key.encode()) > MAX_KEY_BYTES:
        raise ValueError("state keys are non-empty strings of at most 4 KiB")


def drive(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends, without an event loop (microseconds, not a loop)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("chaincode awaited something that is not immediately available")


def read_kvrwset(results: bytes, namespace: str) -> kv_rwset_pb2.KVRWSet:
    """The contract's key-value read/write set out of a ChaincodeAction's results."""
    tx = rwset_pb2.TxReadWriteSet.FromString(results)
    for ns in tx.ns_rwset:
        if ns.namespace == namespace:
            return kv_rwset_pb2.KVRWSet.FromString(ns.rwset)
    return kv_rwset_pb2.KVRWSet()
