"""A real Fabric network for the tests: started once per session, torn down by PID.

Every test that needs a fresh ledger gets a channel of its own on that network (a channel is
a separate ledger; creating one takes a few seconds, starting a network many more).
Without Fabric binaries (no cache, no Go, no source) the Fabric tests are skipped with the
reason, unless ``FEDSPEC_REQUIRE_FABRIC=1`` (CI sets it) turns that into a failure.
"""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from fabric_network import NetworkLayout, network_down, network_up
from fabric_network.control import NetworkError, binaries, create_channel
from fabric_network.processes import port_in_use

_channels = itertools.count(1)


def fabric_binaries_or_skip() -> Path:
    try:
        return binaries()
    except NetworkError as exc:
        if os.environ.get("FEDSPEC_REQUIRE_FABRIC") == "1":
            pytest.fail(f"Fabric binaries are required here: {exc}")
        pytest.skip(f"no Fabric binaries: {exc}")


def free_base_port() -> int:
    """A base port whose whole block (orderers from +0, peers from +100) is free."""
    rng = random.Random()
    for _ in range(50):
        base = rng.randrange(30000, 60000, 200)
        if not any(port_in_use(p) for p in range(base, base + 150)):
            return base
    raise RuntimeError("no free block of ports for a Fabric network")


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
