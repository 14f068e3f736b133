"""``fedspec node``: this organization's own processes on a Fabric network.

The home says everything: ``org.json`` (``fedspec org init``) which organization it is and
where its peer (a member) or its orderers (the ordering organization) listen, the consortium
folder (``fedspec consortium create``, from the members' and the ordering organization's
public bundles) its own identities and keys and the other organizations' certificates and
endpoints. Nothing of another home is read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedspec.app.orgs import ORDERING, read_org
from fedspec.app.settings import Settings
from fedspec.errors import ConsortiumError
from ledger_client.consortium import MANIFEST, Consortium

if TYPE_CHECKING:
    from fabric_network import NodeLayout, Orderer, Peer

NODE_DIR = "node"


def member_layout(settings: Settings) -> NodeLayout:
    """This home's organization's own part, as its bundle declares it: a member's peer and
    chaincode server (and the ordering service where the ordering organization's bundle
    says), or the ordering organization's orderers."""
    # Deferred: the command line starts without it.
    from fabric_network import MemberLayout, Orderer, OrderingLayout, Peer

    folder = settings.ledger.consortium_dir
    record = read_org(folder)
    if record is None:
        raise ConsortiumError(
            f"{folder} holds no organization of its own: `fedspec node` runs this home's "
            "organization's peer; run `fedspec org init ORG` first"
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
    if record.kind == ORDERING:
        try:
            own = tuple(
                Orderer.at(name, record.endpoints[name]) for name in record.identities["orderer"]
            )
        except (KeyError, ValueError):
            raise ConsortiumError(
                f"{folder}/org.json declares no host:port endpoint for every orderer of "
                f"{record.name}"
            ) from None
        return OrderingLayout(
            settings.home / NODE_DIR, folder, record.name, own, settings.ledger.channel
        )
    endpoints = consortium.manifest.get("endpoints")
    ordering = consortium.orderer_org.name
    declared = endpoints.get(ordering) if isinstance(endpoints, dict) else None
    orderers = [str(v) for _, v in sorted(declared.items())] if isinstance(declared, dict) else []
    # Members that run raft orderers of their own (`org init --raft`) are consenters too.
    for org in consortium.members:
        theirs = endpoints.get(org.name) if isinstance(endpoints, dict) else None
        if isinstance(theirs, dict):
            orderers += [str(theirs[name]) for name in org.orderers if name in theirs]
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
        _founders_peers(consortium, endpoints if isinstance(endpoints, dict) else {}),
        _own_orderers(record.name, record.endpoints, record.identities.get("orderer", [])),
    )


def _own_orderers(org: str, endpoints: dict[str, str], names: list[str]) -> tuple[Orderer, ...]:
    """The raft orderers this member runs itself, where its bundle declares them."""
    from fabric_network import Orderer

    try:
        return tuple(Orderer.at(name, endpoints[name], org) for name in names)
    except (KeyError, ValueError):
        raise ConsortiumError(
            f"org.json declares no host:port endpoint for every orderer of {org}"
        ) from None


def _founders_peers(consortium: Consortium, endpoints: dict[str, object]) -> tuple[Peer, ...]:
    """The founding members' peers, where their bundles declare them."""
    from fabric_network import Peer

    out = []
    for org in consortium.members:
        declared = endpoints.get(org.name)
        at = declared.get("peer0") if isinstance(declared, dict) else None
        if isinstance(at, str):
            try:
                out.append(Peer.at(org.name, at))
            except ValueError:
                continue
    return tuple(out)
