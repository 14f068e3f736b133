"""``ledger verify``: trust nothing in the file but its genesis block, and re-derive the rest.

Checks, block by block: the header chain (numbers, previous hashes, data hashes, stored
header hashes and transaction counts), the orderer's signature on each block (which covers
its state commitment and validation flags), every transaction's creator signature and
endorsements against the channel's CAs and policy, and each recorded validation code against
the code a replay from genesis computes (MVCC and phantom reads included). Every transaction
the replay finds valid is **re-executed**: its chaincode runs again, with its own proposal
(arguments, creator, transaction id, timestamp), on the replayed state, and the read set
(keys, versions), write set, result and event must equal the recorded ones byte for byte.
After each block the replay's state commitment (state hash and write chain) must equal the
signed one. Then every column of every table is compared with the replay: the world state
(value and version), the transaction index (including block 0), the events, the blocks
table, and the metadata. The first problem is reported with the block it concerns; a block
that does not parse is a problem of that block, never a crash.

Signature checks do not depend on state, so they run in worker processes; the hash chain,
the replay and the re-execution run in order in this process.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from fabric_protos.common import common_pb2
from fabric_protos.msp import identities_pb2
from google.protobuf import timestamp_pb2

from chaincode.contract import invoke
from chaincode.errors import ChaincodeError
from ledger_client.embedded import validation
from ledger_client.embedded.blocks import commitment_of, data_hash, header_hash
from ledger_client.embedded.channel import ChannelConfig, IdentityRejected, Membership
from ledger_client.embedded.commitment import (
    MOD,
    Commitment,
    genesis_commitment,
    next_write_chain,
    state_term,
    to_bytes,
)
from ledger_client.embedded.integrity import block_signature_problem, readable_key
from ledger_client.embedded.reconfig import (
    CONFIG_BLOCKS,
    ConfigUpdate,
    change_key,
    is_config_block,
    union,
)
from ledger_client.embedded.simulator import SimulationStub, drive, read_kvrwset
from ledger_client.embedded.store import FORMAT, check_ledger_file
from ledger_client.errors import LedgerFileError
from ledger_client.identity import verify_signature
from ledger_client.protocol import code_name, parse_transaction

CHUNK = 64  # blocks per worker task: large enough to amortize the hand-off


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    blocks: int
    transactions: int
    valid: int
    invalid: int
    state_keys: int
    first_bad_block: int | None
    problem: str
    seconds: float
    jobs: int


class _Problem(Exception):
    def __init__(self, block: int, message: str) -> None:
        super().__init__(message)
        self.block = block


# ---------------------------------------------------------------- signature checks (workers)
class _Worker:
    """Per-process channel state of a verification worker (set by the pool's initializer)."""

    config: ChannelConfig | None = None
    membership: Membership | None = None


def _init_worker(config_json: bytes) -> None:
    _Worker.config = ChannelConfig.from_json(config_json)
    _Worker.membership = Membership(_Worker.config)


class TxCheck(NamedTuple):
    """What the replay needs of one transaction, decoded (and its signatures checked) by a
    worker."""

    tx_id: str
    code: int  # before MVCC
    results: bytes  # the recorded read/write set
    event: bytes  # the recorded ChaincodeEvent, serialized ("" if none)
    creator: str  # "<msp>/<common name>", "" if the identity is unknown
    function: str
    args: tuple[bytes, ...]
    msp_id: str
    cert_pem: bytes
    seconds: int
    nanos: int
    payload: bytes  # the recorded chaincode result
    endorsers: tuple[str, ...] = ()  # organizations whose endorsements verify


Row = tuple[int, bytes, int, bytes]  # number, stored header hash, stored tx count, block


def _check_block(number: int, block_bytes: bytes) -> tuple[int, str, list[TxCheck]]:
    """Everything about one block that does not need the world state.

    Returns (number, problem or "", one :class:`TxCheck` per transaction).
    """
    membership, config = _Worker.membership, _Worker.config
    if membership is None or config is None:
        raise RuntimeError("verification worker used before its initializer ran")
    try:
        block = common_pb2.Block.FromString(block_bytes)
    except Exception:
        return number, "the block does not parse", []
    problem = block_signature_problem(block, membership)
    if is_config_block(block):  # the replay checks it against the state it derives
        update = ConfigUpdate(block, membership)
        code = validation.VALID if update.signature_ok else validation.code("BAD_CREATOR_SIGNATURE")
        check = TxCheck(
            update.tx_id,
            code,
            b"",
            b"",
            update.creator,
            "config",
            (),
            "",
            b"",
            update.seconds,
            0,
            b"",
        )
        return number, problem, [check]
    out: list[TxCheck] = []
    for env in block.data.data:
        try:
            tx = parse_transaction(bytes(env))
            ts = common_pb2.ChannelHeader.FromString(tx.channel_header_bytes).timestamp
        except Exception:
            out.append(
                TxCheck(
                    "", validation.code("BAD_PAYLOAD"), b"", b"", "", "", (), "", b"", 0, 0, b""
                )
            )
            continue
        # Signatures are checked against every organization the channel ever trusted; the
        # replay then applies the member set and policy of the block's own configuration.
        code, member = validation.check_creator(tx, membership)
        endorsers: set[str] = set()
        if code == validation.VALID:
            code, endorsers = validation.endorsing_orgs(tx, membership, config)
        if member is None:
            try:
                member = membership.identify(tx.msp_id, tx.cert_pem)
            except IdentityRejected:
                member = None
        out.append(
            TxCheck(
                tx_id=tx.tx_id,
                code=code,
                results=tx.results,
                event=tx.event.SerializeToString() if tx.event is not None else b"",
                creator=f"{member.msp_id}/{member.common_name}" if member else "",
                function=tx.function,
                args=tx.args,
                msp_id=tx.msp_id,
                cert_pem=tx.cert_pem,
                seconds=int(ts.seconds),
                nanos=int(ts.nanos),
                payload=bytes(tx.response.payload),
                endorsers=tuple(sorted(endorsers)),
            )
        )
    return number, problem, out


def _checked_blocks(
    rows: Iterator[Row], config_json: bytes, jobs: int
) -> Iterator[tuple[Row, str, list[TxCheck]]]:
    if jobs <= 1:
        _init_worker(config_json)
        for row in rows:
            _, problem, checks = _check_block(row[0], row[3])
            yield row, problem, checks
        return
    with ProcessPoolExecutor(
        max_workers=jobs, initializer=_init_worker, initargs=(config_json,)
    ) as pool:
        while True:
            chunk = [r for _, r in zip(range(CHUNK * jobs), rows, strict=False)]
            if not chunk:
                return
            results = pool.map(
                _check_block, [r[0] for r in chunk], [r[3] for r in chunk], chunksize=CHUNK
            )
            for row, (_, problem, checks) in zip(chunk, results, strict=True):
                yield row, problem, checks


def _rows(conn: sqlite3.Connection) -> Iterator[Row]:
    for n, h, c, b in conn.execute(
        "SELECT number, header_hash, tx_count, block FROM blocks WHERE number > 0 ORDER BY number"
    ):
        yield (
            int(n),
            h if isinstance(h, bytes) else b"",
            c if type(c) is int else -1,
            b if isinstance(b, bytes) else b"",
        )


# ---------------------------------------------------------------- the replay (this process)
def verify_ledger(
    path: Path | str, *, jobs: int | None = None, progress: Callable[[int, int], None] | None = None
) -> VerifyReport:
    """Verify the ledger at ``path``; :class:`LedgerFileError` if it is not a fedspec ledger."""
    path = Path(path)
    check_ledger_file(path)
    started = time.perf_counter()
    jobs = jobs if jobs is not None else (os.cpu_count() or 1)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60.0)
    replay: _Replay | None = None
    try:
        conn.execute("BEGIN")  # one consistent snapshot even if a writer commits meanwhile
        total = int(conn.execute("SELECT COUNT(*) FROM blocks").fetchone()[0])
        if total < 200:
            jobs = 1  # not worth starting processes
        try:
            config, genesis_hash, genesis_row = _check_genesis(conn)
            replay = _Replay(config, genesis_hash, _every_config(conn, config))
            replay.expected_txs[genesis_row[0]] = genesis_row[1:]
            last = replay.run(_rows(conn), jobs, total, progress)
            _compare_tables(conn, replay, last)
            problem, bad = "", None
        except _Problem as exc:
            problem, bad = str(exc), exc.block
    except sqlite3.DatabaseError as exc:
        raise LedgerFileError(f"{path} is not a fedspec ledger ({exc})") from exc
    finally:
        conn.close()
    counts = replay.counts if replay is not None else {"tx": 0, "valid": 0, "invalid": 0}
    return VerifyReport(
        ok=not problem,
        blocks=total,
        transactions=counts["tx"],
        valid=counts["valid"],
        invalid=counts["invalid"],
        state_keys=len(replay.state.rows) if replay is not None else 0,
        first_bad_block=bad,
        problem=problem,
        seconds=time.perf_counter() - started,
        jobs=jobs,
    )


