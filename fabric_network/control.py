"""``up``, ``down`` and ``status`` of the local Fabric network.

``up`` on a network that was created and stopped restarts its processes on their existing
ledgers (they catch up from the orderers); on an empty run directory it creates everything.
Any failure during ``up`` stops every process it started before the error is raised, so
``up`` never leaves half-started processes behind.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fabric_network import lifecycle, processes
from fabric_network.configs import orderer_env, peer_env, write_configtx
from fabric_network.layout import AnyLayout, NetworkLayout, Peer
from fedspec.errors import ErrorCode, FedspecError
from fedspec.fileio import write_atomic
from ledger_client.backends import LedgerConfig, open_ledger

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "fabric-binaries"
START_TIMEOUT_S = 60.0
Progress = Callable[[str], None]


class NetworkError(FedspecError):
    code = ErrorCode.NETWORK_FAILED


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


def binaries() -> Path:
    """The Fabric binaries' directory, provided by ``scripts/fabric-binaries``."""
    done = subprocess.run([str(SCRIPT), "--quiet"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
        raise NetworkError(
            lines[-1].removeprefix("fabric-binaries: ") if lines else "no Fabric binaries"
        )
    return Path(done.stdout.strip().splitlines()[-1])


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
            _start_orderers(layout, bins)
            start_peers(layout, bins)
            start_chaincode(layout, _read_state(layout)["package_ids"])
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
    config = layout.run_dir / "config"
    try:
        lifecycle.genesis_block(ch, bins / "bin", config)
        for o in ch.orderers:
            lifecycle.orderer_join(ch, bins / "bin", o.name)
        for org in ch.orgs:
            lifecycle.peer_join(ch, bins / "bin", config, org, ch.genesis_block)
        for org in ch.orgs:
            lifecycle.approve(ch, bins / "bin", config, org, state["package_ids"][org])
        lifecycle.commit(ch, bins / "bin", config)
    except lifecycle.ToolError as exc:
        raise NetworkError(f"channel {channel}: {exc}") from exc
    _wait_all(ch)


def _create(layout: NetworkLayout, bins: Path, progress: Progress) -> None:
    config = layout.run_dir / "config"
    config.mkdir(exist_ok=True)
    for name in ("core.yaml", "orderer.yaml"):
        shutil.copy(bins / "config" / name, config / name)
    write_configtx(layout, config)
    version = (bins / "VERSION").read_text().strip() if (bins / "VERSION").exists() else ""
    _write_state(layout, {"status": "starting", "fabric_version": version})
    progress(
        f"channel configuration ({len(layout.orgs)} organizations, {len(layout.orderers)} raft orderers)"
    )
    lifecycle.genesis_block(layout, bins / "bin", config)
    progress("starting orderers")
    _start_orderers(layout, bins)
    for o in layout.orderers:
        lifecycle.orderer_join(layout, bins / "bin", o.name)
    progress("starting peers")
    start_peers(layout, bins)
    for org in layout.orgs:
        lifecycle.peer_join(layout, bins / "bin", config, org, layout.genesis_block)
    progress("installing the fedspec chaincode as a service")
    package_ids = {}
    for org in layout.orgs:
        pkg, package_ids[org] = lifecycle.package(layout, org, layout.run_dir / "packages")
        lifecycle.install(layout, bins / "bin", config, org, pkg)
    start_chaincode(layout, package_ids)
    for org in layout.orgs:
        lifecycle.approve(layout, bins / "bin", config, org, package_ids[org])
    lifecycle.commit(layout, bins / "bin", config)
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
        _start_orderers(layout, bins, only=name)
    elif name.startswith("peer0."):
        start_peers(layout, bins, only=name.removeprefix("peer0."))
    elif name.startswith("chaincode."):
        org = name.removeprefix("chaincode.")
        start_chaincode(layout, {org: state["package_ids"][org]}, only=org)
    else:
        raise NetworkError(f"no process {name!r} in this network")


def _start_orderers(layout: NetworkLayout, bins: Path, only: str = "") -> None:
    config = layout.config_dir
    for o in layout.orderers:
        if only and o.name != only:
            continue
        pid = processes.start(
            layout.run_dir,
            o.name,
            [str(bins / "bin" / "orderer")],
            {**orderer_env(layout, o), "FABRIC_CFG_PATH": str(config)},
        )
        processes.wait_for(
            o.name,
            functools.partial(processes.healthy, o.operations_port),
            timeout=START_TIMEOUT_S,
            pid=pid,
            log=layout.logs / f"{o.name}.log",
        )


def start_peers(layout: AnyLayout, bins: Path, only: str = "") -> None:
    for p in layout.peers:
        if only and p.org != only:
            continue
        name = f"peer0.{p.org}"
        pid = processes.start(
            layout.run_dir,
            name,
            [str(bins / "bin" / "peer"), "node", "start"],
            {**peer_env(layout, p, bins / "builder"), "FABRIC_CFG_PATH": str(layout.config_dir)},
        )
        processes.wait_for(
            name,
            functools.partial(_peer_ready, p),
            timeout=START_TIMEOUT_S,
            pid=pid,
            log=layout.logs / f"{name}.log",
        )


def _peer_ready(p: Peer) -> bool:
    # /healthz answers before the peer's own gRPC port is open: wait for both.
    return processes.healthy(p.operations_port, p.host) and processes.port_in_use(p.port, p.host)


def start_chaincode(layout: AnyLayout, package_ids: dict[str, str], only: str = "") -> None:
    for p in layout.peers:
        if only and p.org != only:
            continue
        name = f"chaincode.{p.org}"
        pid = processes.start(
            layout.run_dir,
            name,
            [sys.executable, "-m", "chaincode.server"],
            {"CHAINCODE_ID": package_ids[p.org], "CHAINCODE_SERVER_ADDRESS": p.chaincode_address},
        )
        processes.wait_for(
            name,
            functools.partial(processes.port_in_use, p.chaincode_server_port, p.host),
            timeout=START_TIMEOUT_S,
            pid=pid,
            log=layout.logs / f"{name}.log",
        )


def _wait_all(layout: NetworkLayout) -> None:
    wait_endorsable(layout, layout.orgs)


def wait_endorsable(layout: AnyLayout, orgs: list[str], timeout: float = START_TIMEOUT_S) -> None:
    """Ready means each of ``orgs``' peers' Gateway can *endorse* a chaincode call: that needs
    the other organizations' peers found through gossip (discovery), not just its own
    chaincode."""

    consortium = layout.consortium
    deadline = time.monotonic() + timeout
    for org in orgs:
        config = LedgerConfig(
            backend="fabric",
            consortium_dir=layout.consortium_dir,
            channel=layout.channel,
            chaincode=layout.chaincode,
            fabric_peers={org: layout.peer(org).address},
        )
        contract = open_ledger(config, f"{org}/{consortium.org(org).admins[0]}").contract
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                contract.new_proposal("ListProfiles", [""]).endorse()
                break
            except Exception as exc:
                last = exc
                time.sleep(0.25)
        else:
            raise TimeoutError(f"{org}'s peer cannot get the fedspec chaincode endorsed: {last}")


def network_down(layout: NetworkLayout, *, wipe: bool = False) -> list[str]:
    stopped = processes.stop_all(layout.run_dir)
    if wipe and layout.run_dir.exists():
        shutil.rmtree(layout.run_dir)
    return stopped
