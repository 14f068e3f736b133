"""The domain facade: the ledger as the rest of fedspec uses it, with dataclasses in and out.

It sits on a :class:`~ledger_client.gateway.Contract` (either backend) and adds what
applications need on top of raw transactions: argument encoding, local schema validation
before anything is signed, and retries of transactions that lost an MVCC race.
"""

from __future__ import annotations

import base64
import json
import random
import time
from collections.abc import Mapping
from typing import Any

from chaincode.errors import ChaincodeError
from chaincode.identity import parse_creator
from chaincode.schema import validate_profile
from fedspec.errors import ErrorCode
from ledger_client.coalesce import Coalescer
from ledger_client.errors import RETRYABLE_COMMIT_CODES, CommitError, EndorseError, GatewayError
from ledger_client.gateway import Contract
from ledger_client.records import (
    Balance,
    Balances,
    Budget,
    ChainInfo,
    Committed,
    ConsortiumRecord,
    DemandGroup,
    DemandRecord,
    MemberChange,
    MemberVote,
    Minted,
    ModelCommitment,
    ModelRecord,
    Node,
    Profile,
    ProfileHistory,
    Round,
    RoundSummary,
    Submitted,
    Transferred,
    UpdateCommitment,
    UpdateRecord,
    Vote,
)

# One per process: reads shared across the identities of the process (ledger_client.coalesce).
SHARED_READS: Coalescer[Any] = Coalescer()