ExpectedTx = tuple[int, int, int, str, str, int]  # block, idx, code, function, creator, timestamp


def _check_genesis(
    conn: sqlite3.Connection,
) -> tuple[ChannelConfig, bytes, tuple[str, int, int, int, str, str, int]]:
    """The genesis block's hashes, signatures and configuration; returns the configuration,
    the genesis header hash and the transaction-index row block 0 must have."""
    row = conn.execute(
        "SELECT header_hash, tx_count, block FROM blocks WHERE number = 0"
    ).fetchone()
    if row is None:
        raise _Problem(0, "there is no genesis block")
    try:
        block = common_pb2.Block.FromString(row[2])
        env = common_pb2.Envelope.FromString(block.data.data[0])
        payload = common_pb2.Payload.FromString(env.payload)
        channel_header = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
        sh = common_pb2.SignatureHeader.FromString(payload.header.signature_header)
        ident = identities_pb2.SerializedIdentity.FromString(sh.creator)
    except Exception as exc:
        raise _Problem(0, f"block 0 is truncated or not a genesis block ({exc})") from None
    if block.header.number != 0 or block.header.previous_hash:
        raise _Problem(0, "block 0 is not a genesis block")
    if block.header.data_hash != data_hash(block.data.data) or header_hash(block.header) != row[0]:
        raise _Problem(0, "the genesis block's hashes do not match its content")
    if row[1] != len(block.data.data):
        raise _Problem(0, f"the blocks table says block 0 has {row[1]} transactions")
    try:
        config = ChannelConfig.from_json(payload.data)
    except (ValueError, KeyError, TypeError) as exc:
        raise _Problem(0, f"the genesis block holds no channel configuration ({exc})") from exc
    membership = Membership(config)
    try:
        orderer = membership.identify(ident.mspid, bytes(ident.id_bytes))
    except IdentityRejected as exc:
        raise _Problem(
            0, f"the genesis block is not signed by the channel's orderer ({exc})"
        ) from exc
    if not config.may_order(orderer.msp_id, orderer.role) or not verify_signature(
        orderer.public_key, bytes(env.signature), bytes(env.payload)
    ):
        raise _Problem(0, "the genesis configuration's signature does not verify")
    problem = block_signature_problem(block, membership)
    if problem:
        raise _Problem(0, problem)
    flags = bytes(block.metadata.metadata[common_pb2.TRANSACTIONS_FILTER])
    try:
        commitment = commitment_of(block)
    except ValueError as exc:
        raise _Problem(0, f"block 0: {exc}") from None
    if flags != b"\x00" or commitment != genesis_commitment(flags):
        raise _Problem(0, "the genesis block's state commitment or flags are not a genesis block's")
    txs_row = (
        channel_header.tx_id,
        0,
        0,
        0,
        "config",
        f"{orderer.msp_id}/{orderer.common_name}",
        int(channel_header.timestamp.seconds),
    )
    return config, bytes(row[0]), txs_row


