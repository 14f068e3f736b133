"""Local Fabric networks for a benchmark, one per setting compared, all running at once.

A 2-core machine shared with other jobs gives a different figure from one minute to the
next, so settings are compared in the same run: each is its own network (its own ports,
ledgers and processes, the same consortium), started side by side, and the loads alternate
between them. An idle network costs a few hundredths of a core.

A setting is spelled ``NAME[:key=value,...]`` with keys ``orderers`` (1 or 3 raft
orderers), ``timeout`` (the channel's ``BatchTimeout``, e.g. ``500ms``), ``size`` (its
``MaxMessageCount``) and ``gomaxprocs`` (Go's ``GOMAXPROCS`` for the peers and orderers:
how many threads of each run Go code at once). ``default`` is the network as ``fedspec
network up`` starts it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from fabric_network import NetworkLayout, Orderer, configs, network_down, network_up, processes


@dataclasses.dataclass(frozen=True)
class BenchLayout(NetworkLayout):
    """The network as ``fedspec network up`` lays it out, with ``orderer_count`` raft
    orderers (three, as the network has; one to see what raft replication costs)."""

    orderer_count: int = 3

    @property
    def orderers(self) -> list[Orderer]:
        every: list[Orderer] = NetworkLayout.orderers.fget(self)  # type: ignore[attr-defined]
        return every[: self.orderer_count]


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    orderers: int = 3
    timeout: str = configs.BATCH_TIMEOUT
    size: int = configs.BATCH_MAX_MESSAGES
    gomaxprocs: int = 0  # 0: Go's default, every core

    @classmethod
    def parse(cls, text: str) -> Setting:
        name, _, options = text.partition(":")
        setting = cls(name)
        for option in filter(None, options.split(",")):
            key, _, value = option.partition("=")
            if key == "timeout":
                setting = dataclasses.replace(setting, timeout=value)
            elif key == "orderers":
                setting = dataclasses.replace(setting, orderers=int(value))
            elif key == "size":
                setting = dataclasses.replace(setting, size=int(value))
            elif key == "gomaxprocs":
                setting = dataclasses.replace(setting, gomaxprocs=int(value))
            else:
                raise ValueError(f"setting {text!r}: unknown key {key!r}")
        if setting.orderers not in (1, 3):
            raise ValueError(f"setting {text!r}: 1 or 3 orderers")
        return setting

    def __str__(self) -> str:
        go = f", GOMAXPROCS {self.gomaxprocs}" if self.gomaxprocs else ""
        return (
            f"{self.name}: {self.orderers} raft orderer{'s' * (self.orderers > 1)}, "
            f"BatchTimeout {self.timeout}, MaxMessageCount {self.size}{go}"
        )


@contextlib.contextmanager
def _applied(setting: Setting) -> Iterator[None]:
    """The setting in this process while its network is created: ``configtx.yaml`` is
    written from ``configs``' batch values, and the processes inherit this environment."""
    saved = (configs.BATCH_TIMEOUT, configs.BATCH_MAX_MESSAGES, os.environ.get("GOMAXPROCS"))
    configs.BATCH_TIMEOUT, configs.BATCH_MAX_MESSAGES = setting.timeout, setting.size
    if setting.gomaxprocs:
        os.environ["GOMAXPROCS"] = str(setting.gomaxprocs)
    try:
        yield
    finally:
        configs.BATCH_TIMEOUT, configs.BATCH_MAX_MESSAGES = saved[0], saved[1]
        os.environ.pop("GOMAXPROCS", None)
        if saved[2] is not None:
            os.environ["GOMAXPROCS"] = saved[2]


def start(setting: Setting, home: Path, consortium: Path, base_port: int) -> BenchLayout:
    """Start ``setting``'s network in ``home/network`` (``home`` gets the consortium)."""
    home.mkdir()
    (home / "consortium").symlink_to(consortium)
    layout = BenchLayout(
        home / "network", consortium, base_port=base_port, orderer_count=setting.orderers
    )
    with _applied(setting):
        try:
            network_up(layout)
        except BaseException:
            network_down(layout)
            raise
    return layout


def process_groups(run_dir: Path) -> dict[str, Callable[[], list[int]]]:
    """The network's processes by kind, for :class:`benchmarks.cpu_meter.CpuMeter`."""

    def pids(prefix: str) -> Callable[[], list[int]]:
        return lambda: [p for n, p in processes.recorded(run_dir).items() if n.startswith(prefix)]

    return {"orderers": pids("orderer"), "peers": pids("peer"), "chaincode": pids("chaincode")}
