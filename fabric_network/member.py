"""One member's own part of a running network: ``fedspec node up | down | status``.

A member voted into the channel runs its own peer and its own chaincode server, from its own
home, with its own keys: its peer's identity and TLS certificates and its admin (who joins
the peer and approves the chaincode for the organization) come from the home's consortium
folder, where only this organization's private keys are; the ordering service's endpoints
and TLS CA come from the ordering organization's public bundle. The steps are the ones
``network up`` runs for each organization (:mod:`fabric_network.control`), for one:

1. refuse, before starting anything, a port already in use, an ordering service that does
   not answer, and an organization the channel's configuration does not hold yet (fetched
   from the ordering service as this organization's admin: not voted in, or the vote's
   configuration update not applied);
2. start the peer, fetch the channel's first block from the ordering service and join it;
3. package the chaincode as a service pointing at this organization's chaincode server,
   install it on the peer, start the server;
4. wait until the peer holds every block the ordering service had, then approve the
   channel's committed chaincode definition (its version and sequence, the channel's
   endorsement policy) for this organization, so its peer endorses;
5. wait until this organization's peer gets the chaincode endorsed.

Every process is recorded by PID in ``<home>/node/pids.json`` the moment it starts; a
failure stops them all and removes what ``up`` created (the logs stay), so nothing is left
half-started; ``down`` stops exactly those processes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fabric_protos.common import common_pb2

from fabric_network import lifecycle, processes
from fabric_network.control import (
    NetworkError,
    Progress,
    binaries,
    start_chaincode,
    start_peers,
    wait_endorsable,
)
from fabric_network.layout import MemberLayout
from fedspec.errors import ErrorCode
from fedspec.fileio import write_atomic
from ledger_client.channel_update import FabricChannelConfig
from ledger_client.errors import LedgerError

# A peer joining a channel replays every block from the ordering service.
CATCH_UP_TIMEOUT_S = 120.0
ORDERER_CONNECT_TIMEOUT_S = 3.0


class NodeError(NetworkError):
    """A member's own processes could not start (or were refused before starting)."""

    code = ErrorCode.NODE_FAILED


class NotInChannelError(NodeError):
    """The channel's configuration does not hold this organization (yet)."""

    code = ErrorCode.NODE_NOT_IN_CHANNEL


@dataclass(frozen=True)
class NodeStatus:
    run_dir: Path
    org: str
    state: str  # "absent", "ready", "stopped", "degraded", "partial"
    processes: dict[str, bool] = field(default_factory=dict)  # name → running
    peer: str = ""
    channel: str = ""
    orderers: list[str] = field(default_factory=list)
    package_id: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "org": self.org,
            "state": self.state,
            "processes": self.processes,
            "peer": self.peer,
            "channel": self.channel,
            "orderers": self.orderers,
            "package_id": self.package_id,
        }


def process_names(member: MemberLayout) -> list[str]:
    return [f"peer0.{member.org}", f"chaincode.{member.org}"]


