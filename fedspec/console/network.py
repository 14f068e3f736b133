"""What the demo prints about its Fabric network: the peers' agreement, and the command an
operator would type to read a record with Fabric's own CLI."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from fabric_network.configs import admin_env
from fabric_network.control import binaries
from fabric_network.layout import NetworkLayout
from fedspec.app.settings import Settings
from fedspec.console.output import console


def peer_query_command(home: Path, org: str, function: str, *args: str) -> str:
    """``peer chaincode query`` of the fedspec chaincode as ``org``'s admin, ready to paste."""
    doc = json.loads((home / "network" / "network.json").read_text())
    layout = NetworkLayout(home / "network", home / "consortium", base_port=int(doc["base_port"]))
    env = admin_env(layout, org, layout.run_dir / "config")
    call = json.dumps({"function": function, "Args": list(args)}, separators=(",", ":"))
    assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    peer = binaries() / "bin" / "peer"
    return (
        f"{assignments} {peer} chaincode query -C {layout.channel} -n {layout.chaincode} "
        f"-c {shlex.quote(call)}"
    )


def print_agreement(settings: Settings) -> bool:
    """Every organization's peer, asked through its own Gateway: the same height and the
    same last block hash. Fabric's peers validated every block themselves."""
    # Deferred: the command line starts without it.
    from ledger_client import close_services, open_ledger
    from ledger_client.backends import LedgerConfig

    close_services()
    tips = {}
    for org, address in settings.ledger.fabric_peers.items():
        config = LedgerConfig(
            backend="fabric",
            consortium_dir=settings.ledger.consortium_dir,
            channel=settings.ledger.channel,
            chaincode=settings.ledger.chaincode,
            fabric_peers={org: address},
        )
        info = open_ledger(config, f"{org}/admin").chain_info()
        tips[org] = (info.height, info.current_block_hash)
    agree = len(set(tips.values())) == 1
    height = next(iter(tips.values()))[0]
    verdict = "[green]agree[/]" if agree else f"[red]DISAGREE[/]: {tips}"
    console.print(f"Fabric peers {verdict}: {len(tips)} peers at height {height}, same last block")
    close_services()
    return agree
