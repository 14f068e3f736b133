"""A Fabric events stream that the peer resets at the caller's deadline ends, and one reset
before it is an error (ledger_client.fabric). Unit tests: a scripted stream, no peer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from ledger_client.fabric import FabricGatewayService
from ledger_client.service import GatewayServiceError


class _Reset(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.CANCELLED

    def details(self) -> str:
        return "Stream removed (RST_STREAM (Received RST_STREAM with error code 8))"


class _Stream:
    def __init__(self, after_s: float) -> None:
        self.after_s = after_s

    def __iter__(self) -> Iterator[str]:
        yield "event"
        time.sleep(self.after_s)
        raise _Reset()

    def cancel(self) -> None:
        pass


def _service(after_s: float) -> FabricGatewayService:
    service = object.__new__(FabricGatewayService)
    service.endpoint, service.org, service._others = "127.0.0.1:7051", "org1", {}
    stub: Any = type("Stub", (), {})()
    stub.ChaincodeEvents = lambda request, timeout: _Stream(after_s)
    service._stub = stub
    return service


def test_a_reset_at_the_deadline_ends_the_stream() -> None:
    assert list(_service(0.05).chaincode_events(object(), timeout=0.01)) == ["event"]  # type: ignore[arg-type]


def test_a_reset_before_the_deadline_is_an_error() -> None:
    with pytest.raises(GatewayServiceError):
        list(_service(0.0).chaincode_events(object(), timeout=60))  # type: ignore[arg-type]
