"""Founders on their own hosts, formed once per session and shared by the tests that need a
network spread over members (``founders`` in ``tests/fabric/conftest.py``).

Every organization starts its own part with `fedspec node up` from its own home, as its own
process tree, on its own loopback address (all of 127/8 reaches lo on Linux), with TLS
certificates its own TLS CA issued for that address; every endpoint comes from the bundles.
One raft cluster of four orderers from four organizations: the ordering organization's (on
127.0.0.2) and one each that three members run beside their peers (`org init --raft`, on
127.0.0.3-5). One founder makes the genesis block from the bundles (`fedspec node genesis`);
the ordering organization's orderer joins from it, then the three members start at the same
time (their orderers join from the same file and wait for a raft majority, their peers join,
each approves the chaincode for itself, and the approval that makes a majority commits it).

Three members, not four: killing one whole member (peer, orderer, chaincode server) leaves
three orderers of four (a raft majority) and two members of three (the endorsement
majority), at the cost of one peer, orderer and chaincode server fewer on CI's two cores.

Every test that uses the network leaves it healthy (a member it stopped is up again) and
relies on no other test having run before it (:meth:`Founders.found`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from fabric_network import MemberLayout, lifecycle, node_down
from fedspec.app.bootstrap import Bootstrapped, init_ledger
from fedspec.app.bundles import export_bundle, load_bundle, write_bundle
from fedspec.app.consortium import create_consortium
from fedspec.app.node import member_layout
from fedspec.app.orgs import init_org
from fedspec.app.settings import Settings
from ledger_client import close_services
from ledger_client.errors import EndorseError
from tests.fabric_support import free_port_block

ROOT = Path(__file__).resolve().parents[2]
MEMBERS = ["org1", "org2", "org3"]
HOSTS = {"ordering": "127.0.0.2", "org1": "127.0.0.3", "org2": "127.0.0.4", "org3": "127.0.0.5"}
NODE_UP_TIMEOUT_S = 500


@dataclass
class Founders:
    root: Path
    bins: Path
    ups: dict[str, dict[str, object]]  # org → its first `node up --json`
    founded: Bootstrapped | None = None

    def found(self) -> Bootstrapped:
        """org1 founds the ledger, once per network: xdist may run the tests in any order,
        so no test relies on another having founded it."""
        if self.founded is None:
            self.founded = init_ledger(self.settings("org1"))
        return self.founded

    def home(self, org: str) -> Path:
        return self.root / org

    def layout(self, org: str) -> MemberLayout:
        layout = member_layout(Settings.load(self.home(org), env={}))
        assert isinstance(layout, MemberLayout)
        return layout

    def settings(self, org: str) -> Settings:
        return Settings.load(self.home(org), env={"FEDSPEC_LEDGER": "fabric"})

    def query(self, org: str, function: str, *args: str) -> str:
        """``peer chaincode query`` as ``org``'s admin, from its own home, on its own peer."""
        layout = self.layout(org)
        return lifecycle.chaincode_query(
            layout, self.bins / "bin", layout.config_dir, org, function, *args
        )


def make_homes(root: Path, hosts: dict[str, str]) -> None:
    """Each organization's own keys in its own home ``root/<org>`` on its host, and its
    public bundle ``root/<org>.bundle``: the ordering organization's one orderer, and
    members that run a raft orderer beside their peer (`org init --raft`)."""
    for org, host in hosts.items():
        consortium = root / org / "consortium"
        if org == "ordering":
            init_org(consortium, org, orderers=1, host=host, port=free_port_block(3))
        else:
            init_org(consortium, org, nodes=1, host=host, port=free_port_block(13), raft=True)
        write_bundle(export_bundle(consortium), root / f"{org}.bundle")


def form(root: Path, bins: Path) -> Iterator[Founders]:
    """Every organization's keys and bundle, the consortium from the bundles in every home,
    the genesis block, then every `node up`; on leaving, every home's `node down`."""
    make_homes(root, HOSTS)
    # Every founder founds the consortium from the same bundles, in its own home.
    for org in HOSTS:
        bundles = [load_bundle(root / f"{o}.bundle") for o in [*MEMBERS, "ordering"]]
        create_consortium(root / org / "consortium", bundles)
    close_services()
    try:
        made = node(root / "org1", "genesis", "--out", str(root / "fedspec.block"))
        assert made.returncode == 0, made.stderr
        ups = {"ordering": up(root / "ordering", "--genesis", str(root / "fedspec.block"))}
        homes = [root / org for org in MEMBERS]
        started = up_together(homes, "--genesis", str(root / "fedspec.block"))
        ups.update(zip(MEMBERS, started, strict=True))
        yield Founders(root, bins, ups)
    finally:
        close_services()
        for org in HOSTS:
            node_down(member_layout(Settings.load(root / org, env={})))


def node(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDSPEC_")}
    return subprocess.run(
        [sys.executable, "-m", "fedspec.cli", "--home", str(home), "node", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=NODE_UP_TIMEOUT_S,
        cwd=ROOT,
        env=env,
    )


def up(home: Path, *args: str) -> dict[str, object]:
    done = node(home, "up", "--json", *args)
    assert done.returncode == 0, done.stderr
    doc: dict[str, object] = json.loads(done.stdout)
    return doc


def up_together(homes: list[Path], *args: str) -> list[dict[str, object]]:
    """`node up` in every home at once, as founders who each wait for the others' orderers."""
    return together(homes, "up", *args)


def upgrade_together(homes: list[Path], version: str) -> list[dict[str, object]]:
    """`node upgrade VERSION` in every home at once, as members who agreed on it."""
    return together(homes, "upgrade", version)


def together(homes: list[Path], *args: str) -> list[dict[str, object]]:
    """`node ARGS --json` in every home at once; each one's JSON answer."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDSPEC_")}
    running = [
        subprocess.Popen(
            [sys.executable, "-m", "fedspec.cli", "--home", str(h), "node", *args, "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        for h in homes
    ]
    docs = []
    for proc in running:
        out, err = proc.communicate(timeout=NODE_UP_TIMEOUT_S)
        assert proc.returncode == 0, err
        docs.append(json.loads(out))
    return docs


def once_endorsed(action: Callable[[], object], timeout: float = 120) -> None:
    """``action`` again while its endorsement fails (nothing was ordered then): a plan still
    naming the stopped peer, until gossip drops it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            action()
            return
        except EndorseError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)