class FedspecLedger:
    """Reads and writes return typed records (:mod:`ledger_client.records`). Every write waits
    for its commit and says where it landed: in the ``commit`` of the record it returns (a
    read's records have ``None`` there), or as the :class:`Committed` itself when the
    transaction returns nothing worth a record (volunteer, withdraw, join, reveal)."""

    def __init__(self, contract: Contract, *, retries: int = 8) -> None:
        self.contract = contract
        self.retries = retries
        self.conflicts_retried = 0  # MVCC races lost and retried, for callers that report them

    @property
    def caller(self) -> str:
        """The caller's ledger id (``<msp>/<common name>``)."""

        ident = self.contract.gateway.identity
        return parse_creator(ident.msp_id, ident.credentials).id

    # ---------------------------------------------------------------- plumbing
    def evaluate(self, name: str, *args: str) -> Any:
        return json.loads(self.contract.evaluate_transaction(name, *args))

    def _shared_evaluate(self, name: str, *args: str) -> Any:
        """``evaluate`` for reads whose answer does not depend on the caller, shared by
        concurrent callers on the same ledger service (:mod:`ledger_client.coalesce`)."""
        contract = self.contract
        key = (id(contract.gateway.client), contract.network.name, contract.chaincode, name, args)
        return SHARED_READS.call(key, lambda: self.evaluate(name, *args))

    def submit(self, name: str, *args: str) -> Submitted:
        """Submit and wait for the commit; re-endorse and retry when an MVCC race was lost.
        Returns the contract's result (parsed JSON) with where the transaction landed."""
        for attempt in range(self.retries + 1):
            submitted = self.contract.submit_async(name, *args)
            status = submitted.get_status()
            try:
                status.raise_for_failure()
            except CommitError as exc:
                if exc.code in RETRYABLE_COMMIT_CODES and attempt < self.retries:
                    self.conflicts_retried += 1
                    time.sleep(random.uniform(0, 0.01 * 2**attempt))  # jitter, not cryptography
                    continue
                raise
            return Submitted(
                json.loads(submitted.result),
                Committed(status.transaction_id, status.block_number),
            )
        raise AssertionError("unreachable")

    # ---------------------------------------------------------------- consortium and nodes
    def init_consortium(self, orgs: list[str]) -> ConsortiumRecord:
        done = self.submit("InitConsortium", json.dumps(sorted(orgs)))
        return ConsortiumRecord.from_json(done.result, done.commit)

    def consortium_orgs(self) -> list[str]:
        """The member organizations the chaincode recorded (empty before ``InitConsortium``)."""
        try:
            return list(self.evaluate("GetConsortium")["orgs"])
        except GatewayError as exc:
            if exc.code == ErrorCode.FAILED_PRECONDITION:  # not initialized yet
                return []
            raise

    def propose_member(
        self, bundle: Mapping[str, Any], *, config_update: bytes | None = None
    ) -> MemberChange:
        """Propose a new member organization by its public bundle (as ``fedspec org export``
        writes it); a majority of member admins decides with :meth:`vote_member`. On Fabric
        the proposal carries the channel's ``ConfigUpdate`` (:mod:`ledger_client.channel_update`)."""
        text = json.dumps(bundle, sort_keys=True)
        if config_update is None:
            done = self.submit("ProposeMember", text)
        else:
            done = self.submit("ProposeMemberWithUpdate", text, _b64(config_update))
        return MemberChange.from_json(done.result, done.commit)

    def propose_removal(self, org: str, *, config_update: bytes | None = None) -> MemberChange:
        if config_update is None:
            done = self.submit("ProposeRemoval", org)
        else:
            done = self.submit("ProposeRemovalWithUpdate", org, _b64(config_update))
        return MemberChange.from_json(done.result, done.commit)

    def vote_member(
        self, org: str, *, approve: bool = True, config_signature: bytes | None = None
    ) -> MemberVote:
        """Vote on ``org``'s open change; with ``config_signature``, the voter's signature of
        the change's channel update (required to approve a change that carries one)."""
        approve_text = "true" if approve else "false"
        if config_signature is None:
            done = self.submit("VoteMember", org, approve_text)
        else:
            done = self.submit("VoteMemberWithSignature", org, approve_text, _b64(config_signature))
        return MemberVote.from_json(done.result, done.commit)

    def member_change(self, org: str) -> MemberChange:
        """The latest change proposed for ``org``, with its votes."""
        return MemberChange.from_json(self.evaluate("GetMemberChange", org))

    def member_changes(self, status: str = "") -> list[MemberChange]:
        return [MemberChange.from_json(c) for c in self.evaluate("ListMemberChanges", status)]

    def register_node(self) -> Node:
        done = self.submit("RegisterNode")
        return Node.from_json(done.result, done.commit)

    def get_node(self, node_id: str) -> Node:
        """The node, with its current reputation."""
        return Node.from_json(self.evaluate("GetNode", node_id))

    def list_nodes(self, org: str = "") -> list[Node]:
        """Registered nodes (without their reputation: :meth:`get_node` reads it)."""
        return [Node.from_json(n) for n in self.evaluate("ListNodes", org)]

    def volunteer(self, profile_id: str, dataset: Mapping[str, Any] | None = None) -> Committed:
        """Volunteer for a profile's rounds; ``dataset`` is the fingerprint of the data the
        node trains on (``sha256``, ``rows``, ``schema_sha256``), recorded with it."""
        if dataset is None:
            return self.submit("Volunteer", profile_id).commit
        return self.submit("VolunteerWithData", profile_id, json.dumps(dict(dataset))).commit

    def volunteer_record(self, profile_id: str, node_id: str) -> dict[str, Any]:
        """The node's volunteer record: since when, and its data fingerprint if it gave one."""
        record: dict[str, Any] = self.evaluate("GetVolunteer", profile_id, node_id)
        return record

    def withdraw(self, profile_id: str) -> Committed:
        return self.submit("Withdraw", profile_id).commit

    def volunteers(self, profile_id: str) -> list[str]:
        result: list[str] = self.evaluate("ListVolunteers", profile_id)
        return result

    # ---------------------------------------------------------------- profiles
    def propose_profile(self, spec: Mapping[str, Any]) -> Profile:
        try:
            validate_profile(dict(spec))  # a readable refusal before anything is signed
        except ChaincodeError as exc:
            raise EndorseError(exc.message, code=exc.code, **exc.details) from exc
        done = self.submit("ProposeProfile", json.dumps(dict(spec), sort_keys=True))
        return Profile.from_json(done.result, done.commit)

    def vote_profile(
        self, profile_id: str, *, approve: bool = True, action: str = "activate"
    ) -> Vote:
        done = self.submit("VoteProfile", profile_id, action, "true" if approve else "false")
        return Vote.from_json(done.result, done.commit)

    def get_profile(self, profile_id: str) -> Profile:
        # Whoever asks gets the same profile: the agents of a process share their reads of it
        # (200 starting at once made 200 evaluates, ledger_client.coalesce).
        return Profile.from_json(self._shared_evaluate("GetProfile", profile_id))

    def list_profiles(self, status: str = "") -> list[Profile]:
        return [Profile.from_json(p) for p in self.evaluate("ListProfiles", status)]

    def query_profiles(
        self, characteristics: Mapping[str, Any], status: str = "active"
    ) -> list[Profile]:
        return [
            Profile.from_json(p)
            for p in self.evaluate("QueryProfiles", json.dumps(dict(characteristics)), status)
        ]

    # ---------------------------------------------------------------- demand
    def record_demand(self, characteristics: Mapping[str, Any]) -> DemandRecord:
        """Record that a request with these characteristics found no well-fitting profile."""
        done = self.submit("RecordDemand", json.dumps(dict(characteristics), sort_keys=True))
        return DemandRecord.from_json(done.result, done.commit)

    def list_demand(self, min_requests: int = 0, min_requesters: int = 0) -> list[DemandGroup]:
        """Demand per characteristic set (most requested first), with the profiles covering it."""
        return [
            DemandGroup.from_json(g)
            for g in self.evaluate("ListDemand", str(min_requests), str(min_requesters))
        ]

    # ---------------------------------------------------------------- rounds
    def _round(self, name: str, *args: str) -> Round:
        done = self.submit(name, *args)
        return Round.from_json(done.result, done.commit)

    def open_round(self, profile_id: str) -> Round:
        return self._round("OpenRound", profile_id)

    def join_round(self, profile_id: str, number: int, commitment: str) -> Committed:
        return self.submit("JoinRound", profile_id, str(number), commitment).commit

    def reveal_seed(
        self, profile_id: str, number: int, secret: str, *, after: str = ""
    ) -> Committed:
        """Reveal the election secret; ``after``: a node whose reveal is committed already,
        which proves joining closed with one key read (``RevealSeedAfter``)."""
        if after:
            return self.submit("RevealSeedAfter", profile_id, str(number), secret, after).commit
        return self.submit("RevealSeed", profile_id, str(number), secret).commit

    def elect_coordinator(self, profile_id: str, number: int) -> Round:
        return self._round("ElectCoordinator", profile_id, str(number))

    def replace_coordinator(self, profile_id: str, number: int) -> Round:
        return self._round("ReplaceCoordinator", profile_id, str(number))

    def fail_round(self, profile_id: str, number: int, code: str, reason: str) -> Round:
        return self._round("FailRound", profile_id, str(number), code, reason)

    def get_round(self, profile_id: str, number: int) -> Round:
        return Round.from_json(self.evaluate("GetRound", profile_id, str(number)))

    def round_status(self, profile_id: str) -> Round:
        return Round.from_json(self.evaluate("GetRoundStatus", profile_id))

    def list_rounds(self, profile_id: str) -> list[RoundSummary]:
        """Every round of the profile, oldest first."""
        return [RoundSummary.from_json(r) for r in self.evaluate("ListRounds", profile_id)]

    # ---------------------------------------------------------------- updates and models
    def submit_update(self, profile_id: str, number: int, update: UpdateCommitment) -> UpdateRecord:
        done = self.submit("SubmitUpdate", profile_id, str(number), json.dumps(update.to_json()))
        return UpdateRecord.from_json(done.result, done.commit)

    def get_update(self, profile_id: str, number: int, node_id: str) -> UpdateRecord:
        return UpdateRecord.from_json(self.evaluate("GetUpdate", profile_id, str(number), node_id))

    def list_updates(self, profile_id: str, number: int) -> list[UpdateRecord]:
        return [
            UpdateRecord.from_json(u) for u in self.evaluate("ListUpdates", profile_id, str(number))
        ]

    def budget(self, node_id: str, profile_id: str) -> Budget:
        return Budget.from_json(self.evaluate("GetBudget", node_id, profile_id))

    def commit_model(self, profile_id: str, number: int, model: ModelCommitment) -> ModelRecord:
        done = self.submit("CommitModel", profile_id, str(number), json.dumps(model.to_json()))
        return ModelRecord.from_json(done.result, done.commit)

    def get_model(self, profile_id: str, number: int) -> ModelRecord:
        return ModelRecord.from_json(self.evaluate("GetModel", profile_id, str(number)))

    def latest_model(self, profile_id: str) -> ModelRecord:
        return ModelRecord.from_json(self.evaluate("GetLatestModel", profile_id))

    def profile_history(self, profile_id: str) -> ProfileHistory:
        return ProfileHistory.from_json(self.evaluate("GetProfileHistory", profile_id))

    # ---------------------------------------------------------------- the chain itself (Fabric's qscc)
    def _qscc(self, function: str, *args: str) -> bytes:
        network = self.contract.network
        return network.get_contract("qscc").evaluate_transaction(function, network.name, *args)

    def config_block(self) -> bytes:
        """The channel's latest configuration block, as this identity's peer holds it
        (Fabric's ``cscc``; a channel member's admin or client may read it)."""
        network = self.contract.network
        return network.get_contract("cscc").evaluate_transaction("GetConfigBlock", network.name)

    def height(self) -> int:
        """Number of blocks on the channel (the next block's number)."""
        # Deferred: loads fabric_protos only when used.
        from fabric_protos.common import ledger_pb2

        return int(ledger_pb2.BlockchainInfo.FromString(self._qscc("GetChainInfo")).height)

    def chain_info(self) -> ChainInfo:
        """Height and the hash of the last block, as this identity's peer reports them."""
        # Deferred: loads fabric_protos only when used.
        from fabric_protos.common import ledger_pb2

        info = ledger_pb2.BlockchainInfo.FromString(self._qscc("GetChainInfo"))
        return ChainInfo(
            int(info.height),
            bytes(info.currentBlockHash).hex(),
            bytes(info.previousBlockHash).hex(),
        )

    def block(self, number: int) -> Any:
        """The block ``number`` as a ``common.Block`` protobuf."""
        # Deferred: loads fabric_protos only when used.
        from fabric_protos.common import common_pb2

        return common_pb2.Block.FromString(self._qscc("GetBlockByNumber", str(number)))

    def transaction(self, transaction_id: str) -> Any:
        """The processed transaction (envelope and validation code) with this id."""
        # Deferred: loads fabric_protos only when used.
        from fabric_protos.peer import transaction_pb2

        return transaction_pb2.ProcessedTransaction.FromString(
            self._qscc("GetTransactionByID", transaction_id)
        )

    # ---------------------------------------------------------------- rewards
    def mint_rewards(self, profile_id: str, number: int) -> Minted:
        """Mint a closed round's reward (once: a repeated mint returns the same amounts)."""
        done = self.submit("MintRewards", profile_id, str(number))
        return Minted.from_json(done.result, done.commit)

    def balance(self, node_id: str) -> Balance:
        return Balance.from_json(self.evaluate("GetBalance", node_id))

    def balances(self, org: str = "") -> Balances:
        """Per node and per organization, of one organization or all."""
        return Balances.from_json(self.evaluate("GetBalances", org))

    def transfer(self, to_node: str, amount: int) -> Transferred:
        done = self.submit("Transfer", to_node, str(amount))
        return Transferred.from_json(done.result, done.commit)


def _b64(raw: bytes) -> str:
    """Protobuf bytes (a channel update, a signature) as the chaincode's string argument."""
    return base64.b64encode(raw).decode()
