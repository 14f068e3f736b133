"""A dict-backed stand-in for Fabric's ChaincodeStub, for chaincode unit tests only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class _Ts:
    seconds: int
    nanos: int = 0


@dataclass
class _KV:
    key: str
    value: bytes


class _Iter:
    def __init__(self, rows: list[_KV]) -> None:
        self._rows = iter(rows)

    def __aiter__(self) -> _Iter:
        return self

    async def __anext__(self) -> _KV:
        try:
            return next(self._rows)
        except StopIteration:
            raise StopAsyncIteration from None


class FakeStub:
    """Writes apply immediately (unlike Fabric); tests that rely on isolation use the ledger."""

    def __init__(
        self,
        state: dict[str, bytes],
        *,
        mspid: str,
        cert: bytes,
        tx_id: str = "tx",
        ts: int = 1_000,
    ) -> None:
        self.state = state
        self.creator = {"mspid": mspid, "idBytes": cert}
        self.tx_id = tx_id
        self.ts = ts
        self.events: list[tuple[str, bytes]] = []
        self.args: list[str] = []

    def get_creator(self) -> dict[str, Any]:
        return self.creator

    def get_tx_timestamp(self) -> _Ts:
        return _Ts(self.ts)

    def get_txid(self) -> str:
        return self.tx_id

    def get_function_and_parameters(self) -> tuple[str, list[str]]:
        return self.args[0], self.args[1:]

    async def get_state(self, key: str) -> bytes:
        return self.state.get(key, b"")

    async def put_state(self, key: str, value: bytes) -> None:
        self.state[key] = value

    async def delete_state(self, key: str) -> None:
        self.state.pop(key, None)

    async def get_state_by_range(self, start: str, end: str) -> _Iter:
        return _Iter([_KV(k, v) for k, v in sorted(self.state.items()) if start <= k < end])

    def set_event(self, name: str, payload: bytes) -> None:
        self.events.append((name, payload))
