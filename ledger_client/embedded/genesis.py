"""Creating an embedded ledger: its genesis block holds the channel configuration.

The configuration (member organizations' root CAs, the orderer's, the endorsement policy) is
signed by the orderer and is the ledger's root of trust: everything later is checked
against it, and ``ledger verify`` starts from it.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from ledger_client.consortium import Consortium
from ledger_client.embedded.blocks import build_block
from ledger_client.embedded.channel import ChannelConfig
from ledger_client.embedded.commitment import genesis_commitment
from ledger_client.embedded.reconfig import config_envelope
from ledger_client.embedded.store import FORMAT, SCHEMA
from ledger_client.errors import LedgerFileError
from ledger_client.identity import MspIdentity


def channel_config(
    consortium: Consortium, *, channel: str, chaincode: str, policy: str | None = None
) -> ChannelConfig:
    """The channel a consortium folder founds. A folder that holds every organization's keys
    (one host) orders with the ordering organization's orderer under ``MAJORITY``; a member's
    home holds only its own, so its members order the shared file themselves, each
    transaction endorsed by its creator's organization (``ANY``): what one member alone can
    sign. ``ledger verify`` re-executes every transaction either way (see docs/consortium.md
    for what each protects against)."""
    one_host = set(consortium.own) >= {*consortium.member_ids, consortium.orderer_org.name}
    chosen = policy or ("MAJORITY" if one_host else "ANY")
    if chosen not in ("MAJORITY", "ANY", "ALL"):
        raise LedgerFileError(f"unknown endorsement policy {chosen!r}", code="CONFIG_INVALID")
    if not one_host and chosen != "ANY" and len(consortium.member_ids) > 1:
        raise LedgerFileError(
            f"policy {chosen} needs several organizations' peers to endorse each transaction, "
            f"and this home holds only {', '.join(consortium.own) or 'no organization'}'s keys: "
            "an embedded ledger shared by independent members uses ANY (or run Fabric)",
            code="CONFIG_INVALID",
        )
    return ChannelConfig(
        channel=channel,
        chaincode=chaincode,
        organizations={o.msp_id: [consortium.ca_cert(o).decode()] for o in consortium.members},
        orderer_msp=consortium.orderer_org.msp_id,
        orderer_roots=[consortium.ca_cert(consortium.orderer_org).decode()],
        policy=chosen,
        ordering="orderer" if one_host else "members",
    )


def block_signer(consortium: Consortium, config: ChannelConfig) -> MspIdentity:
    """The identity this home signs blocks with: the orderer, or its own member's peer."""
    if config.ordering == "orderer":
        org = consortium.orderer_org
        return consortium.identity(f"{org.name}/{org.orderers[0]}")
    own = [o for o in consortium.members if o.name in consortium.own]
    if not own:
        raise LedgerFileError(
            f"{consortium.root} holds no member's keys: only a member appends to this ledger",
            code="CONFIG_INVALID",
        )
    return consortium.identity(f"{own[0].name}/{own[0].peers[0]}")


def create_ledger(
    path: Path | str,
    consortium: Consortium,
    *,
    channel: str = "fedspec",
    chaincode: str = "fedspec",
    policy: str | None = None,
    force: bool = False,
) -> Path:
    """Write a new ledger holding only its genesis block; refuse to replace one unless ``force``."""
    path = Path(path).absolute()
    if path.exists() and not force:
        raise LedgerFileError(
            f"{path} already exists; pass --force to replace it", code="ALREADY_EXISTS"
        )
    config = channel_config(consortium, channel=channel, chaincode=chaincode, policy=policy)
    orderer = block_signer(consortium, config)
    envelope, tx_id, seconds = config_envelope(config, orderer)
    commitment = genesis_commitment()
    block = build_block(0, b"", [envelope], [0], orderer, commitment)

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
                    tx_id,
                    orderer.id,
                    seconds,
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
