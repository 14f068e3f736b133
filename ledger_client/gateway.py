"""The Fabric Gateway client shape: connect → network → contract → evaluate / submit.

Identity and signer are separate from the connection; every call has its own deadline;
``evaluate`` and ``submit`` are built from finer steps (proposal → endorse → submit → commit
status) that a caller can run and retry one by one; every failure is typed by its phase.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from fabric_protos.gateway import gateway_pb2
from fabric_protos.orderer import ab_pb2
from fabric_protos.peer import proposal_pb2

from chaincode.errors import parse_wire_error
from fedspec.fileio import write_atomic
from ledger_client import protocol
from ledger_client.errors import (
    CommitError,
    CommitStatusError,
    EndorseError,
    GatewayError,
    SubmitError,
)
from ledger_client.identity import Identity, Signer, sha256
from ledger_client.service import GatewayService, GatewayServiceError

Hash = Callable[[bytes], bytes]


@dataclass(frozen=True)
class Timeouts:
    evaluate: float = 30.0
    endorse: float = 30.0
    submit: float = 30.0
    commit_status: float = 120.0


def connect(
    client: GatewayService,
    identity: Identity,
    signer: Signer,
    *,
    hash: Hash = sha256,
    timeouts: Timeouts | None = None,
) -> Gateway:
    """Open a gateway over ``client`` (an embedded ledger or a Fabric peer connection)."""
    return Gateway(client, identity, signer, hash, timeouts or Timeouts())


class Gateway:
    def __init__(
        self,
        client: GatewayService,
        identity: Identity,
        signer: Signer,
        hash: Hash,
        timeouts: Timeouts,
    ) -> None:
        self.client = client
        self.identity = identity
        self._signer = signer
        self._hash = hash
        self.timeouts = timeouts

    def sign(self, message: bytes) -> bytes:
        return self._signer(self._hash(message))

    def get_network(self, channel: str) -> Network:
        return Network(self, channel)

    def close(self) -> None:
        """Release the gateway; the connection belongs to its caller, who closes it."""

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Network:
    def __init__(self, gateway: Gateway, channel: str) -> None:
        self.gateway = gateway
        self.name = channel

    def get_contract(self, chaincode: str) -> Contract:
        return Contract(self, chaincode)

    def get_chaincode_events(
        self,
        chaincode: str,
        *,
        start_block: int | None = None,
        checkpoint: Checkpoint | None = None,
        timeout: float | None = None,
    ) -> Iterator[ChaincodeEvent]:
        """Events of committed, valid transactions, from ``start_block`` or after ``checkpoint``.

        The iterator follows new blocks until ``timeout`` seconds pass without one (forever
        when ``None``). Passing a checkpoint resumes exactly after the last event it saw.
        """
        for block in self.get_chaincode_event_blocks(
            chaincode, start_block=start_block, checkpoint=checkpoint, timeout=timeout
        ):
            for event in block:
                if checkpoint is not None:
                    checkpoint.checkpoint_event(event)
                yield event

    def get_chaincode_event_blocks(
        self,
        chaincode: str,
        *,
        start_block: int | None = None,
        checkpoint: Checkpoint | None = None,
        timeout: float | None = None,
    ) -> Iterator[list[ChaincodeEvent]]:
        """As :meth:`get_chaincode_events`, one block's events at a time (never an empty
        list), for a follower that acts once per block rather than once per event.
        ``checkpoint`` only says where to resume: the caller moves it on as it handles each
        event."""
        request = gateway_pb2.ChaincodeEventsRequest(
            channel_id=self.name, chaincode_id=chaincode, identity=self.gateway.identity.serialize()
        )
        if checkpoint is not None and checkpoint.block_number is not None:
            request.start_position.CopyFrom(
                ab_pb2.SeekPosition(specified=ab_pb2.SeekSpecified(number=checkpoint.block_number))
            )
            request.after_transaction_id = checkpoint.transaction_id or ""
        elif start_block is not None:
            request.start_position.CopyFrom(
                ab_pb2.SeekPosition(specified=ab_pb2.SeekSpecified(number=start_block))
            )
        else:
            request.start_position.CopyFrom(
                ab_pb2.SeekPosition(next_commit=ab_pb2.SeekNextCommit())
            )
        raw = request.SerializeToString()
        signed = gateway_pb2.SignedChaincodeEventsRequest(
            request=raw, signature=self.gateway.sign(raw)
        )
        try:
            for response in self.gateway.client.chaincode_events(signed, timeout):
                block = [
                    ChaincodeEvent(
                        block_number=response.block_number,
                        transaction_id=ev.tx_id,
                        chaincode=ev.chaincode_id,
                        name=ev.event_name,
                        payload=bytes(ev.payload),
                    )
                    for ev in response.events
                ]
                if block:
                    yield block
        except GatewayServiceError as exc:
            raise GatewayError(f"chaincode events: {exc.message}", code=exc.code) from exc


class Contract:
    def __init__(self, network: Network, chaincode: str) -> None:
        self.network = network
        self.chaincode = chaincode

    @property
    def gateway(self) -> Gateway:
        return self.network.gateway

    def new_proposal(
        self,
        name: str,
        arguments: Sequence[str | bytes] = (),
        transient: dict[str, bytes] | None = None,
    ) -> Proposal:
        args = [a.encode() if isinstance(a, str) else bytes(a) for a in arguments]
        built = protocol.build_proposal(
            self.gateway.identity,
            self.network.name,
            self.chaincode,
            name,
            args,
            transient=transient,
        )
        return Proposal(self, name, built)

    def evaluate_transaction(self, name: str, *args: str | bytes) -> bytes:
        return self.new_proposal(name, args).evaluate()

    def submit_transaction(self, name: str, *args: str | bytes) -> bytes:
        submitted = self.submit_async(name, *args)
        submitted.get_status().raise_for_failure()
        return submitted.result

    def submit_async(self, name: str, *args: str | bytes) -> SubmittedTransaction:
        return self.new_proposal(name, args).endorse().submit()


class Proposal:
    def __init__(self, contract: Contract, name: str, built: protocol.BuiltProposal) -> None:
        self.contract = contract
        self.name = name
        self.transaction_id = built.transaction_id
        self.bytes = built.proposal_bytes
        self._signed = proposal_pb2.SignedProposal(
            proposal_bytes=built.proposal_bytes,
            signature=contract.gateway.sign(built.proposal_bytes),
        )

    def evaluate(self) -> bytes:
        gw = self.contract.gateway
        request = gateway_pb2.EvaluateRequest(
            transaction_id=self.transaction_id,
            channel_id=self.contract.network.name,
            proposed_transaction=self._signed,
        )
        try:
            response = gw.client.evaluate(request, gw.timeouts.evaluate)
        except GatewayServiceError as exc:
            raise _endorse_error(exc, self.transaction_id, self.name) from exc
        if response.result.status >= 400:
            raise _response_error(response.result, self.transaction_id, self.name)
        return bytes(response.result.payload)

    def endorse(self) -> Transaction:
        gw = self.contract.gateway
        request = gateway_pb2.EndorseRequest(
            transaction_id=self.transaction_id,
            channel_id=self.contract.network.name,
            proposed_transaction=self._signed,
        )
        try:
            response = gw.client.endorse(request, gw.timeouts.endorse)
        except GatewayServiceError as exc:
            raise _endorse_error(exc, self.transaction_id, self.name) from exc
        return Transaction(self, response.prepared_transaction)


class Transaction:
    """An endorsed transaction, ready to sign and submit."""

    def __init__(self, proposal: Proposal, envelope: object) -> None:
        self.proposal = proposal
        self.transaction_id = proposal.transaction_id
        self._envelope = envelope
        parsed = protocol.parse_transaction(envelope.SerializeToString())  # type: ignore[attr-defined]
        self.result: bytes = bytes(parsed.response.payload)
        self.bytes = parsed.payload_bytes

    def submit(self) -> SubmittedTransaction:
        contract = self.proposal.contract
        gw = contract.gateway
        self._envelope.signature = gw.sign(self._envelope.payload)  # type: ignore[attr-defined]
        request = gateway_pb2.SubmitRequest(
            transaction_id=self.transaction_id,
            channel_id=contract.network.name,
            prepared_transaction=self._envelope,
        )
        try:
            gw.client.submit(request, gw.timeouts.submit)
        except GatewayServiceError as exc:
            raise SubmitError(
                f"{self.proposal.name}: {exc.message}",
                transaction_id=self.transaction_id,
                code=exc.code,
            ) from exc
        return SubmittedTransaction(self)


@dataclass(frozen=True)
class Status:
    transaction_id: str
    code: int
    block_number: int
    function: str

    @property
    def successful(self) -> bool:
        return self.code == protocol.VALID

    @property
    def code_name(self) -> str:
        return protocol.code_name(self.code)

    def raise_for_failure(self) -> None:
        if not self.successful:
            raise CommitError(
                f"{self.function} ({self.transaction_id[:12]}…) committed as invalid: {self.code_name} "
                f"in block {self.block_number}",
                transaction_id=self.transaction_id,
                code=self.code_name,
                block_number=self.block_number,
            )


class SubmittedTransaction:
    def __init__(self, transaction: Transaction) -> None:
        self.transaction_id = transaction.transaction_id
        self.result = transaction.result
        self._contract = transaction.proposal.contract
        self._function = transaction.proposal.name

    def get_status(self, timeout: float | None = None) -> Status:
        gw = self._contract.gateway
        raw = gateway_pb2.CommitStatusRequest(
            transaction_id=self.transaction_id,
            channel_id=self._contract.network.name,
            identity=gw.identity.serialize(),
        ).SerializeToString()
        signed = gateway_pb2.SignedCommitStatusRequest(request=raw, signature=gw.sign(raw))
        try:
            response = gw.client.commit_status(
                signed, timeout if timeout is not None else gw.timeouts.commit_status
            )
        except GatewayServiceError as exc:
            raise CommitStatusError(
                f"{self._function}: {exc.message}",
                transaction_id=self.transaction_id,
                code=exc.code,
            ) from exc
        return Status(
            self.transaction_id, int(response.result), int(response.block_number), self._function
        )


@dataclass(frozen=True)
class ChaincodeEvent:
    block_number: int
    transaction_id: str
    chaincode: str
    name: str
    payload: bytes

    def json(self) -> object:
        return json.loads(self.payload) if self.payload else None


class Checkpoint:
    """Remembers the last event seen, so a listener resumes where it stopped (in memory)."""

    def __init__(self) -> None:
        self.block_number: int | None = None
        self.transaction_id: str | None = None

    def checkpoint_event(self, event: ChaincodeEvent) -> None:
        self.block_number = event.block_number
        self.transaction_id = event.transaction_id


class FileCheckpoint(Checkpoint):
    """A :class:`Checkpoint` persisted to a small JSON file after every event."""

    def __init__(self, path: Path | str) -> None:
        super().__init__()
        self.path = Path(path)
        if self.path.exists():
            data = json.loads(self.path.read_text())
            self.block_number = data.get("block_number")
            self.transaction_id = data.get("transaction_id")

    def checkpoint_event(self, event: ChaincodeEvent) -> None:
        super().checkpoint_event(event)
        write_atomic(
            self.path,
            json.dumps({"block_number": self.block_number, "transaction_id": self.transaction_id}),
        )


def _endorse_error(exc: GatewayServiceError, tx_id: str, name: str) -> EndorseError:
    typed = parse_wire_error(exc.message) or next(
        (e for e in (parse_wire_error(d.message) for d in exc.details) if e is not None), None
    )
    if typed is not None:
        return EndorseError(
            f"{name}: {typed.message}", transaction_id=tx_id, code=typed.code, **typed.details
        )
    # Fabric's Gateway says "see attached details": the per-peer reasons belong in the message.
    peers = "; ".join(f"{d.msp_id or d.address}: {d.message}" for d in exc.details)
    return EndorseError(
        f"{name}: {exc.message}" + (f" ({peers})" if peers else ""),
        transaction_id=tx_id,
        code=exc.code,
    )


def _response_error(response: object, tx_id: str, name: str) -> EndorseError:
    message = str(getattr(response, "message", ""))
    typed = parse_wire_error(message)
    if typed is not None:
        return EndorseError(
            f"{name}: {typed.message}", transaction_id=tx_id, code=typed.code, **typed.details
        )
    return EndorseError(f"{name}: {message}", transaction_id=tx_id, code="CHAINCODE_ERROR")
