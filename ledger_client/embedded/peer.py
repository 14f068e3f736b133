"""The embedded ledger: a Fabric Gateway service in this process, over one SQLite file.

It does what a Fabric network does for a transaction, on one machine:

* **endorse** — check the signed proposal (creator identity against the channel's CAs, the
  signature, the transaction id, the clock), simulate the contract on committed state, and
  have peers of enough organizations to satisfy the policy sign the result;
* **submit** — check the client's signature on the endorsed transaction (as an orderer checks
  a channel writer), refuse replayed transaction ids, and queue it for ordering;
* **commit** — a committer thread cuts a block from whatever is queued (group commit), checks
  every transaction again (signatures, endorsement policy, MVCC and phantom reads), signs the
  block as the orderer with its state commitment, and appends it and the valid writes in one
  SQLite transaction.

The state is checked against the signed blocks: on open (the whole state table against the
last block's signed state commitment), and at every simulation (each row read against the
write its version names). An edit of the file is refused with ``LEDGER_TAMPERED``, never
endorsed on or served.

Peer and orderer identities come from the consortium folder; reading and verifying a ledger
needs only the file (its genesis block names the CAs it trusts).
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2
from fabric_protos.msp import identities_pb2
from fabric_protos.peer import chaincode_pb2, proposal_pb2, proposal_response_pb2

from chaincode import keys
from chaincode.contract import invoke
from chaincode.errors import ChaincodeError, InvalidArgument
from fedspec.errors import ErrorCode
from ledger_client.consortium import Consortium
from ledger_client.embedded import validation
from ledger_client.embedded.blocks import BuiltBlock, build_block
from ledger_client.embedded.channel import (
    ChannelConfig,
    IdentityRejected,
    Member,
    Membership,
    utc_now,
)
from ledger_client.embedded.commitment import (
    MOD,
    Commitment,
    checked_term,
    next_write_chain,
    state_hash,
    state_term,
    to_bytes,
)
from ledger_client.embedded.genesis import block_signer
from ledger_client.embedded.integrity import BlockIndex
from ledger_client.embedded.reconfig import (
    CONFIG_BLOCKS,
    ConfigUpdate,
    change_key,
    config_envelope,
    union,
)
from ledger_client.embedded.simulator import (
    SimulationStub,
    SqlReader,
    TamperedState,
    drive,
    read_kvrwset,
)
from ledger_client.embedded.store import Store
from ledger_client.errors import LedgerFileError
from ledger_client.identity import MspIdentity, sha256, verify_signature
from ledger_client.protocol import (
    ParsedProposal,
    ParsedTransaction,
    build_envelope_payload,
    parse_proposal,
    parse_transaction,
    transaction_id,
)
from ledger_client.service import GatewayServiceError

log = logging.getLogger(__name__)
POLL_S = 0.02  # how often other processes' commits are looked for while waiting


@dataclass
class _Pending:
    envelope: bytes
    tx: ParsedTransaction
    creator: str
    # The membership the submit checked this transaction against (its creator's signature,
    # then each endorsement's), and the endorsements' result: (code, organizations whose
    # endorsement verifies). The committer reuses it only under that same membership.
    checked_by: Membership
    endorsed: tuple[int, set[str]]
    # The read/write set, parsed at submit too (None if it does not parse: the committer
    # then parses it again and fails as it always did).
    kv: kv_rwset_pb2.KVRWSet | None
    # Set by the committer once the block holding this transaction is written (or its
    # commit failed): a waiting client wakes for its own transaction, not for every block.
    done: threading.Event = field(default_factory=threading.Event)


class EmbeddedLedger:
    """A :class:`~ledger_client.service.GatewayService` backed by a local ledger file."""

    def __init__(
        self, path: Path | str, consortium: Consortium | None = None, *, synchronous: str = "FULL"
    ) -> None:
        self.path = Path(path)
        self.store = Store(self.path, synchronous=synchronous)
        genesis = (
            self.store.connection().execute("SELECT block FROM blocks WHERE number = 0").fetchone()
        )
        if genesis is None:
            raise LedgerFileError(f"{self.path} has no genesis block")
        self.config = config_of_genesis(bytes(genesis[0]))
        self.membership = Membership(self.config)
        self.consortium = consortium
        self._peers: dict[str, MspIdentity] = {}
        self._orderer: MspIdentity | None = None
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._queued: set[str] = set()
        self._done: dict[str, threading.Event] = {}  # tx id → its _Pending.done, while queued
        self._endorsers: dict[str, bytes] = {}  # msp id → its peer's serialized identity
        self._committed = threading.Condition()
        self._failures: dict[str, tuple[str, str]] = {}
        self._committer: threading.Thread | None = None
        self._closed = False
        self._lock = threading.Lock()
        self.index = BlockIndex(self.membership, self.config.chaincode)
        self._configs: list[ChannelConfig] = [self.config]  # genesis, then each update
        self._config_blocks: tuple[int, ...] = ()
        try:
            self._refresh_config(self.store.connection())
            self.check_state()
        except BaseException:
            self.store.close()
            raise

    # ------------------------------------------------------------------ integrity
    def check_state(self) -> int:
        """Recompute the state hash over the whole state table and compare it with the last
        block's signed commitment; returns the last block's number. A mismatch (an edited,
        added or deleted row) raises :class:`LedgerFileError` with code ``LEDGER_TAMPERED``."""
        with self.store.snapshot() as db:
            row = db.execute(
                "SELECT number, header_hash FROM blocks ORDER BY number DESC LIMIT 1"
            ).fetchone()
            number = int(row[0])
            try:
                commitment = self.index.commitment(db, number, bytes(row[1]))
                actual = state_hash(db.execute("SELECT key, value, block, txn FROM state"))
            except TamperedState as exc:
                raise _tampered_file(self.path, exc.block, exc.message) from None
            except ValueError as exc:
                raise _tampered_file(self.path, number, str(exc)) from None
        if to_bytes(actual) != commitment.state_hash:
            raise _tampered_file(
                self.path,
                number,
                f"the world state does not match the state commitment signed in block {number} "
                "(a row was edited, added or deleted)",
            )
        return number

    # ------------------------------------------------------------------ configuration
    def _refresh_config(self, db: sqlite3.Connection) -> None:
        """Follow configuration blocks appended since this process last looked (by any
        process sharing the file): each must be signed by an identity the configuration
        before it lets order, and be that configuration's successor."""
        row = db.execute("SELECT value FROM meta WHERE key = ?", (CONFIG_BLOCKS,)).fetchone()
        numbers = tuple(json.loads(bytes(row[0]))) if row else ()
        if numbers == self._config_blocks:
            return
        with self._lock:
            if numbers[: len(self._config_blocks)] != self._config_blocks:
                raise _tampered_file(
                    self.path, self._config_blocks[-1], "the list of configuration blocks changed"
                )
            for number in numbers[len(self._config_blocks) :]:
                found = db.execute(
                    "SELECT block FROM blocks WHERE number = ?", (number,)
                ).fetchone()
                problem = "is missing"
                if found is not None:
                    block = common_pb2.Block.FromString(bytes(found[0]))
                    update = ConfigUpdate(block, self.membership)
                    try:
                        problem = update.problem(self.config, self._change_cited(db, update))
                    except TamperedState as exc:
                        problem = f"cites a membership record that was edited ({exc.message})"
                if problem:
                    raise _tampered_file(
                        self.path, number, f"configuration block {number} {problem}"
                    )
                self._adopt(update.config, number)

    def _adopt(self, config: ChannelConfig, number: int) -> None:
        self.config = config
        self.membership = Membership(config)
        self._configs.append(config)
        self._config_blocks = (*self._config_blocks, number)
        # Blocks of the past stay verifiable: a removed member's peer signed some of them.
        self.index.trust(Membership(union(self._configs)))

    def apply_member_change(self, org: str) -> int:
        """Append the configuration block that applies ``org``'s approved membership change;
        returns its number. Refused (nothing written) unless the change is approved and not
        yet applied."""
        signer = self._orderer_identity()
        with self.store.write() as db:
            self._refresh_config(db)
            change = self._latest_change(db, org)
            try:
                if change is None:
                    raise ValueError(f"no membership change of {org} was ever proposed")
                new = self.config.with_change(change)
            except ValueError as exc:
                raise GatewayServiceError(ErrorCode.FAILED_PRECONDITION, str(exc)) from None
            number, previous = db.execute(
                "SELECT number, header_hash FROM blocks ORDER BY number DESC LIMIT 1"
            ).fetchone()
            tip = self.index.commitment(db, number, bytes(previous))
            number += 1
            envelope, tx_id, seconds = config_envelope(new, signer)
            flags = bytes([validation.VALID])
            commitment = Commitment(
                state_hash=tip.state_hash,
                write_chain=next_write_chain(tip.write_chain, number, flags, []),
                flags_hash=hashlib.sha256(flags).digest(),
            )
            built = build_block(
                number, bytes(previous), [envelope], [validation.VALID], signer, commitment
            )
            db.execute(
                "INSERT INTO blocks (number, header_hash, tx_count, block) VALUES (?, ?, 1, ?)",
                (number, built.header_hash, built.block_bytes),
            )
            db.execute(
                "INSERT INTO txs (tx_id, block, idx, code, function, creator, timestamp) VALUES (?, ?, 0, 0, 'config', ?, ?)",
                (tx_id, number, signer.id, seconds),
            )
            blocks = [*self._config_blocks, number]
            db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                (CONFIG_BLOCKS, json.dumps(blocks).encode()),
            )
        with self._lock:
            self._adopt(new, number)
        self.index.remember(number, built.header_hash, commitment, {})
        return int(number)

    def _change_cited(self, db: sqlite3.Connection, update: ConfigUpdate) -> dict[str, Any] | None:
        """The approved membership change a configuration update cites."""
        key = change_key(update.config)
        return None if key is None else self._checked_change(db, key, key + "\x00")

    def _latest_change(self, db: sqlite3.Connection, org: str) -> dict[str, Any] | None:
        return self._checked_change(db, *keys.prefix_range("mchange", org))

    def _checked_change(
        self, db: sqlite3.Connection, start: str, end: str
    ) -> dict[str, Any] | None:
        """The last membership record in [start, end), checked against the block that wrote
        it: an edited record must not change the channel."""
        row = db.execute(
            "SELECT key, value, block, txn FROM state WHERE key >= ? AND key < ? "
            "ORDER BY key DESC LIMIT 1",
            (start, end),
        ).fetchone()
        if row is None:
            return None
        self.index.check(db, *row)
        record: dict[str, Any] = json.loads(bytes(row[1]))
        return record

    @property
    def channel_organizations(self) -> dict[str, list[str]]:
        """The current configuration's member organizations and their root certificates."""
        self._refresh_config(self.store.connection())
        return dict(self.config.organizations)

    # ------------------------------------------------------------------ identities
    def _peer(self, msp_id: str) -> MspIdentity:
        if msp_id not in self._peers:
            if self.consortium is None:
                raise GatewayServiceError(
                    "UNAVAILABLE", "this ledger was opened read-only (no consortium folder)"
                )
            org = self.consortium.org(msp_id)
            self._peers[msp_id] = self.consortium.identity(f"{org.name}/{org.peers[0]}")
        return self._peers[msp_id]

    def _orderer_identity(self) -> MspIdentity:
        if self._orderer is None:
            if self.consortium is None:
                raise GatewayServiceError(
                    "UNAVAILABLE", "this ledger was opened read-only (no consortium folder)"
                )
            self._orderer = block_signer(self.consortium, self.config)
        return self._orderer

    def _identify(self, msp_id: str, cert: bytes, *, at: float) -> Member:
        self._refresh_config(self.store.connection())
        try:
            member = self.membership.identify(msp_id, cert)
            member.check_time(at)
        except IdentityRejected as exc:
            raise GatewayServiceError("ACCESS_DENIED", str(exc)) from exc
        if msp_id not in self.config.organizations:
            raise GatewayServiceError("ACCESS_DENIED", f"{msp_id} is not a member organization")
        return member

    def _check_signed_request(self, raw: bytes, signature: bytes, identity_bytes: bytes) -> None:
        try:
            ident = identities_pb2.SerializedIdentity.FromString(identity_bytes)
        except Exception as exc:
            raise GatewayServiceError(ErrorCode.INVALID_ARGUMENT, "malformed identity") from exc
        member = self._identify(ident.mspid, bytes(ident.id_bytes), at=utc_now())
        if not verify_signature(member.public_key, signature, raw):
            raise GatewayServiceError("BAD_SIGNATURE", "the request's signature does not verify")

    # ------------------------------------------------------------------ proposals
    def _check_proposal(self, signed: proposal_pb2.SignedProposal) -> tuple[ParsedProposal, Member]:
        try:
            parsed = parse_proposal(bytes(signed.proposal_bytes))
        except ValueError as exc:
            raise GatewayServiceError(ErrorCode.INVALID_ARGUMENT, str(exc)) from exc
        if parsed.header_type != common_pb2.ENDORSER_TRANSACTION:
            raise GatewayServiceError(ErrorCode.INVALID_ARGUMENT, "not an endorser transaction")
        if parsed.channel_id != self.config.channel:
            raise GatewayServiceError(
                ErrorCode.NOT_FOUND, f"channel {parsed.channel_id!r} not found"
            )
        if parsed.chaincode not in (self.config.chaincode, "qscc"):
            raise GatewayServiceError(
                ErrorCode.NOT_FOUND, f"chaincode {parsed.chaincode!r} not found"
            )
        if parsed.tx_id != transaction_id(parsed.nonce, parsed.creator):
            raise GatewayServiceError(
                "BAD_PROPOSAL_TXID", "the transaction id is not sha256(nonce ‖ creator)"
            )
        ts = parsed.timestamp.seconds + parsed.timestamp.nanos / 1e9
        if abs(ts - utc_now()) > self.config.max_clock_skew_s:
            raise GatewayServiceError(
                "BAD_TIMESTAMP", "the proposal's timestamp is too far from the peer's clock"
            )
        member = self._identify(parsed.msp_id, parsed.cert_pem, at=ts)
        if not verify_signature(member.public_key, bytes(signed.signature), parsed.proposal_bytes):
            raise GatewayServiceError("BAD_SIGNATURE", "the proposal's signature does not verify")
        return parsed, member

    def _simulate(self, parsed: ParsedProposal) -> tuple[SimulationStub, bytes]:
        index = self.index
        with self.store.snapshot() as db:

            def check(key: str, value: object, block: object, txn: object) -> None:
                index.check(db, key, value, block, txn)

            stub = SimulationStub(
                SqlReader(db),
                msp_id=parsed.msp_id,
                cert_pem=parsed.cert_pem,
                tx_id=parsed.tx_id,
                timestamp=parsed.timestamp,
                chaincode=self.config.chaincode,
                check=check,
            )
            try:
                args = [a.decode("utf-8") for a in parsed.args]
                result = drive(invoke(stub, parsed.function, args))
            except UnicodeDecodeError:
                raise _chaincode_failure(InvalidArgument("arguments must be UTF-8 text")) from None
            except ChaincodeError as exc:
                if stub.tampered is not None:
                    raise _tampered_service(stub.tampered) from None
                raise _chaincode_failure(exc) from None
            except TamperedState as exc:
                raise _tampered_service(exc) from None
            if stub.tampered is not None:  # the contract swallowed it: still never served
                raise _tampered_service(stub.tampered)
        return stub, result

    # ------------------------------------------------------------------ Gateway service
    def evaluate(
        self, request: gateway_pb2.EvaluateRequest, timeout: float
    ) -> gateway_pb2.EvaluateResponse:
        # One read transaction for the configuration check and the simulation (see endorse).
        with self.store.snapshot():
            parsed, _ = self._check_proposal(request.proposed_transaction)
            if parsed.chaincode == "qscc":
                result = self._qscc(parsed)
            else:
                _, result = self._simulate(parsed)
        return gateway_pb2.EvaluateResponse(
            result=proposal_response_pb2.Response(status=200, payload=result)
        )

    def endorse(
        self, request: gateway_pb2.EndorseRequest, timeout: float
    ) -> gateway_pb2.EndorseResponse:
        # The configuration check (in _identify), the duplicate-id check and the simulation
        # read one snapshot: one SQLite read transaction instead of three, and one statement
        # fewer. A fresh read transaction costs ~5 µs alone but ~30 µs amid the committer's
        # blocks (the connection's page cache is re-validated). The checks are the same.
        with self.store.snapshot():
            parsed, member = self._check_proposal(request.proposed_transaction)
            if parsed.chaincode == "qscc":
                raise GatewayServiceError(ErrorCode.INVALID_ARGUMENT, "qscc answers queries only")
            if self._known_tx(parsed.tx_id):
                raise GatewayServiceError(
                    "DUPLICATE_TXID", f"transaction {parsed.tx_id} was already submitted"
                )
            stub, result = self._simulate(parsed)
        action = proposal_pb2.ChaincodeAction(
            results=stub.rwset_bytes(),
            events=stub.event.SerializeToString() if stub.event is not None else b"",
            response=proposal_response_pb2.Response(status=200, payload=result),
            chaincode_id=chaincode_pb2.ChaincodeID(name=self.config.chaincode),
        )
        prp = proposal_response_pb2.ProposalResponsePayload(
            proposal_hash=parsed.proposal_hash(), extension=action.SerializeToString()
        ).SerializeToString()
        endorsements = []
        for msp_id in self._endorsing_orgs(member.msp_id, list(request.endorsing_organizations)):
            peer = self._peer(msp_id)
            endorser = self._endorsers.get(msp_id)
            if endorser is None:
                endorser = self._endorsers[msp_id] = peer.identity.serialize()
            endorsements.append(
                proposal_response_pb2.Endorsement(
                    endorser=endorser, signature=peer.signer(sha256(prp + endorser))
                )
            )
        payload = build_envelope_payload(parsed, prp, endorsements)
        return gateway_pb2.EndorseResponse(
            prepared_transaction=common_pb2.Envelope(payload=payload)
        )

    def _qscc(self, parsed: ParsedProposal) -> bytes:
        """Fabric's query system chaincode, for the calls tools use on either backend."""
        args = [a.decode("utf-8", "replace") for a in parsed.args]
        conn = self.store.connection()
        if parsed.function == "GetChainInfo" and args[:1] == [self.config.channel]:
            rows = conn.execute(
                "SELECT number, header_hash FROM blocks ORDER BY number DESC LIMIT 2"
            ).fetchall()
            # Deferred: loads fabric_protos only when used.
            from fabric_protos.common import ledger_pb2

            info = ledger_pb2.BlockchainInfo(
                height=rows[0][0] + 1,
                currentBlockHash=bytes(rows[0][1]),
                previousBlockHash=bytes(rows[1][1]) if len(rows) > 1 else b"",
            )
            return bytes(info.SerializeToString())
        if (
            parsed.function == "GetBlockByNumber"
            and len(args) == 2
            and args[0] == self.config.channel
        ):
            row = conn.execute(
                "SELECT block FROM blocks WHERE number = ?",
                (int(args[1]) if args[1].isdigit() else -1,),
            ).fetchone()
            if row is None:
                raise GatewayServiceError(ErrorCode.NOT_FOUND, f"block {args[1]} not found")
            return bytes(row[0])
        if (
            parsed.function == "GetTransactionByID"
            and len(args) == 2
            and args[0] == self.config.channel
        ):
            # Deferred: loads fabric_protos only when used.
            from fabric_protos.peer import transaction_pb2

            row = conn.execute(
                "SELECT block, idx, code FROM txs WHERE tx_id = ?", (args[1],)
            ).fetchone()
            if row is None:
                raise GatewayServiceError(ErrorCode.NOT_FOUND, f"transaction {args[1]} not found")
            block = common_pb2.Block.FromString(
                conn.execute("SELECT block FROM blocks WHERE number = ?", (row[0],)).fetchone()[0]
            )
            env = common_pb2.Envelope.FromString(block.data.data[row[1]])
            return bytes(
                transaction_pb2.ProcessedTransaction(
                    transactionEnvelope=env, validationCode=row[2]
                ).SerializeToString()
            )
        raise GatewayServiceError(
            ErrorCode.INVALID_ARGUMENT, f"qscc does not answer {parsed.function}{tuple(args)}"
        )

    def _endorsing_orgs(self, creator_org: str, requested: list[str]) -> list[str]:
        orgs = sorted(self.config.organizations)
        if requested:
            unknown = sorted(set(requested) - set(orgs))
            if unknown:
                raise GatewayServiceError(
                    ErrorCode.INVALID_ARGUMENT, f"unknown endorsing organizations {unknown}"
                )
            return sorted(set(requested))
        # The creator's own organization first, as a Fabric gateway prefers its local peer;
        # only peers whose keys this home holds can sign here.
        ordered = [creator_org, *[o for o in orgs if o != creator_org]]
        own = set(self.consortium.own) if self.consortium is not None else set(orgs)
        usable = [o for o in ordered if o in own]
        needed = self.config.required_endorsements
        if len(usable) < needed:
            raise GatewayServiceError(
                ErrorCode.FAILED_PRECONDITION,
                f"the channel's {self.config.policy} policy needs {needed} organizations' "
                f"endorsements and this home holds the peers of {', '.join(sorted(own)) or 'none'}",
            )
        return usable[:needed]

    def submit(
        self, request: gateway_pb2.SubmitRequest, timeout: float
    ) -> gateway_pb2.SubmitResponse:
        envelope = request.prepared_transaction.SerializeToString()
        try:
            tx = parse_transaction(envelope)
        except ValueError as exc:
            raise GatewayServiceError(ErrorCode.INVALID_ARGUMENT, str(exc)) from exc
        if tx.tx_id != request.transaction_id or tx.channel_id != self.config.channel:
            raise GatewayServiceError(
                ErrorCode.INVALID_ARGUMENT, "the envelope does not match the request"
            )
        self._refresh_config(self.store.connection())
        membership = self.membership
        code, member = validation.check_creator(tx, membership)
        if code != validation.VALID or member is None:
            raise GatewayServiceError(
                "BAD_SIGNATURE", "the transaction is not signed by a member of the channel"
            )
        # The endorsements' signatures are verified here, in the submitting client's thread,
        # rather than in the one committer thread that every transaction of this process
        # waits for; the committer applies the policy to the result (see _signature_code).
        # A bad endorsement is not refused here: the transaction is still ordered and lands
        # in its block as ENDORSEMENT_POLICY_FAILURE, as on a Fabric peer.
        endorsed = validation.endorsing_orgs(tx, membership, membership.config)
        try:
            kv: kv_rwset_pb2.KVRWSet | None = read_kvrwset(tx.results, membership.config.chaincode)
        except Exception:  # protobuf's DecodeError: left to the committer, as before
            kv = None
        with self._lock:
            if self._known_tx(tx.tx_id):
                raise GatewayServiceError(
                    "DUPLICATE_TXID", f"transaction {tx.tx_id} was already submitted"
                )
            pending = _Pending(
                envelope,
                tx,
                f"{member.msp_id}/{member.common_name}",
                checked_by=membership,
                endorsed=endorsed,
                kv=kv,
            )
            self._queued.add(tx.tx_id)
            self._done[tx.tx_id] = pending.done
        self._start_committer()
        self._queue.put(pending)
        return gateway_pb2.SubmitResponse()

    def commit_status(
        self, request: gateway_pb2.SignedCommitStatusRequest, timeout: float
    ) -> gateway_pb2.CommitStatusResponse:
        inner = gateway_pb2.CommitStatusRequest.FromString(request.request)
        self._check_signed_request(
            bytes(request.request), bytes(request.signature), bytes(inner.identity)
        )
        deadline = time.monotonic() + timeout
        conn = self.store.connection()
        tx_id = inner.transaction_id
        while True:
            done = self._done.get(tx_id)
            if done is not None:
                # Queued in this process: the committer sets ``done`` after the block that
                # holds it is written (or its commit failed). Waiting on it instead of on
                # every block's notification spares each waiting client a wake-up and a
                # query per block — most of commit_status's cost under load.
                done.wait(max(0.0, deadline - time.monotonic()))
            row = conn.execute("SELECT code, block FROM txs WHERE tx_id = ?", (tx_id,)).fetchone()
            if row is not None:
                return gateway_pb2.CommitStatusResponse(result=row[0], block_number=row[1])
            failure = self._failures.get(tx_id)
            if failure is not None:
                raise GatewayServiceError(failure[0], f"the commit failed: {failure[1]}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GatewayServiceError(
                    "DEADLINE_EXCEEDED", f"transaction {tx_id} not committed in time"
                )
            if tx_id in self._done:
                continue  # woken early, e.g. by a close: look again
            # Another process's transaction (or one unknown here): poll for its commit.
            with self._committed:
                self._committed.wait(min(remaining, POLL_S))

    def chaincode_events(
        self, request: gateway_pb2.SignedChaincodeEventsRequest, timeout: float | None
    ) -> Iterator[gateway_pb2.ChaincodeEventsResponse]:
        inner = gateway_pb2.ChaincodeEventsRequest.FromString(request.request)
        self._check_signed_request(
            bytes(request.request), bytes(request.signature), bytes(inner.identity)
        )
        return self._event_stream(inner, timeout)

    def _event_stream(
        self, inner: gateway_pb2.ChaincodeEventsRequest, timeout: float | None
    ) -> Iterator[gateway_pb2.ChaincodeEventsResponse]:
        # Deferred: loads fabric_protos only when used.
        from fabric_protos.peer import chaincode_event_pb2

        position = inner.start_position
        if position.HasField("specified"):
            next_block = int(position.specified.number)
        elif position.HasField("oldest"):
            next_block = 0
        else:
            next_block = self.store.height()
        skip_until = inner.after_transaction_id or ""
        conn = self.store.connection()
        idle_since = time.monotonic()
        while not self._closed:
            rows = conn.execute(
                "SELECT block, idx, tx_id, chaincode, name, payload FROM events "
                "WHERE block >= ? AND chaincode = ? ORDER BY block, idx LIMIT 2000",
                (next_block, inner.chaincode_id),
            ).fetchall()
            height = self.store.height()
            by_block: dict[int, list[chaincode_event_pb2.ChaincodeEvent]] = {}
            for block, _, tx_id, chaincode, name, payload in rows:
                if skip_until:
                    if tx_id == skip_until:
                        skip_until = ""
                    continue
                by_block.setdefault(block, []).append(
                    chaincode_event_pb2.ChaincodeEvent(
                        chaincode_id=chaincode, tx_id=tx_id, event_name=name, payload=bytes(payload)
                    )
                )
            for block in sorted(by_block):
                yield gateway_pb2.ChaincodeEventsResponse(
                    events=by_block[block], block_number=block
                )
            if rows:
                next_block = max(next_block, rows[-1][0] + (0 if len(rows) == 2000 else 1))
                idle_since = time.monotonic()
                if len(rows) == 2000:
                    continue
            else:
                next_block = max(next_block, height)
            skip_until = ""
            if timeout is not None and time.monotonic() - idle_since >= timeout:
                return
            with self._committed:
                self._committed.wait(POLL_S * 5)

    def close(self) -> None:
        self._closed = True
        if self._committer is not None:
            self._queue.put(None)
            self._committer.join(timeout=30)
            self._committer = None
        self.store.close()

    # ------------------------------------------------------------------ ordering & commit
    def _known_tx(self, tx_id: str) -> bool:
        if tx_id in self._queued:
            return True
        row = (
            self.store.connection()
            .execute("SELECT 1 FROM txs WHERE tx_id = ?", (tx_id,))
            .fetchone()
        )
        return row is not None

    def _start_committer(self) -> None:
        with self._lock:
            if self._committer is None:
                self._orderer_identity()  # fail now, in the caller, if the orderer key is missing
                self._committer = threading.Thread(
                    target=self._commit_loop, name="fedspec-committer", daemon=True
                )
                self._committer.start()

    def _commit_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.config.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                batch.append(item)
            try:
                self.commit_block(batch)
            except TamperedState as exc:  # refuse to build on edited state
                log.error("commit of %d transactions refused: %s", len(batch), exc.message)
                for item in batch:
                    self._failures[item.tx.tx_id] = (
                        ErrorCode.LEDGER_TAMPERED,
                        f"the ledger's state was edited outside the ledger: {exc.message}",
                    )
            except Exception as exc:  # keep the committer alive; waiting clients get the reason
                log.exception("commit of %d transactions failed", len(batch))
                for item in batch:
                    self._failures[item.tx.tx_id] = ("UNAVAILABLE", f"{type(exc).__name__}: {exc}")
            finally:
                self._settle(batch)

    def _settle(self, batch: list[_Pending]) -> None:
        """After a commit (or its failure): forget the batch's ids as queued and wake the
        clients waiting for them, and anyone following the chain."""
        with self._lock:
            for item in batch:
                self._queued.discard(item.tx.tx_id)
                # Unregister before waking, so a waiter never waits on a set event.
                if self._done.get(item.tx.tx_id) is item.done:
                    del self._done[item.tx.tx_id]
        for item in batch:
            item.done.set()
        with self._committed:
            self._committed.notify_all()

    def commit_block(self, batch: list[_Pending]) -> int:
        """Validate ``batch`` and append it as one block; returns the block number.

        Every transaction is checked as before (creator signature, endorsement policy, MVCC
        and phantom reads, each replaced row against its signed write); the SQLite work is
        batched — one query for the duplicate ids, one for the committed rows of every key
        the block reads or writes, ``executemany`` for the writes — so a block costs about a
        dozen statements whatever its size, instead of several per transaction.

        Why it matters more than the statements' own cost: this one thread commits for every
        client thread of the process, and each statement (like each signature check) hands
        the GIL over; under load, getting it back means waiting out other threads' slices.
        So the signature checks run in the submitting threads (:meth:`submit`) and the
        committer keeps to a fixed, small number of hand-overs per block."""
        orderer = self._orderer_identity()
        with self.store.write() as db:
            self._refresh_config(db)
            number, previous = db.execute(
                "SELECT number, header_hash FROM blocks ORDER BY number DESC LIMIT 1"
            ).fetchone()
            tip = self.index.commitment(db, number, bytes(previous))
            number += 1
            codes, valid, valid_writes, state = self._validate_batch(db, batch, number)
            # The state commitment, updated in O(writes): each replaced row's term out (after
            # checking that row against its signed write: a blind write must not build on an
            # edited row either), the new row's term in.
            h = tip.state
            for key, (value, b, t) in state.pending.items():
                old = state.committed(key)
                if old is not None:
                    self.index.check(db, key, *old)
                    h -= checked_term(key, *old)
                if value is not None:
                    h += state_term(key, value, b, t)
            flags = bytes(codes)
            commitment = Commitment(
                state_hash=to_bytes(h % MOD),
                write_chain=next_write_chain(
                    tip.write_chain,
                    number,
                    flags,
                    ((idx, w.items()) for idx, w in sorted(valid_writes.items())),
                ),
                flags_hash=hashlib.sha256(flags).digest(),
            )
            built = build_block(
                number, bytes(previous), [i.envelope for i in batch], codes, orderer, commitment
            )
            self._append(db, built, batch, codes, valid, state, commitment)
        self.index.remember(number, built.header_hash, commitment, valid_writes)
        return int(number)

    def _validate_batch(
        self, db: sqlite3.Connection, batch: list[_Pending], number: int
    ) -> tuple[
        list[int],
        list[tuple[int, _Pending]],
        dict[int, dict[str, bytes | None]],
        validation.SqlState,
    ]:
        """Each transaction's validation code, the valid ones, their writes, and the state
        they leave pending. Signatures and policy first (in block order), then MVCC in block
        order against the committed rows, fetched in one go, plus earlier valid writes."""
        committed_ids = _committed_tx_ids(db, [item.tx.tx_id for item in batch])
        codes: list[int] = [validation.VALID] * len(batch)
        seen: set[str] = set()
        candidates: list[tuple[int, _Pending, kv_rwset_pb2.KVRWSet]] = []
        for idx, item in enumerate(batch):
            tx = item.tx
            if tx.tx_id in seen or tx.tx_id in committed_ids:
                codes[idx] = validation.code("DUPLICATE_TXID")
                continue
            seen.add(tx.tx_id)
            code = self._signature_code(item)
            if code == validation.VALID:
                kv = item.kv if item.checked_by is self.membership else None
                if kv is None:
                    kv = read_kvrwset(tx.results, self.config.chaincode)
                candidates.append((idx, item, kv))
            codes[idx] = code
        state = validation.SqlState(db)
        state.prefetch(
            key
            for _, _, kv in candidates
            for key in (*(r.key for r in kv.reads), *(w.key for w in kv.writes))
        )
        valid: list[tuple[int, _Pending]] = []
        valid_writes: dict[int, dict[str, bytes | None]] = {}
        for idx, item, kv in candidates:
            code = validation.check_mvcc(kv, state)
            if code == validation.VALID:
                state.apply(kv, number, idx)
                valid.append((idx, item))
                valid_writes[idx] = {
                    w.key: (None if w.is_delete else bytes(w.value)) for w in kv.writes
                }
            codes[idx] = code
        return codes, valid, valid_writes, state

    def _signature_code(self, item: _Pending) -> int:
        """The creator, endorsement and policy checks' code for a queued transaction.

        Every signature is verified once over the exact bytes that go into the block: the
        submit verified the creator's and the endorsers' against the membership it names.
        If the channel's membership is still that one (no configuration block since), the
        verdicts stand — they depend only on those bytes and that membership, never on the
        clock — and only the policy is applied here; otherwise everything is verified again
        against the membership in force now. The policy is always the current one's."""
        membership = self.membership
        if item.checked_by is membership:
            code, orgs = item.endorsed
        else:
            code, _ = validation.check_creator(item.tx, membership)
            if code != validation.VALID:
                return code
            code, orgs = validation.endorsing_orgs(item.tx, membership, membership.config)
        if code != validation.VALID:
            return code
        return validation.policy_code(orgs, membership.config)

    @staticmethod
    def _append(
        db: sqlite3.Connection,
        built: BuiltBlock,
        batch: list[_Pending],
        codes: list[int],
        valid: list[tuple[int, _Pending]],
        state: validation.SqlState,
        commitment: Commitment,
    ) -> None:
        """Write the block, its transactions' index rows, the state changes and the events."""
        number = built.number
        db.execute(
            "INSERT INTO blocks (number, header_hash, tx_count, block) VALUES (?, ?, ?, ?)",
            (number, built.header_hash, len(batch), built.block_bytes),
        )
        db.executemany(
            "INSERT OR IGNORE INTO txs (tx_id, block, idx, code, function, creator, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (i.tx.tx_id, number, idx, codes[idx], i.tx.function, i.creator, i.tx.timestamp)
                for idx, i in enumerate(batch)
            ],
        )
        # Each statement is a GIL hand-over for the committer (see commit_block): none is
        # issued for nothing.
        deletes = [(key,) for key, (value, _, _) in state.pending.items() if value is None]
        if deletes:
            db.executemany("DELETE FROM state WHERE key = ?", deletes)
        upserts = [
            (key, value, b, t) for key, (value, b, t) in state.pending.items() if value is not None
        ]
        if upserts:
            db.executemany(
                "INSERT OR REPLACE INTO state (key, value, block, txn) VALUES (?, ?, ?, ?)",
                upserts,
            )
        events = [
            (
                number,
                idx,
                i.tx.tx_id,
                i.tx.event.chaincode_id,
                i.tx.event.event_name,
                bytes(i.tx.event.payload),
            )
            for idx, i in valid
            if i.tx.event is not None
        ]
        if events:
            db.executemany(
                "INSERT INTO events (block, idx, tx_id, chaincode, name, payload) VALUES (?, ?, ?, ?, ?, ?)",
                events,
            )
        # A copy for tools; the committer and every check trust only the signed block.
        db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('state_hash', ?)",
            (commitment.state_hash,),
        )


