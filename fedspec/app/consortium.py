"""``fedspec consortium init``: one CA and one TLS CA per organization, identities in MSP layout.

Every organization gets an ECDSA P-256 signing CA and TLS CA, an admin, a peer and N training
nodes, with NodeOUs (client, peer, admin, orderer) as Fabric expects; the ordering service
gets its own organization with three orderers. Private keys are written with mode 0600.
The whole folder is written next to its destination and moved into place at the end, so a
refused or interrupted call leaves nothing half-written.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fedspec.errors import ConsortiumError
from ledger_client.consortium import FORMAT, MANIFEST

ORG_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")
ORDERER_ORG = "orderer"
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


def parse_orgs(text: str) -> list[str]:
    orgs = [o.strip() for o in text.split(",") if o.strip()]
    if not orgs:
        raise ConsortiumError("--orgs needs at least one organization name")
    for o in orgs:
        if not ORG_NAME.fullmatch(o) or o == ORDERER_ORG:
            raise ConsortiumError(
                f"organization name {o!r} must match [a-z][a-z0-9-]* and not be {ORDERER_ORG!r}"
            )
    if len(set(orgs)) != len(orgs):
        raise ConsortiumError("--orgs names an organization twice")
    if len(orgs) > 32:
        raise ConsortiumError("at most 32 organizations")
    return orgs


def init_consortium(
    orgs: list[str], out: Path, *, nodes_per_org: int = 2, orderers: int = 3, force: bool = False
) -> Path:
    """Create the consortium folder ``out``; refuse to replace an existing one unless ``force``."""
    if not 1 <= nodes_per_org <= 64:
        raise ConsortiumError("--nodes-per-org must be between 1 and 64")
    out = Path(out).absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise ConsortiumError(f"{out} already exists and is not empty; pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        manifest = {
            "format": FORMAT,
            "organizations": [_member_org(staging, o, nodes_per_org) for o in orgs],
            "orderer": _orderer_org(staging, orderers),
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        os.chmod(staging, 0o755)
        if out.exists():
            trash = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(trash)
            staging.rename(out)
            shutil.rmtree(trash)
        else:
            staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


class _CA:
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
            sans: list[x509.GeneralName] = [x509.DNSName(h) for h in (cn, *hosts, "localhost")]
            sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return key, builder.sign(self.key, hashes.SHA256())


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


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _write_msp(
    msp: Path,
    ca: _CA,
    tlsca: _CA,
    signcert: x509.Certificate | None = None,
    key: ec.EllipticCurvePrivateKey | None = None,
) -> None:
    for sub in ("cacerts", "tlscacerts"):
        (msp / sub).mkdir(parents=True, exist_ok=True)
    (msp / "cacerts" / "ca-cert.pem").write_bytes(_pem(ca.cert))
    (msp / "tlscacerts" / "tlsca-cert.pem").write_bytes(_pem(tlsca.cert))
    (msp / "config.yaml").write_text(NODE_OUS)
    if signcert is not None and key is not None:
        (msp / "signcerts").mkdir()
        (msp / "keystore").mkdir(mode=0o700)
        cn = signcert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        (msp / "signcerts" / f"{cn!s}-cert.pem").write_bytes(_pem(signcert))
        _write_key(msp / "keystore" / "priv_sk", key)


def _identity(
    base: Path, org: str, name: str, ou: str, ca: _CA, tlsca: _CA, *, server: bool
) -> None:
    key, cert = ca.issue(org, name, ou)
    _write_msp(base / name / "msp", ca, tlsca, cert, key)
    tls_key, tls_cert = tlsca.issue(org, name, None, tls=True, hosts=(f"{name}.{org}",))
    tls = base / name / "tls"
    tls.mkdir(parents=True)
    (tls / "ca.crt").write_bytes(_pem(tlsca.cert))
    stem = "server" if server else "client"
    (tls / f"{stem}.crt").write_bytes(_pem(tls_cert))
    _write_key(tls / f"{stem}.key", tls_key)


def _org_base(root: Path, folder: str, org: str) -> tuple[Path, _CA, _CA]:
    base = root / folder / org
    ca, tlsca = _CA(org, "ca"), _CA(org, "tlsca")
    for sub, authority in (("ca", ca), ("tlsca", tlsca)):
        (base / sub).mkdir(parents=True)
        (base / sub / f"{sub}-cert.pem").write_bytes(_pem(authority.cert))
        _write_key(base / sub / "priv_sk", authority.key)
    _write_msp(base / "msp", ca, tlsca)
    return base, ca, tlsca


def _member_org(root: Path, org: str, nodes_per_org: int) -> dict[str, object]:
    base, ca, tlsca = _org_base(root, "peerOrganizations", org)
    nodes = [f"node{i}" for i in range(nodes_per_org)]
    _identity(base / "peers", org, "peer0", "peer", ca, tlsca, server=True)
    _identity(base / "users", org, "admin", "admin", ca, tlsca, server=False)
    for n in nodes:
        _identity(base / "users", org, n, "client", ca, tlsca, server=False)
    return {"name": org, "msp_id": org, "peers": ["peer0"], "admins": ["admin"], "nodes": nodes}


def _orderer_org(root: Path, count: int) -> dict[str, object]:
    base, ca, tlsca = _org_base(root, "ordererOrganizations", ORDERER_ORG)
    names = [f"orderer{i}" for i in range(count)]
    for n in names:
        _identity(base / "orderers", ORDERER_ORG, n, "orderer", ca, tlsca, server=True)
    _identity(base / "users", ORDERER_ORG, "admin", "admin", ca, tlsca, server=False)
    return {"name": ORDERER_ORG, "msp_id": ORDERER_ORG, "orderers": names, "admins": ["admin"]}
