"""A Hyperledger Fabric network of native processes, for fedspec's ledger.

Each organization runs its own part from its own home, on its own host (``fedspec node up``,
:mod:`fabric_network.member`): the ordering organization its raft orderers, each member its
peer and its chaincode server. The founders' channel starts from a genesis block one founder
makes from the bundles (:mod:`fabric_network.founding`). ``fedspec network up`` runs the
same steps (:mod:`fabric_network.steps`) for every part on 127.0.0.1 from one consortium
folder (the same identities sign on the embedded ledger and on Fabric): three raft orderers,
one peer per organization, the ``fedspec`` channel, the chaincode as a service. ``down``
stops exactly the processes ``up`` started. See docs/deploy.md.
"""

from fabric_network.control import (
    NetworkError,
    NetworkStatus,
    network_down,
    network_status,
    network_up,
)
from fabric_network.layout import MemberLayout, NetworkLayout, Orderer, OrderingLayout, Peer
from fabric_network.member import (
    NodeLayout,
    NodeStatus,
    make_genesis,
    node_down,
    node_status,
    node_up,
)
from fabric_network.node_errors import (
    CertificateError,
    GenesisMissingError,
    HostNotLocalError,
    NodeError,
    NoRaftMajorityError,
    NotInChannelError,
    PortInUseError,
)
from fabric_network.upgrade import Upgraded, UpgradePendingError, upgrade_chaincode

__all__ = [
    "CertificateError",
    "GenesisMissingError",
    "HostNotLocalError",
    "MemberLayout",
    "NetworkError",
    "NetworkLayout",
    "NetworkStatus",
    "NoRaftMajorityError",
    "NodeError",
    "NodeLayout",
    "NodeStatus",
    "NotInChannelError",
    "Orderer",
    "OrderingLayout",
    "Peer",
    "PortInUseError",
    "UpgradePendingError",
    "Upgraded",
    "make_genesis",
    "network_down",
    "network_status",
    "network_up",
    "node_down",
    "node_status",
    "node_up",
    "upgrade_chaincode",
]
