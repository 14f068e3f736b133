"""A new version of the fedspec chaincode, through Fabric's lifecycle, from each member's own
home (``fedspec node upgrade VERSION``), without losing the world state or stopping rounds.

The world state lives in the peers' ledgers, not in the chaincode: a new definition (version,
sequence + 1) changes which chaincode package the peers call, never the keys. Each member:

1. packages the new version as a service pointing at a second port of its own (the servers of
   successive definitions alternate between the chaincode server port and the next one:
   :meth:`Peer.chaincode_address_at`), installs it on its own peer and starts that server
   beside the running one (recorded as ``chaincode-next.<org>``);
2. approves the new definition for its organization with its own package;
3. commits it when its approval makes a majority (the channel's LifecycleEndorsement policy);
4. waits for the commit, then stops the old server and records the new one as its chaincode
   server. The peer calls the new package from the block that commits the definition on, so
   transactions go on throughout; a member that upgrades later (after the majority) approves
   the committed definition and switches at once, and until it does its peer cannot endorse
   (the others' majority can).

Interrupted or timed out before the commit, the new server and the approval stay (an approval
cannot be withdrawn); running the same command again finishes the switch. ``node up`` after a
restart serves whatever was recorded, the pending server included.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fabric_network import lifecycle, processes, steps
from fabric_network.layout import MemberLayout
from fabric_network.member import (
    NEXT_CHAINCODE,
    NodeLayout,
    node_status,
    read_state,
    write_state,
)
from fabric_network.node_errors import NodeError, PortInUseError
from fabric_network.steps import Progress, binaries
from fedspec.errors import ErrorCode

UPGRADE_WAIT_S = 300.0


class UpgradePendingError(NodeError):
    """This member approved the new definition, but a majority has not (yet): it commits when
    enough members run the same upgrade; running it again finishes the switch."""

    code = ErrorCode.NODE_UPGRADE_PENDING


@dataclass(frozen=True)
class Upgraded:
    org: str
    version: str
    sequence: int
    package_id: str
    address: str  # where the member's chaincode server now listens
    approvals: dict[str, bool]  # the committed definition's, by organization

    def to_json(self) -> dict[str, Any]:
        return {
            "org": self.org,
            "version": self.version,
            "sequence": self.sequence,
            "package_id": self.package_id,
            "chaincode_address": self.address,
            "approvals": self.approvals,
        }


def upgrade_chaincode(
    member: NodeLayout,
    version: str,
    *,
    wait_s: float = UPGRADE_WAIT_S,
    progress: Progress = lambda _: None,
) -> Upgraded:
    """Move this member to chaincode ``version`` (module docstring); returns once the new
    definition is committed and this member's peer calls its new server."""
    if not isinstance(member, MemberLayout):
        raise NodeError(f"{member.org} is the ordering organization: it runs no chaincode")
    status = node_status(member)
    if status.state != "ready":
        raise NodeError(
            f"{member.org}'s node is {status.state}: start it with `fedspec node up` first"
        )
    bins = binaries()
    tools, config, org = bins / "bin", member.config_dir, member.org
    current = lifecycle.committed_definition(member, tools, config, org)
    if current is None:
        raise NodeError(
            f"channel {member.channel} has no committed chaincode definition yet: a majority of "
            "the members must approve the first one (`fedspec node up`) before an upgrade"
        )
    state = read_state(member)
    served = str(state.get("chaincode_version", lifecycle.CHAINCODE_VERSION))
    if served == version and not state.get("next"):
        raise NodeError(f"{org} already serves chaincode version {version}")
    # The committed definition is this version already (the majority upgraded before this
    # member did): approve it as it stands; otherwise propose the next sequence.
    sequence = int(current["sequence"]) + (0 if str(current["version"]) == version else 1)
    pending = _prepare(member, bins, state, version, sequence, progress)
    _approve(member, tools, pending, progress)
    if int(current["sequence"]) < sequence:
        steps.commit_if_majority(member, bins, progress, version=version, sequence=str(sequence))
    definition = _wait_committed(member, tools, pending, wait_s, progress)
    _switch(member, pending, progress)
    steps.wait_endorsable(member, [org])
    progress(f"{org}'s peer serves chaincode version {version} (sequence {sequence})")
    approvals = {str(k): bool(v) for k, v in definition.get("approvals", {}).items()}
    return Upgraded(org, version, sequence, pending["package_id"], pending["address"], approvals)


