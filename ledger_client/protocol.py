"""Fabric's transaction messages, built and read exactly as a Fabric peer expects them.

The client builds proposals here; the embedded peer reads and endorses them with the same
helpers, so both backends exchange byte-identical structures (see FABRIC.md in the project
docs for the message tree).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

from fabric_protos.common import common_pb2
from fabric_protos.msp import identities_pb2
from fabric_protos.peer import (
    chaincode_event_pb2,
    chaincode_pb2,
    proposal_pb2,
    proposal_response_pb2,
    transaction_pb2,
)
from google.protobuf import timestamp_pb2

from ledger_client.identity import Identity

NONCE_BYTES = 24
VALIDATION_CODES: dict[int, str] = {
    v.number: v.name for v in transaction_pb2.TxValidationCode.DESCRIPTOR.values
}
VALID = 0


def transaction_id(nonce: bytes, creator: bytes) -> str:
    """Fabric's rule: the id is the hash of nonce and creator, so a peer can recompute it."""
    return hashlib.sha256(nonce + creator).hexdigest()


def code_name(code: int) -> str:
    return VALIDATION_CODES.get(code, f"CODE_{code}")


@dataclass(frozen=True)
class BuiltProposal:
    transaction_id: str
    proposal_bytes: bytes
    channel_id: str


def build_proposal(
    identity: Identity,
    channel_id: str,
    chaincode: str,
    function: str,
    args: Sequence[bytes],
    *,
    transient: dict[str, bytes] | None = None,
    timestamp: float | None = None,
    nonce: bytes | None = None,
) -> BuiltProposal:
    creator = identity.serialize()
    nonce = nonce if nonce is not None else os.urandom(NONCE_BYTES)
    tx_id = transaction_id(nonce, creator)
    ts = timestamp_pb2.Timestamp()
    now = time.time() if timestamp is None else timestamp
    ts.seconds = int(now)
    ts.nanos = int((now - int(now)) * 1e9)
    extension = proposal_pb2.ChaincodeHeaderExtension(
        chaincode_id=chaincode_pb2.ChaincodeID(name=chaincode)
    )
    channel_header = common_pb2.ChannelHeader(
        type=common_pb2.ENDORSER_TRANSACTION,
        channel_id=channel_id,
        tx_id=tx_id,
        timestamp=ts,
        extension=extension.SerializeToString(),
    )
    signature_header = common_pb2.SignatureHeader(creator=creator, nonce=nonce)
    header = common_pb2.Header(
        channel_header=channel_header.SerializeToString(),
        signature_header=signature_header.SerializeToString(),
    )
    spec = chaincode_pb2.ChaincodeInvocationSpec(
        chaincode_spec=chaincode_pb2.ChaincodeSpec(
            chaincode_id=chaincode_pb2.ChaincodeID(name=chaincode),
            input=chaincode_pb2.ChaincodeInput(args=[function.encode(), *args]),
        )
    )
    payload = proposal_pb2.ChaincodeProposalPayload(
        input=spec.SerializeToString(), TransientMap=transient or {}
    )
    proposal = proposal_pb2.Proposal(
        header=header.SerializeToString(), payload=payload.SerializeToString()
    )
    return BuiltProposal(tx_id, proposal.SerializeToString(), channel_id)


@dataclass(frozen=True)
class ParsedProposal:
    """What a peer needs from a signed proposal, decoded once."""

    proposal_bytes: bytes
    channel_header_bytes: bytes
    signature_header_bytes: bytes
    payload_bytes: bytes
    channel_id: str
    tx_id: str
    header_type: int
    timestamp: timestamp_pb2.Timestamp
    creator: bytes
    msp_id: str
    cert_pem: bytes
    nonce: bytes
    chaincode: str
    function: str
    args: tuple[bytes, ...]

    def proposal_hash(self) -> bytes:
        """Fabric's GetProposalHash1: headers plus the payload without its transient map."""
        payload = proposal_pb2.ChaincodeProposalPayload.FromString(self.payload_bytes)
        payload.ClearField("TransientMap")
        return hashlib.sha256(
            self.channel_header_bytes + self.signature_header_bytes + payload.SerializeToString()
        ).digest()

    def visible_payload(self) -> bytes:
        payload = proposal_pb2.ChaincodeProposalPayload.FromString(self.payload_bytes)
        payload.ClearField("TransientMap")
        return bytes(payload.SerializeToString())


def parse_proposal(proposal_bytes: bytes) -> ParsedProposal:
    """Decode a proposal; raises ``ValueError`` with a readable reason if it is malformed."""
    try:
        proposal = proposal_pb2.Proposal.FromString(proposal_bytes)
        header = common_pb2.Header.FromString(proposal.header)
        ch = common_pb2.ChannelHeader.FromString(header.channel_header)
        sh = common_pb2.SignatureHeader.FromString(header.signature_header)
        ident = identities_pb2.SerializedIdentity.FromString(sh.creator)
        ext = proposal_pb2.ChaincodeHeaderExtension.FromString(ch.extension)
        payload = proposal_pb2.ChaincodeProposalPayload.FromString(proposal.payload)
        spec = chaincode_pb2.ChaincodeInvocationSpec.FromString(payload.input)
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise ValueError(f"malformed proposal: {exc}") from exc
    args = tuple(bytes(a) for a in spec.chaincode_spec.input.args)
    if not args:
        raise ValueError("the proposal names no function")
    try:
        function = args[0].decode()
    except UnicodeDecodeError as exc:
        raise ValueError("the function name is not UTF-8") from exc
    return ParsedProposal(
        proposal_bytes=proposal_bytes,
        channel_header_bytes=bytes(header.channel_header),
        signature_header_bytes=bytes(header.signature_header),
        payload_bytes=bytes(proposal.payload),
        channel_id=ch.channel_id,
        tx_id=ch.tx_id,
        header_type=ch.type,
        timestamp=ch.timestamp,
        creator=bytes(sh.creator),
        msp_id=ident.mspid,
        cert_pem=bytes(ident.id_bytes),
        nonce=bytes(sh.nonce),
        chaincode=ext.chaincode_id.name,
        function=function,
        args=args[1:],
    )


