"""Rollback evidence: each member's signed record of the newest block it has seen.

A ledger that is cut back to an earlier block and rebuilt consistently (blocks, transactions,
events and state replayed) still verifies: nothing inside the file says it was longer. A
:class:`LedgerCheckpoint` is that evidence outside the file. Each identity keeps one per
channel in a folder its caller chooses (fedspec uses the member's home:
``<home>/checkpoints/<channel>/<msp>/<name>.json``): the height it saw, the hash of the last
block, and the block's state commitment when the backend records one. It is signed with the
identity's own key, the same ECDSA P-256 signer the gateway signs proposals with, and checked
against the identity's certificate when loaded, so a checkpoint lowered by someone without the
key is refused, not trusted.

:meth:`CheckpointedLedger.check` reads the chain through the Gateway (``qscc``
``GetChainInfo``, and ``GetBlockByNumber`` only when the head has moved), compares it with the
checkpoint and advances the checkpoint, never lowering it; :func:`compare` reports a ledger
shorter than, or diverging from, a checkpoint as :class:`LedgerRolledBackError`
(``LEDGER_ROLLED_BACK``) naming the block. Both backends answer these queries alike.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from fedspec.fileio import write_atomic
from ledger_client.errors import CheckpointInvalidError, LedgerError, LedgerRolledBackError
from ledger_client.facade import FedspecLedger
from ledger_client.gateway import Contract
from ledger_client.identity import verify_signature
from ledger_client.records import ChainInfo, Submitted

FORMAT = "fedspec-checkpoint-v1"
FOLDER = "checkpoints"  # under a member's home


@dataclass(frozen=True)
class LedgerCheckpoint:
    channel: str
    identity: str  # ``<msp>/<common name>``
    height: int  # blocks seen: the last one is ``height - 1``
    block_hash: str  # hex header hash of block ``height - 1``
    commitment: str  # hex state commitment in that block's metadata, "" when none
    signature: str = ""  # hex DER ECDSA signature over :meth:`payload`

    @property
    def block(self) -> int:
        return self.height - 1

    def payload(self) -> bytes:
        """What is signed: canonical (sorted-key, compact) JSON of every field but the
        signature, with the format name."""
        fields = {k: v for k, v in asdict(self).items() if k != "signature"}
        fields["format"] = FORMAT
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()

    def signed(self, sign: Callable[[bytes], bytes]) -> LedgerCheckpoint:
        """``sign`` hashes and signs a message, as :meth:`~ledger_client.gateway.Gateway.sign`."""
        return replace(self, signature=sign(self.payload()).hex())

    def verifies(self, certificate_pem: bytes) -> bool:
        # Deferred: loads cryptography's X.509 support only when used.
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric import ec

        try:
            key = x509.load_pem_x509_certificate(certificate_pem).public_key()
            signature = bytes.fromhex(self.signature)
        except ValueError:
            return False
        if not isinstance(key, ec.EllipticCurvePublicKey):
            return False
        return verify_signature(key, signature, self.payload())

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    @classmethod
    def from_json(cls, doc: Any) -> LedgerCheckpoint:
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} document")
        height = doc["height"]
        if isinstance(height, bool) or not isinstance(height, int) or height < 1:
            raise ValueError("height must be a positive integer")
        text = {k: doc[k] for k in ("channel", "identity", "block_hash", "commitment", "signature")}
        if not all(isinstance(v, str) for v in text.values()):
            raise ValueError("channel, identity, hashes and signature must be strings")
        return cls(height=height, **text)


def checkpoint_path(folder: Path, channel: str, identity: str) -> Path:
    """``<folder>/<channel>/<msp>/<name>.json`` for the identity ``<msp>/<name>``."""
    msp, _, name = identity.partition("/")
    return Path(folder) / channel / msp / f"{name}.json"


def load_checkpoint(path: Path, certificate_pem: bytes) -> LedgerCheckpoint | None:
    """The checkpoint at ``path``, ``None`` when there is none; refused
    (:class:`CheckpointInvalidError`) when unreadable or not signed by ``certificate_pem``."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CheckpointInvalidError(f"cannot read the checkpoint {path}: {exc}") from exc
    try:
        checkpoint = LedgerCheckpoint.from_json(json.loads(text))
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointInvalidError(f"the checkpoint {path} is malformed: {exc}") from exc
    if not checkpoint.verifies(certificate_pem):
        raise CheckpointInvalidError(
            f"the checkpoint {path} is not signed by {checkpoint.identity}'s certificate: "
            "not trusted (it may have been altered; remove it only if the identity was re-issued)",
            path=str(path),
        )
    return checkpoint


