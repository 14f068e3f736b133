"""A membership vote on a Fabric channel: the channel configuration update, its signatures,
and its submission.

An approved membership change reaches a Fabric channel as a ``ConfigUpdate`` that the
channel's ``/Channel/Application/Admins`` policy (a majority of the member organizations'
admins) must sign. The proposer computes it against the channel's current configuration and
the chaincode records it with the proposal; each admin who votes for the change checks it
(it must be exactly that organization added with its bundle's certificates, or removed),
signs it in its own home with its own key, and its vote records that ``ConfigSignature``;
the vote that makes the majority wraps the update and the recorded signatures in a
``CONFIG_UPDATE`` envelope and submits it through its peer's Gateway, which hands it to the
ordering service. No private key leaves a home: signatures travel on the ledger.

The update is built here by hand with Fabric's protobuf messages. Fabric's own tool for it is
``configtxlator`` (decode the configuration, edit it, compute the difference), which is not
among the binaries fedspec builds, and the difference for one organization is small: the
Application group's read set (every entry at its current version: an update computed before
another change was applied fails on it, see :class:`StaleChannelUpdateError`), its write set
(the version bumped, the member groups after the change) and, for an addition, the new
organization's group. The result is what ``configtxlator compute_update`` produces for the
same edit. The new group mirrors an existing member's (its MSP's NodeOUs, hash functions and
``mod_policy`` values), with the bundle's certificates in place of that member's.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fabric_protos.common import common_pb2, configtx_pb2, policies_pb2
from fabric_protos.gateway import gateway_pb2
from fabric_protos.msp import msp_config_pb2, msp_principal_pb2
from fabric_protos.peer import configuration_pb2
from google.protobuf import timestamp_pb2
from google.protobuf.message import DecodeError

from fedspec.errors import ErrorCode
from ledger_client.errors import (
    ChannelUpdateError,
    CommitStatusError,
    LedgerError,
    StaleChannelUpdateError,
    SubmitError,
)
from ledger_client.identity import Identity
from ledger_client.service import GatewayServiceError

if TYPE_CHECKING:
    from ledger_client.facade import FedspecLedger
    from ledger_client.records import MemberChange

APPLICATION = "Application"
ADMINS = "Admins"
# A member organization's policies, each any one of these roles of the organization (NodeOUs):
# configtx.yaml declares the founders' groups from this table (fabric_network.configs) and a
# voted-in organization's group gets the same ones.
ORG_POLICY_ROLES: dict[str, tuple[str, ...]] = {
    "Readers": ("admin", "peer", "client"),
    "Writers": ("admin", "client"),
    "Admins": ("admin",),
    "Endorsement": ("peer",),
}
_ROLES = {
    "member": msp_principal_pb2.MSPRole.MEMBER,
    "admin": msp_principal_pb2.MSPRole.ADMIN,
    "client": msp_principal_pb2.MSPRole.CLIENT,
    "peer": msp_principal_pb2.MSPRole.PEER,
    "orderer": msp_principal_pb2.MSPRole.ORDERER,
}
NONCE_BYTES = 24
# How long the submitting admin waits for its peer to hold the new configuration block.
APPLY_WAIT_S = 60.0
# Fabric's orderer says so when an update's read set is behind the channel's configuration.
_STALE_MARKERS = ("error validating ReadSet", "proposed update requires that key")


@dataclass(frozen=True)
class FabricChannelConfig:
    """A channel's configuration, from its latest configuration block."""

    channel: str
    block: int  # the number of the configuration block it comes from
    config: Any  # configtx_pb2.Config

    @classmethod
    def from_block(cls, raw: bytes) -> FabricChannelConfig:
        try:
            block = common_pb2.Block.FromString(raw)
            envelope = common_pb2.Envelope.FromString(block.data.data[0])
            payload = common_pb2.Payload.FromString(envelope.payload)
            header = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
            config = configtx_pb2.ConfigEnvelope.FromString(payload.data).config
        except (DecodeError, IndexError) as exc:
            raise LedgerError(f"not a Fabric configuration block: {exc}") from None
        if header.type != common_pb2.CONFIG or APPLICATION not in config.channel_group.groups:
            raise LedgerError("not a Fabric configuration block with an Application group")
        return cls(str(header.channel_id), int(block.header.number), config)

    @property
    def application(self) -> Any:
        return self.config.channel_group.groups[APPLICATION]

    @property
    def organizations(self) -> dict[str, list[bytes]]:
        """The member organizations (the Application group's) and their root CA certificates."""
        return {
            name: list(msp_of(group).root_certs)
            for name, group in sorted(self.application.groups.items())
        }