def _every_config(conn: sqlite3.Connection, genesis: ChannelConfig) -> ChannelConfig:
    """Every organization the channel ever trusted, from the configuration blocks the
    transaction index names (an untrusted hint: the replay finds configuration blocks by
    reading every block, and a hidden one makes its members' transactions fail to verify)."""
    configs = [genesis]
    rows = conn.execute(
        "SELECT block FROM blocks WHERE number IN "
        "(SELECT block FROM txs WHERE function = 'config' AND block > 0) ORDER BY number"
    )
    for (raw,) in rows:
        try:
            block = common_pb2.Block.FromString(bytes(raw))
            if is_config_block(block):
                env = common_pb2.Envelope.FromString(block.data.data[0])
                configs.append(
                    ChannelConfig.from_json(common_pb2.Payload.FromString(env.payload).data)
                )
        except Exception:
            continue
    return union(configs)


class _Replay:
    """The world state, state commitment and indexes a replay from genesis derives."""

    def __init__(self, config: ChannelConfig, genesis_hash: bytes, ever: ChannelConfig) -> None:
        self.config = config  # the configuration in force at the block being replayed
        self.ever = ever  # every organization the channel ever trusted
        self.ever_members = Membership(ever)
        self.config_blocks: list[int] = []
        self.state = validation.MemoryState()
        self.h = 0
        genesis = genesis_commitment()
        self.chain = genesis.write_chain
        self.previous = genesis_hash
        self.expected_txs: dict[str, ExpectedTx] = {}
        self.events: list[tuple[int, int, str, str, str, bytes]] = []
        self.counts = {"tx": 0, "valid": 0, "invalid": 0}

    def run(
        self,
        rows: Iterator[Row],
        jobs: int,
        total: int,
        progress: Callable[[int, int], None] | None,
    ) -> int:
        """Replay every block after genesis; returns the last block's number."""
        expected_number = 1
        for row, problem, checks in _checked_blocks(rows, self.ever.to_json(), jobs):
            number = row[0]
            if number != expected_number:
                raise _Problem(
                    expected_number, f"block {expected_number} is missing or out of order"
                )
            try:
                self._block(row, problem, checks)
            except _Problem:
                raise
            except Exception as exc:  # any decoding surprise is this block's problem
                raise _Problem(
                    number, f"block {number} is malformed ({type(exc).__name__}: {exc})"
                ) from None
            expected_number = number + 1
            if progress is not None:
                progress(number + 1, total)
        return expected_number - 1

    def _block(self, row: Row, problem: str, checks: list[TxCheck]) -> None:
        number, stored_hash, tx_count, block_bytes = row
        try:
            if not block_bytes:
                raise ValueError("the block column is empty or not a BLOB")
            block = common_pb2.Block.FromString(block_bytes)
        except Exception as exc:
            raise _Problem(number, f"block {number} is truncated or not a block ({exc})") from None
        self.previous = _check_header(block, number, self.previous, stored_hash)
        if problem:
            raise _Problem(number, f"block {number}: {problem}")
        if tx_count != len(block.data.data):
            raise _Problem(
                number,
                f"the blocks table says block {number} has {tx_count} transactions; "
                f"it holds {len(block.data.data)}",
            )
        self._check_signer(block, number)
        if is_config_block(block):
            self._reconfigure(block, number)
            return
        commitment, flags = _signed_commitment(block, number, len(checks))
        valid_writes: list[tuple[int, list[tuple[str, bytes | None]]]] = []
        for idx, check in enumerate(checks):
            code = self._revalidate(check, number, idx, valid_writes)
            if code != flags[idx]:
                raise _Problem(
                    number,
                    f"block {number}, transaction {idx} ({check.tx_id[:12]}…) is recorded "
                    f"{code_name(flags[idx])} but re-validates as {code_name(code)}",
                )
            if check.tx_id and check.tx_id not in self.expected_txs:
                self.expected_txs[check.tx_id] = (
                    number,
                    idx,
                    code,
                    check.function,
                    check.creator,
                    check.seconds,
                )
            self.counts["tx"] += 1
            self.counts["valid" if code == validation.VALID else "invalid"] += 1
        self.chain = next_write_chain(self.chain, number, flags, valid_writes)
        if to_bytes(self.h) != commitment.state_hash:
            raise _Problem(
                number,
                f"block {number}'s signed state commitment differs from the state the replay "
                "derives",
            )
        if self.chain != commitment.write_chain:
            raise _Problem(
                number, f"block {number}'s signed write-set chain differs from the replay's"
            )

    def _check_signer(self, block: common_pb2.Block, number: int) -> None:
        """The block's signer (its signature already verified) may order at this block."""
        try:
            md = common_pb2.Metadata.FromString(block.metadata.metadata[common_pb2.SIGNATURES])
            sh = common_pb2.SignatureHeader.FromString(md.signatures[0].signature_header)
            ident = identities_pb2.SerializedIdentity.FromString(sh.creator)
            member = self.ever_members.identify(ident.mspid, bytes(ident.id_bytes))
        except Exception:  # the worker reported an unusable signature already
            return
        if not self.config.may_order(member.msp_id, member.role):
            raise _Problem(
                number,
                f"block {number} is signed by {member.msp_id}/{member.common_name}, who may not "
                "order at that block",
            )

    def _reconfigure(self, block: common_pb2.Block, number: int) -> None:
        """A configuration block: the current configuration with one approved membership
        change of the replayed state applied; it writes nothing."""
        commitment, flags = _signed_commitment(block, number, 1)
        update = ConfigUpdate(block, self.ever_members)
        key = change_key(update.config)
        row = self.state.rows.get(key) if key is not None else None
        change = json.loads(row[0]) if row is not None else None
        problem = update.problem(self.config, change)
        if not problem and flags != bytes([validation.VALID]):
            problem = "is not recorded valid"
        if not problem and update.tx_id in self.expected_txs:
            problem = "replays an earlier configuration transaction"
        if problem:
            raise _Problem(number, f"configuration block {number} {problem}")
        self.expected_txs[update.tx_id] = (
            number,
            0,
            validation.VALID,
            "config",
            update.creator,
            update.seconds,
        )
        self.counts["tx"] += 1
        self.counts["valid"] += 1
        self.chain = next_write_chain(self.chain, number, flags, [])
        if to_bytes(self.h) != commitment.state_hash or self.chain != commitment.write_chain:
            raise _Problem(number, f"configuration block {number}'s signed commitment is wrong")
        self.config = update.config
        self.config_blocks.append(number)

    def _revalidate(
        self,
        check: TxCheck,
        number: int,
        idx: int,
        valid_writes: list[tuple[int, list[tuple[str, bytes | None]]]],
    ) -> int:
        """The validation code the replay gives one transaction; a valid one is re-executed
        and its writes applied (and its event kept)."""
        if check.tx_id in self.expected_txs:
            return validation.code("DUPLICATE_TXID")
        if check.code != validation.VALID:
            return check.code
        if check.msp_id not in self.config.organizations:
            return validation.code("BAD_CREATOR_SIGNATURE")  # not a member at this block
        policy = validation.policy_code(set(check.endorsers), self.config)
        if policy != validation.VALID:
            return policy
        kv = read_kvrwset(check.results, self.config.chaincode)
        code = validation.check_mvcc(kv, self.state)
        if code != validation.VALID:
            return code
        self._reexecute(check, number, idx)
        writes: list[tuple[str, bytes | None]] = []
        rows = self.state.rows
        for w in kv.writes:
            old = rows.get(w.key)
            if old is not None:
                self.h -= state_term(w.key, *old)
            value = None if w.is_delete else bytes(w.value)
            if value is not None:
                self.h += state_term(w.key, value, number, idx)
            writes.append((w.key, value))
        self.h %= MOD
        valid_writes.append((idx, writes))
        self.state.apply(kv, number, idx)
        if check.event:
            event = _event_fields(check.event)
            self.events.append((number, idx, check.tx_id, *event))
        return code

    def _reexecute(self, check: TxCheck, number: int, idx: int) -> None:
        """Run the transaction's chaincode again on the replayed state; its reads, writes,
        result and event must be the recorded ones, byte for byte."""
        where = f"block {number}, transaction {idx} ({check.function}, {check.tx_id[:12]}…)"
        stub = SimulationStub(
            self.state,
            msp_id=check.msp_id,
            cert_pem=check.cert_pem,
            tx_id=check.tx_id,
            timestamp=timestamp_pb2.Timestamp(seconds=check.seconds, nanos=check.nanos),
            chaincode=self.config.chaincode,
        )
        try:
            args = [a.decode("utf-8") for a in check.args]
            result = drive(invoke(stub, check.function, args))
        except (ChaincodeError, UnicodeDecodeError, RuntimeError) as exc:
            message = getattr(exc, "message", str(exc))
            raise _Problem(
                number, f"{where} is recorded valid, but re-executing it fails: {message}"
            ) from None
        replayed = stub.rwset_bytes()
        if replayed != check.results:
            raise _Problem(
                number,
                f"{where}: {_rwset_difference(check.results, replayed, self.config.chaincode)} "
                "(the recorded read/write set is not what its chaincode does)",
            )
        if bytes(result) != check.payload:
            raise _Problem(number, f"{where}: its recorded result differs from re-executing it")
        event = stub.event.SerializeToString() if stub.event is not None else b""
        if event != check.event:
            raise _Problem(number, f"{where}: its recorded event differs from re-executing it")


