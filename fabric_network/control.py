"""``up``, ``down`` and ``status`` of the local Fabric network.

The one-host network is the founders' steps run for every part from one folder, in the
order the founders run them on their own hosts (docs/deploy.md): the channel's genesis block
from the consortium, the ordering organization's orderers joined to it, each member's peer
joined, its chaincode installed, served and approved for its organization, and committed by
the member whose approval makes a majority (:mod:`fabric_network.steps`, which
``fedspec node up`` runs for one part).

``up`` on a network that was created and stopped restarts its processes on their existing
ledgers (they catch up from the orderers); on an empty run directory it creates everything.
Any failure during ``up`` stops every process it started before the error is raised, so
``up`` never leaves half-started processes behind.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fabric_network import lifecycle, processes, steps
from fabric_network.configs import write_configtx
from fabric_network.layout import NetworkLayout
from fabric_network.steps import SCRIPT, NetworkError, Progress, binaries
from fedspec.fileio import write_atomic

__all__ = ["SCRIPT", "NetworkError", "NetworkStatus", "binaries", "network_status", "network_up"]


@dataclass(frozen=True)
class NetworkStatus:
    run_dir: Path
    state: str  # "absent", "ready", "stopped", "partial", "starting"
    processes: dict[str, bool] = field(default_factory=dict)  # name → running
    peers: dict[str, str] = field(default_factory=dict)
    orderers: list[str] = field(default_factory=list)
    version: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "state": self.state,
            "processes": self.processes,
            "peers": self.peers,
            "orderers": self.orderers,
            "fabric_version": self.version,
        }


def _read_state(layout: NetworkLayout) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads(layout.state_file.read_text())
        return doc
    except (OSError, ValueError):
        return {}


def _write_state(layout: NetworkLayout, doc: dict[str, Any]) -> None:
    write_atomic(layout.state_file, json.dumps(doc, indent=2, sort_keys=True))


def network_status(layout: NetworkLayout) -> NetworkStatus:
    state = _read_state(layout)
    running = {n: processes.alive(p) for n, p in processes.recorded(layout.run_dir).items()}
    if not state:
        kind = (
            "absent"
            if not layout.run_dir.exists() or not any(layout.run_dir.iterdir())
            else "partial"
        )
    elif state.get("status") != "ready":
        kind = "partial"
    else:
        expected = _process_names(layout)
        up = [n for n in expected if running.get(n)]
        kind = "ready" if len(up) == len(expected) else ("stopped" if not up else "degraded")
        running = {n: bool(running.get(n)) for n in expected}
    return NetworkStatus(
        layout.run_dir,
        kind,
        running,
        dict(state.get("peers", {})),
        list(state.get("orderers", [])),
        str(state.get("fabric_version", "")),
    )


def _process_names(layout: NetworkLayout) -> list[str]:
    return [o.name for o in layout.orderers] + [
        name for p in layout.peers for name in (f"peer0.{p.org}", f"chaincode.{p.org}")
    ]


def network_up(layout: NetworkLayout, *, progress: Progress = lambda _: None) -> NetworkStatus:
    status = network_status(layout)
    if status.state == "ready":
        return status
    if status.state == "partial":
        raise NetworkError(
            f"stale network directory {layout.run_dir} (an interrupted `network up`): "
            "run `fedspec network down --wipe`, then `fedspec network up`"
        )
    if status.state == "degraded":
        raise NetworkError(
            f"the network in {layout.run_dir} is partly running: "
            "run `fedspec network down`, then `fedspec network up`"
        )
    if not layout.consortium_dir.exists():
        raise NetworkError(
            f"no consortium at {layout.consortium_dir}: run `fedspec consortium init` first"
        )
    busy = {what: port for what, port in layout.ports().items() if processes.port_in_use(port)}
    if busy:
        what, port = next(iter(busy.items()))
        raise NetworkError(
            f"port {port} ({what}) is already in use: stop what holds it, or choose "
            "other ports with --base-port"
        )
    bins = binaries()
    creating = status.state == "absent"
    layout.run_dir.mkdir(parents=True, exist_ok=True)
    try:
        if creating:
            _create(layout, bins, progress)
        else:
            progress("restarting the network's processes on their existing ledgers")
            steps.start_orderers(layout.ordering(), bins)
            package_ids = _read_state(layout)["package_ids"]
            for org in layout.orgs:
                steps.start_peers(layout.member(org), bins)
                steps.start_chaincode(layout.member(org), package_ids)
            _wait_all(layout)
    except BaseException as exc:
        processes.stop_all(layout.run_dir)
        if isinstance(exc, lifecycle.ToolError | RuntimeError | TimeoutError):
            raise NetworkError(
                f"network up failed: {exc}; every process it started was stopped"
            ) from exc
        raise
    final = network_status(layout)
    progress(f"network ready: {', '.join(f'{o}={a}' for o, a in final.peers.items())}")
    return final


def create_channel(layout: NetworkLayout, channel: str) -> None:
    """Another channel on the running network, with the fedspec chaincode committed on it:
    a separate ledger with the same organizations, orderers and peers (tests use one each)."""
    state = _read_state(layout)
    if state.get("status") != "ready":
        raise NetworkError(f"no running network in {layout.run_dir}: run `fedspec network up`")
    bins = binaries()
    ch = dataclasses.replace(layout, channel=channel)
    try:
        lifecycle.genesis_block(bins / "bin", layout.config_dir, channel, ch.genesis_block)
        steps.join_orderers(ch.ordering(), bins, ch.genesis_block)
        for org in ch.orgs:
            member = ch.member(org)
            lifecycle.peer_join(member, bins / "bin", ch.config_dir, org, ch.genesis_block)
        for org in ch.orgs:
            steps.approve_chaincode(ch.member(org), bins, state["package_ids"][org], _quiet)
    except lifecycle.ToolError as exc:
        raise NetworkError(f"channel {channel}: {exc}") from exc
    _wait_all(ch)


def _quiet(_: str) -> None:
    pass


def _create(layout: NetworkLayout, bins: Path, progress: Progress) -> None:
    config = steps.copy_configs(layout, bins, "core.yaml", "orderer.yaml")
    write_configtx(layout, config, layout.orderers, layout.peers)
    version = steps.fabric_version(bins)
    _write_state(layout, {"status": "starting", "fabric_version": version})
    progress(
        f"channel configuration ({len(layout.orgs)} organizations, {len(layout.orderers)} raft orderers)"
    )
    lifecycle.genesis_block(bins / "bin", config, layout.channel, layout.genesis_block)
    # The founders' steps, each part in turn (fedspec node up runs one of them).
    progress("starting orderers")
    ordering = layout.ordering()
    steps.start_orderers(ordering, bins)
    steps.join_orderers(ordering, bins, layout.genesis_block)
    package_ids = {}
    for org in layout.orgs:
        member = layout.member(org)
        steps.join_peer(member, bins, layout.genesis_block, progress)
        package_ids[org] = steps.install_chaincode(member, bins, progress)
    committed = False
    for org in layout.orgs:
        committed = steps.approve_chaincode(layout.member(org), bins, package_ids[org], progress)
    if not committed:
        raise NetworkError("the chaincode definition was approved but not committed")
    _write_state(
        layout,
        {
            "status": "ready",
            "fabric_version": version,
            "base_port": layout.base_port,
            "channel": layout.channel,
            "chaincode": layout.chaincode,
            "package_ids": package_ids,
            "peers": {p.org: p.address for p in layout.peers},
            "orderers": [o.address for o in layout.orderers],
        },
    )
    _wait_all(layout)


def start_process(layout: NetworkLayout, name: str) -> None:
    """Start one stopped process of a ready network again (``orderer1``, ``peer0.org2``,
    ``chaincode.org3``): it catches up from the others through Fabric's own protocols."""
    state = _read_state(layout)
    if state.get("status") != "ready":
        raise NetworkError(f"no network in {layout.run_dir}: run `fedspec network up`")
    pid = processes.recorded(layout.run_dir).get(name)
    if pid is not None and processes.alive(pid):
        return
    bins = binaries()
    if name.startswith("orderer"):
        steps.start_orderers(layout.ordering(), bins, only=name)
    elif name.startswith("peer0."):
        steps.start_peers(layout, bins, only=name.removeprefix("peer0."))
    elif name.startswith("chaincode."):
        org = name.removeprefix("chaincode.")
        steps.start_chaincode(layout, {org: state["package_ids"][org]}, only=org)
    else:
        raise NetworkError(f"no process {name!r} in this network")


def _wait_all(layout: NetworkLayout) -> None:
    steps.wait_endorsable(layout, layout.orgs)


def network_down(layout: NetworkLayout, *, wipe: bool = False) -> list[str]:
    stopped = processes.stop_all(layout.run_dir)
    if wipe and layout.run_dir.exists():
        shutil.rmtree(layout.run_dir)
    return stopped