def msp_of(group: Any) -> Any:
    """An organization group's ``FabricMSPConfig``."""
    msp = msp_config_pb2.MSPConfig.FromString(group.values["MSP"].value)
    return msp_config_pb2.FabricMSPConfig.FromString(msp.config)


def signature_policy(org: str, roles: Sequence[str]) -> Any:
    """``OR('org.role', …)`` as ``configtxgen`` encodes it: one of the principals signs."""
    identities = [
        msp_principal_pb2.MSPPrincipal(
            principal_classification=msp_principal_pb2.MSPPrincipal.ROLE,
            principal=msp_principal_pb2.MSPRole(
                msp_identifier=org, role=_ROLES[role]
            ).SerializeToString(),
        )
        for role in roles
    ]
    rule = policies_pb2.SignaturePolicy(
        n_out_of=policies_pb2.SignaturePolicy.NOutOf(
            n=1,
            rules=[policies_pb2.SignaturePolicy(signed_by=i) for i in range(len(roles))],
        )
    )
    return policies_pb2.SignaturePolicyEnvelope(version=0, rule=rule, identities=identities)


# ---------------------------------------------------------------- building the update
def update_for_change(current: FabricChannelConfig, change: Mapping[str, Any]) -> bytes:
    """The serialized ``ConfigUpdate`` that applies ``change`` (a chaincode membership record:
    ``action``, ``org`` and, for an addition, the organization's public ``bundle``)."""
    org = str(change["org"])
    if change["action"] == "add":
        update = add_org_update(current, change["bundle"])
    elif change["action"] == "remove":
        update = remove_org_update(current, org)
    else:
        raise ChannelUpdateError(f"unknown membership action {change['action']!r:.20}")
    return bytes(update.SerializeToString(deterministic=True))


def add_org_update(current: FabricChannelConfig, bundle: Mapping[str, Any]) -> Any:
    """Add the organization of ``bundle`` (as ``fedspec org export`` writes it) to the
    channel's Application group."""
    org = str(bundle["msp_id"])
    if org in current.application.groups:
        raise ChannelUpdateError(f"{org} is already an organization of channel {current.channel}")
    groups = dict(current.application.groups)
    groups[org] = org_group(current, bundle)
    return _update(current, groups)


def remove_org_update(current: FabricChannelConfig, org: str) -> Any:
    """Remove ``org`` from the channel's Application group."""
    if org not in current.application.groups:
        raise ChannelUpdateError(f"{org} is not an organization of channel {current.channel}")
    if len(current.application.groups) == 1:
        raise ChannelUpdateError("the last organization of a channel cannot be removed")
    groups = {k: v for k, v in current.application.groups.items() if k != org}
    return _update(current, groups)


def _update(current: FabricChannelConfig, groups: Mapping[str, Any]) -> Any:
    """The Application group's member set changes to ``groups``: what configtxlator's
    compute_update makes of it. Existing entries appear with their version only; the
    Application group's version is bumped, so its mod_policy (``/Channel/Application/Admins``)
    must be satisfied; a new group is written whole at version 0."""
    app = current.application
    read_app = _versions_only(app)
    write_app = _versions_only(app)
    write_app.version = app.version + 1
    write_app.mod_policy = app.mod_policy
    write_app.groups.clear()
    for name, group in groups.items():
        if name in app.groups:
            write_app.groups[name].CopyFrom(configtx_pb2.ConfigGroup(version=group.version))
        else:
            write_app.groups[name].CopyFrom(group)
    root = current.config.channel_group
    read_set = configtx_pb2.ConfigGroup(version=root.version)
    read_set.groups[APPLICATION].CopyFrom(read_app)
    write_set = configtx_pb2.ConfigGroup(version=root.version)
    write_set.groups[APPLICATION].CopyFrom(write_app)
    return configtx_pb2.ConfigUpdate(
        channel_id=current.channel, read_set=read_set, write_set=write_set
    )


