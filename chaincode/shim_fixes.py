"""The one place where fedspec works around ``fabric-chaincode-python`` (2.5.4) bugs.

**Chaincode events are dropped.** The shim's stub collects ``set_event`` calls, but its
handler never copies them into the ``COMPLETED`` message it sends the peer (Fabric's Go shim
sets ``ChaincodeMessage.chaincode_event`` there), so no event reaches a block and
``ChaincodeEvents`` listeners see nothing. Until the shim does it, :func:`apply` makes the
stub remember each transaction's event and the handler's writer attach it to that
transaction's ``COMPLETED`` message. Remove this module once the shim is fixed
(``tests/fabric`` checks events arrive either way).
"""

from __future__ import annotations

from typing import Any

from fabric_chaincode_python.fabric_shim import handler as shim_handler
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

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def write(self, msg: Any) -> None:
        if msg.type == chaincode_shim_pb2.ChaincodeMessage.COMPLETED:
            event = _pending.pop((msg.channel_id, msg.txid), None)
            if event is not None:
                msg.chaincode_event.CopyFrom(event)
        await self._inner.write(msg)


class _EventAttachingHandler(Handler):  # type: ignore[misc]
    @property
    def context(self) -> Any:
        return self.__dict__.get("_fedspec_context")

    @context.setter
    def context(self, value: Any) -> None:
        self.__dict__["_fedspec_context"] = None if value is None else _EventAttachingWriter(value)


def apply() -> None:
    """Patch the shim in this process (the chaincode server's), before it starts serving."""
    shim_handler.ChaincodeStub = _EventKeepingStub
    shim_server.Handler = _EventAttachingHandler
