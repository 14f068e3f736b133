"""Founding a consortium from its members' public bundles, and the one-machine shortcut.

``create_consortium`` turns bundles (:mod:`fedspec.app.bundles`) into the consortium folder
every command reads (Fabric's MSP layout, :class:`ledger_client.Consortium`): the other
organizations' certificates beside this home's own organization, whose private keys never
leave it. The configuration hash depends only on the set of bundles, so every founder who runs
it with the same bundles prints the same hash, to compare out of band.

``init_consortium`` (``fedspec consortium init``) is the shortcut for the demo and the tests:
it runs ``org init`` for every organization, exports their bundles and founds from them, the
same steps as a real consortium, in one folder that then holds every key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fedspec.app.bundles import Bundle, export_bundle
from fedspec.app.orgs import MEMBER, ORDERING, check_org_name, init_org, read_org
from fedspec.app.pki import ROLE_FOLDER, write_public_authorities, write_public_identity
from fedspec.errors import ConsortiumError
from fedspec.fileio import write_atomic
from ledger_client.consortium import FORMAT, MANIFEST

ORDERER_ORG = "orderer"  # the shortcut's ordering organization
CONFIG_FORMAT = "fedspec-consortium-config-v1"


@dataclass(frozen=True)
class Founded:
    path: Path
    config_hash: str
    members: list[str]
    orderer: str
    own: list[str]  # the organizations whose private keys this folder holds


def parse_orgs(text: str) -> list[str]:
    orgs = [o.strip() for o in text.split(",") if o.strip()]
    if not orgs:
        raise ConsortiumError("--orgs needs at least one organization name")
    for o in orgs:
        if o == ORDERER_ORG:
            raise ConsortiumError(f"organization name {o!r} is the ordering organization's")
        try:
            check_org_name(o)
        except ConsortiumError as exc:
            raise ConsortiumError(f"--orgs: {exc.message}") from None
    if len(set(orgs)) != len(orgs):
        raise ConsortiumError("--orgs names an organization twice")
    if len(orgs) > 32:
        raise ConsortiumError("at most 32 organizations")
    return orgs


def config_hash(bundles: Sequence[Bundle]) -> str:
    """SHA-256 of the consortium's configuration: which organizations, each by its bundle's
    fingerprint (which covers every certificate and endpoint), in no particular order."""
    doc = {
        "format": CONFIG_FORMAT,
        "organizations": sorted(
            ({"name": b.name, "kind": b.kind, "fingerprint": b.fingerprint} for b in bundles),
            key=lambda o: o["name"],
        ),
    }
    return hashlib.sha256(
        json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def create_consortium(consortium_dir: Path, bundles: Sequence[Bundle]) -> Founded:
    """Found the consortium in ``consortium_dir`` from ``bundles`` (the members', in the order
    given, and one ordering organization's). Organizations already in the folder are this
    home's own (made by ``org init``); each must match its bundle. All or nothing."""
    consortium_dir = Path(consortium_dir)
    if (consortium_dir / MANIFEST).exists():
        raise ConsortiumError(
            f"{consortium_dir} already holds a founded consortium; members join by vote"
        )
    members, orderer = _check_founding(consortium_dir, bundles)
    own = [b.name for b in bundles if _check_own(consortium_dir, b)]
    consortium_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".founding.", dir=consortium_dir))
    placed: list[Path] = []
    try:
        for b in bundles:
            if b.name not in own:
                _write_public_org(staging / _folder(b) / b.name, b)
        for b in bundles:
            if b.name not in own:
                target = consortium_dir / _folder(b) / b.name
                target.parent.mkdir(exist_ok=True)
                os.rename(staging / _folder(b) / b.name, target)
                placed.append(target)
        digest = config_hash(bundles)
        manifest = {
            "format": FORMAT,
            "organizations": [_entry(b) for b in members],
            "orderer": _entry(orderer),
            "own": own,
            "config_hash": digest,
            "bundles": {b.name: b.fingerprint for b in bundles},
            "endpoints": {b.name: b.endpoints for b in bundles},
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        write_atomic(consortium_dir / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    except BaseException:
        for target in placed:
            shutil.rmtree(target, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Founded(consortium_dir, digest, [b.name for b in members], orderer.name, own)


def _check_founding(consortium_dir: Path, bundles: Sequence[Bundle]) -> tuple[list[Bundle], Bundle]:
    """The member bundles and the ordering organization's, or why these cannot found one."""
    members = [b for b in bundles if b.kind == MEMBER]
    ordering = [b for b in bundles if b.kind == ORDERING]
    names = [b.name for b in bundles]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConsortiumError(f"two bundles for organization {twice[0]}")
    if not members:
        raise ConsortiumError("a consortium needs at least one member bundle")
    if len(ordering) != 1:
        raise ConsortiumError(
            f"a consortium needs exactly one ordering organization's bundle, not {len(ordering)}"
        )
    if len(members) > 64:
        raise ConsortiumError("at most 64 member organizations")
    home_org = read_org(consortium_dir)
    if home_org is not None and home_org.name not in names:
        raise ConsortiumError(f"this home's organization {home_org.name} is not among the bundles")
    return members, ordering[0]


def _folder(b: Bundle) -> str:
    return "peerOrganizations" if b.kind == MEMBER else "ordererOrganizations"


def _check_own(consortium_dir: Path, b: Bundle) -> bool:
    """Whether ``b``'s organization lives in this folder; refuses a bundle that does not
    match the organization's own certificates here (a forged bundle of one's own org)."""
    org_dir = consortium_dir / _folder(b) / b.name
    if not org_dir.exists():
        return False
    try:
        ca = (org_dir / "ca" / "ca-cert.pem").read_text()
    except OSError as exc:
        raise ConsortiumError(f"cannot read {org_dir}: {exc.strerror or exc}") from None
    if ca != b.ca:
        raise ConsortiumError(
            f"the bundle for {b.name} does not match {b.name}'s own CA in {consortium_dir}"
        )
    return True


def _write_public_org(org_dir: Path, b: Bundle) -> None:
    ca, tlsca = b.ca.encode(), b.tls_ca.encode()
    write_public_authorities(org_dir, ca, tlsca)
    for i in b.identities:
        folder = org_dir / ROLE_FOLDER[i.role] / i.name
        write_public_identity(
            folder, i.role, i.name, ca, tlsca, i.cert.encode(), i.tls_cert.encode()
        )


def _entry(b: Bundle) -> dict[str, object]:
    if b.kind == ORDERING:
        return {
            "name": b.name,
            "msp_id": b.msp_id,
            "orderers": b.names("orderer"),
            "admins": b.names("admin"),
        }
    entry: dict[str, object] = {
        "name": b.name,
        "msp_id": b.msp_id,
        "peers": b.names("peer"),
        "admins": b.names("admin"),
        "nodes": sorted(b.names("client"), key=_natural),
    }
    if b.names("orderer"):  # a member that runs raft orderers of its own
        entry["orderers"] = b.names("orderer")
    return entry


def _natural(name: str) -> tuple[str, int]:
    """node2 before node10."""
    stem = name.rstrip("0123456789")
    return stem, int(name[len(stem) :] or 0)


def init_consortium(
    orgs: list[str], out: Path, *, nodes_per_org: int = 2, orderers: int = 3, force: bool = False
) -> Path:
    """The one-machine shortcut: ``org init`` for each organization and an ordering
    organization, then ``create_consortium`` from their bundles, in a folder holding every
    key. Refuses to replace an existing folder unless ``force``; all or nothing."""
    if not 1 <= nodes_per_org <= 64:
        raise ConsortiumError("--nodes-per-org must be between 1 and 64")
    out = Path(out).absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise ConsortiumError(f"{out} already exists and is not empty; pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        target = staging / "consortium"
        bundles = []
        plan = [*((o, nodes_per_org, 0) for o in orgs), (ORDERER_ORG, 0, orderers)]
        for name, nodes, orderer_count in plan:
            home = staging / "homes" / name
            record = init_org(home, name, nodes=nodes, orderers=orderer_count)
            bundles.append(export_bundle(home))
            (target / record.folder).mkdir(parents=True, exist_ok=True)
            os.rename(home / record.folder / name, target / record.folder / name)
        create_consortium(target, bundles)
        os.chmod(target, 0o755)
        if out.exists():
            trash = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(trash)
            target.rename(out)
            shutil.rmtree(trash)
        else:
            target.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
