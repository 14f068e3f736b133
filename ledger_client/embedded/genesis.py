"""Creating an embedded ledger: its genesis block holds the channel configuration.

The configuration (member organizations' root CAs, the orderer's, the endorsement policy) is
signed by the orderer and is the ledger's root of trust: everything later is checked
against it, and ``ledger verify`` starts from it.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from pathlib import Path

from fabric_protos.common import common_pb2
from google.protobuf import timestamp_pb2

from ledger_client.consortium import Consortium
from ledger_client.embedded.blocks import build_block
from ledger_client.embedded.channel import ChannelConfig
from ledger_client.embedded.commitment import genesis_commitment
from ledger_client.embedded.store import FORMAT, SCHEMA
from ledger_client.errors import LedgerFileError


def channel_config(
    consortium: Consortium, *, channel: str, chaincode: str, policy: str = "MAJORITY"
) -> ChannelConfig:
    return ChannelConfig(
        channel=channel,
        chaincode=chaincode,
        organizations={o.msp_id: [consortium.ca_cert(o).decode()] for o in consortium.members},
        orderer_msp=consortium.orderer_org.msp_id,
        orderer_roots=[consortium.ca_cert(consortium.orderer_org).decode()],
        policy=policy,
    )


def create_ledger(
    path: Path | str,
    consortium: Consortium,
    *,
    channel: str = "fedspec",
    chaincode: str = "fedspec",
    policy: str = "MAJORITY",
    force: bool = False,
) -> Path:
    """Write a new ledger holding only its genesis block; refuse to replace one unless ``force``."""
    path = Path(path).absolute()
    if path.exists() and not force:
        raise LedgerFileError(
            f"{path} already exists; pass --force to replace it", code="ALREADY_EXISTS"
        )
    if policy not in ("MAJORITY", "ANY", "ALL"):
        raise LedgerFileError(f"unknown endorsement policy {policy!r}", code="CONFIG_INVALID")
    config = channel_config(consortium, channel=channel, chaincode=chaincode, policy=policy)
    orderer_org = consortium.orderer_org
    orderer = consortium.identity(f"{orderer_org.name}/{orderer_org.orderers[0]}")
    data = config.to_json()
    ts = timestamp_pb2.Timestamp(seconds=int(time.time()))
    header = common_pb2.Header(
        channel_header=common_pb2.ChannelHeader(
            type=common_pb2.CONFIG,
            channel_id=channel,
            tx_id=hashlib.sha256(data).hexdigest(),
            timestamp=ts,
        ).SerializeToString(),
        signature_header=common_pb2.SignatureHeader(
            creator=orderer.identity.serialize(), nonce=os.urandom(24)
        ).SerializeToString(),
    )
    payload = common_pb2.Payload(header=header, data=data).SerializeToString()
    envelope = common_pb2.Envelope(
        payload=payload, signature=orderer.signer(hashlib.sha256(payload).digest())
    )
    commitment = genesis_commitment()
    block = build_block(0, b"", [envelope.SerializeToString()], [0], orderer, commitment)

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.executescript(SCHEMA)
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [
                    ("format", FORMAT.encode()),
                    ("channel", channel.encode()),
                    ("state_hash", commitment.state_hash),
                ],
            )
            conn.execute(
                "INSERT INTO blocks (number, header_hash, tx_count, block) VALUES (0, ?, 1, ?)",
                (block.header_hash, block.block_bytes),
            )
            conn.execute(
                "INSERT INTO txs (tx_id, block, idx, code, function, creator, timestamp) VALUES (?, 0, 0, 0, 'config', ?, ?)",
                (
                    hashlib.sha256(data).hexdigest(),
                    f"{orderer_org.msp_id}/{orderer.name}",
                    ts.seconds,
                ),
            )
            conn.execute("COMMIT")
        finally:
            conn.close()
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
