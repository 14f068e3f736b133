"""Commit-time validation, shared by the committer and by ``ledger verify``'s replay.

A transaction is valid when its creator's signature and identity check out, its
endorsements satisfy the channel's policy over the same response payload, and everything it
read (keys and ranges) is still at the version it read (MVCC and phantom checks). Invalid
transactions stay in their block with their code and change nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2
from fabric_protos.msp import identities_pb2
from fabric_protos.peer import proposal_response_pb2, transaction_pb2
from sortedcontainers import SortedDict

from ledger_client.embedded.channel import ChannelConfig, IdentityRejected, Member, Membership
from ledger_client.identity import verify_signature
from ledger_client.protocol import ParsedTransaction, proposal_hash_of, transaction_id


def code(name: str) -> int:
    """Fabric's numeric validation code for ``name`` (TxValidationCode)."""
    return int(transaction_pb2.TxValidationCode.Value(name))


VALID = code("VALID")

VersionT = tuple[int, int]


def check_creator(tx: ParsedTransaction, membership: Membership) -> tuple[int, Member | None]:
    if tx.tx_id != transaction_id(tx.nonce, tx.creator):
        return code("BAD_PROPOSAL_TXID"), None
    try:
        member = membership.identify(tx.msp_id, tx.cert_pem)
        member.check_time(tx.timestamp)
    except IdentityRejected:
        return code("BAD_CREATOR_SIGNATURE"), None
    if tx.msp_id not in membership.config.organizations:
        return code("BAD_CREATOR_SIGNATURE"), None
    if not verify_signature(member.public_key, tx.signature, tx.payload_bytes):
        return code("BAD_CREATOR_SIGNATURE"), None
    return VALID, member


def check_endorsements(tx: ParsedTransaction, membership: Membership, config: ChannelConfig) -> int:
    code, orgs = endorsing_orgs(tx, membership, config)
    if code != VALID:
        return code
    return policy_code(orgs, config)


def policy_code(orgs: set[str], config: ChannelConfig) -> int:
    """Whether endorsements of ``orgs`` satisfy ``config``'s policy over its members."""
    if len(orgs & set(config.organizations)) < config.required_endorsements:
        return code("ENDORSEMENT_POLICY_FAILURE")
    return VALID


def endorsing_orgs(
    tx: ParsedTransaction, membership: Membership, config: ChannelConfig
) -> tuple[int, set[str]]:
    """The organizations whose peers' endorsements verify (one each), after the checks that
    do not depend on the policy; ``ledger verify`` applies the policy of each block's
    configuration to this set."""
    if tx.channel_id != config.channel:
        return code("TARGET_CHAIN_NOT_FOUND"), set()
    prp = proposal_response_pb2.ProposalResponsePayload.FromString(tx.response_payload)
    if prp.proposal_hash != proposal_hash_of(tx):
        return code("BAD_RESPONSE_PAYLOAD"), set()
    if tx.response.status >= 400:
        return code("INVALID_ENDORSER_TRANSACTION"), set()
    orgs: set[str] = set()
    for endorsement in tx.endorsements:
        try:
            ident = identities_pb2.SerializedIdentity.FromString(endorsement.endorser)
            member = membership.identify(ident.mspid, bytes(ident.id_bytes))
            member.check_time(tx.timestamp)
        except (IdentityRejected, ValueError, Exception):
            continue
        if (
            member.role != "peer"
            or member.msp_id not in config.organizations
            or member.msp_id in orgs
        ):
            continue
        if verify_signature(
            member.public_key, endorsement.signature, tx.response_payload + endorsement.endorser
        ):
            orgs.add(member.msp_id)
    return VALID, orgs


def check_mvcc(kv: kv_rwset_pb2.KVRWSet, state: StateView) -> int:
    for read in kv.reads:
        expected = (
            (read.version.block_num, read.version.tx_num) if read.HasField("version") else None
        )
        if state.version(read.key) != expected:
            return code("MVCC_READ_CONFLICT")
    for query in kv.range_queries_info:
        then = [(r.key, (r.version.block_num, r.version.tx_num)) for r in query.raw_reads.kv_reads]
        if state.range_versions(query.start_key, query.end_key) != then:
            return code("PHANTOM_READ_CONFLICT")
    return VALID


class StateView:
    """Committed state plus the writes of earlier valid transactions in the block being built."""

    def version(self, key: str) -> VersionT | None:
        raise NotImplementedError

    def range_versions(self, start: str, end: str) -> list[tuple[str, VersionT]]:
        raise NotImplementedError

    def apply(self, kv: kv_rwset_pb2.KVRWSet, block: int, txn: int) -> None:
        raise NotImplementedError


