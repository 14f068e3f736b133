"""``ledger verify``: trust nothing in the file but its genesis block, and re-derive the rest.

Checks, block by block: the header chain (numbers, previous hashes, data hashes, stored
header hashes), the orderer's signature on each block, every transaction's creator
signature and endorsements against the channel's CAs and policy, and each recorded
validation code against the code a replay from genesis computes (MVCC and phantom reads
included). The replayed world state, transaction index and events are then compared with
the stored ones. The first problem is reported with the block it concerns.

Signature checks do not depend on state, so they run in worker processes; the hash chain
and the replay run in order in this process.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fabric_protos.common import common_pb2
from fabric_protos.msp import identities_pb2

from ledger_client.embedded import validation
from ledger_client.embedded.blocks import data_hash, header_hash, signed_block_bytes
from ledger_client.embedded.channel import ChannelConfig, IdentityRejected, Membership
from ledger_client.embedded.simulator import read_kvrwset
from ledger_client.embedded.store import check_ledger_file
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


TxCheck = tuple[str, int, bytes, tuple[str, str, bytes] | None, str]


def _check_block(number: int, block_bytes: bytes) -> tuple[int, str, list[TxCheck]]:
    """Everything about one block that does not need the world state.

    Returns (number, problem or "", per transaction: (tx id, code before MVCC, rwset bytes,
    event, creator)).
    """
    membership, config = _Worker.membership, _Worker.config
    if membership is None or config is None:
        raise RuntimeError("verification worker used before its initializer ran")
    try:
        block = common_pb2.Block.FromString(block_bytes)
    except Exception:
        return number, "the block does not parse", []
    problem = _check_block_signature(block, membership)
    out: list[TxCheck] = []
    for env in block.data.data:
        try:
            tx = parse_transaction(bytes(env))
        except ValueError:
            out.append(("", validation.code("BAD_PAYLOAD"), b"", None, ""))
            continue
        code, member = validation.check_creator(tx, membership)
        if code == validation.VALID:
            code = validation.check_endorsements(tx, membership, config)
        event = None
        if tx.event is not None:
            event = (tx.event.chaincode_id, tx.event.event_name, bytes(tx.event.payload))
        creator = f"{member.msp_id}/{member.common_name}" if member else ""
        out.append((tx.tx_id, code, tx.results, event, creator))
    return number, problem, out


def _check_block_signature(block: common_pb2.Block, membership: Membership) -> str:
    try:
        md = common_pb2.Metadata.FromString(block.metadata.metadata[common_pb2.SIGNATURES])
        sig = md.signatures[0]
        sh = common_pb2.SignatureHeader.FromString(sig.signature_header)
        ident = identities_pb2.SerializedIdentity.FromString(sh.creator)
        member = membership.identify(ident.mspid, bytes(ident.id_bytes))
    except (IndexError, IdentityRejected, Exception):
        return "the block carries no valid orderer signature"
    if member.msp_id != membership.config.orderer_msp or member.role != "orderer":
        return "the block is not signed by an orderer"
    if not verify_signature(
        member.public_key,
        bytes(sig.signature),
        signed_block_bytes(block, bytes(sig.signature_header)),
    ):
        return "the orderer's signature on the block does not verify"
    return ""


def _checked_blocks(
    rows: Iterator[tuple[int, bytes, bytes]], config_json: bytes, jobs: int
) -> Iterator[tuple[int, bytes, bytes, str, list[TxCheck]]]:
    if jobs <= 1:
        _init_worker(config_json)
        for number, stored_hash, block_bytes in rows:
            _, problem, checks = _check_block(number, block_bytes)
            yield number, stored_hash, block_bytes, problem, checks
        return
    with ProcessPoolExecutor(
        max_workers=jobs, initializer=_init_worker, initargs=(config_json,)
    ) as pool:
        while True:
            chunk = [r for _, r in zip(range(CHUNK * jobs), rows, strict=False)]
            if not chunk:
                return
            results = pool.map(
                _check_block, [r[0] for r in chunk], [r[2] for r in chunk], chunksize=CHUNK
            )
            for (number, stored_hash, block_bytes), (_, problem, checks) in zip(
                chunk, results, strict=True
            ):
                yield number, stored_hash, block_bytes, problem, checks


# ---------------------------------------------------------------- the replay (this process)
def verify_ledger(
    path: Path | str, *, jobs: int | None = None, progress: Callable[[int, int], None] | None = None
) -> VerifyReport:
    path = Path(path)
    check_ledger_file(path)
    started = time.perf_counter()
    jobs = jobs if jobs is not None else (os.cpu_count() or 1)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60.0)
    conn.execute("BEGIN")  # one consistent snapshot even if a writer commits meanwhile
    total = conn.execute("SELECT COUNT(*) FROM blocks").fetchone()[0]
    if total < 200:
        jobs = 1  # not worth starting processes
    counts = {"tx": 0, "valid": 0, "invalid": 0}
    state = validation.MemoryState()
    try:
        config, genesis_hash = _check_genesis(conn)
        rows = (
            (int(n), bytes(h), bytes(b))
            for n, h, b in conn.execute(
                "SELECT number, header_hash, block FROM blocks WHERE number > 0 ORDER BY number"
            )
        )
        expected_txs, expected_events = _replay(
            rows, config, genesis_hash, jobs, state, counts, total, progress
        )
        _compare_state(conn, state)
        _compare_index(conn, expected_txs, expected_events)
        problem, bad = "", None
    except _Problem as exc:
        problem, bad = str(exc), exc.block
    finally:
        conn.close()
    return VerifyReport(
        ok=not problem,
        blocks=total,
        transactions=counts["tx"],
        valid=counts["valid"],
        invalid=counts["invalid"],
        state_keys=len(state.rows),
        first_bad_block=bad,
        problem=problem,
        seconds=time.perf_counter() - started,
        jobs=jobs,
    )


def _check_genesis(conn: sqlite3.Connection) -> tuple[ChannelConfig, bytes]:
    row = conn.execute("SELECT header_hash, block FROM blocks WHERE number = 0").fetchone()
    if row is None:
        raise _Problem(0, "there is no genesis block")
    block = common_pb2.Block.FromString(row[1])
    if block.header.number != 0 or block.header.previous_hash:
        raise _Problem(0, "block 0 is not a genesis block")
    if block.header.data_hash != data_hash(block.data.data) or header_hash(block.header) != bytes(
        row[0]
    ):
        raise _Problem(0, "the genesis block's hashes do not match its content")
    env = common_pb2.Envelope.FromString(block.data.data[0])
    payload = common_pb2.Payload.FromString(env.payload)
    try:
        config = ChannelConfig.from_json(payload.data)
    except (ValueError, KeyError) as exc:
        raise _Problem(0, f"the genesis block holds no channel configuration ({exc})") from exc
    membership = Membership(config)
    sh = common_pb2.SignatureHeader.FromString(payload.header.signature_header)
    ident = identities_pb2.SerializedIdentity.FromString(sh.creator)
    try:
        orderer = membership.identify(ident.mspid, bytes(ident.id_bytes))
    except IdentityRejected as exc:
        raise _Problem(
            0, f"the genesis block is not signed by the channel's orderer ({exc})"
        ) from exc
    if ident.mspid != config.orderer_msp or not verify_signature(
        orderer.public_key, bytes(env.signature), bytes(env.payload)
    ):
        raise _Problem(0, "the genesis configuration's signature does not verify")
    problem = _check_block_signature(block, membership)
    if problem:
        raise _Problem(0, problem)
    return config, bytes(row[0])


def _replay(
    rows: Iterator[tuple[int, bytes, bytes]],
    config: ChannelConfig,
    genesis_hash: bytes,
    jobs: int,
    state: validation.MemoryState,
    counts: dict[str, int],
    total: int,
    progress: Callable[[int, int], None] | None,
) -> tuple[dict[str, tuple[int, int, int]], list[tuple[int, int, str, str, str, bytes]]]:
    expected_txs: dict[str, tuple[int, int, int]] = {}
    events: list[tuple[int, int, str, str, str, bytes]] = []
    previous = genesis_hash
    expected_number = 1
    for number, stored_hash, block_bytes, problem, checks in _checked_blocks(
        rows, config.to_json(), jobs
    ):
        block = common_pb2.Block.FromString(block_bytes)
        previous = _check_header(block, number, expected_number, previous, stored_hash)
        if problem:
            raise _Problem(number, f"block {number}: {problem}")
        flags = bytes(block.metadata.metadata[common_pb2.TRANSACTIONS_FILTER])
        if len(flags) != len(checks):
            raise _Problem(
                number, f"block {number} has {len(checks)} transactions but {len(flags)} flags"
            )
        for idx, check in enumerate(checks):
            code = _revalidate(check, number, idx, config, state, expected_txs, events)
            tx_id = check[0]
            if code != flags[idx]:
                raise _Problem(
                    number,
                    f"block {number}, transaction {idx} ({tx_id[:12]}…) is recorded {code_name(flags[idx])} "
                    f"but re-validates as {code_name(code)}",
                )
            if tx_id and tx_id not in expected_txs:
                expected_txs[tx_id] = (number, idx, code)
            counts["tx"] += 1
            counts["valid" if code == validation.VALID else "invalid"] += 1
        expected_number = number + 1
        if progress is not None:
            progress(number + 1, total)
    return expected_txs, events


def _check_header(
    block: common_pb2.Block, number: int, expected_number: int, previous: bytes, stored: bytes
) -> bytes:
    """The block's place in the chain and its hashes; returns its header hash."""
    if number != expected_number or block.header.number != number:
        raise _Problem(expected_number, f"block {expected_number} is missing or out of order")
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


