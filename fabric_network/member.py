"""One member's own part of the network, from its own home: ``fedspec node up | down | status``.

Each organization runs its own processes with its own keys, on its own host, where its
bundle declares them; only public certificates and endpoints of the others are read (the
home's consortium folder, founded from the bundles). The steps are the ones ``network up``
runs for every part on one host (:mod:`fabric_network.steps`), here for one:

- the ordering organization (:class:`OrderingLayout`): its raft orderers start on its own
  host, with TLS certificates its own TLS CA issued for that host, and, the first time, each
  joins the channel from the genesis block the founders handed round (``osnadmin channel
  join`` against its own admin endpoint);
- a member that runs a raft orderer of its own (``org init --raft``) starts it the same way
  first, and waits (a progress line) for a majority of the channel's consenters: founders
  start at about the same time;
- a member (:class:`MemberLayout`): refused before anything starts when a port is taken, a
  majority of the orderers does not answer, the ordering service has no channel yet, or the
  channel's configuration does not hold this organization (fetched as its admin: not voted in
  yet); then its peer starts and joins the channel (from the genesis block a founder handed
  round, or from the ordering service's block 0), the chaincode is packaged as a service
  pointing at its own chaincode server, installed, served, and approved for the organization
  (the committed definition for a member voted in later; the first one for a founder, which
  commits it when its approval makes a majority); it returns once its peer endorses, or, for
  a founder before the majority, once its approval is on the channel.

Every process is recorded by PID in ``<home>/node/pids.json`` the moment it starts; a
failure stops them all and removes what ``up`` created (the logs stay), so nothing is left
half-started; ``down`` stops exactly those processes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fabric_protos.common import common_pb2

from fabric_network import lifecycle, processes, steps
from fabric_network.certificates import check_certificates
from fabric_network.founding import write_genesis
from fabric_network.layout import MemberLayout, OrderingLayout
from fabric_network.node_errors import (
    GenesisMissingError,
    HostNotLocalError,
    NodeError,
    NoRaftMajorityError,
    NotInChannelError,
    PortInUseError,
)
from fabric_network.steps import Progress, binaries
from fedspec.fileio import write_atomic
from ledger_client.channel_update import FabricChannelConfig
from ledger_client.errors import LedgerError

# A peer joining a channel replays every block from the ordering service.
CATCH_UP_TIMEOUT_S = 120.0
ORDERER_CONNECT_TIMEOUT_S = 3.0
# A founder that runs a raft orderer waits this long for the others' to make a majority.
RAFT_WAIT_S = 180.0

NodeLayout = MemberLayout | OrderingLayout
# The chaincode server of an upgrade approved but not yet committed runs beside the current
# one under this name; the state keeps these keys across restarts (fabric_network.upgrade).
NEXT_CHAINCODE = "chaincode-next.{org}"
UPGRADE_STATE = ("chaincode_version", "chaincode_sequence", "chaincode_address", "next")


@dataclass(frozen=True)
class NodeStatus:
    run_dir: Path
    org: str
    state: str  # "absent", "ready", "stopped", "degraded", "partial"
    processes: dict[str, bool] = field(default_factory=dict)  # name → running
    peer: str = ""  # "" for the ordering organization
    channel: str = ""
    orderers: list[str] = field(default_factory=list)
    package_id: str = ""
    role: str = "member"  # or "ordering"
    committed: bool = False  # the chaincode definition (a member's view)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "org": self.org,
            "role": self.role,
            "state": self.state,
            "processes": self.processes,
            "peer": self.peer,
            "channel": self.channel,
            "orderers": self.orderers,
            "package_id": self.package_id,
            "chaincode_committed": self.committed,
        }


def process_names(layout: NodeLayout) -> list[str]:
    own = [o.name for o in layout.orderers]
    if isinstance(layout, OrderingLayout):
        return own
    return [f"peer0.{layout.org}", f"chaincode.{layout.org}", *own]


def read_state(layout: NodeLayout) -> dict[str, Any]:
    """The member's ``node.json``: what ``up`` (and an upgrade) recorded; {} if none."""
    try:
        doc = json.loads(layout.state_file.read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def write_state(layout: NodeLayout, doc: dict[str, Any]) -> None:
    write_atomic(layout.state_file, json.dumps(doc, indent=2, sort_keys=True))


def node_status(layout: NodeLayout) -> NodeStatus:
    state = read_state(layout)
    running = {n: processes.alive(p) for n, p in processes.recorded(layout.run_dir).items()}
    if not state:
        kind = (
            "partial" if any(running.values()) or (layout.run_dir / "data").exists() else "absent"
        )
    elif state.get("status") != "ready":
        kind = "partial"
    else:
        expected = process_names(layout)
        up = [n for n in expected if running.get(n)]
        kind = "ready" if len(up) == len(expected) else ("stopped" if not up else "degraded")
        running = {n: bool(running.get(n)) for n in expected}
    ordering = isinstance(layout, OrderingLayout)
    return NodeStatus(
        layout.run_dir,
        layout.org,
        kind,
        running,
        "" if ordering else str(state.get("peer", layout.peers[0].address)),
        str(state.get("channel", layout.channel)),
        list(state.get("orderers", layout.orderer_addresses)),
        str(state.get("package_id", "")),
        "ordering" if ordering else "member",
        bool(state.get("committed", False)),
    )


def node_up(
    layout: NodeLayout, *, genesis: Path | None = None, progress: Progress = lambda _: None
) -> NodeStatus:
    """Start this organization's own processes: the ordering organization's orderers, or a
    member's peer and chaincode server (and its own raft orderer, ``org init --raft``, first:
    it waits for a majority of the consenters). ``genesis`` is the channel's genesis block a founder
    made (``fedspec node genesis``): the orderers need it the first time; a member's peer
    joins from it where given, from the ordering service's block 0 otherwise."""
    status = node_status(layout)
    if status.state == "ready":
        return status
    _refuse_unclean(layout, status)
    creating = status.state == "absent"
    _check_ports(layout)
    check_certificates(layout)
    if genesis is not None or (creating and layout.orderers):
        _check_genesis(layout, genesis)
    if isinstance(layout, MemberLayout) and not layout.orderers:
        layout = _reachable_first(layout)
    bins = binaries()
    layout.run_dir.mkdir(parents=True, exist_ok=True)
    try:
        _start(layout, bins, creating, genesis, progress)
    except BaseException as exc:
        processes.stop_all(layout.run_dir)
        if creating:
            _remove_created(layout)
        if isinstance(exc, NodeError):
            raise
        if isinstance(exc, lifecycle.ToolError | LedgerError | RuntimeError | TimeoutError):
            raise NodeError(
                f"node up failed: {exc}; every process it started was stopped "
                f"(logs in {layout.logs})"
            ) from exc
        raise
    final = node_status(layout)
    if final.role == "ordering":
        progress(f"{layout.org}'s orderers ready at {', '.join(final.orderers)}")
    elif final.committed:
        progress(f"{layout.org}'s peer ready at {final.peer} on channel {final.channel}")
    else:
        progress(
            f"{layout.org}'s peer ready at {final.peer}; the chaincode is approved for "
            f"{layout.org} and endorses once a majority of the members approved it"
        )
    return final


def _start(
    layout: NodeLayout, bins: Path, creating: bool, genesis: Path | None, progress: Progress
) -> None:
    if isinstance(layout, OrderingLayout):
        _ordering_up(layout, bins, creating, genesis, progress)
    elif creating:
        _create(layout, bins, genesis, progress)
    else:
        _restart(layout, bins, progress)


def _refuse_unclean(layout: NodeLayout, status: NodeStatus) -> None:
    if status.state == "partial":
        raise NodeError(
            f"stale node directory {layout.run_dir} (an interrupted `node up`): "
            "run `fedspec node down --wipe`, then `fedspec node up`"
        )
    if status.state == "degraded":
        raise NodeError(
            f"{layout.org}'s processes in {layout.run_dir} are partly running: "
            "run `fedspec node down`, then `fedspec node up`"
        )


def node_down(layout: NodeLayout, *, wipe: bool = False) -> list[str]:
    """Stop exactly the processes ``node up`` started (by PID); ``wipe`` also deletes the
    ledgers, the logs and the state (the home's keys are elsewhere and stay)."""
    stopped = processes.stop_all(layout.run_dir)
    if wipe and layout.run_dir.exists():
        shutil.rmtree(layout.run_dir)
    return stopped


def make_genesis(layout: NodeLayout, out: Path) -> Path:
    """The founders' channel genesis block from this home's consortium folder (every
    founder's holds the same bundles), written to ``out`` for the others."""
    bins = binaries()
    scratch = dataclasses.replace(layout, run_dir=layout.run_dir / "founding")
    try:
        return write_genesis(scratch, bins, layout.channel, out)
    except lifecycle.ToolError as exc:
        raise NodeError(f"cannot make the genesis block: {exc}") from exc
    finally:
        shutil.rmtree(scratch.run_dir, ignore_errors=True)
        with contextlib.suppress(OSError):  # only if `node up` has not made it its own
            layout.run_dir.rmdir()


# ---------------------------------------------------------------- refusals
def _check_ports(layout: NodeLayout) -> None:
    hosts = {p.host for p in layout.peers} | {o.host for o in layout.orderers}
    for host in sorted(hosts):
        try:
            socket.getaddrinfo(host, None)
        except OSError:
            raise NodeError(
                f"{layout.org}'s host {host!r:.80} (its `org init --host`) does not resolve "
                "on this machine"
            ) from None
        _check_local(layout.org, host)
    host = next(iter(sorted(hosts)), "127.0.0.1")
    busy = {w: port for w, port in layout.ports().items() if processes.port_in_use(port, host)}
    if busy:
        what, port = next(iter(busy.items()))
        raise PortInUseError(
            f"port {port} ({what}) is already in use on {host}: stop what holds it, or give "
            f"{layout.org} other ports (`fedspec org init --port`, before founding or the vote)"
        )


def _check_local(org: str, host: str) -> None:
    """``host`` is an address this machine can listen on: a bind to it on any free port.
    Any other failure than "not an address of this machine" is left to the port check."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.bind((host, 0))
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                raise HostNotLocalError(
                    f"{org}'s host {host!r:.80} (its `org init --host`, in its bundle) is not an "
                    "address of this machine: run `fedspec node up` on that host, or give this "
                    "machine that address"
                ) from None


def _check_genesis(layout: NodeLayout, genesis: Path | None) -> None:
    how = (
        "one founder makes it from the founders' bundles (`fedspec node genesis --out FILE`) "
        "and hands it to the others; start with `fedspec node up --genesis FILE`"
    )
    if genesis is None:
        if isinstance(layout, MemberLayout):
            how += (
                f" ({layout.org} runs a raft orderer: founders' orderers join from the genesis "
                "block; a consenter added later needs a channel update fedspec does not make)"
            )
        raise GenesisMissingError(f"no genesis block for channel {layout.channel}: {how}")
    try:
        block = common_pb2.Block.FromString(Path(genesis).read_bytes())
        channel = _channel_of(block)
    except OSError as exc:
        raise GenesisMissingError(
            f"cannot read the genesis block {genesis}: {exc.strerror or exc}"
        ) from None
    except Exception:  # DecodeError, or a block without a channel header
        raise GenesisMissingError(f"{genesis} is not a Fabric block: {how}") from None
    if block.header.number != 0:
        raise GenesisMissingError(
            f"{genesis} is block {block.header.number}, not a genesis block: {how}"
        )
    if channel != layout.channel:
        raise GenesisMissingError(
            f"{genesis} is channel {channel!r:.60}'s genesis block, not {layout.channel}'s"
        )


def _channel_of(block: common_pb2.Block) -> str:
    envelope = common_pb2.Envelope.FromString(block.data.data[0])
    payload = common_pb2.Payload.FromString(envelope.payload)
    return str(common_pb2.ChannelHeader.FromString(payload.header.channel_header).channel_id)


def _reachable_first(member: MemberLayout, wait: float = 0.0) -> MemberLayout:
    """The orderers that accept a connection first (this member's own last: they may still
    be catching up); :class:`NoRaftMajorityError` unless a majority of them does (raft
    orders nothing without one) within ``wait`` seconds."""
    declared = member.orderer_addresses
    own = {o.address for o in member.orderers}
    deadline = time.monotonic() + wait
    up = [a for a in declared if _accepts(a)]
    while 2 * len(up) <= len(declared) and time.monotonic() < deadline:
        time.sleep(1.0)
        up = [a for a in declared if _accepts(a)]
    up = [a for a in up if a not in own] + [a for a in up if a in own]
    if 2 * len(up) <= len(declared):
        what = (
            "no orderer of the ordering service is reachable"
            if not up
            else f"only {len(up)} of the ordering service's {len(declared)} orderers answer"
        )
        raise NoRaftMajorityError(
            f"{what} at {', '.join(declared) or '(none declared)'} (the endpoints its bundle "
            "declares), and raft needs a majority: start the ordering organization's "
            "`fedspec node up` first"
        )
    rest = [a for a in declared if a not in up]
    return dataclasses.replace(member, orderer_endpoints=(*up, *rest))


def _accepts(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=ORDERER_CONNECT_TIMEOUT_S):
            return True
    except (OSError, ValueError):
        return False


# ---------------------------------------------------------------- the ordering organization
def _ordering_up(
    layout: OrderingLayout, bins: Path, creating: bool, genesis: Path | None, progress: Progress
) -> None:
    names = ", ".join(o.name for o in layout.orderers)
    if not creating:
        progress(f"restarting {layout.org}'s orderers ({names}) on their ledgers")
        steps.start_orderers(layout, bins)
        return
    assert genesis is not None  # _check_genesis refused its absence
    steps.copy_configs(layout, bins, "orderer.yaml")
    write_state(layout, {"status": "starting", "org": layout.org, "channel": layout.channel})
    shutil.copy(genesis, layout.genesis_block)
    progress(f"starting {layout.org}'s orderers ({names})")
    steps.start_orderers(layout, bins)
    progress(f"joining them to channel {layout.channel} from its genesis block (osnadmin)")
    steps.join_orderers(layout, bins, layout.genesis_block)
    write_state(
        layout,
        {
            "status": "ready",
            "role": "ordering",
            "org": layout.org,
            "channel": layout.channel,
            "orderers": layout.orderer_addresses,
        },
    )


# ---------------------------------------------------------------- a member
def _own_orderers_up(
    member: MemberLayout, bins: Path, block: Path | None, progress: Progress
) -> MemberLayout:
    """Start the raft orderers this member runs itself (joining them to the channel from
    ``block`` the first time), then wait for a majority of the channel's orderers: the
    other founders start theirs at about the same time."""
    names = ", ".join(o.name for o in member.orderers)
    progress(f"starting {member.org}'s orderers ({names})")
    steps.start_orderers(member, bins)
    if block is not None:
        progress(f"joining them to channel {member.channel} from its genesis block (osnadmin)")
        steps.join_orderers(member, bins, block)
    progress(
        f"waiting for a majority of the channel's {len(member.orderer_addresses)} orderers "
        f"(up to {RAFT_WAIT_S:.0f} s)"
    )
    return _reachable_first(member, wait=RAFT_WAIT_S)


def _create(member: MemberLayout, bins: Path, genesis: Path | None, progress: Progress) -> None:
    org = member.org
    steps.copy_configs(member, bins, "core.yaml", "orderer.yaml")
    write_state(member, {"status": "starting", "org": org, "channel": member.channel})
    if member.orderers:
        assert genesis is not None  # _check_genesis refused its absence
        shutil.copy(genesis, member.genesis_block)
        member = _own_orderers_up(member, bins, member.genesis_block, progress)
    progress(f"reading channel {member.channel}'s configuration from the ordering service")
    check_in_channel(member, bins)
    first = member.run_dir / "blocks" / f"{member.channel}-0.block"
    if genesis is not None:
        first.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(genesis, first)
    else:
        _fetch(member, bins, "oldest", first)
    steps.join_peer(member, bins, first, progress)
    package_id = steps.install_chaincode(member, bins, progress)
    _catch_up(member, bins, progress)
    committed = steps.approve_chaincode(member, bins, package_id, progress)
    if committed:
        steps.wait_endorsable(member, [org])
    _ready(member, package_id, committed)


def _restart(member: MemberLayout, bins: Path, progress: Progress) -> None:
    state = read_state(member)
    if member.orderers:
        member = _own_orderers_up(member, bins, None, progress)
    progress(f"restarting {member.org}'s peer and chaincode server on their ledger")
    steps.start_peers(member, bins)
    steps.start_chaincode_server(
        member,
        f"chaincode.{member.org}",
        state["package_id"],
        state.get("chaincode_address") or member.own_peer.chaincode_address,
    )
    pending = state.get("next")  # an upgrade approved but not yet committed
    if pending:
        steps.start_chaincode_server(
            member, NEXT_CHAINCODE.format(org=member.org), pending["package_id"], pending["address"]
        )
    _catch_up(member, bins, progress)
    committed = bool(state.get("committed")) or (
        lifecycle.committed_definition(member, bins / "bin", member.config_dir, member.org)
        is not None
        or steps.commit_if_majority(member, bins, progress)
    )
    if committed:
        steps.wait_endorsable(member, [member.org])
    _ready(member, state["package_id"], committed, state)


def _ready(
    member: MemberLayout, package_id: str, committed: bool, kept: dict[str, Any] | None = None
) -> None:
    # What a chaincode upgrade recorded (the version served, where, and one in flight)
    # survives a restart.
    upgraded = {k: v for k, v in (kept or {}).items() if k in UPGRADE_STATE}
    write_state(
        member,
        {
            **upgraded,
            "status": "ready",
            "role": "member",
            "org": member.org,
            "channel": member.channel,
            "chaincode": member.chaincode,
            "package_id": package_id,
            "committed": committed,
            "peer": member.own_peer.address,
            # Read by the home's settings: FEDSPEC_LEDGER=fabric then uses this peer.
            "peers": {member.org: member.own_peer.address},
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
            raise GenesisMissingError(
                f"the ordering service at {member.orderer_addresses[0]} has no channel "
                f"{member.channel} yet: the ordering organization joins it first (`fedspec "
                "node up --genesis FILE` in its home), or check [ledger] channel in fedspec.toml"
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


def _remove_created(layout: NodeLayout) -> None:
    """What a failed first ``up`` created, but its logs: the next ``up`` starts afresh."""
    if not layout.run_dir.exists():
        return
    for path in layout.run_dir.iterdir():
        if path == layout.logs:
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # only if nothing, not even a log, is left
        layout.run_dir.rmdir()
