"""Blocks in Fabric's format: hash-chained headers, orderer signatures, validation flags.

The header hash is SHA-256 over the DER encoding of (number, previous hash, data hash) and
the data hash is SHA-256 over the concatenated transactions, as Fabric computes them, so
the same verification code could check blocks fetched from a Fabric peer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from fabric_protos.common import common_pb2

from ledger_client.embedded.commitment import Commitment
from ledger_client.identity import MspIdentity


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def header_bytes(number: int, previous_hash: bytes, data_hash: bytes) -> bytes:
    """DER of SEQUENCE{INTEGER number, OCTET STRING previous, OCTET STRING data}.

    Written by hand because pyasn1 takes ~15 µs per header and `ledger verify` encodes one
    header per block; tests check the bytes against pyasn1's encoder for many inputs.
    """
    num = number.to_bytes(max(1, (number.bit_length() + 8) // 8), "big", signed=False)
    parts = (
        b"\x02" + _der_length(len(num)) + num,
        b"\x04" + _der_length(len(previous_hash)) + previous_hash,
        b"\x04" + _der_length(len(data_hash)) + data_hash,
    )
    body = b"".join(parts)
    return b"\x30" + _der_length(len(body)) + body


def header_hash(header: common_pb2.BlockHeader) -> bytes:
    return hashlib.sha256(
        header_bytes(header.number, header.previous_hash, header.data_hash)
    ).digest()


def data_hash(data: Sequence[bytes]) -> bytes:
    return hashlib.sha256(b"".join(data)).digest()


def signed_block_bytes(block: common_pb2.Block, signature_header: bytes) -> bytes:
    """What the orderer signs: metadata value ‖ signature header ‖ header bytes (Fabric v2)."""
    value = block.metadata.metadata[common_pb2.SIGNATURES]
    md = common_pb2.Metadata.FromString(value)
    h = block.header
    return bytes(md.value) + signature_header + header_bytes(h.number, h.previous_hash, h.data_hash)


def commitment_of(block: common_pb2.Block) -> Commitment:
    """The signed state commitment of a parsed block; ``ValueError`` if it has none or its
    ``COMMIT_HASH`` copy differs from the signed one."""
    try:
        metadata = block.metadata.metadata
        signed = common_pb2.Metadata.FromString(metadata[common_pb2.SIGNATURES]).value
        copy = common_pb2.Metadata.FromString(metadata[common_pb2.COMMIT_HASH]).value
    except (IndexError, ValueError) as exc:
        raise ValueError(f"the block carries no state commitment ({exc})") from exc
    except Exception as exc:  # protobuf's DecodeError
        raise ValueError(f"the block's metadata does not parse ({exc})") from exc
    if bytes(signed) != bytes(copy):
        raise ValueError("the block's COMMIT_HASH differs from the commitment the orderer signed")
    return Commitment.from_bytes(bytes(signed))


@dataclass(frozen=True)
class BuiltBlock:
    number: int
    block_bytes: bytes
    header_hash: bytes


def build_block(
    number: int,
    previous_hash: bytes,
    envelopes: Sequence[bytes],
    codes: Sequence[int],
    orderer: MspIdentity,
    commitment: Commitment,
) -> BuiltBlock:
    """A signed block. The orderer signs the state commitment with the header: it is the
    ``SIGNATURES`` metadata's value (which Fabric's signature covers) and is repeated in the
    ``COMMIT_HASH`` slot where Fabric keeps its commit hash."""
    block = common_pb2.Block()
    block.header.number = number
    block.header.previous_hash = previous_hash
    block.header.data_hash = data_hash(envelopes)
    block.data.data.extend(envelopes)
    signature_header = common_pb2.SignatureHeader(
        creator=orderer.identity.serialize(), nonce=b""
    ).SerializeToString()
    h = block.header
    value = commitment.to_bytes()
    to_sign = value + signature_header + header_bytes(h.number, h.previous_hash, h.data_hash)
    md = common_pb2.Metadata(
        value=value,
        signatures=[
            common_pb2.MetadataSignature(
                signature_header=signature_header,
                signature=orderer.signer(hashlib.sha256(to_sign).digest()),
            )
        ],
    )
    metadata = [b""] * 5
    metadata[common_pb2.SIGNATURES] = md.SerializeToString()
    metadata[common_pb2.TRANSACTIONS_FILTER] = bytes(codes)
    metadata[common_pb2.COMMIT_HASH] = common_pb2.Metadata(value=value).SerializeToString()
    block.metadata.metadata.extend(metadata)
    return BuiltBlock(number, block.SerializeToString(), header_hash(block.header))