def save_checkpoint(path: Path, checkpoint: LedgerCheckpoint) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(
        path, json.dumps(checkpoint.to_json(), indent=2, sort_keys=True) + "\n", mode=0o600
    )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One reader-comparer-writer of an identity's checkpoint at a time (across processes), so
    that a slower process never overwrites a newer checkpoint with an older one."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def block_hash(block: Any) -> str:
    """Hex header hash of a ``common.Block`` (Fabric's formula)."""
    # Deferred: loads fabric_protos only when used.
    from ledger_client.embedded.blocks import header_hash

    return header_hash(block.header).hex()


def block_commitment(block: Any) -> str:
    """Hex state commitment in the block's ``COMMIT_HASH`` metadata slot, "" when it has none
    (Fabric peers fill it only where configured). The slot holds a ``common.Metadata`` whose
    value is the commitment, as Fabric writes it; raw bytes are accepted too."""
    # Deferred: loads fabric_protos only when used.
    from fabric_protos.common import common_pb2
    from google.protobuf.message import DecodeError

    slots = block.metadata.metadata
    if len(slots) <= common_pb2.COMMIT_HASH:
        return ""
    raw = bytes(slots[common_pb2.COMMIT_HASH])
    if not raw:
        return ""
    try:
        wrapped = common_pb2.Metadata.FromString(raw)
    except DecodeError:
        return raw.hex()
    return bytes(wrapped.value).hex() if wrapped.value else raw.hex()


class _Chain:
    """The chain as one command sees it: ``GetChainInfo`` once, blocks fetched on demand and
    kept for this check only."""

    def __init__(self, ledger: FedspecLedger, info: ChainInfo | None = None) -> None:
        self.ledger = ledger
        self.info = info if info is not None else ledger.chain_info()
        self._blocks: dict[int, Any] = {}

    def block(self, number: int) -> Any:
        if number not in self._blocks:
            self._blocks[number] = self.ledger.block(number)
        return self._blocks[number]

    def has_block(self, number: int) -> bool:
        return number in self._blocks

    def hash_of(self, number: int) -> str:
        """Hex hash of block ``number`` (< height), from the chain info where it says."""
        if number == self.info.height - 1:
            return self.info.current_block_hash
        if number == self.info.height - 2 and self.info.previous_block_hash:
            return self.info.previous_block_hash
        return block_hash(self.block(number))


def compare(
    checkpoint: LedgerCheckpoint, ledger: FedspecLedger, *, info: ChainInfo | None = None
) -> list[LedgerRolledBackError]:
    """What is wrong with the ledger against a member's checkpoint: empty when the ledger
    holds the checkpoint's block unchanged. ``info`` saves the ``GetChainInfo`` call when the
    caller has made it."""
    return _compare(checkpoint, _Chain(ledger, info))


def _compare(checkpoint: LedgerCheckpoint, chain: _Chain) -> list[LedgerRolledBackError]:
    n = checkpoint.block
    height = chain.info.height
    if height < checkpoint.height:
        what = (
            f"is shorter (height {height}) than {checkpoint.identity}'s checkpoint (height "
            f"{checkpoint.height}, block {n} {checkpoint.block_hash[:16]}…): blocks were removed"
        )
    elif (found := chain.hash_of(n)) != checkpoint.block_hash:
        what = (
            f"diverges from {checkpoint.identity}'s checkpoint at block {n}: its hash is "
            f"{found[:16]}…, the checkpoint recorded {checkpoint.block_hash[:16]}…"
        )
    elif (
        checkpoint.commitment
        and chain.has_block(n)  # compared whenever the block was read
        and (commitment := block_commitment(chain.block(n)))
        and commitment != checkpoint.commitment
    ):
        what = (
            f"diverges from {checkpoint.identity}'s checkpoint at block {n}: its state "
            f"commitment is {commitment[:16]}…, the checkpoint recorded "
            f"{checkpoint.commitment[:16]}…"
        )
    else:
        return []
    return [
        LedgerRolledBackError(
            f"the ledger {what}",
            block=n,
            identity=checkpoint.identity,
            ledger_height=height,
            checkpoint_height=checkpoint.height,
        )
    ]


