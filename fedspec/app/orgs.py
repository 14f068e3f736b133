"""``fedspec org init``: one organization creates its own identities, in its own home.

An organization is either a *member* (a peer, an admin and N training nodes) or an
*ordering* organization (orderers and an admin). Its CA and TLS CA are created here, and every
private key stays in this home's consortium folder (mode 0600); what others need is exported
as a public bundle (:mod:`fedspec.app.bundles`). ``org.json`` records which organization this
home is and what it holds, so that ``fedspec org export`` and ``consortium create`` know.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedspec.app.pki import create_authorities, issue_identity
from fedspec.errors import ConsortiumError
from ledger_client.consortium import MANIFEST

ORG_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")
HOST_NAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
ORG_FILE = "org.json"
ORG_FORMAT = "fedspec-org-v1"
MEMBER, ORDERING = "member", "ordering"
PEER_PORT, ORDERER_PORT = 7051, 7050
# A peer binds its port and the next three; nine orderers bind up to port + 82; a member's
# own orderer binds port + 10 and the next two.
MEMBER_ORDERER_OFFSET = 10
MIN_PORT, MAX_PORT = 1024, 65400


@dataclass(frozen=True)
class OrgRecord:
    """What ``org.json`` says of this home's organization."""

    name: str
    kind: str  # MEMBER or ORDERING
    host: str
    identities: dict[str, list[str]]  # role → names, roles as NodeOUs name them
    endpoints: dict[str, str]  # server identity → host:port it will listen on

    @property
    def folder(self) -> str:
        return "peerOrganizations" if self.kind == MEMBER else "ordererOrganizations"

    def to_json(self) -> dict[str, Any]:
        return {
            "format": ORG_FORMAT,
            "name": self.name,
            "kind": self.kind,
            "host": self.host,
            "identities": self.identities,
            "endpoints": self.endpoints,
        }


def check_org_name(name: str, what: str = "organization name") -> str:
    if not ORG_NAME.fullmatch(name):
        raise ConsortiumError(f"{what} {name!r:.40} must match [a-z][a-z0-9-]{{0,30}}")
    return name


def check_host(host: str) -> str:
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    if not HOST_NAME.fullmatch(host):
        raise ConsortiumError(f"--host {host!r:.60} is neither an IP address nor a host name")
    return host


def init_org(
    consortium_dir: Path,
    name: str,
    *,
    nodes: int = 2,
    host: str = "127.0.0.1",
    orderers: int = 0,
    port: int | None = None,
    raft: bool = False,
) -> OrgRecord:
    """Create organization ``name``'s CAs and identities under ``consortium_dir``.

    ``orderers > 0`` makes an ordering organization (orderers and an admin, no peer, no
    nodes). ``port`` is where its peer will listen (its chaincode listener, operations
    endpoint and chaincode server on the next three ports), or its first orderer (the next
    ones 10 apart); the bundle declares these endpoints. ``raft`` gives a member an orderer
    of its own too (``orderer0``, at ``port + 10``): a consenter of the channel's raft
    cluster beside the ordering organization's. Refuses a folder that already holds an
    organization or a founded consortium; a refused or interrupted call leaves the folder as
    it was.
    """
    check_org_name(name)
    check_host(host)
    if not 0 <= orderers <= 9:
        raise ConsortiumError("--orderers must be between 0 and 9")
    if port is not None and not MIN_PORT <= port <= MAX_PORT:
        raise ConsortiumError(f"--port must be between {MIN_PORT} and {MAX_PORT}")
    if orderers == 0 and not 1 <= nodes <= 64:
        raise ConsortiumError("--nodes must be between 1 and 64")
    consortium_dir = Path(consortium_dir)
    existing = read_org(consortium_dir)
    if existing is not None:
        raise ConsortiumError(
            f"{consortium_dir} already holds organization {existing.name}; one organization "
            "per home (use another --home)"
        )
    if (consortium_dir / MANIFEST).exists():
        raise ConsortiumError(f"{consortium_dir} already holds a founded consortium")
    if orderers:
        record = OrgRecord(
            name,
            ORDERING,
            host,
            {"admin": ["admin"], "orderer": [f"orderer{i}" for i in range(orderers)]},
            {f"orderer{i}": f"{host}:{(port or ORDERER_PORT) + 10 * i}" for i in range(orderers)},
        )
    else:
        identities = {
            "admin": ["admin"],
            "peer": ["peer0"],
            "client": [f"node{i}" for i in range(nodes)],
        }
        endpoints = {"peer0": f"{host}:{port or PEER_PORT}"}
        if raft:
            identities["orderer"] = ["orderer0"]
            endpoints["orderer0"] = f"{host}:{(port or PEER_PORT) + MEMBER_ORDERER_OFFSET}"
        record = OrgRecord(name, MEMBER, host, identities, endpoints)
    org_dir = consortium_dir / record.folder / name
    if org_dir.exists():
        raise ConsortiumError(f"{org_dir} already exists")
    try:
        ca, tlsca = create_authorities(org_dir, name)
        for role, names in record.identities.items():
            hosts = (host,) if role in ("peer", "orderer") else ()
            for ident in names:
                issue_identity(org_dir, name, ident, role, ca, tlsca, hosts)
        (consortium_dir / ORG_FILE).write_text(json.dumps(record.to_json(), indent=2) + "\n")
    except BaseException:
        shutil.rmtree(org_dir, ignore_errors=True)
        raise
    return record


def read_org(consortium_dir: Path) -> OrgRecord | None:
    """This home's organization, or None where ``org init`` has not run here."""
    path = Path(consortium_dir) / ORG_FILE
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConsortiumError(f"cannot read {path}: {exc}") from None
    try:
        if doc["format"] != ORG_FORMAT:
            raise ConsortiumError(f"{path} is not a {ORG_FORMAT} file")
        return OrgRecord(
            name=str(doc["name"]),
            kind=str(doc["kind"]),
            host=str(doc["host"]),
            identities={str(k): [str(n) for n in v] for k, v in doc["identities"].items()},
            endpoints={str(k): str(v) for k, v in doc["endpoints"].items()},
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ConsortiumError(f"{path} is malformed: {exc}") from None