def _signed_commitment(
    block: common_pb2.Block, number: int, transactions: int
) -> tuple[Commitment, bytes]:
    """The block's signed commitment and its validation flags (which it must cover)."""
    try:
        commitment = commitment_of(block)
    except ValueError as exc:
        raise _Problem(number, f"block {number}: {exc}") from None
    flags = bytes(block.metadata.metadata[common_pb2.TRANSACTIONS_FILTER])
    if hashlib.sha256(flags).digest() != commitment.flags_hash:
        raise _Problem(
            number, f"block {number}'s validation flags differ from the ones the orderer signed"
        )
    if len(flags) != transactions:
        raise _Problem(
            number, f"block {number} has {transactions} transactions but {len(flags)} flags"
        )
    return commitment, flags


def _event_fields(event_bytes: bytes) -> tuple[str, str, bytes]:
    # Deferred: loads the peer protos only when an event is met.
    from fabric_protos.peer import chaincode_event_pb2

    event = chaincode_event_pb2.ChaincodeEvent.FromString(event_bytes)
    return event.chaincode_id, event.event_name, bytes(event.payload)


def _rwset_difference(recorded: bytes, replayed: bytes, namespace: str) -> str:
    """Name the first key whose read or write differs between two read/write sets."""
    ours = read_kvrwset(replayed, namespace)
    try:
        theirs = read_kvrwset(recorded, namespace)
    except Exception:
        return "its recorded read/write set does not parse"
    for what, a, b in (
        ("read", theirs.reads, ours.reads),
        ("wrote", theirs.writes, ours.writes),
    ):
        ra = {x.key: x.SerializeToString() for x in a}
        rb = {x.key: x.SerializeToString() for x in b}
        for key in sorted(ra.keys() | rb.keys()):
            if ra.get(key) != rb.get(key):
                return f"it {what} key {readable_key(key)} differently than re-executing it does"
    if list(theirs.range_queries_info) != list(ours.range_queries_info):
        return "its range reads differ from re-executing it"
    return "its read/write set is not byte for byte the re-executed one"


