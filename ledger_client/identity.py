"""Identities and signers, kept separate as in Fabric Gateway: who you are vs what signs.

An :class:`Identity` is an MSP id and an X.509 certificate; a :class:`Signer` turns a SHA-256
digest into an ECDSA P-256 signature (DER, low-S: peers reject high-S signatures). Both load
from Fabric's MSP folder layout (``signcerts/``, ``keystore/``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)

from ledger_client.errors import IdentityError

# Order of the P-256 group: a signature (r, s) and (r, n - s) are both valid; Fabric only
# accepts the one with s ≤ n/2 so that a signature cannot be malleated into a second form.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

Signer = Callable[[bytes], bytes]


@dataclass(frozen=True)
class Identity:
    msp_id: str
    credentials: bytes  # PEM certificate

    def serialize(self) -> bytes:
        # Deferred: loads fabric_protos only when used.
        from fabric_protos.msp import identities_pb2

        return bytes(
            identities_pb2.SerializedIdentity(
                mspid=self.msp_id, id_bytes=self.credentials
            ).SerializeToString()
        )


def sha256(message: bytes) -> bytes:
    return hashlib.sha256(message).digest()


def to_low_s(der_signature: bytes) -> bytes:
    r, s = decode_dss_signature(der_signature)
    if s > P256_ORDER // 2:
        s = P256_ORDER - s
    return encode_dss_signature(r, s)


def new_private_key_signer(private_key: ec.EllipticCurvePrivateKey) -> Signer:
    if not isinstance(private_key.curve, ec.SECP256R1):
        raise IdentityError("only ECDSA P-256 keys are supported")

    def sign(digest: bytes) -> bytes:
        return to_low_s(private_key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256()))))

    return sign


def verify_signature(
    public_key: ec.EllipticCurvePublicKey, signature: bytes, message: bytes
) -> bool:
    # Deferred: loads cryptography only when used.
    from cryptography.exceptions import InvalidSignature

    try:
        _r, s = decode_dss_signature(signature)
    except ValueError:
        return False
    if s > P256_ORDER // 2:
        return False  # a high-S signature is refused as Fabric refuses it
    try:
        public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class MspIdentity:
    """An identity with its signer, loaded from one MSP folder."""

    identity: Identity
    signer: Signer
    name: str

    @property
    def id(self) -> str:
        """The ledger id the chaincode derives: ``<msp>/<common name>``."""
        return f"{self.identity.msp_id}/{self.name}"


def load_msp_identity(msp_dir: Path, msp_id: str) -> MspIdentity:
    """Read ``signcerts/*.pem`` and ``keystore/*`` of an MSP folder; errors name the folder."""
    # Deferred: loads cryptography only when used.
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    msp_dir = Path(msp_dir)
    if not msp_dir.is_dir():
        raise IdentityError(f"identity folder {msp_dir} does not exist")
    certs = sorted((msp_dir / "signcerts").glob("*.pem"))
    keys = sorted(p for p in (msp_dir / "keystore").glob("*") if p.is_file())
    if len(certs) != 1 or len(keys) != 1:
        raise IdentityError(
            f"{msp_dir} must hold one certificate in signcerts/ and one key in keystore/"
        )
    try:
        cert_pem = certs[0].read_bytes()
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(keys[0].read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise IdentityError(f"cannot read the identity in {msp_dir}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise IdentityError(f"{keys[0]} is not an ECDSA P-256 private key")
    if key.public_key().public_numbers() != cert.public_key().public_numbers():  # type: ignore[union-attr]
        raise IdentityError(f"the key in {msp_dir}/keystore does not match its certificate")
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    name = str(cns[0].value) if cns else certs[0].stem
    return MspIdentity(Identity(msp_id, cert_pem), new_private_key_signer(key), name)
