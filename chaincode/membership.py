"""Consortium membership by vote: propose an organization (its public bundle) or a removal;
member admins vote, one vote per organization; a majority of the current members decides.

An approved change updates the consortium record at once (the chaincode's member set: who may
vote, register nodes, volunteer and join rounds). The channel's own configuration (whose
certificates the ledger accepts) follows in a configuration update that cites the approved
change: a configuration block on the embedded ledger, a channel config update on Fabric.

On Fabric that update must carry a majority of the member admins' signatures, and a private
key never leaves its home, so the signatures travel here: ``ProposeMemberWithUpdate`` and
``ProposeRemovalWithUpdate`` record the channel's ``ConfigUpdate`` with the proposal, and
``VoteMemberWithSignature`` records each approving admin's ``ConfigSignature`` of it, checked
to be the voter's own over exactly those bytes. Whoever submits the update reads them back.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from chaincode import keys
from chaincode.common import check_org, parse_bool, require_member
from chaincode.context import Tx
from chaincode.errors import (
    AlreadyExists,
    FailedPrecondition,
    Forbidden,
    InvalidArgument,
    NotFound,
)
from chaincode.identity import parse_creator
from chaincode.schema import parse_json_argument

BUNDLE_FORMAT = "fedspec-org-bundle-v1"
MAX_BUNDLE_BYTES = 256 * 1024
MAX_UPDATE_BYTES = 256 * 1024  # a ConfigUpdate adding one organization is a few KiB
MAX_SIGNATURE_BYTES = 16 * 1024  # a ConfigSignature: a certificate, a nonce, a signature
# Fabric refuses ECDSA signatures with s > n/2 (P-256's group order n): so does the check here.
_P256_HALF_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551 // 2


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
    tx.emit("MemberProposed", _summary(record))
    return record


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    """A change without its large parts (the bundle, the channel update)."""
    return {k: v for k, v in record.items() if k not in ("bundle", "config_update")}


def _base64(text: str, what: str, limit: int) -> bytes:
    """Canonical base64 of at most ``limit`` bytes (one text per value, so that the record
    and what a voter signs cannot differ by encoding)."""
    if not isinstance(text, str) or not text or len(text) > (limit + 2) // 3 * 4:
        raise InvalidArgument(f"{what} must be non-empty base64 of at most {limit} bytes")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument(f"{what} is not base64") from None
    if base64.b64encode(raw).decode() != text:
        raise InvalidArgument(f"{what} is not canonical base64")
    return raw


def _with_update(change: dict[str, Any], config_update: str) -> dict[str, Any]:
    raw = _base64(config_update, "config_update", MAX_UPDATE_BYTES)
    return {
        **change,
        "config_update": config_update,
        "config_update_sha256": hashlib.sha256(raw).hexdigest(),
    }


async def propose_member(tx: Tx, bundle_json: str) -> dict[str, Any]:
    """A member admin proposes a new organization, by its public bundle."""
    return await _propose_member(tx, bundle_json, None)


async def propose_member_with_update(
    tx: Tx, bundle_json: str, config_update: str
) -> dict[str, Any]:
    """As ProposeMember, with the Fabric channel's ConfigUpdate (base64) that adds it."""
    return await _propose_member(tx, bundle_json, config_update)


async def _propose_member(tx: Tx, bundle_json: str, config_update: str | None) -> dict[str, Any]:
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
    if config_update is not None:
        change = _with_update(change, config_update)
    return await _propose(tx, org, change)


async def propose_removal(tx: Tx, org: str) -> dict[str, Any]:
    """A member admin proposes removing a member organization."""
    return await _propose_removal(tx, org, None)


async def propose_removal_with_update(tx: Tx, org: str, config_update: str) -> dict[str, Any]:
    """As ProposeRemoval, with the Fabric channel's ConfigUpdate (base64) that removes it."""
    return await _propose_removal(tx, org, config_update)


async def _propose_removal(tx: Tx, org: str, config_update: str | None) -> dict[str, Any]:
    orgs = await require_member(tx)
    tx.creator.require_role("admin")
    if check_org(org) not in orgs:
        raise NotFound(f"{org} is not a member")
    if len(orgs) == 1:
        raise FailedPrecondition("the last member cannot be removed")
    change: dict[str, Any] = {"action": "remove"}
    if config_update is not None:
        change = _with_update(change, config_update)
    return await _propose(tx, org, change)


async def vote_member(tx: Tx, org: str, approve_text: str) -> dict[str, Any]:
    """A member admin votes on the open change of ``org``; a majority of members decides."""
    return await _vote_member(tx, org, approve_text, None)


async def vote_member_with_signature(
    tx: Tx, org: str, approve_text: str, config_signature: str
) -> dict[str, Any]:
    """As VoteMember, approving with the voter's ConfigSignature (base64) of the change's
    channel update."""
    return await _vote_member(tx, org, approve_text, config_signature)


def _check_config_signature(tx: Tx, update: bytes, text: str) -> None:
    """``text`` must be a ConfigSignature by the transaction's own creator (the same
    certificate) over this change's channel update: no vote carries another's signature,
    and none that the channel would refuse."""
    # Deferred: Fabric's messages are needed by this check only.
    from fabric_protos.common import common_pb2, configtx_pb2
    from fabric_protos.msp import identities_pb2
    from google.protobuf.message import DecodeError

    raw = _base64(text, "config_signature", MAX_SIGNATURE_BYTES)
    try:
        signed = configtx_pb2.ConfigSignature.FromString(raw)
        header = common_pb2.SignatureHeader.FromString(signed.signature_header)
        signer = identities_pb2.SerializedIdentity.FromString(header.creator)
    except DecodeError:
        raise InvalidArgument("config_signature is not a ConfigSignature") from None
    id_bytes = bytes(signer.id_bytes)
    try:
        same = parse_creator(str(signer.mspid), id_bytes) == tx.creator
    except Forbidden:
        same = False
    if not same:
        raise Forbidden(f"the configuration signature is not {tx.creator.id}'s own")
    key = x509.load_pem_x509_certificate(id_bytes).public_key()
    signature = bytes(signed.signature)
    try:
        _, s = decode_dss_signature(signature)
        if not isinstance(key, ec.EllipticCurvePublicKey) or s > _P256_HALF_ORDER:
            raise InvalidSignature
        key.verify(signature, bytes(signed.signature_header) + update, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        raise InvalidArgument(
            "config_signature does not verify over this change's channel update"
        ) from None


async def _vote_member(
    tx: Tx, org: str, approve_text: str, config_signature: str | None
) -> dict[str, Any]:
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
    if config_signature is not None:
        if "config_update" not in record:
            raise FailedPrecondition(f"{record['id']} carries no channel update to sign")
        if not approve:
            raise InvalidArgument("a vote against a change carries no signature")
        _check_config_signature(tx, base64.b64decode(record["config_update"]), config_signature)
        vote["config_signature"] = config_signature
    elif approve and "config_update" in record:
        # Every approval must sign: the update needs a majority of the admins' signatures.
        raise FailedPrecondition(
            f"{record['id']} carries a channel update: approve it with your signature of it "
            "(VoteMemberWithSignature)"
        )
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
    return [_summary(r) for r in records if not status or r["status"] == status]
