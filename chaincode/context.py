"""The transaction context the contract logic runs in, over any Fabric-shaped stub.

:class:`Stub` is the part of ``fabric_chaincode_python``'s ``ChaincodeStub`` the contract uses,
with the same (async) signatures; the embedded peer's simulator implements the same surface.
Reads return *committed* state, as on Fabric: a transaction does not see its own writes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from chaincode import keys
from chaincode.errors import ChaincodeError, Conflict
from chaincode.identity import Creator, parse_creator


class KV(Protocol):
    key: str
    value: bytes


class Timestamp(Protocol):
    seconds: int


class Stub(Protocol):
    def get_creator(self) -> Mapping[str, Any]: ...

    def get_tx_timestamp(self) -> Timestamp: ...

    def get_txid(self) -> str: ...

    async def get_state(self, key: str) -> bytes: ...

    async def put_state(self, key: str, value: bytes) -> Any: ...

    async def delete_state(self, key: str) -> Any: ...

    async def get_state_by_range(self, start_key: str, end_key: str) -> AsyncIterator[KV]: ...

    def set_event(self, name: str, payload: bytes) -> None: ...


def canonical(obj: Any) -> bytes:
    """Sorted-key, compact JSON: byte-identical on every peer that runs this contract."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


class Tx:
    """One transaction's view of the ledger: typed reads and writes, the caller, the clock."""

    def __init__(self, stub: Stub) -> None:
        self.stub = stub
        creator = stub.get_creator()
        cert = creator.get("idBytes") or b""
        self.creator: Creator = parse_creator(
            str(creator.get("mspid") or ""), cert if isinstance(cert, bytes) else str(cert).encode()
        )
        # Deadlines use the transaction's own timestamp, never the peer's wall clock.
        self.timestamp: int = int(stub.get_tx_timestamp().seconds)
        self.tx_id: str = stub.get_txid()
        self._event_set = False

    async def get(self, key: str) -> dict[str, Any] | None:
        raw = await self.stub.get_state(key)
        if not raw:  # Fabric returns empty bytes for a missing key
            return None
        value: dict[str, Any] = json.loads(raw)
        return value

    async def put(self, key: str, record: Mapping[str, Any]) -> None:
        await self.stub.put_state(key, canonical(record))

    async def delete(self, key: str) -> None:
        await self.stub.delete_state(key)

    async def scan(
        self, object_type: str, *attributes: str
    ) -> list[tuple[list[str], dict[str, Any]]]:
        """Every record under a partial composite key, as (attributes, record), in key order."""
        start, end = keys.prefix_range(object_type, *attributes)
        out: list[tuple[list[str], dict[str, Any]]] = []
        iterator = await self.stub.get_state_by_range(start, end)
        async for kv in iterator:
            _, attrs = keys.split(kv.key)
            out.append((attrs, json.loads(kv.value)))
        return out

    async def put_once(self, key: str, record: Mapping[str, Any], what: str) -> bool:
        """Write a one-time record; the same content again is an idempotent no-op.

        Returns whether anything was written. Different content is a :class:`Conflict`.
        """
        existing = await self.get(key)
        if existing is None:
            await self.put(key, record)
            return True
        if canonical(existing) != canonical(record):
            raise Conflict(f"{what} is already recorded with different content")
        return False

    def emit(self, name: str, payload: Mapping[str, Any]) -> None:
        # Fabric keeps one chaincode event per transaction; setting two would drop the first.
        if self._event_set:
            raise ChaincodeError("a transaction emits exactly one event")
        self._event_set = True
        self.stub.set_event(name, canonical(payload))
