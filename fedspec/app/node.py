"""``fedspec node``: this member's own processes on a running Fabric network.

The home says everything: ``org.json`` (``fedspec org init``) which organization it is and
where its peer listens, the consortium folder (``fedspec consortium create``, from the
members' and the ordering organization's public bundles) its own identities and keys and
the other organizations' certificates and endpoints. Nothing of another home is read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedspec.app.orgs import MEMBER, read_org
from fedspec.app.settings import Settings
from fedspec.errors import ConsortiumError
from ledger_client.consortium import MANIFEST, Consortium

if TYPE_CHECKING:
    from fabric_network import MemberLayout

NODE_DIR = "node"


def member_layout(settings: Settings) -> MemberLayout:
    """This home's organization's peer and chaincode server, as its bundle declares them, and
    the ordering service where the ordering organization's bundle says."""
    # Deferred: the command line starts without it.
    from fabric_network import MemberLayout, Peer

    folder = settings.ledger.consortium_dir
    record = read_org(folder)
    if record is None:
        raise ConsortiumError(
            f"{folder} holds no organization of its own: `fedspec node` runs this home's "
            "organization's peer; run `fedspec org init ORG` first"
        )
    if record.kind != MEMBER:
        raise ConsortiumError(
            f"{record.name} is an ordering organization: `fedspec node` runs a member's peer "
            "and chaincode server"
        )
    if not (folder / MANIFEST).is_file():
        raise ConsortiumError(
            f"{folder} holds {record.name}'s keys but no consortium yet: run `fedspec "
            "consortium create --member …` with every member's and the ordering "
            "organization's bundles (and this organization's own) first"
        )
    consortium = Consortium.load(folder)
    if record.name not in consortium.own:
        raise ConsortiumError(f"{folder}'s consortium does not hold {record.name}'s keys")
    endpoints = consortium.manifest.get("endpoints")
    ordering = consortium.orderer_org.name
    declared = endpoints.get(ordering) if isinstance(endpoints, dict) else None
    orderers = [str(v) for _, v in sorted(declared.items())] if isinstance(declared, dict) else []
    if not orderers:
        raise ConsortiumError(
            f"{folder}'s consortium has no endpoints for {ordering}'s orderers (its bundle "
            "declares them): found the consortium again from the bundles"
        )
    try:
        peer = Peer.at(record.name, record.endpoints["peer0"])
    except (KeyError, ValueError):
        raise ConsortiumError(
            f"{folder}/org.json declares no host:port endpoint for {record.name}'s peer0"
        ) from None
    return MemberLayout(
        settings.home / NODE_DIR,
        folder,
        record.name,
        peer,
        tuple(orderers),
        settings.ledger.channel,
        settings.ledger.chaincode,
    )
