"""A real Fabric network for the tests: started once per session, torn down by PID.

Every test that needs a fresh ledger gets a channel of its own on that network (a channel is
a separate ledger; creating one takes a few seconds, starting a network many more).
Without Fabric binaries (no cache, no Go, no source) the Fabric tests are skipped with the
reason, unless ``FEDSPEC_REQUIRE_FABRIC=1`` (CI sets it) turns that into a failure.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from fabric_network import NetworkLayout, network_down, network_up
from fabric_network.control import NetworkError, binaries, create_channel
from fabric_network.layout import HOST
from fedspec.app.bundles import Bundle, org_bundle
from fedspec.app.orgs import MEMBER, ORDERING, OrgRecord
from tests import processes

_channels = itertools.count(1)


def fabric_binaries_or_skip() -> Path:
    try:
        return binaries()
    except NetworkError as exc:
        if os.environ.get("FEDSPEC_REQUIRE_FABRIC") == "1":
            pytest.fail(f"Fabric binaries are required here: {exc}")
        pytest.skip(f"no Fabric binaries: {exc}")


def free_base_port() -> int:
    """A base port whose whole block (orderers from +0, peers from +100) is free (from this
    worker's ports below the ephemeral range: :func:`tests.processes.free_port_block`)."""
    return processes.free_port_block(150, step=200)


def free_port_block(size: int = 4) -> int:
    """The first of ``size`` consecutive free ports (a member's peer and the three after it)."""
    return processes.free_port_block(size, step=10)


def network_bundles(layout: NetworkLayout) -> dict[str, Bundle]:
    """The public bundles of a running network's organizations, as each would export them
    from its own home, with the endpoints their processes really listen on (the one-machine
    shortcut lays them out from the network's base port)."""
    consortium = layout.consortium
    bundles = {}
    for org in consortium.members:
        record = OrgRecord(
            org.name,
            MEMBER,
            HOST,
            {"admin": list(org.admins), "peer": list(org.peers), "client": list(org.nodes)},
            {"peer0": layout.peer(org.name).address},
        )
        bundles[org.name] = org_bundle(layout.consortium_dir, record)
    ordering = consortium.orderer_org
    record = OrgRecord(
        ordering.name,
        ORDERING,
        HOST,
        {"admin": list(ordering.admins), "orderer": list(ordering.orderers)},
        {o.name: o.address for o in layout.orderers},
    )
    bundles[ordering.name] = org_bundle(layout.consortium_dir, record)
    return bundles


def start_network(run_dir: Path, consortium_dir: Path) -> Iterator[NetworkLayout]:
    fabric_binaries_or_skip()
    layout = NetworkLayout(run_dir, consortium_dir, base_port=free_base_port())
    try:
        network_up(layout)
        yield layout
    finally:
        network_down(layout)


def new_channel(layout: NetworkLayout) -> str:
    name = f"t{os.getpid()}x{next(_channels)}"
    create_channel(layout, name)
    return name
