"""The channel and the chaincode's lifecycle, through Fabric's own tools (``peer``,
``osnadmin``, ``configtxgen``): what an operator would type, in order.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fabric_network.configs import ENDORSEMENT_POLICY, PROFILE, admin_env
from fabric_network.layout import AnyLayout, OrderersLayout, Peer

CHAINCODE_VERSION = "1.0"
SEQUENCE = "1"


class ToolError(RuntimeError):
    """A Fabric tool exited non-zero; the message carries its last meaningful line."""


# A channel just joined elects its raft leader within a few ticks of a majority of its
# consenters joining (founders that run orderers join at about the same time); ordering
# before that is refused with these, and simply retried.
TRANSIENT = ("no Raft leader", "SERVICE_UNAVAILABLE")
TRANSIENT_WAIT_S = 60.0


def run_tool(argv: list[str], env: Mapping[str, str], *, timeout: float = 120) -> str:
    deadline = time.monotonic() + TRANSIENT_WAIT_S
    while True:
        try:
            return _run_once(argv, env, timeout)
        except ToolError as exc:
            if time.monotonic() > deadline or not any(t in str(exc) for t in TRANSIENT):
                raise
            time.sleep(0.5)


def _run_once(argv: list[str], env: Mapping[str, str], timeout: float) -> str:
    try:
        done = subprocess.run(
            argv,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ToolError(f"`{Path(argv[0]).name} {' '.join(argv[1:3])}` timed out") from exc
    if done.returncode != 0:
        lines = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
        raise ToolError(
            f"`{Path(argv[0]).name} {' '.join(argv[1:3])}` failed: {lines[-1] if lines else done.returncode}"
        )
    return done.stdout + done.stderr


def genesis_block(bin_dir: Path, config_dir: Path, channel: str, out: Path) -> Path:
    """Channel ``channel``'s genesis block from ``config_dir/configtx.yaml``
    (:func:`fabric_network.configs.write_configtx`), written to ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    run_tool(
        [
            str(bin_dir / "configtxgen"),
            "-profile",
            PROFILE,
            "-channelID",
            channel,
            "-outputBlock",
            str(out),
            "-configPath",
            str(config_dir),
        ],
        {},
    )
    return out


def _osnadmin(layout: OrderersLayout, bin_dir: Path, name: str, *args: str) -> str:
    """``osnadmin channel ARGS`` against orderer ``name``'s admin endpoint, over mutual TLS
    as the orderer organization's admin."""
    o = next(x for x in layout.orderers if x.name == name)
    org = layout.orderer_org_of(o)
    admin = layout.admin_dir(org) / "tls"
    return run_tool(
        [
            str(bin_dir / "osnadmin"),
            "channel",
            *args,
            "--channelID",
            layout.channel,
            "-o",
            o.admin_address,
            "--ca-file",
            str(layout.tls_ca(org)),
            "--client-cert",
            str(admin / "client.crt"),
            "--client-key",
            str(admin / "client.key"),
        ],
        {},
    )


def orderer_join(layout: OrderersLayout, bin_dir: Path, name: str, block: Path) -> None:
    """Orderer ``name`` joins the channel from its genesis ``block``, through its own admin
    endpoint (the channel participation API)."""
    _osnadmin(layout, bin_dir, name, "join", "--config-block", str(block))


def peer_join(layout: AnyLayout, bin_dir: Path, config_dir: Path, org: str, block: Path) -> None:
    """``org``'s peer joins the channel from ``block``: the genesis block the network created,
    or the channel's first block a member voted in later fetched from the ordering service."""
    run_tool(
        [str(bin_dir / "peer"), "channel", "join", "-b", str(block)],
        admin_env(layout, org, config_dir),
    )


