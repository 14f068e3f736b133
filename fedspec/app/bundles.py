"""An organization's public bundle: what other members need of it, and nothing secret.

``fedspec org export`` writes it; founders (``consortium create``) and voters
(``consortium propose-member``) read it. It holds the organization's CA and TLS CA
certificates, every identity's signing and TLS certificate, its MSP id, kind and endpoints,
and a format version. Its fingerprint (SHA-256 of its canonical JSON) is what members compare
out of band before trusting a bundle.

Reading one checks everything a forged or careless bundle could get wrong: a private key
anywhere in it, a CA that is not a self-signed P-256 CA, a certificate not issued by the
bundle's CA (or outside its validity), an identity whose certificate names another
organization, role or name.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chaincode.membership import bundle_fingerprint
from fedspec.app.orgs import MEMBER, ORDERING, OrgRecord, check_host, check_org_name, read_org
from fedspec.app.pki import ROLE_FOLDER, SERVER_ROLES
from fedspec.errors import ConsortiumError
from fedspec.fileio import write_atomic

BUNDLE_FORMAT = "fedspec-org-bundle-v1"
MAX_BUNDLE_BYTES = 1 << 20
ENDPOINT = re.compile(r"(?P<host>[^:\s]+):(?P<port>[0-9]{1,5})")


@dataclass(frozen=True)
class BundleIdentity:
    name: str
    role: str  # a NodeOU: client, peer, admin or orderer
    cert: str  # PEM
    tls_cert: str  # PEM


@dataclass(frozen=True)
class Bundle:
    name: str
    kind: str  # MEMBER or ORDERING
    host: str
    ca: str  # PEM
    tls_ca: str  # PEM
    identities: tuple[BundleIdentity, ...]
    endpoints: dict[str, str]

    @property
    def msp_id(self) -> str:
        return self.name

    def names(self, role: str) -> list[str]:
        return [i.name for i in self.identities if i.role == role]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": BUNDLE_FORMAT,
            "name": self.name,
            "msp_id": self.msp_id,
            "kind": self.kind,
            "host": self.host,
            "ca": self.ca,
            "tls_ca": self.tls_ca,
            "identities": [
                {"name": i.name, "role": i.role, "cert": i.cert, "tls_cert": i.tls_cert}
                for i in self.identities
            ],
            "endpoints": dict(sorted(self.endpoints.items())),
        }

    @property
    def fingerprint(self) -> str:
        # The chaincode's own computation: what a vote checks is what `org export` printed.
        return bundle_fingerprint(self.to_json())


def spaced(fingerprint: str) -> str:
    """A fingerprint as people read it aloud: groups of four hex digits."""
    return " ".join(fingerprint[i : i + 4] for i in range(0, len(fingerprint), 4))


def export_bundle(consortium_dir: Path) -> Bundle:
    """This home's organization as a bundle (certificates only), checked as any reader would."""
    record = read_org(consortium_dir)
    if record is None:
        raise ConsortiumError(
            f"{consortium_dir} holds no organization of its own; run `fedspec org init ORG` first"
        )
    return org_bundle(consortium_dir, record)


def org_bundle(consortium_dir: Path, record: OrgRecord) -> Bundle:
    """The bundle of ``record``'s organization, from its certificates in ``consortium_dir``
    (its own home, or a folder that holds several, as the one-machine shortcut's does)."""
    org_dir = Path(consortium_dir) / record.folder / record.name
    try:
        identities = []
        for role, names in sorted(record.identities.items()):
            for name in names:
                folder = org_dir / ROLE_FOLDER[role] / name
                stem = "server" if role in SERVER_ROLES else "client"
                identities.append(
                    BundleIdentity(
                        name,
                        role,
                        (folder / "msp" / "signcerts" / f"{name}-cert.pem").read_text(),
                        (folder / "tls" / f"{stem}.crt").read_text(),
                    )
                )
        bundle = Bundle(
            name=record.name,
            kind=record.kind,
            host=record.host,
            ca=(org_dir / "ca" / "ca-cert.pem").read_text(),
            tls_ca=(org_dir / "tlsca" / "tlsca-cert.pem").read_text(),
            identities=tuple(identities),
            endpoints=record.endpoints,
        )
    except OSError as exc:
        raise ConsortiumError(f"cannot read {record.name}'s certificates: {exc}") from None
    return parse_bundle(bundle.to_json(), f"{record.name}'s bundle")


