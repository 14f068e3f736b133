"""The Fabric backend: Gateway's five calls over gRPC to a peer, with TLS.

Everything else (proposals, low-S signatures, phases, typed errors, the domain facade) is
shared with the embedded backend above :class:`~ledger_client.service.GatewayService`; this
module only moves the ``gateway.proto`` messages and turns gRPC failures into
:class:`~ledger_client.service.GatewayServiceError` with the Gateway's per-peer details.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import grpc
from fabric_protos.gateway import gateway_pb2, gateway_pb2_grpc
from google.rpc import status_pb2

from ledger_client.config import LedgerConfig
from ledger_client.consortium import Consortium
from ledger_client.errors import ConfigurationError
from ledger_client.service import ErrorDetail, GatewayServiceError

T = TypeVar("T")

# How long a refusal from a lagging remote endorser is retried (a block is cut every 100 ms).
LAGGING_PEER_RETRY_S = 3.0
# Right after a chaincode definition is committed, or a member's peer joined, the gateway's
# discovery may not yet know enough peers with the chaincode to satisfy the endorsement
# policy: gossip spreads that every few seconds, and the gateway refuses at once with
# FAILED_PRECONDITION "no combination of peers can be derived …" (the README's Fabric
# walkthrough failed so on a clean clone, at its first transaction after the fourth `node
# up`). Nothing was endorsed, so asking again is safe; gossip has no event a client could
# wait on, so the retry is bounded instead.
DISCOVERY_RETRY_S = 30.0
_NO_PEER_COMBINATION = "no combination of peers can be derived"
# How long a commit is waited for on the other organizations' peers.
OTHER_PEERS_WAIT_S = 2.0
# A ledger record (a model, a round's updates) stays far below this; Fabric's own default.
MAX_MESSAGE_BYTES = 100 * 1024 * 1024


class FabricGatewayService:
    """A connection to one peer's Gateway service (the client's own organization's peer)."""

    def __init__(
        self,
        endpoint: str,
        tls_root_cert: bytes,
        *,
        org: str = "",
        other_peers: Mapping[str, tuple[str, bytes]] | None = None,
        server_name: str = "",
    ) -> None:
        self.endpoint = endpoint
        self.org = org
        self._channel, self._stub = _connect(endpoint, tls_root_cert, server_name)
        # The other organizations' peers, asked for the same commit status after ours: see
        # commit_status.
        self._others = {
            name: _connect(address, cert, "")
            for name, (address, cert) in (other_peers or {}).items()
        }

    @classmethod
    def from_config(cls, config: LedgerConfig, org: str | None) -> FabricGatewayService:
        """Connect to ``org``'s peer (or the first configured one), trusting its TLS CA."""
        if not config.fabric_peers:
            raise ConfigurationError(
                "the fabric ledger needs peer endpoints: start a network with "
                "`fedspec network up` or set FEDSPEC_FABRIC_PEERS=org1=host:port,…"
            )
        name = org if org in config.fabric_peers else next(iter(config.fabric_peers))
        consortium = Consortium.load(config.consortium_dir)
        peers = {
            o: (address, consortium.tls_ca_cert(consortium.org(o)))
            for o, address in config.fabric_peers.items()
        }
        own = peers.pop(name)
        return cls(own[0], own[1], org=name, other_peers=peers)

    # ------------------------------------------------------------------ the five calls
    def evaluate(
        self, request: gateway_pb2.EvaluateRequest, timeout: float
    ) -> gateway_pb2.EvaluateResponse:
        return self._call(self._stub.Evaluate, request, timeout)

    def endorse(
        self, request: gateway_pb2.EndorseRequest, timeout: float
    ) -> gateway_pb2.EndorseResponse:
        # Our own peer has committed our last transaction (its commit status said so), but
        # another organization's peer may still be a block behind and refuse a call that
        # builds on it. A refusal that comes only from other organizations' peers is
        # retried briefly; one from our own peer is the chaincode's real answer.
        started = time.monotonic()
        deadline = started + min(LAGGING_PEER_RETRY_S, timeout)
        while True:
            try:
                return self._call(self._stub.Endorse, request, timeout)
            except GatewayServiceError as exc:
                if _NO_PEER_COMBINATION in exc.message and not exc.details:
                    if time.monotonic() - started > min(DISCOVERY_RETRY_S, timeout):
                        raise
                    time.sleep(0.25)
                    continue
                remote_only = bool(self.org and exc.details) and all(
                    d.msp_id and d.msp_id != self.org for d in exc.details
                )
                if not remote_only or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def submit(
        self, request: gateway_pb2.SubmitRequest, timeout: float
    ) -> gateway_pb2.SubmitResponse:
        return self._call(self._stub.Submit, request, timeout)

    def commit_status(
        self, request: gateway_pb2.SignedCommitStatusRequest, timeout: float
    ) -> gateway_pb2.CommitStatusResponse:
        status = self._call(self._stub.CommitStatus, request, timeout)
        # Committed on our peer is not yet committed on the others: a client of another
        # organization acting next through its own peer could miss it. The same signed
        # request asks every other reachable peer; we return once they have the block too
        # (milliseconds: they commit the same block), which gives the embedded ledger's
        # "committed means visible to everyone". An unreachable peer is not waited for.
        if self._others:
            futures = [
                stub.CommitStatus.future(request, timeout=OTHER_PEERS_WAIT_S)
                for _, stub in self._others.values()
            ]
            for future in futures:
                with contextlib.suppress(grpc.RpcError):  # a peer that is down catches up later
                    future.result()
        return status

    def chaincode_events(
        self, request: gateway_pb2.SignedChaincodeEventsRequest, timeout: float | None
    ) -> Iterator[gateway_pb2.ChaincodeEventsResponse]:
        opened = time.monotonic()
        stream = self._stub.ChaincodeEvents(request, timeout=timeout)
        try:
            yield from stream
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return  # the caller's window ended: the stream is over, not failed
            # The peer may see the same deadline first and reset the stream (RST_STREAM,
            # CANCELLED "Stream removed"): past the window, that is its end too.
            if (
                exc.code() == grpc.StatusCode.CANCELLED
                and timeout is not None
                and time.monotonic() - opened >= timeout
            ):
                return
            raise _translate(exc, self.endpoint) from exc
        finally:
            stream.cancel()

    def close(self) -> None:
        self._channel.close()
        for channel, _ in self._others.values():
            channel.close()

    def _call(self, method: Callable[..., T], request: object, timeout: float) -> T:
        try:
            return method(request, timeout=timeout)
        except grpc.RpcError as exc:
            raise _translate(exc, self.endpoint) from exc