def advance(
    checkpoint: LedgerCheckpoint | None,
    chain_info: ChainInfo,
    head: Any,
    *,
    channel: str,
    identity: str,
    sign: Callable[[bytes], bytes],
) -> LedgerCheckpoint:
    """The checkpoint at the head (``head`` is block ``height - 1``), signed; the given one
    when it is already as high (monotonic: never lowered)."""
    if checkpoint is not None and checkpoint.height >= chain_info.height:
        return checkpoint
    return LedgerCheckpoint(
        channel=channel,
        identity=identity,
        height=chain_info.height,
        block_hash=chain_info.current_block_hash,
        commitment=block_commitment(head),
    ).signed(sign)


class CheckpointedLedger(FedspecLedger):
    """The facade, keeping its identity's checkpoint in ``folder``: :meth:`check` when opened,
    and again after each write it commits (the member has then seen its own block)."""

    def __init__(self, contract: Contract, folder: Path, *, retries: int = 8) -> None:
        super().__init__(contract, retries=retries)
        self.folder = Path(folder)
        self.path = checkpoint_path(self.folder, contract.network.name, self.caller)

    def submit(self, name: str, *args: str) -> Submitted:
        done = super().submit(name, *args)
        self.check()
        return done

    def check(self) -> LedgerCheckpoint:
        """Compare the ledger with this identity's checkpoint, then advance it to the head.
        Raises :class:`LedgerRolledBackError` (the checkpoint is left as it was) or
        :class:`CheckpointInvalidError`."""
        gateway = self.contract.gateway
        with _locked(self.path):
            # The checkpoint is read before the chain: the chain only grows meanwhile.
            checkpoint = load_checkpoint(self.path, gateway.identity.credentials)
            chain = _Chain(self)
            if checkpoint is not None:
                if (checkpoint.channel, checkpoint.identity) != (
                    self.contract.network.name,
                    self.caller,
                ):
                    raise CheckpointInvalidError(
                        f"the checkpoint {self.path} is for {checkpoint.identity} on channel "
                        f"{checkpoint.channel}, not this identity and channel"
                    )
                problems = _compare(checkpoint, chain)
                if problems:
                    raise problems[0]
                if checkpoint.height >= chain.info.height:
                    return checkpoint
            updated = advance(
                checkpoint,
                chain.info,
                chain.block(chain.info.height - 1),
                channel=self.contract.network.name,
                identity=self.caller,
                sign=gateway.sign,
            )
            save_checkpoint(self.path, updated)
            return updated


def checkpoints_in(folder: Path) -> list[Path]:
    """Every checkpoint file under ``folder`` (``<channel>/<msp>/<name>.json``)."""
    return sorted(Path(folder).glob("*/*/*.json"))


def check_folder(
    folder: Path, ledger: FedspecLedger, certificate: Callable[[str], bytes]
) -> list[LedgerError]:
    """Compare the ledger with every checkpoint of its channel in ``folder`` (a member's home
    may hold several identities'): problems, each naming the block. ``certificate`` gives an
    identity's PEM certificate (from the consortium folder, not from the checkpoint)."""
    channel = ledger.contract.network.name
    chain: _Chain | None = None
    problems: list[LedgerError] = []
    for path in checkpoints_in(folder):
        if path.parent.parent.name != channel:
            continue
        identity = f"{path.parent.name}/{path.stem}"
        try:
            checkpoint = load_checkpoint(path, certificate(identity))
        except LedgerError as exc:
            problems.append(exc)
            continue
        if checkpoint is None:
            continue
        if (checkpoint.channel, checkpoint.identity) != (channel, identity):
            problems.append(
                CheckpointInvalidError(
                    f"the checkpoint {path} names {checkpoint.identity} on channel "
                    f"{checkpoint.channel}, not the identity and channel of its path"
                )
            )
            continue
        chain = chain if chain is not None else _Chain(ledger)
        problems.extend(_compare(checkpoint, chain))
    return problems


__all__ = [
    "FOLDER",
    "FORMAT",
    "CheckpointInvalidError",
    "CheckpointedLedger",
    "LedgerCheckpoint",
    "LedgerRolledBackError",
    "advance",
    "block_commitment",
    "block_hash",
    "check_folder",
    "checkpoint_path",
    "checkpoints_in",
    "compare",
    "load_checkpoint",
    "save_checkpoint",
]
