"""Consortium membership by vote: propose an organization (its public bundle) or a removal;
member admins vote, one vote per organization; a majority of the current members decides.

An approved change updates the consortium record at once (the chaincode's member set: who may
vote, register nodes, volunteer and join rounds). The channel's own configuration (whose
certificates the ledger accepts) follows in a configuration update that cites the approved
change: a configuration block on the embedded ledger, a channel config update on Fabric.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from chaincode import keys
from chaincode.common import check_org, parse_bool, require_member
from chaincode.context import Tx
from chaincode.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from chaincode.schema import parse_json_argument

BUNDLE_FORMAT = "fedspec-org-bundle-v1"
MAX_BUNDLE_BYTES = 256 * 1024


def bundle_fingerprint(bundle: dict[str, Any]) -> str:
    """SHA-256 of the bundle's canonical JSON: what members compare out of band."""
    canonical = json.dumps(bundle, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()


def _check_bundle(text: str) -> dict[str, Any]:
    if "PRIVATE KEY" in text:
        raise InvalidArgument("the bundle holds a private key; a bundle carries certificates only")
    bundle = parse_json_argument(text, "bundle", MAX_BUNDLE_BYTES)
    if not isinstance(bundle, dict) or bundle.get("format") != BUNDLE_FORMAT:
        raise InvalidArgument(f"the bundle is not a {BUNDLE_FORMAT} document")
    org = check_org(bundle.get("name"))
    if bundle.get("msp_id") != org or bundle.get("kind") != "member":
        raise InvalidArgument("the bundle must be a member organization's, with msp_id = name")
    try:
        ca = x509.load_pem_x509_certificate(str(bundle.get("ca", "")).encode())
        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    except (ValueError, x509.ExtensionNotFound):
        raise InvalidArgument("the bundle's CA is not a parseable CA certificate") from None
    names = ca.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    if not constraints.ca or not names or names[0].value != org:
        raise InvalidArgument(f"the bundle's CA is not a certificate authority of {org}")
    return bundle


async def _latest(tx: Tx, org: str) -> dict[str, Any] | None:
    changes = await tx.scan("mchange", org)
    return changes[-1][1] if changes else None


async def _propose(tx: Tx, org: str, change: dict[str, Any]) -> dict[str, Any]:
    latest = await _latest(tx, org)
    if latest is not None and latest["status"] == "proposed":
        raise AlreadyExists(f"a change of {org} is already being voted on ({latest['id']})")
    seq = 0 if latest is None else int(latest["seq"]) + 1
    record = {
        "id": f"{org}:{seq}",
        "org": org,
        "seq": seq,
        **change,
        "status": "proposed",
        "proposed_by": tx.creator.id,
        "proposed_at": tx.timestamp,
    }
    await tx.put(keys.member_change(org, seq), record)
    tx.emit("MemberProposed", {k: v for k, v in record.items() if k != "bundle"})
    return record


async def propose_member(tx: Tx, bundle_json: str) -> dict[str, Any]:
    """A member admin proposes a new organization, by its public bundle."""
    orgs = await require_member(tx)
    tx.creator.require_role("admin")
    bundle = _check_bundle(bundle_json)
    org = bundle["name"]
    if org in orgs:
        raise AlreadyExists(f"{org} is already a member")
    change = {
        "action": "add",
        "fingerprint": bundle_fingerprint(bundle),
        "ca": bundle["ca"],
        "bundle": bundle,
    }
    return await _propose(tx, org, change)


async def propose_removal(tx: Tx, org: str) -> dict[str, Any]:
    """A member admin proposes removing a member organization."""
    orgs = await require_member(tx)
    tx.creator.require_role("admin")
    if check_org(org) not in orgs:
        raise NotFound(f"{org} is not a member")
    if len(orgs) == 1:
        raise FailedPrecondition("the last member cannot be removed")
    return await _propose(tx, org, {"action": "remove"})


async def vote_member(tx: Tx, org: str, approve_text: str) -> dict[str, Any]:
    """A member admin votes on the open change of ``org``; a majority of members decides."""
    orgs = await require_member(tx)
    tx.creator.require_role("admin")
    approve = parse_bool(approve_text, "approve")
    record = await _latest(tx, check_org(org))
    if record is None or record["status"] != "proposed":
        raise FailedPrecondition(f"no change of {org} is open for a vote")
    voter = tx.creator.msp_id
    seq = int(record["seq"])
    vote_key = keys.member_vote(org, seq, voter)
    if await tx.get(vote_key) is not None:
        raise AlreadyExists(f"{voter} has already voted on {record['id']}")
    vote = {"org": voter, "approve": approve, "by": tx.creator.id, "at": tx.timestamp}
    await tx.put(vote_key, vote)
    # Reads see committed state only, so this transaction's own vote is added by hand.
    votes = [v for _, v in await tx.scan("mvote", org, keys.round_no(seq))] + [vote]
    approvals = sum(1 for v in votes if v["approve"])
    rejections = len(votes) - approvals
    if 2 * approvals > len(orgs):
        record = {**record, "status": "approved", "decided_at": tx.timestamp}
        await _apply_to_consortium(tx, record)
    elif 2 * rejections >= len(orgs):
        record = {**record, "status": "rejected", "decided_at": tx.timestamp}
    if record["status"] != "proposed":
        await tx.put(keys.member_change(org, seq), record)
    event = {
        "change": record["id"],
        "org": org,
        "action": record["action"],
        "voter": voter,
        "approve": approve,
        "approvals": approvals,
        "rejections": rejections,
        "members": len(orgs),
        "status": record["status"],
    }
    tx.emit(
        {"approved": "MemberApproved", "rejected": "MemberRejected"}.get(
            record["status"], "MemberVoted"
        ),
        event,
    )
    return event


async def _apply_to_consortium(tx: Tx, record: dict[str, Any]) -> None:
    consortium = await tx.get(keys.CONSORTIUM)
    if consortium is None:
        raise FailedPrecondition("the consortium is not initialized (InitConsortium)")
    orgs = set(consortium["orgs"])
    if record["action"] == "add":
        orgs.add(record["org"])
    else:
        orgs.discard(record["org"])
        # Its nodes leave every profile's pool: rounds neither wait for them nor elect them.
        for (profile_id, node_id), _ in await tx.scan("vol"):
            if node_id.partition("/")[0] == record["org"]:
                await tx.delete(keys.volunteer(profile_id, node_id))
    await tx.put(keys.CONSORTIUM, {**consortium, "orgs": sorted(orgs), "changed_at": tx.timestamp})


async def get_member_change(tx: Tx, org: str) -> dict[str, Any]:
    """The latest change proposed for ``org``, with its votes."""
    record = await _latest(tx, check_org(org))
    if record is None:
        raise NotFound(f"no change of {org} was ever proposed")
    votes = [v for _, v in await tx.scan("mvote", org, keys.round_no(int(record["seq"])))]
    return {**record, "votes": votes}


async def list_member_changes(tx: Tx, status: str) -> list[dict[str, Any]]:
    """Every membership change, optionally only those with ``status``, without bundles."""
    if status and status not in ("proposed", "approved", "rejected"):
        raise InvalidArgument("status must be proposed, approved or rejected")
    records = [r for _, r in await tx.scan("mchange")]
    return [
        {k: v for k, v in r.items() if k != "bundle"}
        for r in records
        if not status or r["status"] == status
    ]