def _connect(endpoint: str, tls_root_cert: bytes, server_name: str) -> tuple[grpc.Channel, Any]:
    options: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        # Keepalive as fabric-gateway's samples set it: a dead peer is noticed in seconds.
        ("grpc.keepalive_time_ms", 120_000),
    ]
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    credentials = grpc.ssl_channel_credentials(root_certificates=tls_root_cert)
    channel = grpc.secure_channel(endpoint, credentials, options=options)
    return channel, gateway_pb2_grpc.GatewayStub(channel)


def _translate(exc: grpc.RpcError, endpoint: str) -> GatewayServiceError:
    """A gRPC status as the embedded peer reports it: a stable code, a message, peer details."""
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    message = exc.details() if isinstance(exc, grpc.Call) else str(exc)
    details: list[ErrorDetail] = []
    trailers = exc.trailing_metadata() if isinstance(exc, grpc.Call) else None
    for key, value in trailers or ():
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        status = status_pb2.Status.FromString(value)
        for packed in status.details:
            detail = gateway_pb2.ErrorDetail()
            if packed.Unpack(detail):
                details.append(ErrorDetail(detail.address, detail.msp_id, detail.message))
    if code == grpc.StatusCode.UNAVAILABLE and not details:
        # The peer itself cannot be reached: say which, and where to look.
        message = (
            f"the Fabric peer at {endpoint} is unreachable ({(message or '').split(';')[0]}); "
            "is the network up? see `fedspec network status` or FEDSPEC_FABRIC_PEERS"
        )
    return GatewayServiceError(code.name, message or code.name, details)