def _committed_tx_ids(db: sqlite3.Connection, tx_ids: list[str]) -> set[str]:
    """Which of ``tx_ids`` are already in the ledger, with one query per
    :data:`validation.IN_CHUNK` ids."""
    found: set[str] = set()
    unique = sorted(set(tx_ids))
    for i in range(0, len(unique), validation.IN_CHUNK):
        chunk = unique[i : i + validation.IN_CHUNK]
        marks = ",".join("?" * len(chunk))
        found.update(
            row[0] for row in db.execute(f"SELECT tx_id FROM txs WHERE tx_id IN ({marks})", chunk)
        )
    return found


def _tampered_service(exc: TamperedState) -> GatewayServiceError:
    return GatewayServiceError(
        ErrorCode.LEDGER_TAMPERED,
        f"the ledger's state was edited outside the ledger (block {exc.block}): {exc.message}; "
        "nothing was endorsed or served — run `fedspec ledger verify`",
    )


def _tampered_file(path: Path, block: int, message: str) -> LedgerFileError:
    return LedgerFileError(
        f"{path} fails its integrity check at block {block}: {message}; "
        "run `fedspec ledger verify`",
        code=ErrorCode.LEDGER_TAMPERED,
        block=block,
    )


def _chaincode_failure(exc: ChaincodeError) -> GatewayServiceError:
    # Fabric's gateway reports a chaincode error as ABORTED with the chaincode's message.
    return GatewayServiceError("ABORTED", f"chaincode response 500, {exc.to_wire()}")


def config_of_genesis(block_bytes: bytes) -> ChannelConfig:
    try:
        block = common_pb2.Block.FromString(block_bytes)
        env = common_pb2.Envelope.FromString(block.data.data[0])
        payload = common_pb2.Payload.FromString(env.payload)
        return ChannelConfig.from_json(payload.data)
    except Exception as exc:
        raise LedgerFileError(
            f"the genesis block is not a fedspec channel configuration: {exc}"
        ) from exc
