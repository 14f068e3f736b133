"""What a Fabric client asks again when an endorsement is refused (ledger_client.fabric):
the gateway's discovery not yet knowing enough peers (right after a chaincode definition
was committed or a member's peer joined) is retried, bounded; the chaincode's own refusal
is not. Unit tests: a service whose calls answer from a script, no peer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ledger_client import fabric
from ledger_client.fabric import FabricGatewayService
from ledger_client.service import ErrorDetail, GatewayServiceError

NO_PEERS = GatewayServiceError(
    "FAILED_PRECONDITION",
    "no combination of peers can be derived which satisfy the endorsement policy: "
    "no peer combination can satisfy the endorsement policy",
)
REFUSED = GatewayServiceError(
    "ABORTED",
    "failed to endorse transaction",
    [ErrorDetail("127.0.0.1:7051", "org1", "chaincode response 412, the round is closed")],
)


def _service(answers: list[Any]) -> tuple[FabricGatewayService, list[int]]:
    service = object.__new__(FabricGatewayService)  # no connection: its calls are scripted
    service.endpoint, service.org, service._others = "127.0.0.1:7051", "org1", {}
    calls = [0]
    script: Iterator[Any] = iter(answers)

    def call(method: Any, request: object, timeout: float) -> Any:
        calls[0] += 1
        answer = next(script)
        if isinstance(answer, Exception):
            raise answer
        return answer

    service._call = call  # type: ignore[method-assign]
    service._stub = type("Stub", (), {"Endorse": None})()
    return service, calls


def test_endorsement_is_asked_again_while_discovery_knows_too_few_peers() -> None:
    service, calls = _service([NO_PEERS, NO_PEERS, "endorsed"])
    assert service.endorse(object(), timeout=60) == "endorsed"
    assert calls[0] == 3


def test_the_chaincode_s_own_refusal_is_not_asked_again() -> None:
    service, calls = _service([REFUSED, "endorsed"])
    with pytest.raises(GatewayServiceError) as refused:
        service.endorse(object(), timeout=60)
    assert refused.value is REFUSED and calls[0] == 1


def test_discovery_that_never_knows_enough_peers_is_refused_in_bounded_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fabric, "DISCOVERY_RETRY_S", 0.3)
    service, calls = _service([NO_PEERS] * 100)
    with pytest.raises(GatewayServiceError) as refused:
        service.endorse(object(), timeout=60)
    assert refused.value is NO_PEERS and 1 < calls[0] < 100
