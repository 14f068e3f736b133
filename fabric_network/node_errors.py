"""The errors of a member's own processes (`fedspec node up | upgrade | down`): each a
stable code, raised before anything starts wherever the cause can be seen first."""

from __future__ import annotations

from fabric_network.steps import NetworkError
from fedspec.errors import ErrorCode


class NodeError(NetworkError):
    """A member's own processes could not start (or were refused before starting)."""

    code = ErrorCode.NODE_FAILED


class NotInChannelError(NodeError):
    """The channel's configuration does not hold this organization (yet)."""

    code = ErrorCode.NODE_NOT_IN_CHANNEL


class PortInUseError(NodeError):
    """A port this member's processes bind is taken on its host."""

    code = ErrorCode.NODE_PORT_IN_USE


class GenesisMissingError(NodeError):
    """No genesis block to found the channel from (or not the channel's), or the ordering
    service has not joined the channel yet."""

    code = ErrorCode.NODE_GENESIS_MISSING


class NoRaftMajorityError(NodeError):
    """Fewer than a majority of the ordering service's orderers answer: nothing can be
    ordered."""

    code = ErrorCode.NODE_NO_RAFT_MAJORITY


class HostNotLocalError(NodeError):
    """The host this organization declared (`org init --host`, in its bundle) is not an
    address of the machine running `node up`."""

    code = ErrorCode.NODE_HOST_NOT_LOCAL


class CertificateError(NodeError):
    """A certificate this member needs is expired, not yet valid, unreadable, or does not
    name the host its process listens on."""

    code = ErrorCode.NODE_CERTIFICATE_INVALID