def _versions_only(group: Any) -> Any:
    out = configtx_pb2.ConfigGroup(version=group.version)
    for name, sub in group.groups.items():
        out.groups[name].CopyFrom(configtx_pb2.ConfigGroup(version=sub.version))
    for name, value in group.values.items():
        out.values[name].CopyFrom(configtx_pb2.ConfigValue(version=value.version))
    for name, policy in group.policies.items():
        out.policies[name].CopyFrom(configtx_pb2.ConfigPolicy(version=policy.version))
    return out


def org_group(current: FabricChannelConfig, bundle: Mapping[str, Any]) -> Any:
    """The new organization's group: its MSP (mirroring an existing member's, with the
    bundle's CA and TLS CA in place of that member's), its anchor peers (the bundle's peer
    endpoints) and the member policies of :data:`ORG_POLICY_ROLES`."""
    org = str(bundle["msp_id"])
    if not current.application.groups:
        raise ChannelUpdateError(f"channel {current.channel} has no organization to mirror")
    template_name = sorted(current.application.groups)[0]
    template = current.application.groups[template_name]
    model = msp_of(template)
    ca, tls_ca = str(bundle["ca"]).encode(), str(bundle["tls_ca"]).encode()
    msp = msp_config_pb2.FabricMSPConfig()
    msp.CopyFrom(model)
    msp.name = org
    for field in (
        "root_certs",
        "intermediate_certs",
        "admins",
        "revocation_list",
        "organizational_unit_identifiers",
        "tls_root_certs",
        "tls_intermediate_certs",
    ):
        msp.ClearField(field)
    msp.ClearField("signing_identity")
    msp.root_certs.append(ca)
    msp.tls_root_certs.append(tls_ca)
    if msp.HasField("fabric_node_ous"):
        ous = msp.fabric_node_ous
        for name in (
            "client_ou_identifier",
            "peer_ou_identifier",
            "admin_ou_identifier",
            "orderer_ou_identifier",
        ):
            if ous.HasField(name) and getattr(ous, name).certificate:
                getattr(ous, name).certificate = ca
    serialized = msp.SerializeToString(deterministic=True)
    if any(cert in serialized for cert in [*model.root_certs, *model.tls_root_certs]):
        raise ChannelUpdateError(f"{org}'s MSP would keep a certificate of {template_name}")
    msp_type = msp_config_pb2.MSPConfig.FromString(template.values["MSP"].value).type
    group = configtx_pb2.ConfigGroup(version=0, mod_policy=template.mod_policy or ADMINS)
    group.values["MSP"].CopyFrom(
        configtx_pb2.ConfigValue(
            version=0,
            value=msp_config_pb2.MSPConfig(type=msp_type, config=serialized).SerializeToString(),
            mod_policy=template.values["MSP"].mod_policy or ADMINS,
        )
    )
    anchors = anchor_peers(bundle)
    if anchors:
        group.values["AnchorPeers"].CopyFrom(
            configtx_pb2.ConfigValue(
                version=0,
                value=configuration_pb2.AnchorPeers(
                    anchor_peers=[configuration_pb2.AnchorPeer(host=h, port=p) for h, p in anchors]
                ).SerializeToString(),
                mod_policy=ADMINS,
            )
        )
    for name, roles in ORG_POLICY_ROLES.items():
        group.policies[name].CopyFrom(
            configtx_pb2.ConfigPolicy(
                version=0,
                policy=policies_pb2.Policy(
                    type=policies_pb2.Policy.SIGNATURE,
                    value=signature_policy(org, roles).SerializeToString(),
                ),
                mod_policy=ADMINS,
            )
        )
    return group


def anchor_peers(bundle: Mapping[str, Any]) -> list[tuple[str, int]]:
    """The bundle's peers' endpoints, in name order: gossip finds the organization there."""
    peers = sorted(i["name"] for i in bundle.get("identities", ()) if i.get("role") == "peer")
    endpoints = bundle.get("endpoints", {})
    out = []
    for name in peers:
        host, _, port = str(endpoints.get(name, "")).rpartition(":")
        if host and port.isdigit():
            out.append((host, int(port)))
    return out


# ---------------------------------------------------------------- checking it
def decode_update(raw: bytes) -> Any:
    try:
        update = configtx_pb2.ConfigUpdate.FromString(raw)
    except DecodeError as exc:
        raise ChannelUpdateError(f"the proposed channel update cannot be decoded: {exc}") from None
    if APPLICATION not in update.read_set.groups or APPLICATION not in update.write_set.groups:
        raise ChannelUpdateError("the proposed channel update does not touch the Application group")
    return update