def write_bundle(bundle: Bundle, path: Path) -> None:
    write_atomic(path, json.dumps(bundle.to_json(), indent=2, sort_keys=True).encode() + b"\n")


def load_bundle(path: Path) -> Bundle:
    """Read and check a bundle file; :class:`ConsortiumError` names the file and the fault."""
    where = str(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BUNDLE_BYTES + 1)
    except OSError as exc:
        raise ConsortiumError(f"cannot read {where}: {exc.strerror or exc}") from None
    if len(raw) > MAX_BUNDLE_BYTES:
        raise ConsortiumError(f"{where} is larger than a bundle can be ({MAX_BUNDLE_BYTES} bytes)")
    if b"PRIVATE KEY" in raw:
        raise ConsortiumError(
            f"{where} holds a private key; a bundle carries certificates only "
            "(make it with `fedspec org export`, and treat that key as exposed)"
        )
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ConsortiumError(f"{where} is not a JSON bundle: {exc}") from None
    return parse_bundle(doc, where)


def parse_bundle(doc: object, where: str) -> Bundle:
    if not isinstance(doc, dict) or doc.get("format") != BUNDLE_FORMAT:
        raise ConsortiumError(f"{where} is not a {BUNDLE_FORMAT} bundle")
    try:
        name = check_org_name(_text(doc, "name", where))
        if doc.get("msp_id") != name:
            raise ConsortiumError(f"{where}: msp_id must equal the organization name {name!r}")
        kind = _text(doc, "kind", where)
        if kind not in (MEMBER, ORDERING):
            raise ConsortiumError(f"{where}: kind must be {MEMBER!r} or {ORDERING!r}")
        host = check_host(_text(doc, "host", where))
    except ConsortiumError as exc:
        raise ConsortiumError(f"{where}: {exc}") from None
    ca_pem, tls_ca_pem = _text(doc, "ca", where), _text(doc, "tls_ca", where)
    ca = _check_ca(ca_pem, name, f"{where}: the CA")
    tls_ca = _check_ca(tls_ca_pem, name, f"{where}: the TLS CA")
    raw_ids = doc.get("identities")
    if not isinstance(raw_ids, list) or not raw_ids:
        raise ConsortiumError(f"{where}: identities must be a non-empty list")
    identities = tuple(_identity(item, name, ca, tls_ca, where) for item in raw_ids)
    bundle = Bundle(
        name, kind, host, ca_pem, tls_ca_pem, identities, _endpoints(doc.get("endpoints"), where)
    )
    _check_shape(bundle, where)
    return bundle