def _read_state(member: MemberLayout) -> dict[str, Any]:
    try:
        doc = json.loads(member.state_file.read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _write_state(member: MemberLayout, doc: dict[str, Any]) -> None:
    write_atomic(member.state_file, json.dumps(doc, indent=2, sort_keys=True))


def node_status(member: MemberLayout) -> NodeStatus:
    state = _read_state(member)
    running = {n: processes.alive(p) for n, p in processes.recorded(member.run_dir).items()}
    if not state:
        kind = (
            "partial" if any(running.values()) or (member.run_dir / "data").exists() else "absent"
        )
    elif state.get("status") != "ready":
        kind = "partial"
    else:
        expected = process_names(member)
        up = [n for n in expected if running.get(n)]
        kind = "ready" if len(up) == len(expected) else ("stopped" if not up else "degraded")
        running = {n: bool(running.get(n)) for n in expected}
    return NodeStatus(
        member.run_dir,
        member.org,
        kind,
        running,
        str(state.get("peer", member.own_peer.address)),
        str(state.get("channel", member.channel)),
        list(state.get("orderers", member.orderer_addresses)),
        str(state.get("package_id", "")),
    )


def node_up(member: MemberLayout, *, progress: Progress = lambda _: None) -> NodeStatus:
    """Start this member's peer and chaincode server on the running network (join the channel
    and approve the chaincode the first time); return once its peer endorses."""
    status = node_status(member)
    if status.state == "ready":
        return status
    if status.state == "partial":
        raise NodeError(
            f"stale node directory {member.run_dir} (an interrupted `node up`): "
            "run `fedspec node down --wipe`, then `fedspec node up`"
        )
    if status.state == "degraded":
        raise NodeError(
            f"{member.org}'s processes in {member.run_dir} are partly running: "
            "run `fedspec node down`, then `fedspec node up`"
        )
    host = member.own_peer.host
    try:
        socket.getaddrinfo(host, None)
    except OSError:
        raise NodeError(
            f"{member.org}'s peer host {host!r:.80} (its `org init --host`) does not resolve "
            "on this machine"
        ) from None
    busy = {w: port for w, port in member.ports().items() if processes.port_in_use(port, host)}
    if busy:
        what, port = next(iter(busy.items()))
        raise NodeError(
            f"port {port} ({what}) is already in use: stop what holds it, or give "
            f"{member.org}'s peer another port (`fedspec org init --port`, before the vote)"
        )
    member = _reachable_first(member)
    bins = binaries()
    creating = status.state == "absent"
    member.run_dir.mkdir(parents=True, exist_ok=True)
    try:
        if creating:
            _create(member, bins, progress)
        else:
            progress(f"restarting {member.org}'s peer and chaincode server on their ledger")
            start_peers(member, bins)
            start_chaincode(member, {member.org: _read_state(member)["package_id"]})
            _catch_up(member, bins, progress)
            wait_endorsable(member, [member.org])
    except BaseException as exc:
        processes.stop_all(member.run_dir)
        if creating:
            _remove_created(member)
        if isinstance(exc, NodeError):
            raise
        if isinstance(exc, lifecycle.ToolError | LedgerError | RuntimeError | TimeoutError):
            raise NodeError(
                f"node up failed: {exc}; every process it started was stopped "
                f"(logs in {member.logs})"
            ) from exc
        raise
    final = node_status(member)
    progress(f"{member.org}'s peer ready at {final.peer} on channel {final.channel}")
    return final


def node_down(member: MemberLayout, *, wipe: bool = False) -> list[str]:
    """Stop exactly the processes ``node up`` started (by PID); ``wipe`` also deletes the
    peer's ledger, the logs and the state (the home's keys are elsewhere and stay)."""
    stopped = processes.stop_all(member.run_dir)
    if wipe and member.run_dir.exists():
        shutil.rmtree(member.run_dir)
    return stopped


# ---------------------------------------------------------------- the steps
def _create(member: MemberLayout, bins: Path, progress: Progress) -> None:
    org, tools, config = member.org, bins / "bin", member.config_dir
    config.mkdir(parents=True, exist_ok=True)
    shutil.copy(bins / "config" / "core.yaml", config / "core.yaml")
    _write_state(member, {"status": "starting", "org": org, "channel": member.channel})
    progress(f"reading channel {member.channel}'s configuration from the ordering service")
    check_in_channel(member, bins)
    progress(f"starting {org}'s peer at {member.own_peer.address}")
    start_peers(member, bins)
    first = _fetch(member, bins, "oldest", member.run_dir / "blocks" / f"{member.channel}-0.block")
    lifecycle.peer_join(member, tools, config, org, first)
    progress("installing the fedspec chaincode as a service")
    pkg, package_id = lifecycle.package(member, org, member.run_dir / "packages")
    lifecycle.install(member, tools, config, org, pkg)
    start_chaincode(member, {org: package_id})
    _catch_up(member, bins, progress)
    definition = lifecycle.committed_definition(member, tools, config, org)
    progress(
        f"approving the committed chaincode definition (version {definition['version']}, "
        f"sequence {definition['sequence']}) for {org}"
    )
    lifecycle.approve(
        member,
        tools,
        config,
        org,
        package_id,
        version=str(definition["version"]),
        sequence=str(definition["sequence"]),
    )
    wait_endorsable(member, [org])
    _write_state(
        member,
        {
            "status": "ready",
            "org": org,
            "channel": member.channel,
            "chaincode": member.chaincode,
            "package_id": package_id,
            "peer": member.own_peer.address,
            # Read by the home's settings: FEDSPEC_LEDGER=fabric then uses this peer.
            "peers": {org: member.own_peer.address},
            "orderers": member.orderer_addresses,
        },
    )


def check_in_channel(member: MemberLayout, bins: Path) -> FabricChannelConfig:
    """The channel's latest configuration, fetched from the ordering service as this
    organization's admin; :class:`NotInChannelError` if it does not hold the organization."""
    target = member.run_dir / "blocks" / f"{member.channel}-config.block"
    try:
        _fetch(member, bins, "config", target)
    except lifecycle.ToolError as exc:
        text = str(exc)
        if "FORBIDDEN" in text:
            raise _not_in_channel(member, "the ordering service refuses it as a reader") from None
        if "NOT_FOUND" in text:
            raise NodeError(
                f"the ordering service at {member.orderer_addresses[0]} has no channel "
                f"{member.channel}: check [ledger] channel in fedspec.toml"
            ) from None
        raise
    config = FabricChannelConfig.from_block(target.read_bytes())
    if member.org not in config.application.groups:
        raise _not_in_channel(
            member,
            f"its configuration block {config.block} names only {', '.join(sorted(config.application.groups))}",
        )
    return config


def _not_in_channel(member: MemberLayout, why: str) -> NotInChannelError:
    return NotInChannelError(
        f"{member.org} is not an organization of channel {member.channel} ({why}): the members "
        f"vote it in first (`fedspec consortium propose-member {member.org}.bundle`, "
        f"`fedspec consortium vote {member.org}`)"
    )


def _fetch(member: MemberLayout, bins: Path, which: str, out: Path) -> Path:
    return lifecycle.fetch_block(member, bins / "bin", member.config_dir, member.org, which, out)


def _catch_up(member: MemberLayout, bins: Path, progress: Progress) -> None:
    """Wait until this organization's peer holds every block the ordering service had."""
    newest = _fetch(member, bins, "newest", member.run_dir / "blocks" / "newest.block")
    target = int(common_pb2.Block.FromString(newest.read_bytes()).header.number) + 1
    progress(f"catching up with the ordering service ({target} blocks)")
    deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
    height = 0
    while time.monotonic() < deadline:
        with contextlib.suppress(lifecycle.ToolError, ValueError, KeyError):
            height = lifecycle.peer_height(member, bins / "bin", member.config_dir, member.org)
        if height >= target:
            return
        time.sleep(0.5)
    raise TimeoutError(
        f"{member.org}'s peer holds {height} of the channel's {target} blocks after "
        f"{CATCH_UP_TIMEOUT_S:.0f} s"
    )


def _reachable_first(member: MemberLayout) -> MemberLayout:
    """The orderers that accept a connection first; :class:`NodeError` if none does."""
    up = [a for a in member.orderer_addresses if _accepts(a)]
    if not up:
        raise NodeError(
            f"no orderer of the ordering service is reachable at "
            f"{', '.join(member.orderer_addresses) or '(none declared)'} (the endpoints its "
            "bundle declares): is the network running?"
        )
    rest = [a for a in member.orderer_addresses if a not in up]
    return dataclasses.replace(member, orderer_endpoints=(*up, *rest))


def _accepts(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=ORDERER_CONNECT_TIMEOUT_S):
            return True
    except (OSError, ValueError):
        return False


def _remove_created(member: MemberLayout) -> None:
    """What a failed first ``up`` created, but its logs: the next ``up`` starts afresh."""
    for path in member.run_dir.iterdir():
        if path == member.logs:
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # only if nothing, not even a log, is left
        member.run_dir.rmdir()
