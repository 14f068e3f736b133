"""An organization's certificate authorities and the identities they issue, in MSP layout.

Each organization has an ECDSA P-256 signing CA and TLS CA; every identity it issues carries
a NodeOU (client, peer, admin, orderer) as Fabric expects. Private keys are created with mode
0600 (``O_EXCL``: an existing file is never overwritten) and written only here; nothing else
in fedspec copies, exports or prints one.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=3650)
NODE_OUS = """NodeOUs:
  Enable: true
  ClientOUIdentifier:
    Certificate: cacerts/ca-cert.pem
    OrganizationalUnitIdentifier: client
  PeerOUIdentifier:
    Certificate: cacerts/ca-cert.pem
    OrganizationalUnitIdentifier: peer
  AdminOUIdentifier:
    Certificate: cacerts/ca-cert.pem
    OrganizationalUnitIdentifier: admin
  OrdererOUIdentifier:
    Certificate: cacerts/ca-cert.pem
    OrganizationalUnitIdentifier: orderer
"""
# Where each role's identities live in an organization's folder, and its TLS file stem.
ROLE_FOLDER = {"peer": "peers", "orderer": "orderers", "admin": "users", "client": "users"}
SERVER_ROLES = ("peer", "orderer")


class CA:
    """A self-signed certificate authority, created fresh for ``org``."""

    def __init__(self, org: str, kind: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{kind}.{org}"),
            ]
        )
        ski = x509.SubjectKeyIdentifier.from_public_key(self.key.public_key())
        now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_usage(cert_sign=True), critical=True)
            .add_extension(ski, critical=False)
            .sign(self.key, hashes.SHA256())
        )

    def issue(
        self, org: str, cn: str, ou: str | None, *, tls: bool = False, hosts: tuple[str, ...] = ()
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]
        if ou:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
        now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attrs))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(key_agreement=tls), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if tls:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            builder = builder.add_extension(_alt_names(cn, hosts), critical=False)
        return key, builder.sign(self.key, hashes.SHA256())


def _alt_names(cn: str, hosts: tuple[str, ...]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys((cn, *hosts, "localhost", "127.0.0.1")):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _usage(*, cert_sign: bool = False, key_agreement: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=key_agreement,
        data_encipherment=False,
        key_agreement=key_agreement,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def write_msp(
    msp: Path, ca_pem: bytes, tlsca_pem: bytes, signcert: bytes | None = None, cn: str = ""
) -> None:
    """An MSP folder: the organization's roots, NodeOUs and, for an identity, its certificate
    (its key, where this home holds it, goes to ``keystore/`` beside)."""
    for sub in ("cacerts", "tlscacerts"):
        (msp / sub).mkdir(parents=True, exist_ok=True)
    (msp / "cacerts" / "ca-cert.pem").write_bytes(ca_pem)
    (msp / "tlscacerts" / "tlsca-cert.pem").write_bytes(tlsca_pem)
    (msp / "config.yaml").write_text(NODE_OUS)
    if signcert is not None:
        (msp / "signcerts").mkdir()
        (msp / "signcerts" / f"{cn}-cert.pem").write_bytes(signcert)


def write_public_identity(
    folder: Path, role: str, name: str, ca_pem: bytes, tlsca_pem: bytes, cert: bytes, tls: bytes
) -> None:
    """An identity's folder as another organization sees it: certificates, no key."""
    write_msp(folder / "msp", ca_pem, tlsca_pem, cert, name)
    (folder / "tls").mkdir(parents=True)
    (folder / "tls" / "ca.crt").write_bytes(tlsca_pem)
    stem = "server" if role in SERVER_ROLES else "client"
    (folder / "tls" / f"{stem}.crt").write_bytes(tls)


def issue_identity(
    org_dir: Path, org: str, name: str, role: str, ca: CA, tlsca: CA, hosts: tuple[str, ...]
) -> None:
    """Issue ``name`` its signing and TLS certificates and keys under ``org_dir``."""
    key, cert = ca.issue(org, name, role)
    tls_key, tls_cert = tlsca.issue(org, name, None, tls=True, hosts=(f"{name}.{org}", *hosts))
    folder = org_dir / ROLE_FOLDER[role] / name
    write_public_identity(
        folder, role, name, pem(ca.cert), pem(tlsca.cert), pem(cert), pem(tls_cert)
    )
    (folder / "msp" / "keystore").mkdir(mode=0o700)
    write_key(folder / "msp" / "keystore" / "priv_sk", key)
    stem = "server" if role in SERVER_ROLES else "client"
    write_key(folder / "tls" / f"{stem}.key", tls_key)


def create_authorities(org_dir: Path, org: str) -> tuple[CA, CA]:
    """The organization's CA and TLS CA, their keys kept in ``ca/`` and ``tlsca/``."""
    ca, tlsca = CA(org, "ca"), CA(org, "tlsca")
    for sub, authority in (("ca", ca), ("tlsca", tlsca)):
        (org_dir / sub).mkdir(parents=True)
        (org_dir / sub / f"{sub}-cert.pem").write_bytes(pem(authority.cert))
        write_key(org_dir / sub / "priv_sk", authority.key)
    write_msp(org_dir / "msp", pem(ca.cert), pem(tlsca.cert))
    return ca, tlsca


def write_public_authorities(org_dir: Path, ca_pem: bytes, tlsca_pem: bytes) -> None:
    """Another organization's roots, as its bundle gave them (no keys)."""
    for sub, cert in (("ca", ca_pem), ("tlsca", tlsca_pem)):
        (org_dir / sub).mkdir(parents=True)
        (org_dir / sub / f"{sub}-cert.pem").write_bytes(cert)
    write_msp(org_dir / "msp", ca_pem, tlsca_pem)
