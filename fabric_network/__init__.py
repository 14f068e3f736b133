"""A Hyperledger Fabric network of native processes on 127.0.0.1, for fedspec's ledger.

``fedspec network up`` builds it from the consortium's MSP folders (the same identities sign
on the embedded ledger and on Fabric): three raft orderers, one peer per organization, the
``fedspec`` channel, the chaincode as a service (one chaincode server per organization, as
each member would run its own). ``down`` stops exactly the processes ``up`` started.
``fedspec node up`` runs one member's own part of a running network from its own home
(:mod:`fabric_network.member`).
"""

from fabric_network.control import (
    NetworkError,
    NetworkStatus,
    network_down,
    network_status,
    network_up,
)
from fabric_network.layout import MemberLayout, NetworkLayout, Peer
from fabric_network.member import (
    NodeError,
    NodeStatus,
    NotInChannelError,
    node_down,
    node_status,
    node_up,
)

__all__ = [
    "MemberLayout",
    "NetworkError",
    "NetworkLayout",
    "NetworkStatus",
    "NodeError",
    "NodeStatus",
    "NotInChannelError",
    "Peer",
    "network_down",
    "network_status",
    "network_up",
    "node_down",
    "node_status",
    "node_up",
]
