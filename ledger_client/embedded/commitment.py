"""The state commitment every block carries: what the world state must be after the block.

Two hashes, signed by the orderer with the block (they are the ``value`` of the block's
``SIGNATURES`` metadata, which the orderer's signature covers, and are repeated in Fabric's
``COMMIT_HASH`` slot):

* ``state_hash`` — an order-independent multiset hash of the whole world state after the
  block: ``H = Σ_k sha256(len ‖ key ‖ len ‖ value ‖ block ‖ txn) mod 2²⁵⁶`` over every row
  (key, value, version). A commit updates it in O(writes): subtract the old row's term, add
  the new one's. Anyone holding the state table can recompute it with one scan.
* ``write_chain`` — Fabric's commit hash: a hash chained over every block's validation flags
  and the write sets of its valid transactions, so two ledgers that agree on it agree on
  every state change ever applied.
* ``flags_hash`` — sha256 of the block's validation flags, so the flags (which Fabric leaves
  unsigned) are covered by the orderer's signature too.

This module is pure: no SQLite, no protobuf parsing beyond what it is handed.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

MOD = 1 << 256
SIZE = 32
_COMMITMENT_BYTES = 3 * SIZE
_I, _Q, _QQ = struct.Struct(">I"), struct.Struct(">Q"), struct.Struct(">QQ")


def state_term(key: str, value: bytes, block: int, txn: int) -> int:
    """One world-state row's term of the state hash."""
    k = key.encode()
    digest = hashlib.sha256(
        _I.pack(len(k)) + k + _Q.pack(len(value)) + value + _QQ.pack(block, txn)
    ).digest()
    return int.from_bytes(digest, "big")


def checked_term(key: object, value: object, block: object, txn: object) -> int:
    """:func:`state_term` of a row read from SQLite, refusing values of the wrong type (an
    edited row may hold TEXT or REAL where the ledger writes BLOB and INTEGER)."""
    if (
        not isinstance(key, str)
        or not isinstance(value, bytes)
        or type(block) is not int
        or type(txn) is not int
        or block < 0
        or txn < 0
    ):
        raise ValueError(
            f"state row {key!r} has a column of the wrong type "
            f"(value {type(value).__name__}, block {type(block).__name__}, "
            f"txn {type(txn).__name__})"
        )
    return state_term(key, value, block, txn)


def state_hash(rows: Iterable[tuple[Any, Any, Any, Any]]) -> int:
    """The state hash of (key, value, block, txn) rows; ``ValueError`` on a malformed row.

    The open check runs this over the whole state table, so the loop is :func:`state_term`
    inlined (about twice as fast as calling it per row)."""
    total = 0
    sha, pack_i, pack_q, pack_qq = hashlib.sha256, _I.pack, _Q.pack, _QQ.pack
    from_bytes = int.from_bytes
    for key, value, block, txn in rows:
        if (
            type(key) is not str
            or type(value) is not bytes
            or type(block) is not int
            or type(txn) is not int
            or block < 0
            or txn < 0
        ):
            checked_term(key, value, block, txn)  # raises, naming the row
        k = key.encode()
        total += from_bytes(
            sha(pack_i(len(k)) + k + pack_q(len(value)) + value + pack_qq(block, txn)).digest(),
            "big",
        )
    return total % MOD


def to_bytes(h: int) -> bytes:
    return (h % MOD).to_bytes(SIZE, "big")


def next_write_chain(
    previous: bytes,
    number: int,
    flags: bytes,
    valid_writes: Iterable[tuple[int, Iterable[tuple[str, bytes | None]]]],
) -> bytes:
    """The commit hash of block ``number``: the previous one, the block's flags, and each
    valid transaction's writes ((key, value) pairs, ``None`` for a delete) in block order."""
    h = hashlib.sha256()
    h.update(previous)
    h.update(struct.pack(">QI", number, len(flags)))
    h.update(flags)
    for idx, writes in valid_writes:
        h.update(struct.pack(">I", idx))
        for key, value in writes:
            k = key.encode()
            h.update(struct.pack(">I", len(k)) + k)
            if value is None:
                h.update(b"\x00")
            else:
                h.update(b"\x01" + struct.pack(">Q", len(value)) + value)
        h.update(b"\xff")
    return h.digest()


@dataclass(frozen=True)
class Commitment:
    state_hash: bytes
    write_chain: bytes
    flags_hash: bytes

    def to_bytes(self) -> bytes:
        return self.state_hash + self.write_chain + self.flags_hash

    @classmethod
    def from_bytes(cls, data: bytes) -> Commitment:
        if len(data) != _COMMITMENT_BYTES:
            raise ValueError(
                f"a state commitment is {_COMMITMENT_BYTES} bytes, this one is {len(data)}"
            )
        return cls(data[:SIZE], data[SIZE : 2 * SIZE], data[2 * SIZE :])

    @property
    def state(self) -> int:
        return int.from_bytes(self.state_hash, "big")


def genesis_commitment(flags: bytes = b"\x00") -> Commitment:
    """Block 0's commitment: an empty world state, a chain over the config transaction's flag."""
    return Commitment(
        to_bytes(0), next_write_chain(bytes(SIZE), 0, flags, []), hashlib.sha256(flags).digest()
    )
