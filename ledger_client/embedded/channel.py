"""The embedded channel's configuration (its genesis block) and membership checks.

The configuration names each member organization's root CA certificates, the ordering
organization, and the endorsement policy; every signature the ledger accepts is checked
against it, exactly as a Fabric peer checks identities against its channel's MSPs.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chaincode.identity import ROLES

FORMAT = "fedspec-channel-v1"


@dataclass(frozen=True)
class ChannelConfig:
    channel: str
    chaincode: str
    organizations: dict[str, list[str]]  # MSP id → root CA certificates (PEM)
    orderer_msp: str
    orderer_roots: list[str]
    policy: str = "MAJORITY"  # of member organizations, as Fabric's default endorsement policy
    # Who cuts and signs blocks: "orderer" (the ordering organization's orderer, on one host
    # that holds every key) or "members" (each member's peer signs the blocks its own process
    # appends to the shared file: members that hold only their own keys).
    ordering: str = "orderer"
    # Configuration updates: how many, and the approved membership changes they applied
    # (ids of the chaincode's records, so that none is applied twice).
    sequence: int = 0
    applied: tuple[str, ...] = ()
    max_clock_skew_s: int = 300
    max_batch: int = 500
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        doc = {
            "format": FORMAT,
            "channel": self.channel,
            "chaincode": self.chaincode,
            "organizations": self.organizations,
            "orderer": {"msp_id": self.orderer_msp, "roots": self.orderer_roots},
            "policy": self.policy,
            "ordering": self.ordering,
            "sequence": self.sequence,
            "applied": list(self.applied),
            "max_clock_skew_s": self.max_clock_skew_s,
            "max_batch": self.max_batch,
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> ChannelConfig:
        doc = json.loads(data)
        if doc.get("format") != FORMAT:
            raise ValueError("not a fedspec channel configuration")
        return cls(
            channel=doc["channel"],
            chaincode=doc["chaincode"],
            organizations={k: list(v) for k, v in doc["organizations"].items()},
            orderer_msp=doc["orderer"]["msp_id"],
            orderer_roots=list(doc["orderer"]["roots"]),
            policy=doc["policy"],
            ordering=doc.get("ordering", "orderer"),
            sequence=int(doc.get("sequence", 0)),
            applied=tuple(str(a) for a in doc.get("applied", [])),
            max_clock_skew_s=int(doc["max_clock_skew_s"]),
            max_batch=int(doc["max_batch"]),
        )

    def with_change(self, change: dict[str, Any]) -> ChannelConfig:
        """This configuration after an approved membership change (a chaincode record:
        ``id``, ``org``, ``action`` add|remove, and for add the organization's CA)."""
        change_id, org = str(change["id"]), str(change["org"])
        if change.get("status") != "approved":
            raise ValueError(f"membership change {change_id} is not approved")
        if change_id in self.applied:
            raise ValueError(f"membership change {change_id} was already applied")
        organizations = dict(self.organizations)
        if change["action"] == "add":
            if org in organizations:
                raise ValueError(f"{org} is already in the channel")
            organizations[org] = [str(change["ca"])]
        elif change["action"] == "remove":
            if organizations.pop(org, None) is None:
                raise ValueError(f"{org} is not in the channel")
        else:
            raise ValueError(f"unknown membership action {change['action']!r}")
        return replace(
            self,
            organizations=organizations,
            sequence=self.sequence + 1,
            applied=(*self.applied, change_id),
        )

    def may_order(self, msp_id: str, role: str) -> bool:
        """Whether an identity of ``msp_id`` with NodeOU ``role`` may sign blocks."""
        if msp_id == self.orderer_msp and role == "orderer":
            return True
        return self.ordering == "members" and msp_id in self.organizations and role == "peer"

    @property
    def required_endorsements(self) -> int:
        n = len(self.organizations)
        return {"MAJORITY": n // 2 + 1, "ANY": 1, "ALL": n}[self.policy]


class IdentityRejected(Exception):
    """The identity is not one this channel trusts; the message says why."""


@dataclass(frozen=True)
class Member:
    msp_id: str
    role: str
    common_name: str
    public_key: ec.EllipticCurvePublicKey
    not_before: float
    not_after: float

    def check_time(self, timestamp: float) -> None:
        if not self.not_before <= timestamp <= self.not_after:
            raise IdentityRejected(
                f"{self.msp_id}/{self.common_name}'s certificate is not valid at that time"
            )


class Membership:
    def __init__(self, config: ChannelConfig) -> None:
        roots = dict(config.organizations)
        roots[config.orderer_msp] = config.orderer_roots
        self._roots = {
            msp: [x509.load_pem_x509_certificate(p.encode()) for p in pems]
            for msp, pems in roots.items()
        }
        self.config = config
        # Parsing a certificate and checking its issuer costs a signature verification; the
        # same few identities sign everything, so the answer is cached per certificate.
        self.identify = lru_cache(maxsize=4096)(self._identify)

    def _identify(self, msp_id: str, cert_pem: bytes) -> Member:
        roots = self._roots.get(msp_id)
        if roots is None:
            raise IdentityRejected(
                f"{msp_id!r} is not an organization of channel {self.config.channel}"
            )
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
        except ValueError as exc:
            raise IdentityRejected("the certificate cannot be parsed") from exc
        for root in roots:
            try:
                cert.verify_directly_issued_by(root)
                break
            except (ValueError, TypeError, Exception):  # InvalidSignature or a name mismatch
                continue
        else:
            raise IdentityRejected(f"the certificate was not issued by {msp_id}'s CA")
        key = cert.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            raise IdentityRejected("only ECDSA P-256 identities are accepted")
        ous = [
            str(a.value)
            for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
        ]
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return Member(
            msp_id=msp_id,
            role=next((ou for ou in ous if ou in ROLES), "member"),
            common_name=str(cns[0].value) if cns else "",
            public_key=key,
            not_before=cert.not_valid_before_utc.timestamp(),
            not_after=cert.not_valid_after_utc.timestamp(),
        )


def utc_now() -> float:
    return dt.datetime.now(dt.UTC).timestamp()