def _prepare(
    member: MemberLayout,
    bins: Path,
    state: dict[str, Any],
    version: str,
    sequence: int,
    progress: Progress,
) -> dict[str, Any]:
    """The new version's package installed and its server running beside the current one
    (or the ones an interrupted upgrade to the same definition left)."""
    name = NEXT_CHAINCODE.format(org=member.org)
    pending: dict[str, Any] | None = state.get("next")
    if pending and (pending["version"], pending["sequence"]) == (version, sequence):
        pid = processes.recorded(member.run_dir).get(name)
        if pid is None or not processes.alive(pid):
            steps.start_chaincode_server(member, name, pending["package_id"], pending["address"])
        return pending
    if pending:  # an older attempt at another version: its server goes
        processes.stop(member.run_dir, name)
    address = member.own_peer.chaincode_address_at(sequence)
    host, _, port = address.rpartition(":")
    if processes.port_in_use(int(port), host):
        raise PortInUseError(
            f"{member.org}: port {port} on {host}, where chaincode version {version}'s server "
            "would listen beside the running one, is taken: free it and run the upgrade again"
        )
    progress(f"packaging chaincode version {version} for {member.org}'s server at {address}")
    pkg, package_id = lifecycle.package(
        member, member.org, member.run_dir / "packages", version=version, address=address
    )
    lifecycle.install(member, bins / "bin", member.config_dir, member.org, pkg)
    steps.start_chaincode_server(member, name, package_id, address)
    pending = {
        "version": version,
        "sequence": sequence,
        "package_id": package_id,
        "address": address,
    }
    write_state(member, {**state, "next": pending})
    return pending


def _approve(
    member: MemberLayout, tools: Path, pending: dict[str, Any], progress: Progress
) -> None:
    progress(
        f"approving chaincode version {pending['version']} (sequence {pending['sequence']}) "
        f"for {member.org}"
    )

    def approve() -> None:
        try:
            lifecycle.approve(
                member,
                tools,
                member.config_dir,
                member.org,
                pending["package_id"],
                version=pending["version"],
                sequence=str(pending["sequence"]),
            )
        except lifecycle.ToolError as exc:
            if "unchanged content" not in str(exc):  # else approved already (run again)
                raise

    steps.retry_approval(member, approve, progress)


def _wait_committed(
    member: MemberLayout, tools: Path, pending: dict[str, Any], wait_s: float, progress: Progress
) -> dict[str, Any]:
    """The committed definition, once it is the pending one."""
    deadline = time.monotonic() + wait_s
    said = False
    while True:
        found = lifecycle.committed_definition(member, tools, member.config_dir, member.org)
        if found is not None and int(found["sequence"]) >= int(pending["sequence"]):
            if str(found["version"]) != pending["version"]:
                raise NodeError(
                    f"the channel committed chaincode version {found['version']} at sequence "
                    f"{found['sequence']}, not {pending['version']}: upgrade to that version"
                )
            return found
        if time.monotonic() > deadline:
            approvals = lifecycle.commit_readiness(
                member,
                tools,
                member.config_dir,
                member.org,
                version=pending["version"],
                sequence=str(pending["sequence"]),
            )
            yes = sorted(o for o, ok in approvals.items() if ok)
            raise UpgradePendingError(
                f"chaincode version {pending['version']} is approved by {', '.join(yes)} "
                f"({len(yes)} of {len(approvals)}): it commits once a majority of the members "
                "run the same upgrade; run it again here to finish the switch (the new "
                "server keeps running meanwhile)"
            )
        if not said:
            progress("waiting for a majority of the members to approve the new definition")
            said = True
        time.sleep(1.0)


def _switch(member: MemberLayout, pending: dict[str, Any], progress: Progress) -> None:
    """The new definition is committed: the peer calls the new server; the old one goes."""
    current, name = f"chaincode.{member.org}", NEXT_CHAINCODE.format(org=member.org)
    progress(f"stopping {member.org}'s chaincode server of the previous version")
    processes.stop(member.run_dir, current)
    processes.rename(member.run_dir, name, current)
    state = read_state(member)
    state.pop("next", None)
    write_state(
        member,
        {
            **state,
            "package_id": pending["package_id"],
            "chaincode_version": pending["version"],
            "chaincode_sequence": pending["sequence"],
            "chaincode_address": pending["address"],
            "committed": True,
        },
    )
