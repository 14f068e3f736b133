"""The one place where fedspec works around ``fabric-chaincode-python`` (2.5.4) bugs.

**Chaincode events are dropped.** The shim's stub collects ``set_event`` calls, but its
handler never copies them into the ``COMPLETED`` message it sends the peer (Fabric's Go shim
sets ``ChaincodeMessage.chaincode_event`` there), so no event reaches a block and
``ChaincodeEvents`` listeners see nothing. Until the shim does it, :func:`apply` makes the
stub remember each transaction's event and the handler's writer attach it to that
transaction's ``COMPLETED`` message.

**The peer's keepalive pings kill the connection.** The shim starts its gRPC server with
gRPC's defaults, which refuse client pings more often than every 5 minutes; Fabric's peer
pings its chaincode every 60 s, so after a few minutes the server answers GOAWAY
``too_many_pings``, the stream drops, and every transaction in flight times out after 30 s.
:func:`apply` makes the server accept the peer's pings.

**Concurrent transactions break the stream.** The handler runs each transaction as its own
task, and each writes to the one gRPC stream whenever it likes; gRPC allows one write in
flight per stream, so under concurrent load a write fails with
``GRPC_CALL_ERROR_TOO_MANY_OPERATIONS`` and that transaction errors. The writer that
attaches events also serializes writes.

**A debug line logged at WARNING for every message.** The handler logs ``-->> Look out!``
for each message it handles: under load 16 % of a chaincode server's CPU (py-spy, while
``benchmarks.ledger_fabric`` ran). :func:`apply` drops that one line; the shim's other
warnings stay.

Remove each fix once the shim has it (``tests/fabric`` exercises both: events are checked
and rounds run for minutes).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
import grpc.aio
from fabric_chaincode_python.fabric_shim import handler as shim_handler
from fabric_chaincode_python.fabric_shim import logging as shim_logging
from fabric_chaincode_python.fabric_shim import server as shim_server
from fabric_chaincode_python.fabric_shim.handler import Handler
from fabric_chaincode_python.fabric_shim.stub import ChaincodeStub
from fabric_protos.peer import chaincode_shim_pb2

# (channel, transaction id) → the event its stub set, until its COMPLETED message is sent.
_pending: dict[tuple[str, str], Any] = {}


class _EventKeepingStub(ChaincodeStub):  # type: ignore[misc]  # the shim ships no types
    def set_event(self, name: str, payload: Any) -> None:
        super().set_event(name, payload)
        _pending[(self.channel_id, self.tx_id)] = self.get_events()[-1]


class _EventAttachingWriter:
    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._lock = asyncio.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def write(self, msg: Any) -> None:
        if msg.type == chaincode_shim_pb2.ChaincodeMessage.COMPLETED:
            event = _pending.pop((msg.channel_id, msg.txid), None)
            if event is not None:
                msg.chaincode_event.CopyFrom(event)
        async with self._lock:  # one write at a time on the stream
            await self._inner.write(msg)


class _EventAttachingHandler(Handler):  # type: ignore[misc]
    @property
    def context(self) -> Any:
        return self.__dict__.get("_fedspec_context")

    @context.setter
    def context(self, value: Any) -> None:
        self.__dict__["_fedspec_context"] = None if value is None else _EventAttachingWriter(value)


# Accept pings as often as Fabric's peer sends them (every 60 s), with headroom.
KEEPALIVE_OPTIONS = (
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.min_time_between_pings_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
)


def _server_with_keepalive(*args: Any, **kwargs: Any) -> Any:
    options = [*(kwargs.pop("options", None) or ()), *KEEPALIVE_OPTIONS]
    return _grpc_aio_server(*args, options=options, **kwargs)


_grpc_aio_server = grpc.aio.server
LOOK_OUT = "-->> Look out!"  # fabric_shim/handler.py, Handler.handle_message


def apply() -> None:
    """Patch the shim in this process (the chaincode server's), before it starts serving."""
    shim_handler.ChaincodeStub = _EventKeepingStub
    shim_server.Handler = _EventAttachingHandler
    # The shim calls grpc.aio.server() itself; this process serves nothing else.
    grpc.aio.server = _server_with_keepalive
    # The shim logs every message it exchanges at INFO: thousands of lines a minute.
    shim_logger = logging.getLogger(shim_logging.LOGGER.name)
    shim_logger.setLevel(logging.WARNING)
    if _not_look_out not in shim_logger.filters:
        shim_logger.addFilter(_not_look_out)


def _not_look_out(record: logging.LogRecord) -> bool:
    return record.msg != LOOK_OUT