def build_envelope_payload(
    proposal: ParsedProposal,
    response_payload: bytes,
    endorsements: Sequence[proposal_response_pb2.Endorsement],
) -> bytes:
    """The transaction a client signs after endorsement (Fabric's protoutil.CreateTx)."""
    action = transaction_pb2.ChaincodeActionPayload(
        chaincode_proposal_payload=proposal.visible_payload(),
        action=transaction_pb2.ChaincodeEndorsedAction(
            proposal_response_payload=response_payload, endorsements=list(endorsements)
        ),
    )
    tx = transaction_pb2.Transaction(
        actions=[
            transaction_pb2.TransactionAction(
                header=proposal.signature_header_bytes, payload=action.SerializeToString()
            )
        ]
    )
    header = common_pb2.Header(
        channel_header=proposal.channel_header_bytes,
        signature_header=proposal.signature_header_bytes,
    )
    return bytes(common_pb2.Payload(header=header, data=tx.SerializeToString()).SerializeToString())


@dataclass(frozen=True)
class ParsedTransaction:
    """An endorsed transaction as it sits in a block."""

    tx_id: str
    channel_id: str
    timestamp: int
    creator: bytes
    msp_id: str
    cert_pem: bytes
    nonce: bytes
    payload_bytes: bytes
    signature: bytes
    channel_header_bytes: bytes
    signature_header_bytes: bytes
    chaincode_proposal_payload: bytes
    response_payload: bytes
    endorsements: tuple[proposal_response_pb2.Endorsement, ...]
    function: str
    args: tuple[bytes, ...]
    results: bytes
    event: chaincode_event_pb2.ChaincodeEvent | None
    response: proposal_response_pb2.Response


def parse_transaction(envelope_bytes: bytes) -> ParsedTransaction:
    """Decode an endorser transaction envelope; ``ValueError`` if it is not one."""
    try:
        env = common_pb2.Envelope.FromString(envelope_bytes)
        payload = common_pb2.Payload.FromString(env.payload)
        ch = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
        sh = common_pb2.SignatureHeader.FromString(payload.header.signature_header)
        ident = identities_pb2.SerializedIdentity.FromString(sh.creator)
        if ch.type != common_pb2.ENDORSER_TRANSACTION:
            raise ValueError(f"header type {ch.type} is not an endorser transaction")
        tx = transaction_pb2.Transaction.FromString(payload.data)
        if len(tx.actions) != 1:
            raise ValueError("a transaction carries exactly one action")
        cap = transaction_pb2.ChaincodeActionPayload.FromString(tx.actions[0].payload)
        prp = proposal_response_pb2.ProposalResponsePayload.FromString(
            cap.action.proposal_response_payload
        )
        cc_action = proposal_pb2.ChaincodeAction.FromString(prp.extension)
        ccpp = proposal_pb2.ChaincodeProposalPayload.FromString(cap.chaincode_proposal_payload)
        spec = chaincode_pb2.ChaincodeInvocationSpec.FromString(ccpp.input)
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(f"malformed transaction: {exc}") from exc
    event = None
    if cc_action.events:
        event = chaincode_event_pb2.ChaincodeEvent.FromString(cc_action.events)
    args = [bytes(a) for a in spec.chaincode_spec.input.args]
    return ParsedTransaction(
        tx_id=ch.tx_id,
        channel_id=ch.channel_id,
        timestamp=int(ch.timestamp.seconds),
        creator=bytes(sh.creator),
        msp_id=ident.mspid,
        cert_pem=bytes(ident.id_bytes),
        nonce=bytes(sh.nonce),
        payload_bytes=bytes(env.payload),
        signature=bytes(env.signature),
        channel_header_bytes=bytes(payload.header.channel_header),
        signature_header_bytes=bytes(payload.header.signature_header),
        chaincode_proposal_payload=bytes(cap.chaincode_proposal_payload),
        response_payload=bytes(cap.action.proposal_response_payload),
        endorsements=tuple(cap.action.endorsements),
        function=args[0].decode("utf-8", "replace") if args else "",
        args=tuple(args[1:]),
        results=bytes(cc_action.results),
        event=event,
        response=cc_action.response,
    )


def proposal_hash_of(tx: ParsedTransaction) -> bytes:
    return hashlib.sha256(
        tx.channel_header_bytes + tx.signature_header_bytes + tx.chaincode_proposal_payload
    ).digest()


def result_of_envelope(envelope: common_pb2.Envelope) -> bytes:
    """The chaincode's response payload inside a prepared (endorsed) transaction."""
    return parse_transaction(envelope.SerializeToString()).response.payload  # type: ignore[no-any-return]