def check_update(current: FabricChannelConfig, change: Mapping[str, Any], raw: bytes) -> Any:
    """Refuse to sign ``raw`` unless it is exactly ``change`` applied to the channel as it is
    now: :class:`StaleChannelUpdateError` if the channel moved on since it was computed,
    :class:`ChannelUpdateError` if it is anything else than that change."""
    update = decode_update(raw)
    what = _describe(change)
    if update.channel_id != current.channel:
        raise ChannelUpdateError(
            f"the channel update for {what} is for channel {update.channel_id!r}, not "
            f"{current.channel!r}: do not sign it"
        )
    if update.read_set.groups[APPLICATION] != _versions_only(current.application):
        raise StaleChannelUpdateError(
            f"the channel update for {what} was computed against an earlier configuration of "
            f"channel {current.channel} (it is now at configuration block {current.block}): "
            f"it can no longer apply; reject this change and propose it again",
            change=str(change.get("id", "")),
        )
    expected = configtx_pb2.ConfigUpdate.FromString(update_for_change(current, change))
    if update != expected:
        raise ChannelUpdateError(
            f"the proposed channel update is not {what} with exactly that bundle's "
            "certificates and the channel's member policies: do not sign it",
            change=str(change.get("id", "")),
        )
    return update


def already_applied(current: FabricChannelConfig, change: Mapping[str, Any]) -> bool:
    org = str(change["org"])
    if change["action"] == "remove":
        return org not in current.application.groups
    if org not in current.application.groups:
        return False
    roots = current.organizations[org]
    if roots != [str(change["bundle"]["ca"]).encode()]:
        raise ChannelUpdateError(
            f"channel {current.channel} has an organization {org} with another CA than the one "
            f"change {change.get('id', '')} proposed"
        )
    return True


def _describe(change: Mapping[str, Any]) -> str:
    verb = "adding" if change["action"] == "add" else "removing"
    return f"{verb} {change['org']} ({change.get('id', '')})"


# ---------------------------------------------------------------- signatures and envelope
Sign = Callable[[bytes], bytes]  # signs a message (hashing it first), as Gateway.sign does


def sign_update(raw: bytes, identity: Identity, sign: Sign) -> bytes:
    """A ``ConfigSignature`` over ``raw``, as ``peer channel signconfigtx`` makes it: the
    signature header (creator, nonce) and a signature over header ‖ update."""
    header = common_pb2.SignatureHeader(
        creator=identity.serialize(), nonce=os.urandom(NONCE_BYTES)
    ).SerializeToString()
    return bytes(
        configtx_pb2.ConfigSignature(
            signature_header=header, signature=sign(header + raw)
        ).SerializeToString()
    )


def update_envelope(
    raw: bytes, signatures: Sequence[bytes], channel: str, identity: Identity, sign: Sign
) -> tuple[Any, str]:
    """The ``CONFIG_UPDATE`` envelope carrying ``raw`` and ``signatures``, signed by its
    submitter (who must be a channel writer); with its transaction id."""
    creator = identity.serialize()
    nonce = os.urandom(NONCE_BYTES)
    tx_id = hashlib.sha256(nonce + creator).hexdigest()
    data = configtx_pb2.ConfigUpdateEnvelope(
        config_update=raw,
        signatures=[configtx_pb2.ConfigSignature.FromString(s) for s in signatures],
    ).SerializeToString()
    header = common_pb2.Header(
        channel_header=common_pb2.ChannelHeader(
            type=common_pb2.CONFIG_UPDATE,
            channel_id=channel,
            tx_id=tx_id,
            timestamp=timestamp_pb2.Timestamp(seconds=int(time.time())),
        ).SerializeToString(),
        signature_header=common_pb2.SignatureHeader(
            creator=creator, nonce=nonce
        ).SerializeToString(),
    )
    payload = common_pb2.Payload(header=header, data=data).SerializeToString()
    return common_pb2.Envelope(payload=payload, signature=sign(payload)), tx_id


