"""Readable views of blocks, transactions and events (for ``fedspec ledger blocks|tx|events``).

They decode Fabric's block format, so they work on blocks from either backend (read through
Fabric's ``qscc`` system chaincode).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fabric_protos.common import common_pb2
from fabric_protos.msp import identities_pb2

from chaincode.identity import parse_creator
from ledger_client.embedded.blocks import header_hash
from ledger_client.embedded.simulator import read_kvrwset
from ledger_client.protocol import code_name, parse_transaction


def readable_key(key: str) -> str:
    """``\\x00round\\x00p\\x00001\\x00`` → ``round~p~001``."""
    return "~".join(part for part in key.split("\x00") if part)


def _who(serialized: bytes) -> str:
    ident = identities_pb2.SerializedIdentity.FromString(serialized)
    try:
        return parse_creator(ident.mspid, bytes(ident.id_bytes)).id
    except Exception:
        return f"{ident.mspid}/?"


def describe_transaction(
    envelope: bytes, code: int, chaincode: str = "fedspec", *, arg_chars: int = 120
) -> dict[str, Any]:
    try:
        tx = parse_transaction(envelope)
    except ValueError:
        env = common_pb2.Envelope.FromString(envelope)
        payload = common_pb2.Payload.FromString(env.payload)
        header = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
        return {
            "tx_id": header.tx_id,
            "type": common_pb2.HeaderType.Name(header.type),
            "code": code_name(code),
        }
    kv = read_kvrwset(tx.results, chaincode)
    args = [a.decode("utf-8", "replace") for a in tx.args]
    return {
        "tx_id": tx.tx_id,
        "function": tx.function,
        "args": [a if len(a) <= arg_chars else a[:arg_chars] + "…" for a in args],
        "creator": _who(tx.creator),
        "timestamp": dt.datetime.fromtimestamp(tx.timestamp, dt.UTC).isoformat(),
        "code": code_name(code),
        "endorsers": [_who(e.endorser) for e in tx.endorsements],
        "reads": [readable_key(r.key) for r in kv.reads],
        "range_reads": [readable_key(q.start_key) + "…" for q in kv.range_queries_info],
        "writes": [readable_key(w.key) + (" (deleted)" if w.is_delete else "") for w in kv.writes],
        "event": tx.event.event_name if tx.event is not None else None,
    }


def describe_block(block: common_pb2.Block, chaincode: str = "fedspec") -> dict[str, Any]:
    flags = (
        bytes(block.metadata.metadata[common_pb2.TRANSACTIONS_FILTER])
        if len(block.metadata.metadata) > 2
        else b""
    )
    txs = [
        describe_transaction(bytes(data), flags[i] if i < len(flags) else 0, chaincode)
        for i, data in enumerate(block.data.data)
    ]
    return {
        "number": block.header.number,
        "hash": header_hash(block.header).hex(),
        "previous_hash": bytes(block.header.previous_hash).hex(),
        "data_hash": bytes(block.header.data_hash).hex(),
        "transactions": txs,
    }
