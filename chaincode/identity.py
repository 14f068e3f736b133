"""Who is calling: the creator's MSP id and certificate, read as Fabric's NodeOUs define roles.

The peer has already checked the creator's signature and that its certificate chains to the
MSP's CA; the chaincode decides *what* that identity may do.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

from cryptography import x509
from cryptography.x509.oid import NameOID

from chaincode.errors import Forbidden

ROLES = ("client", "peer", "admin", "orderer")


@dataclass(frozen=True)
class Creator:
    msp_id: str
    common_name: str
    role: str
    cert_sha256: str

    @property
    def id(self) -> str:
        """The identity's ledger id: the MSP namespaces the name its CA gave it."""
        return f"{self.msp_id}/{self.common_name}"

    def require_role(self, *roles: str) -> None:
        if self.role not in roles:
            wanted = " or ".join(roles)
            raise Forbidden(f"{self.id} has role {self.role!r}; this needs {wanted}")


@lru_cache(maxsize=1024)
def parse_creator(msp_id: str, cert_pem: bytes) -> Creator:
    """Parse once per certificate: parsing is pure, and callers repeat the same few identities."""

    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise Forbidden("the creator's certificate cannot be parsed") from exc
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    ous = [
        str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    ]
    if not cns:
        raise Forbidden("the creator's certificate has no common name")
    role = next((ou for ou in ous if ou in ROLES), "member")
    # Deferred: loads cryptography only when used.
    from cryptography.hazmat.primitives.serialization import Encoding

    digest = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()
    return Creator(msp_id=msp_id, common_name=str(cns[0].value), role=role, cert_sha256=digest)