# Keys per ``IN (…)`` query: well under SQLite's smallest default variable limit (999).
IN_CHUNK = 500


def committed_rows(db: sqlite3.Connection, keys: Iterable[str]) -> dict[str, tuple[Any, Any, Any]]:
    """The committed (value, block, txn) of each of ``keys`` that has a row, read with one
    query per :data:`IN_CHUNK` keys instead of one per key. Values are as stored (unchecked)."""
    wanted = sorted(set(keys))
    rows: dict[str, tuple[Any, Any, Any]] = {}
    for i in range(0, len(wanted), IN_CHUNK):
        chunk = wanted[i : i + IN_CHUNK]
        marks = ",".join("?" * len(chunk))
        for key, value, block, txn in db.execute(
            f"SELECT key, value, block, txn FROM state WHERE key IN ({marks})", chunk
        ):
            rows[key] = (value, block, txn)
    return rows


class SqlState(StateView):
    """Committed state in the committer's write transaction, plus the block's pending writes.

    :meth:`prefetch` reads the committed rows of many keys at once (the block's read and
    write sets); a key not prefetched is read on demand, so the answers are the same either
    way — only the number of SQLite statements differs."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.pending: dict[str, tuple[bytes | None, int, int]] = {}
        self._committed: dict[str, tuple[Any, Any, Any] | None] = {}

    def prefetch(self, keys: Iterable[str]) -> None:
        wanted = [k for k in set(keys) if k not in self._committed]
        found = committed_rows(self._db, wanted)
        for key in wanted:
            self._committed[key] = found.get(key)

    def committed(self, key: str) -> tuple[Any, Any, Any] | None:
        """The committed row of ``key`` (value, block, txn), ignoring pending writes."""
        if key not in self._committed:
            self._committed[key] = self._db.execute(
                "SELECT value, block, txn FROM state WHERE key = ?", (key,)
            ).fetchone()
        return self._committed[key]

    def version(self, key: str) -> VersionT | None:
        if key in self.pending:
            value, b, t = self.pending[key]
            return None if value is None else (b, t)
        row = self.committed(key)
        return None if row is None else (row[1], row[2])

    def range_versions(self, start: str, end: str) -> list[tuple[str, VersionT]]:
        rows = {
            k: (b, t)
            for k, b, t in self._db.execute(
                "SELECT key, block, txn FROM state WHERE key >= ? AND key < ? ORDER BY key",
                (start, end),
            )
        }
        for key, (value, b, t) in self.pending.items():
            if start <= key < end:
                if value is None:
                    rows.pop(key, None)
                else:
                    rows[key] = (b, t)
        return sorted(rows.items())

    def apply(self, kv: kv_rwset_pb2.KVRWSet, block: int, txn: int) -> None:
        for w in kv.writes:
            self.pending[w.key] = (None if w.is_delete else bytes(w.value), block, txn)


class MemoryState(StateView):
    """The whole world state in memory, for replaying a ledger from its genesis."""

    def __init__(self) -> None:
        self.rows: SortedDict = SortedDict()  # key → (value, block, txn)

    def version(self, key: str) -> VersionT | None:
        row = self.rows.get(key)
        return None if row is None else (row[1], row[2])

    def range_versions(self, start: str, end: str) -> list[tuple[str, VersionT]]:
        return [
            (k, (self.rows[k][1], self.rows[k][2]))
            for k in self.rows.irange(start, end, inclusive=(True, False))
        ]

    def apply(self, kv: kv_rwset_pb2.KVRWSet, block: int, txn: int) -> None:
        for w in kv.writes:
            if w.is_delete:
                self.rows.pop(w.key, None)
            else:
                self.rows[w.key] = (bytes(w.value), block, txn)

    # -- the StateReader surface, so the replay can re-execute the chaincode on this state --
    def get(self, key: str) -> tuple[bytes, int, int] | None:
        row: tuple[bytes, int, int] | None = self.rows.get(key)
        return row

    def scan(self, start: str, end: str) -> list[tuple[str, bytes, int, int]]:
        return [(k, *self.rows[k]) for k in self.rows.irange(start, end, inclusive=(True, False))]

    def items(self) -> Iterable[tuple[str, tuple[bytes, int, int]]]:
        return self.rows.items()  # type: ignore[no-any-return]
