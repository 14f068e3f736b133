"""Checking the world state against the orderer-signed blocks, cheaply enough to do always.

The state table is an index: every row claims a version (block, transaction), and the
orderer-signed block at that number holds the write that produced it. :class:`BlockIndex`
keeps the valid write sets of recently used blocks (verified once: data hash, orderer
signature, signed flags) in an LRU, so the peer checks every row a simulation reads against
its write in O(1), and the committer can take the last block's signed state commitment
without re-verifying it.

``ledger verify`` (which trusts nothing) uses :func:`block_signature_problem` too.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections import OrderedDict
from typing import Any

from fabric_protos.common import common_pb2
from fabric_protos.msp import identities_pb2

from ledger_client.embedded import validation
from ledger_client.embedded.blocks import (
    commitment_of,
    data_hash,
    header_hash,
    signed_block_bytes,
)
from ledger_client.embedded.channel import Membership
from ledger_client.embedded.commitment import Commitment
from ledger_client.embedded.reconfig import is_config_block
from ledger_client.embedded.simulator import TamperedState, read_kvrwset
from ledger_client.identity import verify_signature
from ledger_client.protocol import parse_transaction

Writes = dict[str, bytes | None]


def block_signature_problem(block: common_pb2.Block, membership: Membership) -> str:
    """ "" if the block carries a valid orderer signature over its header and commitment."""
    try:
        md = common_pb2.Metadata.FromString(block.metadata.metadata[common_pb2.SIGNATURES])
        sig = md.signatures[0]
        sh = common_pb2.SignatureHeader.FromString(sig.signature_header)
        ident = identities_pb2.SerializedIdentity.FromString(sh.creator)
        member = membership.identify(ident.mspid, bytes(ident.id_bytes))
    except Exception:  # any malformed metadata, header or identity: no usable signature
        return "the block carries no valid orderer signature"
    if not membership.config.may_order(member.msp_id, member.role):
        return "the block is not signed by an identity the channel lets order"
    if not verify_signature(
        member.public_key,
        bytes(sig.signature),
        signed_block_bytes(block, bytes(sig.signature_header)),
    ):
        return "the orderer's signature on the block does not verify"
    return ""


class BlockIndex:
    """Verified blocks' commitments and valid write sets, most recently used first."""

    def __init__(self, membership: Membership, chaincode: str, *, max_txs: int = 20_000) -> None:
        self._membership = membership
        self._chaincode = chaincode
        self._max_txs = max_txs
        self._txs: OrderedDict[tuple[int, int], Writes] = OrderedDict()
        self._blocks: OrderedDict[int, tuple[bytes, Commitment]] = OrderedDict()
        self._lock = threading.Lock()

    def trust(self, membership: Membership) -> None:
        """Check block signatures against ``membership`` from now on (every organization
        the channel ever trusted, after a configuration update)."""
        with self._lock:
            self._membership = membership

    # ---------------------------------------------------------------- the checks
    def check(self, db: sqlite3.Connection, key: str, value: Any, block: Any, txn: Any) -> None:
        """Raise :class:`TamperedState` unless (value, version) is what block ``block``'s
        transaction ``txn`` wrote to ``key``."""
        if type(block) is not int or type(txn) is not int:
            raise TamperedState(
                -1, key, f"key {readable_key(key)} has a version that is not a number"
            )
        writes = self._writes(block, txn)
        if writes is None:
            writes = self._load(db, block, for_key=key).get(txn)
        if writes is None or key not in writes:
            raise TamperedState(
                block,
                key,
                f"key {readable_key(key)} claims to be written by block {block}, transaction "
                f"{txn}, which wrote no such key",
            )
        if not isinstance(value, bytes) or writes[key] != value:
            raise TamperedState(
                block,
                key,
                f"key {readable_key(key)} differs from what block {block}, transaction {txn} "
                "wrote to it",
            )

    def commitment(self, db: sqlite3.Connection, number: int, header_hash: bytes) -> Commitment:
        """The signed commitment of block ``number`` (verified, then cached)."""
        with self._lock:
            cached = self._blocks.get(number)
            if cached is not None and cached[0] == header_hash:
                self._blocks.move_to_end(number)
                return cached[1]
        self._load(db, number, for_key="")
        with self._lock:
            cached = self._blocks.get(number)
        if cached is None or cached[0] != header_hash:
            raise TamperedState(
                number, "", f"block {number}'s stored header hash differs from its header"
            )
        return cached[1]

    def remember(
        self,
        number: int,
        header_hash: bytes,
        commitment: Commitment,
        writes: dict[int, Writes],
    ) -> None:
        """Record a block this process just committed (it built and signed it itself)."""
        with self._lock:
            self._put_block(number, header_hash, commitment)
            for txn, w in writes.items():
                self._put_tx((number, txn), w)

    # ---------------------------------------------------------------- the cache
    def _writes(self, block: int, txn: int) -> Writes | None:
        with self._lock:
            writes = self._txs.get((block, txn))
            if writes is not None:
                self._txs.move_to_end((block, txn))
            return writes

    def _put_tx(self, key: tuple[int, int], writes: Writes) -> None:
        self._txs[key] = writes
        self._txs.move_to_end(key)
        while len(self._txs) > self._max_txs:
            self._txs.popitem(last=False)

    def _put_block(self, number: int, header_hash: bytes, commitment: Commitment) -> None:
        self._blocks[number] = (header_hash, commitment)
        self._blocks.move_to_end(number)
        while len(self._blocks) > 1024:
            self._blocks.popitem(last=False)

    def _load(self, db: sqlite3.Connection, number: int, *, for_key: str) -> dict[int, Writes]:
        row = db.execute("SELECT block FROM blocks WHERE number = ?", (number,)).fetchone()
        if row is None or number < 0:
            raise TamperedState(
                number,
                for_key,
                (
                    f"key {readable_key(for_key)} claims to be written by block {number}, "
                    if for_key
                    else f"block {number} is needed, "
                )
                + "which is not in the ledger",
            )
        try:
            block = common_pb2.Block.FromString(bytes(row[0]))
            problem = _block_problem(block, number, self._membership)
            commitment = commitment_of(block) if not problem else None
        except Exception as exc:  # a truncated or edited block
            problem, commitment = f"does not parse ({type(exc).__name__})", None
        if problem or commitment is None:
            raise TamperedState(number, for_key, f"block {number} {problem}")
        flags = bytes(block.metadata.metadata[common_pb2.TRANSACTIONS_FILTER])
        if hashlib.sha256(flags).digest() != commitment.flags_hash:
            raise TamperedState(
                number, for_key, f"block {number}'s validation flags differ from the signed ones"
            )
        by_txn: dict[int, Writes] = {}
        if number > 0 and not is_config_block(block):  # a configuration block writes nothing
            for idx, env in enumerate(block.data.data):
                if idx >= len(flags) or flags[idx] != validation.VALID:
                    continue
                try:
                    tx = parse_transaction(bytes(env))
                    kv = read_kvrwset(tx.results, self._chaincode)
                except Exception as exc:  # signed, yet unreadable: still never trusted
                    raise TamperedState(
                        number, for_key, f"block {number}, transaction {idx} does not parse"
                    ) from exc
                by_txn[idx] = {w.key: (None if w.is_delete else bytes(w.value)) for w in kv.writes}
        with self._lock:
            self._put_block(number, header_hash(block.header), commitment)
            for txn, w in by_txn.items():
                self._put_tx((number, txn), w)
        return by_txn


def _block_problem(block: common_pb2.Block, number: int, membership: Membership) -> str:
    if block.header.number != number:
        return f"holds block {block.header.number}"
    if bytes(block.header.data_hash) != data_hash(block.data.data):
        return "does not match its data hash"
    signature = block_signature_problem(block, membership)
    return f"is not the orderer's: {signature}" if signature else ""


def readable_key(key: str) -> str:
    """A composite state key as people write it (``budget~org1/node0~digits``)."""
    return "~".join(p for p in key.split("\x00") if p)
