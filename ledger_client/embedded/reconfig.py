"""Configuration blocks: how the embedded channel's member set changes after genesis.

A configuration update is a block of its own holding one ``CONFIG`` envelope: the channel's
whole new configuration, signed by the identity that cuts the block. It is valid only when
it is the current configuration with exactly one *approved* membership change applied (the
chaincode's record of the vote, which a majority of member admins signed as transactions)
and that change was not applied before. The committer checks this before writing the block;
``ledger verify`` checks it again on the replayed state, and derives the member set at every
block from the configuration blocks before it.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import replace
from typing import Any

from fabric_protos.common import common_pb2
from fabric_protos.msp import identities_pb2
from google.protobuf import timestamp_pb2

from chaincode import keys
from ledger_client.embedded.channel import ChannelConfig, IdentityRejected, Member, Membership
from ledger_client.identity import MspIdentity, verify_signature

CONFIG_BLOCKS = "config_blocks"  # meta key: the numbers of configuration blocks, in order


def config_envelope(config: ChannelConfig, signer: MspIdentity) -> tuple[bytes, str, int]:
    """The signed ``CONFIG`` envelope carrying ``config``; with its tx id and timestamp."""
    data = config.to_json()
    tx_id = hashlib.sha256(data).hexdigest()
    seconds = int(time.time())
    header = common_pb2.Header(
        channel_header=common_pb2.ChannelHeader(
            type=common_pb2.CONFIG,
            channel_id=config.channel,
            tx_id=tx_id,
            timestamp=timestamp_pb2.Timestamp(seconds=seconds),
        ).SerializeToString(),
        signature_header=common_pb2.SignatureHeader(
            creator=signer.identity.serialize(), nonce=os.urandom(24)
        ).SerializeToString(),
    )
    payload = common_pb2.Payload(header=header, data=data).SerializeToString()
    envelope = common_pb2.Envelope(
        payload=payload, signature=signer.signer(hashlib.sha256(payload).digest())
    )
    return envelope.SerializeToString(), tx_id, seconds


def is_config_block(block: common_pb2.Block) -> bool:
    if len(block.data.data) != 1:
        return False
    try:
        env = common_pb2.Envelope.FromString(block.data.data[0])
        payload = common_pb2.Payload.FromString(env.payload)
        header = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
    except Exception:  # not an envelope at all: not a configuration block either
        return False
    return bool(int(header.type) == common_pb2.CONFIG)


class ConfigUpdate:
    """A configuration block's envelope, parsed, with its signature checked."""

    def __init__(self, block: common_pb2.Block, membership: Membership) -> None:
        env = common_pb2.Envelope.FromString(block.data.data[0])
        payload = common_pb2.Payload.FromString(env.payload)
        header = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
        signature_header = common_pb2.SignatureHeader.FromString(payload.header.signature_header)
        ident = identities_pb2.SerializedIdentity.FromString(signature_header.creator)
        self.tx_id = str(header.tx_id)
        self.seconds = int(header.timestamp.seconds)
        self.config = ChannelConfig.from_json(payload.data)
        try:
            self.signer: Member | None = membership.identify(ident.mspid, bytes(ident.id_bytes))
        except IdentityRejected:
            self.signer = None
        self.signature_ok = self.signer is not None and verify_signature(
            self.signer.public_key, bytes(env.signature), bytes(env.payload)
        )

    @property
    def creator(self) -> str:
        return f"{self.signer.msp_id}/{self.signer.common_name}" if self.signer else ""

    def problem(self, current: ChannelConfig, change: dict[str, Any] | None) -> str:
        """ "" if this update is ``current`` with the approved ``change`` applied, signed by an
        identity ``current`` lets order; else what is wrong."""
        if not self.signature_ok or self.signer is None:
            return "its signature does not verify"
        if not current.may_order(self.signer.msp_id, self.signer.role):
            return f"{self.creator} may not update the channel"
        if self.tx_id != hashlib.sha256(self.config.to_json()).hexdigest():
            return "its transaction id is not its configuration's hash"
        applied = self.config.applied[-1:] or ("",)
        if change is None or change.get("id") != applied[0]:
            return f"it cites no approved membership change ({applied[0] or 'none'})"
        try:
            expected = current.with_change(change)
        except (ValueError, KeyError) as exc:
            return str(exc)
        if expected.to_json() != self.config.to_json():
            return f"it is not the configuration that change {change['id']} makes"
        return ""


def change_key(config: ChannelConfig) -> str | None:
    """The state key of the membership change ``config`` applied last, if any."""
    if not config.applied:
        return None
    org, _, seq = config.applied[-1].rpartition(":")
    if not org or not seq.isdigit():
        return None
    return keys.member_change(org, int(seq))


def union(configs: list[ChannelConfig]) -> ChannelConfig:
    """Every organization any of ``configs`` ever trusted (for block signatures of the
    past: a removed organization's peer signed blocks while it was a member)."""
    organizations: dict[str, list[str]] = {}
    for config in configs:
        for msp, roots in config.organizations.items():
            organizations.setdefault(msp, [])
            organizations[msp] += [r for r in roots if r not in organizations[msp]]
    return replace(configs[-1], organizations=organizations)
