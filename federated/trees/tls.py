"""Per-run mutual-TLS material for XGBoost's federated server.

XGBoost 3.2's federated server listens on ``0.0.0.0`` with no option to choose the
interface (``FederatedTracker::Run`` hard-codes the address; neither the Python wrapper nor
the ``XGTrackerCreate`` config has a host key). So the port is reachable from other hosts
while a run lasts, and TLS decides who may talk to it: a fresh CA signs one server
certificate (for 127.0.0.1) and one client certificate per node; the server requires and
verifies a client certificate from that CA. The CA's private key lives only in memory and
is discarded once the certificates are signed, so no certificate can be issued later, and
every file is deleted with the run's temporary directory.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK = "127.0.0.1"
_VALIDITY = datetime.timedelta(hours=6)


@dataclass(frozen=True)
class ClientCredentials:
    key_path: Path
    cert_path: Path


@dataclass(frozen=True)
class FederationCredentials:
    """Paths of the PEM files one run needs (all inside its temporary directory)."""

    ca_cert_path: Path
    server_key_path: Path
    server_cert_path: Path
    clients: dict[str, ClientCredentials]


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_private(path: Path, data: bytes) -> None:
    # Created owner-only (0600) before any byte is written.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def issue_credentials(directory: Path, client_names: Sequence[str]) -> FederationCredentials:
    """A CA, a server certificate for 127.0.0.1 and one client certificate per name."""
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + _VALIDITY
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("fedspec xgboost federation CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(common_name: str, usage: x509.ObjectIdentifier, server: bool) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server:
            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))])
            builder = builder.add_extension(san, critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        return _key_pem(key), cert.public_bytes(serialization.Encoding.PEM)

    directory.mkdir(parents=True, exist_ok=True)
    ca_path = directory / "ca-cert.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    server_key, server_cert = leaf(
        "fedspec federated server", ExtendedKeyUsageOID.SERVER_AUTH, True
    )
    _write_private(directory / "server-key.pem", server_key)
    (directory / "server-cert.pem").write_bytes(server_cert)
    clients = {}
    for index, name in enumerate(client_names):
        key_pem, cert_pem = leaf(f"fedspec node {name}", ExtendedKeyUsageOID.CLIENT_AUTH, False)
        # Files are numbered, not named after nodes: node ids need not be safe file names.
        key_path, cert_path = (
            directory / f"client-{index}-key.pem",
            directory / f"client-{index}-cert.pem",
        )
        _write_private(key_path, key_pem)
        cert_path.write_bytes(cert_pem)
        clients[name] = ClientCredentials(key_path=key_path, cert_path=cert_path)
    return FederationCredentials(
        ca_cert_path=ca_path,
        server_key_path=directory / "server-key.pem",
        server_cert_path=directory / "server-cert.pem",
        clients=clients,
    )
