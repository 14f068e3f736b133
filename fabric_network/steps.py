"""The steps each part of a Fabric network runs, the same for a member on its own host
(``fedspec node up``, :mod:`fabric_network.member`) and for the one-host network that runs
every part from one folder (``fedspec network up``, :mod:`fabric_network.control`):

- the ordering organization: start its orderers, join each to the channel from the
  founders' genesis block through its own admin endpoint (``osnadmin channel join``);
- a member: start its peer, join it to the channel, package the chaincode as a service
  pointing at its own chaincode server, install it, start that server; approve the
  chaincode definition for its own organization, and commit it when its approval makes a
  majority of the channel's organizations (the channel's LifecycleEndorsement policy).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from fabric_network import lifecycle, processes
from fabric_network.configs import orderer_env, peer_env
from fabric_network.layout import (
    AnyLayout,
    Layout,
    MemberLayout,
    NetworkLayout,
    Orderer,
    OrderersLayout,
    Peer,
)
from fedspec.errors import ErrorCode, FedspecError
from ledger_client.backends import LedgerConfig, open_ledger

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "fabric-binaries"
START_TIMEOUT_S = 60.0
# An approval invalidated by another founder's concurrent commit is made again this often.
APPROVE_ATTEMPTS = 3
Progress = Callable[[str], None]
_T = TypeVar("_T")


class NetworkError(FedspecError):
    code = ErrorCode.NETWORK_FAILED


def binaries() -> Path:
    """The Fabric binaries' directory, provided by ``scripts/fabric-binaries``."""
    done = subprocess.run([str(SCRIPT), "--quiet"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
        raise NetworkError(
            lines[-1].removeprefix("fabric-binaries: ") if lines else "no Fabric binaries"
        )
    return Path(done.stdout.strip().splitlines()[-1])


def fabric_version(bins: Path) -> str:
    return (bins / "VERSION").read_text().strip() if (bins / "VERSION").exists() else ""


def copy_configs(layout: Layout, bins: Path, *names: str) -> Path:
    """Fabric's sample ``core.yaml`` / ``orderer.yaml`` into the part's configuration folder
    (every per-process value comes from the environment)."""
    layout.config_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(bins / "config" / name, layout.config_dir / name)
    return layout.config_dir


# ---------------------------------------------------------------- the ordering organization
def start_orderers(layout: OrderersLayout, bins: Path, only: str = "") -> None:
    for o in layout.orderers:
        if only and o.name != only:
            continue
        pid = processes.start(
            layout.run_dir,
            o.name,
            [str(bins / "bin" / "orderer")],
            {**orderer_env(layout, o), "FABRIC_CFG_PATH": str(layout.config_dir)},
        )
        processes.wait_for(
            o.name,
            functools.partial(_orderer_ready, o),
            timeout=START_TIMEOUT_S,
            pid=pid,
            log=layout.logs / f"{o.name}.log",
        )


def _orderer_ready(o: Orderer) -> bool:
    # /healthz can answer before the admin endpoint (osnadmin's) and the cluster port are
    # open: wait for all three.
    return (
        processes.healthy(o.operations_port, o.host)
        and processes.port_in_use(o.admin_port, o.host)
        and processes.port_in_use(o.port, o.host)
    )


def join_orderers(layout: OrderersLayout, bins: Path, block: Path) -> None:
    """Every orderer joins the channel from its genesis ``block``, each through its own
    admin endpoint: together they form the channel's raft cluster."""
    for o in layout.orderers:
        lifecycle.orderer_join(layout, bins / "bin", o.name, block)


# ---------------------------------------------------------------- a member
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
        start_chaincode_server(
            layout, f"chaincode.{p.org}", package_ids[p.org], p.chaincode_address
        )


def start_chaincode_server(layout: AnyLayout, name: str, package_id: str, address: str) -> None:
    """One chaincode server, serving installed package ``package_id`` at ``address``
    (host:port, as the package's connection.json names it), recorded as ``name``."""
    host, _, port = address.rpartition(":")
    pid = processes.start(
        layout.run_dir,
        name,
        [sys.executable, "-m", "chaincode.server"],
        {"CHAINCODE_ID": package_id, "CHAINCODE_SERVER_ADDRESS": address},
    )
    processes.wait_for(
        name,
        functools.partial(processes.port_in_use, int(port), host),
        timeout=START_TIMEOUT_S,
        pid=pid,
        log=layout.logs / f"{name}.log",
    )


def join_peer(member: MemberLayout, bins: Path, block: Path, progress: Progress) -> None:
    """Start the member's peer and join it to the channel from ``block`` (the genesis block
    the founders distributed, or block 0 fetched from the ordering service)."""
    progress(f"starting {member.org}'s peer at {member.own_peer.address}")
    start_peers(member, bins)
    lifecycle.peer_join(member, bins / "bin", member.config_dir, member.org, block)


def install_chaincode(member: MemberLayout, bins: Path, progress: Progress) -> str:
    """Package the chaincode as a service pointing at the member's own chaincode server,
    install it on its peer and start the server; the package id."""
    progress(f"installing the fedspec chaincode as a service on {member.org}'s peer")
    pkg, package_id = lifecycle.package(member, member.org, member.run_dir / "packages")
    lifecycle.install(member, bins / "bin", member.config_dir, member.org, pkg)
    start_chaincode(member, {member.org: package_id})
    return package_id


def approve_chaincode(
    member: MemberLayout, bins: Path, package_id: str, progress: Progress
) -> bool:
    """The member's admin approves the chaincode for its organization: the committed
    definition's version and sequence where one is committed (a member joining later, or a
    founder after the majority), the first definition otherwise, which it then commits if its
    approval made a majority. True once the definition is committed."""
    committed = retry_approval(
        member, lambda: _approve(member, bins, package_id, progress), progress
    )
    return committed or commit_if_majority(member, bins, progress)


def retry_approval(member: MemberLayout, approve: Callable[[], _T], progress: Progress) -> _T:
    """``approve()``, again while another member's commit invalidates it: approvals and the
    commit read the chaincode's definition, so an approval ordered in the block of another
    member's commit fails its read (MVCC), and the next attempt approves what that commit
    defined."""
    for attempt in range(1, APPROVE_ATTEMPTS + 1):
        try:
            return approve()
        except lifecycle.ToolError as exc:
            if "MVCC_READ_CONFLICT" not in str(exc) or attempt == APPROVE_ATTEMPTS:
                raise
            progress(f"{member.org}'s approval crossed another member's commit: approving again")
    raise AssertionError("unreachable: the last attempt returns or raises")


def _approve(member: MemberLayout, bins: Path, package_id: str, progress: Progress) -> bool:
    """Approve for the member's organization; True if it approved the committed definition."""
    tools, config, org = bins / "bin", member.config_dir, member.org
    definition = lifecycle.committed_definition(member, tools, config, org)
    if definition is None:
        progress(f"approving the chaincode definition for {org}")
        lifecycle.approve(member, tools, config, org, package_id)
        return False
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
    return True


def commit_if_majority(
    member: MemberLayout,
    bins: Path,
    progress: Progress,
    *,
    version: str = lifecycle.CHAINCODE_VERSION,
    sequence: str = lifecycle.SEQUENCE,
) -> bool:
    """Commit the chaincode definition (the first one by default) once a majority of the
    channel's organizations approved it; True when it is committed (by this member or, in a
    race, another)."""
    tools, config, org = bins / "bin", member.config_dir, member.org
    deadline = time.monotonic() + START_TIMEOUT_S
    definition = {"version": version, "sequence": sequence}

    def committed() -> bool:
        found = lifecycle.committed_definition(member, tools, config, org)
        return found is not None and int(found["sequence"]) >= int(sequence)

    try:
        # The approval is ordered into a block; the readiness this peer reports follows it.
        approvals = lifecycle.commit_readiness(member, tools, config, org, **definition)
        while not approvals.get(org) and time.monotonic() < deadline:
            time.sleep(0.25)
            approvals = lifecycle.commit_readiness(member, tools, config, org, **definition)
    except lifecycle.ToolError:
        if committed():  # another founder committed it meanwhile: no readiness to check
            return True
        raise
    approved = sorted(o for o, ok in approvals.items() if ok)
    if 2 * len(approved) <= len(approvals):
        progress(
            f"the chaincode definition has {len(approved)} of {len(approvals)} approvals: "
            "the member whose approval makes a majority commits it"
        )
        return committed()
    peers = [p for p in (member.known_peer(o) for o in approved) if p is not None]
    progress(f"committing the chaincode definition ({', '.join(approved)} approved)")
    try:
        lifecycle.commit(member, tools, config, org, peers, **definition)
    except lifecycle.ToolError:
        # Another founder's commit may have come first (founders start at about the same
        # time): as good as ours, once this peer holds its block.
        while not committed():
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    return True


def wait_endorsable(
    layout: NetworkLayout | MemberLayout, orgs: list[str], timeout: float = START_TIMEOUT_S
) -> None:
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