def _text(doc: dict[str, Any], key: str, where: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise ConsortiumError(f"{where}: {key} must be a non-empty string")
    return value


def _cert(pem: str, what: str) -> x509.Certificate:
    if pem.count("-----BEGIN CERTIFICATE-----") != 1:
        raise ConsortiumError(f"{what} must be exactly one PEM certificate")
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise ConsortiumError(f"{what} cannot be parsed: {exc}") from None
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConsortiumError(f"{what} is not an ECDSA P-256 certificate")
    now = dt.datetime.now(dt.UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise ConsortiumError(
            f"{what} is not valid now (valid {cert.not_valid_before_utc:%Y-%m-%d} to "
            f"{cert.not_valid_after_utc:%Y-%m-%d})"
        )
    return cert


def _check_ca(pem: str, org: str, what: str) -> x509.Certificate:
    cert = _cert(pem, what)
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise ConsortiumError(
            f"{what} lacks the CA extensions (basic constraints, key usage)"
        ) from None
    if not constraints.ca or not usage.key_cert_sign:
        raise ConsortiumError(f"{what} is not a certificate authority")
    try:
        cert.verify_directly_issued_by(cert)
    except Exception:  # InvalidSignature, or an issuer that is not its own subject
        raise ConsortiumError(f"{what} is not self-signed") from None
    if _attr(cert, NameOID.ORGANIZATION_NAME) != org:
        raise ConsortiumError(
            f"{what} names organization {_attr(cert, NameOID.ORGANIZATION_NAME)!r}, not {org!r}"
        )
    return cert


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate, what: str, by: str) -> None:
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception:  # InvalidSignature, or a name that is not the issuer's
        raise ConsortiumError(f"{what} was not issued by the bundle's {by}") from None


def _identity(
    item: object, org: str, ca: x509.Certificate, tls_ca: x509.Certificate, where: str
) -> BundleIdentity:
    if not isinstance(item, dict):
        raise ConsortiumError(f"{where}: every identity must be an object")
    name, role = _text(item, "name", where), _text(item, "role", where)
    check_org_name(name, "identity name")
    if role not in ROLE_FOLDER:
        raise ConsortiumError(f"{where}: {name} has unknown role {role!r:.20}")
    what = f"{where}: {name}'s certificate"
    cert = _cert(_text(item, "cert", where), what)
    _issued_by(cert, ca, what, "CA")
    tls = _cert(_text(item, "tls_cert", where), f"{where}: {name}'s TLS certificate")
    _issued_by(tls, tls_ca, f"{where}: {name}'s TLS certificate", "TLS CA")
    seen = (
        _attr(cert, NameOID.ORGANIZATION_NAME),
        _attr(cert, NameOID.ORGANIZATIONAL_UNIT_NAME),
        _attr(cert, NameOID.COMMON_NAME),
    )
    if seen != (org, role, name):
        raise ConsortiumError(
            f"{what} names {seen[2]!r} ({seen[1]!r}) of {seen[0]!r}, not {name!r} ({role!r}) of {org!r}"
        )
    return BundleIdentity(name, role, item["cert"], item["tls_cert"])


def _attr(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str | None:
    values = cert.subject.get_attributes_for_oid(oid)
    return str(values[0].value) if values else None


def _endpoints(value: object, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConsortiumError(f"{where}: endpoints must be an object")
    out = {}
    for name, endpoint in value.items():
        m = ENDPOINT.fullmatch(endpoint) if isinstance(endpoint, str) else None
        if m is None or not 0 < int(m["port"]) < 65536:
            raise ConsortiumError(f"{where}: endpoint of {name} must be host:port")
        out[str(name)] = endpoint
    return out


def _check_shape(bundle: Bundle, where: str) -> None:
    names = [i.name for i in bundle.identities]
    if len(set(names)) != len(names):
        raise ConsortiumError(f"{where}: an identity name appears twice")
    if not bundle.names("admin"):
        raise ConsortiumError(f"{where}: an organization needs an admin")
    servers = "orderer" if bundle.kind == ORDERING else "peer"
    if not bundle.names(servers):
        raise ConsortiumError(f"{where}: a {bundle.kind} organization needs a {servers}")
    if bundle.kind == ORDERING and (bundle.names("peer") or bundle.names("client")):
        raise ConsortiumError(f"{where}: a {bundle.kind} organization cannot hold peers or nodes")
    # A member may run raft orderers of its own (`org init --raft`) beside its peer.
    unknown = set(bundle.endpoints) - set(bundle.names(servers)) - set(bundle.names("orderer"))
    if unknown:
        raise ConsortiumError(f"{where}: endpoints name unknown servers {sorted(unknown)}")