def fetch_block(
    layout: AnyLayout, bin_dir: Path, config_dir: Path, org: str, which: str, out: Path
) -> Path:
    """``peer channel fetch WHICH`` (``oldest``, ``newest``, ``config`` or a number) from the
    ordering service, as ``org``'s admin (a channel reader): no peer needed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    run_tool(
        [
            str(bin_dir / "peer"),
            "channel",
            "fetch",
            which,
            str(out),
            "-c",
            layout.channel,
            *_orderer_args(layout),
        ],
        admin_env(layout, org, config_dir),
        timeout=60,
    )
    return out


def _orderer_args(layout: AnyLayout) -> list[str]:
    return [
        "-o",
        layout.orderer_addresses[0],
        "--tls",
        "--cafile",
        str(layout.orderer_tls_cas()),
    ]


def package(
    layout: AnyLayout,
    org: str,
    directory: Path,
    *,
    version: str = CHAINCODE_VERSION,
    address: str = "",
) -> tuple[Path, str]:
    """A chaincode-as-a-service package of ``version`` pointing at ``org``'s chaincode server
    (at ``address``, its usual one by default); its id."""
    label = f"{layout.chaincode}_{version}"
    connection = json.dumps(
        {
            "address": address or layout.peer(org).chaincode_address,
            "dial_timeout": "10s",
            "tls_required": False,
        }
    ).encode()
    code = _tar({"connection.json": connection})
    metadata = json.dumps({"type": "ccaas", "label": label}).encode()
    data = _tar({"metadata.json": metadata, "code.tar.gz": code})
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (
        f"{org}.tar.gz" if version == CHAINCODE_VERSION else f"{org}-{version}.tar.gz"
    )
    path.write_bytes(data)
    # The peer names an installed package label:sha256(package file).
    return path, f"{label}:{hashlib.sha256(data).hexdigest()}"


def _tar(files: Mapping[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def install(layout: AnyLayout, bin_dir: Path, config_dir: Path, org: str, pkg: Path) -> None:
    run_tool(
        [str(bin_dir / "peer"), "lifecycle", "chaincode", "install", str(pkg)],
        admin_env(layout, org, config_dir),
    )


def _definition(
    layout: AnyLayout, version: str = CHAINCODE_VERSION, sequence: str = SEQUENCE
) -> list[str]:
    return [
        *_orderer_args(layout),
        "--channelID",
        layout.channel,
        "--name",
        layout.chaincode,
        "--version",
        version,
        "--sequence",
        sequence,
        "--channel-config-policy",
        ENDORSEMENT_POLICY,
    ]


def approve(
    layout: AnyLayout,
    bin_dir: Path,
    config_dir: Path,
    org: str,
    package_id: str,
    *,
    version: str = CHAINCODE_VERSION,
    sequence: str = SEQUENCE,
) -> None:
    """``org`` approves the chaincode definition (the network's, or, for a member joining
    later, the committed one's ``version`` and ``sequence``) with its own package."""
    run_tool(
        [
            str(bin_dir / "peer"),
            "lifecycle",
            "chaincode",
            "approveformyorg",
            *_definition(layout, version, sequence),
            "--package-id",
            package_id,
        ],
        admin_env(layout, org, config_dir),
    )


def commit_readiness(
    layout: AnyLayout,
    bin_dir: Path,
    config_dir: Path,
    org: str,
    *,
    version: str = CHAINCODE_VERSION,
    sequence: str = SEQUENCE,
) -> dict[str, bool]:
    """Which organizations of the channel approved the chaincode definition (the first one
    by default) (``peer lifecycle chaincode checkcommitreadiness``), as ``org``'s peer sees
    it."""
    out = run_tool(
        [
            str(bin_dir / "peer"),
            "lifecycle",
            "chaincode",
            "checkcommitreadiness",
            *_definition(layout, version, sequence),
            "--output",
            "json",
        ],
        admin_env(layout, org, config_dir),
    )
    doc = json.loads(out[out.index("{") : out.rindex("}") + 1])
    return {str(k): bool(v) for k, v in doc.get("approvals", {}).items()}


def commit(
    layout: AnyLayout,
    bin_dir: Path,
    config_dir: Path,
    org: str,
    peers: Sequence[Peer],
    *,
    version: str = CHAINCODE_VERSION,
    sequence: str = SEQUENCE,
) -> None:
    """``org``'s admin commits the chaincode definition (the first one by default), endorsed
    by ``peers`` (those of the organizations that approved it: a majority of the
    channel's)."""
    targets: list[str] = []
    for p in peers:
        targets += ["--peerAddresses", p.address, "--tlsRootCertFiles", str(layout.tls_ca(p.org))]
    run_tool(
        [
            str(bin_dir / "peer"),
            "lifecycle",
            "chaincode",
            "commit",
            *_definition(layout, version, sequence),
            *targets,
        ],
        admin_env(layout, org, config_dir),
    )


def committed_definition(
    layout: AnyLayout, bin_dir: Path, config_dir: Path, org: str
) -> dict[str, Any] | None:
    """The channel's committed definition of the chaincode (``version``, ``sequence``,
    ``validation_parameter``, ``approvals``, …) as ``org``'s peer holds it; None while none
    is committed (a founding channel before a majority approved)."""
    try:
        out = _query_committed(layout, bin_dir, config_dir, org)
    except ToolError as exc:
        if "not defined" in str(exc) or "404" in str(exc):
            return None
        raise
    doc: dict[str, Any] = json.loads(out[out.index("{") : out.rindex("}") + 1])
    return doc


def _query_committed(layout: AnyLayout, bin_dir: Path, config_dir: Path, org: str) -> str:
    return run_tool(
        [
            str(bin_dir / "peer"),
            "lifecycle",
            "chaincode",
            "querycommitted",
            "-C",
            layout.channel,
            "-n",
            layout.chaincode,
            "-O",
            "json",
        ],
        admin_env(layout, org, config_dir),
    )


def chaincode_query(
    layout: AnyLayout, bin_dir: Path, config_dir: Path, org: str, function: str, *args: str
) -> str:
    """``peer chaincode query`` as ``org``'s admin against its own peer: what an operator
    sees without fedspec's client."""
    call = json.dumps({"function": function, "Args": list(args)})
    out = run_tool(
        [
            str(bin_dir / "peer"),
            "chaincode",
            "query",
            "-C",
            layout.channel,
            "-n",
            layout.chaincode,
            "-c",
            call,
        ],
        admin_env(layout, org, config_dir),
    )
    return out.strip().splitlines()[-1]


def peer_height(layout: AnyLayout, bin_dir: Path, config_dir: Path, org: str) -> int:
    out = run_tool(
        [str(bin_dir / "peer"), "channel", "getinfo", "-c", layout.channel],
        admin_env(layout, org, config_dir),
    )
    info = json.loads(out[out.index("{") : out.rindex("}") + 1])
    return int(info["height"])


def orderer_height(layout: OrderersLayout, bin_dir: Path, name: str) -> int:
    out = _osnadmin(layout, bin_dir, name, "list")
    return int(json.loads(out[out.index("{") : out.rindex("}") + 1])["height"])