# ---------------------------------------------------------------- on the ledger
def decode(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def current_config(ledger: FedspecLedger) -> FabricChannelConfig:
    return FabricChannelConfig.from_block(ledger.config_block())


def proposed_update(ledger: FedspecLedger, change: Mapping[str, Any]) -> bytes:
    """The update a proposer records with ``change`` (``action``, ``org``, ``bundle``),
    computed against the channel's configuration as the proposer's peer holds it."""
    return update_for_change(current_config(ledger), change)


def signed_vote(ledger: FedspecLedger, change: MemberChange) -> bytes:
    """Check ``change``'s recorded update against the channel and sign it as the ledger's
    identity (the voting admin, in its own home): the ``ConfigSignature`` its vote carries."""
    raw = recorded_update(change)
    check_update(current_config(ledger), change.raw, raw)
    gateway = ledger.contract.gateway
    return sign_update(raw, gateway.identity, gateway.sign)


def recorded_update(change: MemberChange) -> bytes:
    text = change.raw.get("config_update")
    if not text:
        raise ChannelUpdateError(
            f"change {change.id} was proposed without a channel configuration update, so the "
            f"Fabric channel cannot follow it: reject it and propose it again",
            change=change.id,
        )
    return decode(str(text))


def _refuse_if_applied(current: FabricChannelConfig, change: MemberChange) -> None:
    if already_applied(current, change.raw):
        raise LedgerError(
            f"change {change.id} is already applied to channel {current.channel} "
            f"(configuration block {current.block})",
            code=ErrorCode.FAILED_PRECONDITION,
        )


def _approved_but_stale(change: MemberChange, current: FabricChannelConfig) -> str:
    return (
        f"change {change.id} is approved, but channel {current.channel} moved on before its "
        "update was applied, so that update can no longer apply: the chaincode's member set "
        "and the channel disagree until the admins sign a fresh channel update by hand "
        "(docs/consortium.md, Membership on Fabric)"
    )


def apply_change(ledger: FedspecLedger, org: str, *, wait_s: float = APPLY_WAIT_S) -> int:
    """Submit ``org``'s approved change to the channel, with the signatures its votes
    recorded, as the ledger's identity; wait until this identity's peer holds the new
    configuration block and return its number."""
    change = ledger.member_change(org)
    if change.status != "approved":
        raise LedgerError(
            f"change {change.id} is {change.status}, not approved",
            code=ErrorCode.FAILED_PRECONDITION,
        )
    raw = recorded_update(change)
    current = current_config(ledger)
    _refuse_if_applied(current, change)
    try:
        check_update(current, change.raw, raw)
    except StaleChannelUpdateError:
        raise StaleChannelUpdateError(
            _approved_but_stale(change, current), change=change.id
        ) from None
    signatures = [
        decode(str(v["config_signature"]))
        for v in change.votes
        if v.get("approve") and v.get("config_signature")
    ]
    members = len(current.application.groups)
    if 2 * len(signatures) <= members:
        raise ChannelUpdateError(
            f"change {change.id} carries {len(signatures)} admins' signatures; the channel's "
            f"Admins policy needs a majority of its {members} organizations",
            change=change.id,
        )
    gateway = ledger.contract.gateway
    envelope, tx_id = update_envelope(
        raw, signatures, current.channel, gateway.identity, gateway.sign
    )
    request = gateway_pb2.SubmitRequest(
        transaction_id=tx_id, channel_id=current.channel, prepared_transaction=envelope
    )
    try:
        gateway.client.submit(request, gateway.timeouts.submit)
    except GatewayServiceError as exc:
        text = " ".join([exc.message, *(d.message for d in exc.details)])
        if any(marker in text for marker in _STALE_MARKERS):
            _refuse_if_applied(current_config(ledger), change)  # another admin's apply won
            raise StaleChannelUpdateError(
                f"{_approved_but_stale(change, current)} (ordering service: {text})",
                change=change.id,
            ) from None
        raise SubmitError(
            f"channel update for {change.id}: {text}", transaction_id=tx_id, code=exc.code
        ) from None
    deadline = time.monotonic() + wait_s
    while True:
        now = current_config(ledger)
        if now.block > current.block and already_applied(now, change.raw):
            return now.block
        if time.monotonic() > deadline:
            raise CommitStatusError(
                f"the ordering service took the channel update for {change.id}, but this "
                f"identity's peer shows no configuration block applying it after {wait_s:.0f} s",
                transaction_id=tx_id,
            )
        time.sleep(0.2)
