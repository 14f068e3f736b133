"""Reading a consortium folder (written by ``fedspec consortium init``).

The folder follows Fabric's MSP layout, so the same identities drive the embedded ledger and a
Fabric network::

    consortium.json                          manifest: organizations and identity names
    peerOrganizations/<org>/msp/             the organization's MSP (cacerts, tlscacerts, config.yaml)
    peerOrganizations/<org>/{peers,users}/<name>/msp|tls
    ordererOrganizations/<orderer>/...       the ordering service's organization
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger_client.errors import IdentityError
from ledger_client.identity import MspIdentity, load_msp_identity

MANIFEST = "consortium.json"
FORMAT = "fedspec-consortium-v1"


@dataclass(frozen=True)
class Organization:
    name: str
    msp_id: str
    kind: str  # "peer" for members, "orderer" for the ordering service
    peers: tuple[str, ...]
    admins: tuple[str, ...]
    nodes: tuple[str, ...]
    orderers: tuple[str, ...]

    @property
    def folder(self) -> str:
        return "peerOrganizations" if self.kind == "peer" else "ordererOrganizations"


class Consortium:
    def __init__(self, root: Path, manifest: dict[str, Any]) -> None:
        self.root = root
        self.manifest = manifest
        self.members = [_org(o, "peer") for o in manifest["organizations"]]
        self.orderer_org = _org(manifest["orderer"], "orderer")

    @classmethod
    def load(cls, root: Path | str) -> Consortium:
        root = Path(root)
        path = root / MANIFEST
        if not path.is_file():
            raise IdentityError(
                f"{root} is not a consortium folder (no {MANIFEST}); run `fedspec consortium init`"
            )
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise IdentityError(f"cannot read {path}: {exc}") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise IdentityError(f"{path} is not a {FORMAT} manifest")
        return cls(root, manifest)

    @property
    def own(self) -> list[str]:
        """The organizations whose private keys this folder holds: one in a member's home,
        every one in the one-machine shortcut (and in folders older than ``own``)."""
        names = [o.name for o in [*self.members, self.orderer_org]]
        own = self.manifest.get("own")
        return [n for n in names if n in own] if isinstance(own, list) else names

    @property
    def default_admin(self) -> str:
        """The identity commands act as without ``--as``: this home's own organization's
        admin (the first member's, where the home holds several)."""
        own = [o for o in self.members if o.name in self.own]
        first = own[0] if own else self.members[0]
        return f"{first.name}/{first.admins[0]}"

    @property
    def member_ids(self) -> list[str]:
        return [o.msp_id for o in self.members]

    def org(self, name: str) -> Organization:
        for o in [*self.members, self.orderer_org]:
            if name in (o.name, o.msp_id):
                return o
        raise IdentityError(f"no organization {name!r} in {self.root}")

    def org_dir(self, org: Organization) -> Path:
        return self.root / org.folder / org.name

    def identity_dir(self, ref: str) -> Path:
        """``org1/node0`` → the folder holding that identity's ``msp/`` and ``tls/``."""
        org_name, _, name = ref.partition("/")
        org = self.org(org_name)
        for kind, names in (
            ("peers", org.peers),
            ("users", (*org.admins, *org.nodes)),
            ("orderers", org.orderers),
        ):
            if name in names:
                return self.org_dir(org) / kind / name
        raise IdentityError(f"no identity {ref!r} in {self.root}")

    def identity(self, ref: str) -> MspIdentity:
        org = self.org(ref.partition("/")[0])
        if org.name not in self.own:
            raise IdentityError(
                f"{ref} is {org.name}'s identity and this home is "
                f"{', '.join(self.own) or 'no organization'}'s: an organization's private keys "
                "stay in its own home (act as one of yours with --as)"
            )
        return load_msp_identity(self.identity_dir(ref) / "msp", org.msp_id)

    def node_refs(self) -> list[str]:
        return [f"{o.name}/{n}" for o in self.members for n in o.nodes]

    def ca_cert(self, org: Organization) -> bytes:
        return (self.org_dir(org) / "msp" / "cacerts" / "ca-cert.pem").read_bytes()

    def tls_ca_cert(self, org: Organization) -> bytes:
        return (self.org_dir(org) / "msp" / "tlscacerts" / "tlsca-cert.pem").read_bytes()


def _org(doc: dict[str, Any], kind: str) -> Organization:
    try:
        return Organization(
            name=str(doc["name"]),
            msp_id=str(doc["msp_id"]),
            kind=kind,
            peers=tuple(doc.get("peers", ())),
            admins=tuple(doc.get("admins", ())),
            nodes=tuple(doc.get("nodes", ())),
            orderers=tuple(doc.get("orderers", ())),
        )
    except (KeyError, TypeError) as exc:
        raise IdentityError(f"malformed organization entry in {MANIFEST}: {exc}") from exc