def _revalidate(
    check: TxCheck,
    number: int,
    idx: int,
    config: ChannelConfig,
    state: validation.MemoryState,
    expected_txs: dict[str, tuple[int, int, int]],
    events: list[tuple[int, int, str, str, str, bytes]],
) -> int:
    """The validation code the replay gives one transaction, applying its writes (and
    keeping its event) when it is valid."""
    tx_id, code, results, event, _creator = check
    if tx_id in expected_txs:
        return validation.code("DUPLICATE_TXID")
    if code != validation.VALID:
        return code
    kv = read_kvrwset(results, config.chaincode)
    code = validation.check_mvcc(kv, state)
    if code == validation.VALID:
        state.apply(kv, number, idx)
        if event is not None:
            events.append((number, idx, tx_id, *event))
    return code


def _compare_state(conn: sqlite3.Connection, state: validation.MemoryState) -> None:
    stored = conn.execute("SELECT key, value, block, txn FROM state ORDER BY key")
    expected = iter(state.items())
    exp = next(expected, None)
    for key, value, block, txn in stored:
        if exp is not None and exp[0] < key:
            raise _Problem(
                exp[1][1], f"world state lacks key {_readable(exp[0])} written in block {exp[1][1]}"
            )
        if exp is None or exp[0] != key:
            raise _Problem(
                int(block),
                f"world state has key {_readable(key)} that no valid transaction wrote "
                f"(it claims block {block})",
            )
        exp_value, exp_block, exp_txn = exp[1]
        if bytes(value) != exp_value or (block, txn) != (exp_block, exp_txn):
            raise _Problem(
                exp_block,
                f"world state differs from the replay at key {_readable(key)} "
                f"(last written in block {exp_block})",
            )
        exp = next(expected, None)
    if exp is not None:
        raise _Problem(
            exp[1][1], f"world state lacks key {_readable(exp[0])} written in block {exp[1][1]}"
        )


