"""The founders' channel: its genesis block, made by one founder from the bundles.

Every founder's consortium folder holds the same public certificates and the endpoints each
organization's bundle declares (``consortium create``): the ordering organization's orderers
(the raft consenters, each with its own TLS certificate for its own host) and each member's
peer (its anchor peer). Any one founder turns that into the channel's genesis block
(``fedspec node genesis``, Fabric's ``configtxgen``) and hands the file to the others, as
they handed round their bundles; the ordering organization's orderers join the channel from
it (``osnadmin channel join``), the members' peers too (``peer channel join``). The block is
made once: ``configtxgen`` stamps it with the time, so two founders making their own would
not agree.
"""

from __future__ import annotations

from pathlib import Path

from fabric_network import lifecycle
from fabric_network.configs import write_configtx
from fabric_network.layout import Layout, Orderer, Peer
from fedspec.errors import ConsortiumError


def founders(layout: Layout) -> tuple[list[Orderer], list[Peer]]:
    """The raft orderers (the ordering organization's, then those members run of their own)
    and the members' peers, where the bundles the consortium was founded from declare them."""
    consortium = layout.consortium
    declared = consortium.manifest.get("endpoints")
    endpoints = declared if isinstance(declared, dict) else {}
    ordering = consortium.orderer_org
    own = endpoints.get(ordering.name) or {}
    missing = [name for name in ordering.orderers if name not in own]
    if missing:
        raise ConsortiumError(
            f"the consortium in {layout.consortium_dir} declares no endpoint for "
            f"{ordering.name}'s {', '.join(missing)} (its bundle's endpoints)"
        )
    orderers = [Orderer.at(name, str(own[name])) for name in ordering.orderers]
    peers = []
    for org in consortium.members:
        declared = endpoints.get(org.name) or {}
        for name in org.orderers:  # a member that runs raft orderers of its own
            if name not in declared:
                raise ConsortiumError(
                    f"the consortium in {layout.consortium_dir} declares no endpoint for "
                    f"{org.name}'s {name} (its bundle's endpoints)"
                )
            orderers.append(Orderer.at(name, str(declared[name]), org.name))
        at = declared.get(org.peers[0]) if org.peers else None
        if not at:
            raise ConsortiumError(
                f"the consortium in {layout.consortium_dir} declares no endpoint for "
                f"{org.name}'s peer (its bundle's endpoints)"
            )
        peers.append(Peer.at(org.name, str(at)))
    return orderers, peers


def write_genesis(layout: Layout, bins: Path, channel: str, out: Path) -> Path:
    """Channel ``channel``'s genesis block, from the founders' bundles, written to ``out``."""
    orderers, peers = founders(layout)
    config = layout.run_dir / "genesis"
    write_configtx(layout, config, orderers, peers)
    return lifecycle.genesis_block(bins / "bin", config, channel, out)
