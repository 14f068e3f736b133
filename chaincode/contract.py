"""The fedspec contract: every transaction, its arguments, and whether it only reads.

Both runtimes dispatch through :func:`invoke`: the Fabric contract API adapter
(:mod:`chaincode.fabric_contract`) and the embedded peer. Transaction names are Fabric-style
PascalCase; arguments are strings (JSON for documents); results are canonical JSON.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chaincode import (
    demand,
    membership,
    models,
    nodes,
    profiles,
    rewards,
    rounds,
    secagg,
    updates,
)
from chaincode.context import Stub, Tx, canonical
from chaincode.errors import ChaincodeError, InvalidArgument

CONTRACT_NAME = "fedspec"


@dataclass(frozen=True)
class Transaction:
    name: str
    fn: Callable[..., Awaitable[Any]]
    params: tuple[str, ...]
    evaluate: bool = False
    description: str = ""


def _t(
    name: str, fn: Callable[..., Awaitable[Any]], *params: str, evaluate: bool = False
) -> Transaction:
    doc = (fn.__doc__ or "").strip().splitlines()
    return Transaction(name, fn, tuple(params), evaluate, doc[0] if doc else "")


TRANSACTIONS: dict[str, Transaction] = {
    t.name: t
    for t in (
        _t("InitConsortium", nodes.init_consortium, "orgs_json"),
        _t("GetConsortium", nodes.get_consortium, evaluate=True),
        _t("ProposeMember", membership.propose_member, "bundle_json"),
        _t(
            "ProposeMemberWithUpdate",
            membership.propose_member_with_update,
            "bundle_json",
            "config_update",
        ),
        _t("ProposeRemoval", membership.propose_removal, "org"),
        _t(
            "ProposeRemovalWithUpdate",
            membership.propose_removal_with_update,
            "org",
            "config_update",
        ),
        _t("VoteMember", membership.vote_member, "org", "approve"),
        _t(
            "VoteMemberWithSignature",
            membership.vote_member_with_signature,
            "org",
            "approve",
            "config_signature",
        ),
        _t("GetMemberChange", membership.get_member_change, "org", evaluate=True),
        _t("ListMemberChanges", membership.list_member_changes, "status", evaluate=True),
        _t("RegisterNode", nodes.register_node),
        _t("GetNode", nodes.get_node, "node_id", evaluate=True),
        _t("ListNodes", nodes.list_nodes, "org", evaluate=True),
        _t("Volunteer", nodes.volunteer, "profile_id"),
        _t("VolunteerWithData", nodes.volunteer_with_data, "profile_id", "dataset_json"),
        _t("GetVolunteer", nodes.get_volunteer, "profile_id", "node_id", evaluate=True),
        _t("Withdraw", nodes.withdraw, "profile_id"),
        _t("ListVolunteers", nodes.list_volunteers, "profile_id", evaluate=True),
        _t("ProposeProfile", profiles.propose_profile, "profile_json"),
        _t("VoteProfile", profiles.vote_profile, "profile_id", "action", "approve"),
        _t("GetProfile", profiles.get_profile, "profile_id", evaluate=True),
        _t("ListProfiles", profiles.list_profiles, "status", evaluate=True),
        _t(
            "QueryProfiles",
            profiles.query_profiles,
            "characteristics_json",
            "status",
            evaluate=True,
        ),
        _t("RecordDemand", demand.record_demand, "characteristics_json"),
        _t(
            "ListDemand",
            demand.list_demand,
            "min_requests",
            "min_requesters",
            evaluate=True,
        ),
        _t("OpenRound", rounds.open_round, "profile_id"),
        _t("JoinRound", rounds.join_round, "profile_id", "round", "commitment"),
        _t(
            "JoinRoundWithKeys",
            secagg.join_round_with_keys,
            "profile_id",
            "round",
            "commitment",
            "keys_json",
        ),
        _t("RevealSeed", rounds.reveal_seed, "profile_id", "round", "secret"),
        _t(
            "RevealSeedAfter",
            rounds.reveal_seed_after,
            "profile_id",
            "round",
            "secret",
            "revealed_node",
        ),
        _t("ElectCoordinator", rounds.elect_coordinator, "profile_id", "round"),
        _t("ReplaceCoordinator", rounds.replace_coordinator, "profile_id", "round"),
        _t("FailRound", rounds.fail_round, "profile_id", "round", "code", "reason"),
        _t("GetRound", rounds.get_round, "profile_id", "round", evaluate=True),
        _t("GetRoundStatus", rounds.round_status, "profile_id", evaluate=True),
        _t("ListRounds", rounds.list_rounds, "profile_id", evaluate=True),
        _t("SubmitUpdate", updates.submit_update, "profile_id", "round", "update_json"),
        _t("GetUpdate", updates.get_update, "profile_id", "round", "node_id", evaluate=True),
        _t("ListUpdates", updates.list_updates, "profile_id", "round", evaluate=True),
        _t("GetBudget", updates.get_budget, "node_id", "profile_id", evaluate=True),
        _t("SubmitShares", secagg.submit_shares, "profile_id", "round", "shares_json"),
        _t("CloseSharing", secagg.close_sharing, "profile_id", "round"),
        _t("RequestUnmask", secagg.request_unmask, "profile_id", "round", "survivors_json"),
        _t(
            "SubmitUnmaskShares",
            secagg.submit_unmask_shares,
            "profile_id",
            "round",
            "answer_json",
        ),
        _t("RecordUnmasked", secagg.record_unmasked, "profile_id", "round", "result_json"),
        _t("GetSecureAggregation", secagg.get_secagg, "profile_id", "round", evaluate=True),
        _t("CommitModel", models.commit_model, "profile_id", "round", "model_json"),
        _t("GetModel", models.get_model, "profile_id", "round", evaluate=True),
        _t("GetLatestModel", models.get_latest_model, "profile_id", evaluate=True),
        _t("GetProfileHistory", models.profile_history, "profile_id", evaluate=True),
        _t("MintRewards", rewards.mint_rewards, "profile_id", "round"),
        _t("GetBalance", rewards.get_balance, "node_id", evaluate=True),
        _t("GetBalances", rewards.get_balances, "org", evaluate=True),
        _t("Transfer", rewards.transfer, "to_node", "amount"),
    )
}


async def invoke(stub: Stub, name: str, args: Sequence[str]) -> bytes:
    """Run one transaction and return its canonical JSON result; failures raise typed errors."""
    try:
        spec = TRANSACTIONS.get(name)
        if spec is None:
            raise InvalidArgument(f"unknown transaction {name!r:.60}")
        if len(args) != len(spec.params):
            raise InvalidArgument(
                f"{name} takes {len(spec.params)} arguments ({', '.join(spec.params) or 'none'}), "
                f"got {len(args)}"
            )
        if not all(isinstance(a, str) for a in args):
            raise InvalidArgument(f"{name}: arguments must be strings")
        tx = Tx(stub)
        result = await spec.fn(tx, *args)
        return canonical(result)
    except ChaincodeError:
        raise
    except Exception as exc:  # a bug must surface as an error response, never as a success
        raise ChaincodeError(f"{name} failed: {type(exc).__name__}: {exc}") from exc
