"""The domain facade: the ledger as the rest of fedspec uses it, with dataclasses in and out.

It sits on a :class:`~ledger_client.gateway.Contract` (either backend) and adds what
applications need on top of raw transactions: argument encoding, local schema validation
before anything is signed, and retries of transactions that lost an MVCC race.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Mapping
from typing import Any

from chaincode.schema import validate_profile
from ledger_client.errors import RETRYABLE_COMMIT_CODES, CommitError
from ledger_client.gateway import Contract
from ledger_client.records import (
    Committed,
    ModelCommitment,
    ModelRecord,
    Profile,
    Round,
    UpdateCommitment,
)


class FedspecLedger:
    def __init__(self, contract: Contract, *, retries: int = 8) -> None:
        self.contract = contract
        self.retries = retries
        self.last_commit: Committed | None = None
        self.conflicts_retried = 0  # MVCC races lost and retried, for callers that report them

    @property
    def caller(self) -> str:
        """The caller's ledger id (``<msp>/<common name>``)."""
        from chaincode.identity import parse_creator

        ident = self.contract.gateway.identity
        return parse_creator(ident.msp_id, ident.credentials).id

    # ---------------------------------------------------------------- plumbing
    def evaluate(self, name: str, *args: str) -> Any:
        return json.loads(self.contract.evaluate_transaction(name, *args))

    def submit(self, name: str, *args: str) -> Any:
        """Submit and wait for the commit; re-endorse and retry when an MVCC race was lost."""
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
            self.last_commit = Committed(status.transaction_id, status.block_number)
            return json.loads(submitted.result)
        raise AssertionError("unreachable")

    # ---------------------------------------------------------------- consortium and nodes
    def init_consortium(self, orgs: list[str]) -> dict[str, Any]:
        result: dict[str, Any] = self.submit("InitConsortium", json.dumps(sorted(orgs)))
        return result

    def register_node(self) -> dict[str, Any]:
        result: dict[str, Any] = self.submit("RegisterNode")
        return result

    def get_node(self, node_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.evaluate("GetNode", node_id)
        return result

    def list_nodes(self, org: str = "") -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.evaluate("ListNodes", org)
        return result

    def volunteer(self, profile_id: str) -> None:
        self.submit("Volunteer", profile_id)

    def withdraw(self, profile_id: str) -> None:
        self.submit("Withdraw", profile_id)

    def volunteers(self, profile_id: str) -> list[str]:
        result: list[str] = self.evaluate("ListVolunteers", profile_id)
        return result

    # ---------------------------------------------------------------- profiles
    def propose_profile(self, spec: Mapping[str, Any]) -> Profile:
        from chaincode.errors import ChaincodeError
        from ledger_client.errors import EndorseError

        try:
            validate_profile(dict(spec))  # a readable refusal before anything is signed
        except ChaincodeError as exc:
            raise EndorseError(exc.message, code=exc.code, **exc.details) from exc
        return Profile.from_json(
            self.submit("ProposeProfile", json.dumps(dict(spec), sort_keys=True))
        )

    def vote_profile(
        self, profile_id: str, *, approve: bool = True, action: str = "activate"
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.submit(
            "VoteProfile", profile_id, action, "true" if approve else "false"
        )
        return result

    def get_profile(self, profile_id: str) -> Profile:
        return Profile.from_json(self.evaluate("GetProfile", profile_id))

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
    def record_demand(self, characteristics: Mapping[str, Any]) -> dict[str, Any]:
        """Record that a request with these characteristics found no well-fitting profile."""
        result: dict[str, Any] = self.submit(
            "RecordDemand", json.dumps(dict(characteristics), sort_keys=True)
        )
        return result

    def list_demand(self, min_requests: int = 0, min_requesters: int = 0) -> list[dict[str, Any]]:
        """Demand per characteristic set (most requested first), with the profiles covering it."""
        result: list[dict[str, Any]] = self.evaluate(
            "ListDemand", str(min_requests), str(min_requesters)
        )
        return result

    # ---------------------------------------------------------------- rounds
    def open_round(self, profile_id: str) -> Round:
        return Round.from_json(self.submit("OpenRound", profile_id))

    def join_round(self, profile_id: str, number: int, commitment: str) -> None:
        self.submit("JoinRound", profile_id, str(number), commitment)

    def reveal_seed(self, profile_id: str, number: int, secret: str) -> None:
        self.submit("RevealSeed", profile_id, str(number), secret)

    def elect_coordinator(self, profile_id: str, number: int) -> Round:
        return Round.from_json(self.submit("ElectCoordinator", profile_id, str(number)))

    def replace_coordinator(self, profile_id: str, number: int) -> Round:
        return Round.from_json(self.submit("ReplaceCoordinator", profile_id, str(number)))

    def fail_round(self, profile_id: str, number: int, code: str, reason: str) -> Round:
        return Round.from_json(self.submit("FailRound", profile_id, str(number), code, reason))

    def get_round(self, profile_id: str, number: int) -> Round:
        return Round.from_json(self.evaluate("GetRound", profile_id, str(number)))

    def round_status(self, profile_id: str) -> Round:
        return Round.from_json(self.evaluate("GetRoundStatus", profile_id))

    def list_rounds(self, profile_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.evaluate("ListRounds", profile_id)
        return result

    # ---------------------------------------------------------------- updates and models
    def submit_update(
        self, profile_id: str, number: int, update: UpdateCommitment
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.submit(
            "SubmitUpdate", profile_id, str(number), json.dumps(update.to_json())
        )
        return result

    def get_update(self, profile_id: str, number: int, node_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.evaluate("GetUpdate", profile_id, str(number), node_id)
        return result

    def list_updates(self, profile_id: str, number: int) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.evaluate("ListUpdates", profile_id, str(number))
        return result

    def budget(self, node_id: str, profile_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.evaluate("GetBudget", node_id, profile_id)
        return result

    def commit_model(self, profile_id: str, number: int, model: ModelCommitment) -> ModelRecord:
        return ModelRecord.from_json(
            self.submit("CommitModel", profile_id, str(number), json.dumps(model.to_json()))
        )

    def get_model(self, profile_id: str, number: int) -> ModelRecord:
        return ModelRecord.from_json(self.evaluate("GetModel", profile_id, str(number)))

    def latest_model(self, profile_id: str) -> ModelRecord:
        return ModelRecord.from_json(self.evaluate("GetLatestModel", profile_id))

    def profile_history(self, profile_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.evaluate("GetProfileHistory", profile_id)
        return result

    # ---------------------------------------------------------------- the chain itself (Fabric's qscc)
    def _qscc(self, function: str, *args: str) -> bytes:
        network = self.contract.network
        return network.get_contract("qscc").evaluate_transaction(function, network.name, *args)

    def height(self) -> int:
        """Number of blocks on the channel (the next block's number)."""
        from fabric_protos.common import ledger_pb2

        return int(ledger_pb2.BlockchainInfo.FromString(self._qscc("GetChainInfo")).height)

    def chain_info(self) -> dict[str, Any]:
        """Height and the hash of the last block, as this identity's peer reports them."""
        from fabric_protos.common import ledger_pb2

        info = ledger_pb2.BlockchainInfo.FromString(self._qscc("GetChainInfo"))
        return {
            "height": int(info.height),
            "current_block_hash": bytes(info.currentBlockHash).hex(),
            "previous_block_hash": bytes(info.previousBlockHash).hex(),
        }

    def block(self, number: int) -> Any:
        """The block ``number`` as a ``common.Block`` protobuf."""
        from fabric_protos.common import common_pb2

        return common_pb2.Block.FromString(self._qscc("GetBlockByNumber", str(number)))

    def transaction(self, transaction_id: str) -> Any:
        """The processed transaction (envelope and validation code) with this id."""
        from fabric_protos.peer import transaction_pb2

        return transaction_pb2.ProcessedTransaction.FromString(
            self._qscc("GetTransactionByID", transaction_id)
        )

    # ---------------------------------------------------------------- rewards
    def mint_rewards(self, profile_id: str, number: int) -> dict[str, Any]:
        result: dict[str, Any] = self.submit("MintRewards", profile_id, str(number))
        return result

    def balance(self, node_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.evaluate("GetBalance", node_id)
        return result

    def balances(self, org: str = "") -> dict[str, Any]:
        result: dict[str, Any] = self.evaluate("GetBalances", org)
        return result

    def transfer(self, to_node: str, amount: int) -> dict[str, Any]:
        result: dict[str, Any] = self.submit("Transfer", to_node, str(amount))
        return result