def _compare_index(
    conn: sqlite3.Connection,
    expected_txs: dict[str, tuple[int, int, int]],
    expected_events: Sequence[tuple[int, int, str, str, str, bytes]],
) -> None:
    for tx_id, block, idx, code in conn.execute(
        "SELECT tx_id, block, idx, code FROM txs WHERE block > 0"
    ):
        want = expected_txs.pop(tx_id, None)
        if want != (block, idx, code):
            raise _Problem(
                int(block),
                f"the transaction index disagrees with block {block} about {tx_id[:12]}…",
            )
    if expected_txs:
        tx_id, (block, _, _) = next(iter(expected_txs.items()))
        raise _Problem(block, f"the transaction index lacks {tx_id[:12]}… of block {block}")
    stored = [
        (int(b), int(i), t, c, n, bytes(p))
        for b, i, t, c, n, p in conn.execute(
            "SELECT block, idx, tx_id, chaincode, name, payload FROM events ORDER BY block, idx"
        )
    ]
    for expected_event, stored_event in zip(expected_events, stored, strict=False):
        if expected_event != stored_event:
            raise _Problem(
                expected_event[0], f"the event index disagrees with block {expected_event[0]}"
            )
    if len(stored) != len(expected_events):
        block = (stored or expected_events)[-1][0] if (stored or expected_events) else 0
        raise _Problem(
            int(block), "the event index has a different number of events than the blocks"
        )


def _readable(key: str) -> str:
    return "~".join(p for p in key.split("\x00") if p)
