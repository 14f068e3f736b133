"""Certificates checked before a member starts anything (`fedspec node up`).

Fabric reports an expired certificate or a TLS certificate that does not name the host as a
handshake failure deep in a peer's or orderer's log, often minutes later and on the *other*
side of the connection. Checked here first, each becomes one line that names the member, the
certificate and what to do, and nothing is started.

- This organization's own server TLS certificates (its peer's, its orderers'): valid now, and
  issued for the host the process listens on (a subject alternative name, DNS or IP), since
  every client verifies the name it dialled.
- Its own signing certificates (admin, peer, orderers): valid now; an expired one signs
  transactions every peer refuses.
- Every organization's CA and TLS CA certificate in the consortium folder: valid now, since
  an expired CA makes every certificate it issued unverifiable.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509

from fabric_network.layout import Layout, MemberLayout, OrderingLayout
from fabric_network.node_errors import CertificateError


def check_certificates(
    layout: MemberLayout | OrderingLayout, now: dt.datetime | None = None
) -> None:
    """Refuse (:class:`CertificateError`) before anything of ``layout`` starts."""
    now = now or dt.datetime.now(dt.UTC)
    org = layout.org
    for name, (path, host) in _servers(layout).items():
        cert = _load(path, f"{org}'s {name} TLS certificate")
        _check_validity(cert, f"{org}'s {name} TLS certificate ({path})", now, _reissue(org))
        names = _subject_names(cert)
        if not _names_host(names, host):
            raise CertificateError(
                f"{org}'s {name} TLS certificate ({path}) is issued for "
                f"{', '.join(sorted(names)) or 'no host'}, not {host!r:.80}, where it listens: "
                f"clients would refuse it; {_reissue(org)}"
            )
    for what, path in _own_signing(layout, org):
        cert = _load(path, f"{org}'s {what} certificate")
        _check_validity(cert, f"{org}'s {what} certificate ({path})", now, _reissue(org))
    for other, what, path in _authorities(layout):
        cert = _load(path, f"{other}'s {what} certificate")
        how = (
            _reissue(org)
            if other == org
            else f"{other} must make new keys and the members vote its new bundle in"
        )
        _check_validity(cert, f"{other}'s {what} certificate ({path})", now, how)


def _reissue(org: str) -> str:
    return (
        f"{org} makes its identities again for this host (`fedspec org init {org} --host …` in a "
        "new home) and the members vote its new bundle in"
    )


def _load(path: Path, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except OSError as exc:
        raise CertificateError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise CertificateError(f"{what} {path} is not a PEM certificate") from None


def _check_validity(cert: x509.Certificate, what: str, now: dt.datetime, how: str) -> None:
    if cert.not_valid_after_utc <= now:
        raise CertificateError(
            f"{what} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC: {how}"
        )
    if cert.not_valid_before_utc > now:
        raise CertificateError(
            f"{what} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC: "
            "check this host's clock"
        )


def _subject_names(cert: x509.Certificate) -> set[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {*san.get_values_for_type(x509.DNSName)} | {
        str(ip) for ip in san.get_values_for_type(x509.IPAddress)
    }


def _names_host(names: set[str], host: str) -> bool:
    try:
        return str(ipaddress.ip_address(host)) in names
    except ValueError:  # a DNS name: compared as DNS names are, without case
        return host.lower() in {n.lower() for n in names}


def _servers(layout: MemberLayout | OrderingLayout) -> dict[str, tuple[Path, str]]:
    """Each of this organization's own processes → (its TLS server certificate, the host it
    listens on)."""
    out = {
        o.name: (
            layout.orderer_dir(o.name, layout.orderer_org_of(o)) / "tls" / "server.crt",
            o.host,
        )
        for o in layout.orderers
    }
    if isinstance(layout, MemberLayout):
        peer = layout.own_peer
        out[peer.name] = (layout.peer_dir(layout.org) / "tls" / "server.crt", peer.host)
    return out


def _own_signing(layout: MemberLayout | OrderingLayout, org: str) -> Iterator[tuple[str, Path]]:
    yield "admin", layout.admin_dir(org) / "msp" / "signcerts" / "admin-cert.pem"
    for o in layout.orderers:
        folder = layout.orderer_dir(o.name, layout.orderer_org_of(o))
        yield o.name, folder / "msp" / "signcerts" / f"{o.name}-cert.pem"
    if isinstance(layout, MemberLayout):
        yield "peer0", layout.peer_dir(org) / "msp" / "signcerts" / "peer0-cert.pem"


def _authorities(layout: Layout) -> Iterator[tuple[str, str, Path]]:
    consortium = layout.consortium
    for o in [*consortium.members, consortium.orderer_org]:
        yield o.name, "CA", layout.org_dir(o.name) / "ca" / "ca-cert.pem"
        yield o.name, "TLS CA", layout.tls_ca(o.name)