def _check_header(block: common_pb2.Block, number: int, previous: bytes, stored: bytes) -> bytes:
    """The block's place in the chain and its hashes; returns its header hash."""
    if block.header.number != number:
        raise _Problem(
            number,
            f"block {number} is missing or out of order (its row holds block "
            f"{block.header.number})",
        )
    if bytes(block.header.previous_hash) != previous:
        raise _Problem(
            number, f"block {number} does not chain to block {number - 1} (previous hash differs)"
        )
    if bytes(block.header.data_hash) != data_hash(block.data.data):
        raise _Problem(number, f"block {number}'s transactions do not match its data hash")
    this_hash = header_hash(block.header)
    if this_hash != stored:
        raise _Problem(number, f"block {number}'s stored header hash differs from its header")
    return this_hash


# ---------------------------------------------------------------- the tables against the replay
def _compare_tables(conn: sqlite3.Connection, replay: _Replay, last: int) -> None:
    """Every table against the replay; raises the problem with the lowest block. Missing last
    blocks come first: they explain every row that refers to them."""
    _compare_missing_tail(conn, replay, last)
    problems: list[_Problem] = []
    for compare in (
        _compare_state,
        _compare_index,
        _compare_events,
        _compare_meta,
    ):
        try:
            compare(conn, replay, last)
        except _Problem as exc:
            problems.append(exc)
        except (TypeError, ValueError, AttributeError) as exc:
            problems.append(
                _Problem(last, f"a table holds a malformed row ({type(exc).__name__}: {exc})")
            )
    if problems:
        raise min(problems, key=lambda p: p.block)


