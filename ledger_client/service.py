"""The seam between the client and a ledger: Fabric Gateway's five calls, message for message.

:class:`GatewayService` takes and returns the ``gateway.proto`` messages. The embedded backend
implements it in-process; the Fabric backend sends the same messages over gRPC to a peer's
Gateway. Everything above this seam (signing, phases, errors, the domain facade) is shared.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from fabric_protos.gateway import gateway_pb2


@dataclass
class ErrorDetail:
    address: str
    msp_id: str
    message: str


@dataclass
class GatewayServiceError(Exception):
    """A call the service refused. ``code`` is a stable name (a gRPC status or a fedspec code)."""

    code: str
    message: str
    details: list[ErrorDetail] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class GatewayService(Protocol):
    def evaluate(
        self, request: gateway_pb2.EvaluateRequest, timeout: float
    ) -> gateway_pb2.EvaluateResponse: ...

    def endorse(
        self, request: gateway_pb2.EndorseRequest, timeout: float
    ) -> gateway_pb2.EndorseResponse: ...

    def submit(
        self, request: gateway_pb2.SubmitRequest, timeout: float
    ) -> gateway_pb2.SubmitResponse: ...

    def commit_status(
        self, request: gateway_pb2.SignedCommitStatusRequest, timeout: float
    ) -> gateway_pb2.CommitStatusResponse: ...

    def chaincode_events(
        self, request: gateway_pb2.SignedChaincodeEventsRequest, timeout: float | None
    ) -> Iterator[gateway_pb2.ChaincodeEventsResponse]: ...

    def close(self) -> None: ...
