"""Membership by vote: propose an organization (its bundle) or a removal, vote, and bring the
channel's configuration in line once a majority of member admins approved.

The chaincode holds the decision (:mod:`chaincode.membership`); the channel follows with a
configuration update citing it (:func:`ledger_client.backends.apply_member_change`). On Fabric
the proposal carries the channel's ``ConfigUpdate``, each approving admin checks and signs it
in its own home, and the vote that makes the majority submits it with the recorded signatures
(:mod:`ledger_client.channel_update`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fedspec.app.bundles import load_bundle
from fedspec.app.settings import Settings
from fedspec.errors import ConsortiumError
from ledger_client import Consortium, FedspecLedger, open_ledger
from ledger_client import channel_update as channel
from ledger_client.backends import apply_member_change
from ledger_client.records import MemberChange, MemberVote


@dataclass(frozen=True)
class Voted:
    vote: MemberVote
    config_block: int | None  # the configuration block that applied an approved change


def _identity(settings: Settings, as_identity: str | None) -> str:
    return as_identity or Consortium.load(settings.ledger.consortium_dir).default_admin


def _ledger(settings: Settings, as_identity: str | None) -> FedspecLedger:
    return open_ledger(settings.ledger, _identity(settings, as_identity))


def _on_fabric(settings: Settings) -> bool:
    return settings.ledger.backend == "fabric"


def propose_member(settings: Settings, bundle_file: Path, as_identity: str | None) -> MemberChange:
    """Check the bundle as a founder would, then propose its organization."""
    bundle = load_bundle(bundle_file)
    if bundle.kind != "member":
        raise ConsortiumError(f"{bundle_file} is an ordering organization's bundle, not a member's")
    ledger = _ledger(settings, as_identity)
    if not _on_fabric(settings):
        return ledger.propose_member(bundle.to_json())
    change = {"action": "add", "org": bundle.name, "bundle": bundle.to_json()}
    update = channel.proposed_update(ledger, change)
    return ledger.propose_member(bundle.to_json(), config_update=update)


def propose_removal(settings: Settings, org: str, as_identity: str | None) -> MemberChange:
    ledger = _ledger(settings, as_identity)
    if not _on_fabric(settings):
        return ledger.propose_removal(org)
    update = channel.proposed_update(ledger, {"action": "remove", "org": org})
    return ledger.propose_removal(org, config_update=update)


def vote_member(
    settings: Settings,
    org: str,
    *,
    approve: bool,
    fingerprint: str | None,
    as_identity: str | None,
) -> Voted:
    """Vote on ``org``'s open change. With ``fingerprint``, refuse unless it is the one the
    proposed bundle has (what the voter compared out of band). The vote that approves a
    change also updates the channel's configuration. On Fabric an approval first checks the
    change's channel update against the channel and signs it with this admin's own key
    (refused, nothing written, if it is stale or not exactly that change)."""
    identity = _identity(settings, as_identity)
    ledger = open_ledger(settings.ledger, identity)
    change = ledger.member_change(org)
    wanted = (fingerprint or "").replace(" ", "").lower()
    if wanted and change.action == "add" and wanted != change.fingerprint:
        raise ConsortiumError(
            f"{org}'s proposed bundle has fingerprint {change.fingerprint[:16]}…, not "
            f"{wanted[:16]}…: do not vote for it before you know why"
        )
    signature = (
        channel.signed_vote(ledger, change)
        if approve and _on_fabric(settings) and change.status == "proposed"
        else None
    )
    vote = ledger.vote_member(org, approve=approve, config_signature=signature)
    block = None
    if vote.status == "approved":
        block = apply_member_change(settings.ledger, org, identity)
    return Voted(vote, block)


def apply_change(settings: Settings, org: str, as_identity: str | None = None) -> int:
    """Apply an approved change whose configuration update did not happen (a voter's process
    stopped between its vote and the update): idempotent, refused if already applied."""
    return apply_member_change(settings.ledger, org, _identity(settings, as_identity))