def _int(value: Any) -> int | None:
    return value if type(value) is int else None


def _compare_missing_tail(conn: sqlite3.Connection, replay: _Replay, last: int) -> None:
    """Rows that refer to blocks after the last one: the last blocks were removed."""
    for table in ("txs", "events", "state"):
        (top,) = conn.execute(f"SELECT MAX(block) FROM {table}").fetchone()
        if _int(top) is not None and top > last:
            what = {"txs": "transaction index", "events": "event index", "state": "world state"}
            raise _Problem(
                last + 1,
                f"block {last + 1} is missing: the {what[table]} refers to block {top}, "
                f"but the chain ends at block {last}",
            )


def _compare_state(conn: sqlite3.Connection, replay: _Replay, last: int) -> None:
    stored = conn.execute("SELECT key, value, block, txn FROM state ORDER BY key")
    expected = iter(replay.state.items())
    exp = next(expected, None)
    for key, value, block, txn in stored:
        if not isinstance(key, str):
            raise _Problem(last, f"world state has a key that is not text ({key!r:.40})")
        if exp is not None and exp[0] < key:
            raise _Problem(
                exp[1][1],
                f"world state lacks key {readable_key(exp[0])} written in block {exp[1][1]}",
            )
        if exp is None or exp[0] != key:
            claimed = _int(block)
            raise _Problem(
                claimed if claimed is not None else last,
                f"world state has key {readable_key(key)} that no valid transaction wrote "
                f"(it claims block {block})",
            )
        exp_value, exp_block, exp_txn = exp[1]
        if (
            not isinstance(value, bytes)
            or value != exp_value
            or (_int(block), _int(txn)) != (exp_block, exp_txn)
        ):
            raise _Problem(
                exp_block,
                f"world state differs from the replay at key {readable_key(key)} "
                f"(last written in block {exp_block})",
            )
        exp = next(expected, None)
    if exp is not None:
        raise _Problem(
            exp[1][1], f"world state lacks key {readable_key(exp[0])} written in block {exp[1][1]}"
        )


_TX_COLUMNS = ("block", "idx", "code", "function", "creator", "timestamp")


def _compare_index(conn: sqlite3.Connection, replay: _Replay, last: int) -> None:
    expected = dict(replay.expected_txs)
    problems: list[_Problem] = []
    for tx_id, *stored in conn.execute(
        "SELECT tx_id, block, idx, code, function, creator, timestamp FROM txs ORDER BY block, idx"
    ):
        want = expected.pop(tx_id, None) if isinstance(tx_id, str) else None
        block = _int(stored[0])
        if want is None:
            problems.append(
                _Problem(
                    block if block is not None else last,
                    f"the transaction index has {str(tx_id)[:12]}… at block {stored[0]}, "
                    "which no block holds there",
                )
            )
            break
        if tuple(stored) != want:
            column = next(c for c, s, w in zip(_TX_COLUMNS, stored, want, strict=True) if s != w)
            problems.append(
                _Problem(
                    min(want[0], block if block is not None else want[0]),
                    f"the transaction index disagrees with block {want[0]} about "
                    f"{tx_id[:12]}… ({column})",
                )
            )
            break
    if expected:
        tx_id, want = min(expected.items(), key=lambda item: item[1][:2])
        problems.append(
            _Problem(want[0], f"the transaction index lacks {tx_id[:12]}… of block {want[0]}")
        )
    if problems:
        raise min(problems, key=lambda p: p.block)


def _compare_events(conn: sqlite3.Connection, replay: _Replay, last: int) -> None:
    stored = conn.execute(
        "SELECT block, idx, tx_id, chaincode, name, payload FROM events ORDER BY block, idx"
    ).fetchall()
    expected = replay.events
    for expected_event, stored_event in zip(expected, stored, strict=False):
        if expected_event != tuple(stored_event):
            block = min(expected_event[0], _int(stored_event[0]) or expected_event[0])
            raise _Problem(block, f"the event index disagrees with block {block}")
    if len(stored) != len(expected):
        longer = stored if len(stored) > len(expected) else expected
        first = _int(longer[min(len(stored), len(expected))][0])
        block = first if first is not None else last
        raise _Problem(
            block,
            f"the event index has a different number of events than the blocks "
            f"(from block {block})",
        )


def _compare_meta(conn: sqlite3.Connection, replay: _Replay, last: int) -> None:
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    want: dict[str, bytes | None] = {
        "format": FORMAT.encode(),
        "channel": replay.config.channel.encode(),
        "state_hash": to_bytes(replay.h),
        CONFIG_BLOCKS: json.dumps(replay.config_blocks).encode() if replay.config_blocks else None,
    }
    for key, value in want.items():
        if meta.get(key) != value:
            raise _Problem(
                0 if key != "state_hash" else last,
                f"the ledger's metadata {key!r} differs from the blocks'",
            )
