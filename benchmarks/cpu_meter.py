"""CPU seconds spent by named processes over a span of a benchmark, and by the whole machine.

A load on a local Fabric network runs in a dozen processes (orderers, peers, chaincode
servers, the client) that share the machine with whatever else runs there. Reading each
process's own CPU time before and after the span (``psutil``, i.e. ``/proc/<pid>/stat``)
says which of them the span's work went to, and the machine's busy time over the same span
says how much was left for anyone: the two together tell a CPU bound from a waiting one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import psutil


def _cpu(proc: psutil.Process) -> float:
    """User + system seconds of ``proc`` alone: not its children, which the benchmark's own
    process would otherwise count twice (it started the network's processes)."""
    try:
        return float(sum(proc.cpu_times()[:2]))
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return 0.0


def _busy() -> tuple[float, float]:
    """The machine's (busy, total) CPU seconds since boot, over every core."""
    t = psutil.cpu_times()
    idle = t.idle + getattr(t, "iowait", 0.0)
    total = float(sum(t))
    return total - idle, total


@dataclass(frozen=True)
class CpuUsage:
    wall: float  # seconds the span lasted
    cores: int
    by_group: dict[str, float]  # CPU seconds per group of processes
    machine_busy: float  # CPU seconds the whole machine was busy (every process, any owner)

    @property
    def others(self) -> float:
        """Busy seconds of processes outside the groups (other jobs, the kernel)."""
        return max(0.0, self.machine_busy - sum(self.by_group.values()))

    def report(self, transactions: int) -> list[str]:
        """One line per group: CPU seconds, share of one core, milliseconds per transaction
        (none without ``transactions``)."""
        lines = [f"{'process':>14} {'cpu s':>7} {'cores':>6} {'ms/tx':>7}"]
        rows = [*self.by_group.items(), ("(others)", self.others)]
        for name, secs in rows:
            per_tx = f"{secs * 1e3 / transactions:>7.2f}" if transactions else f"{'':>7}"
            lines.append(f"{name:>14} {secs:>7.1f} {secs / self.wall:>6.2f} {per_tx}")
        if transactions:
            # What the machine could carry were it the load's alone: the groups' CPU per
            # transaction against every core (an upper bound: nothing else, no idle gaps).
            ours = sum(self.by_group.values()) * 1e3 / transactions
            lines.append(
                f"{'(groups)':>14} {sum(self.by_group.values()):>7.1f} "
                f"{sum(self.by_group.values()) / self.wall:>6.2f} {ours:>7.2f} "
                f"(at most {self.cores * 1e3 / ours:.0f} tx/s on {self.cores} cores of their own)"
            )
        used = self.machine_busy / (self.wall * self.cores)
        lines.append(
            f"{'machine':>14} {self.machine_busy:>7.1f} {self.machine_busy / self.wall:>6.2f} "
            f"{'':>7} ({used:.0%} of {self.cores} cores busy over {self.wall:.1f} s)"
        )
        return lines


class CpuMeter:
    """``with CpuMeter(groups) as meter: ...`` then ``meter.usage``.

    ``groups`` maps a group name to a callable returning its PIDs (read when the span
    starts); the calling process is the group ``client`` unless a group names it.
    """

    def __init__(self, groups: Mapping[str, Callable[[], list[int]]]) -> None:
        self._groups = dict(groups)
        self._groups.setdefault("client", lambda: [os.getpid()])
        self._procs: dict[str, list[psutil.Process]] = {}
        self._start: dict[str, float] = {}
        self.usage: CpuUsage | None = None

    def _sample(self) -> dict[str, float]:
        return {g: sum(_cpu(p) for p in procs) for g, procs in self._procs.items()}

    def __enter__(self) -> CpuMeter:
        for name, pids in self._groups.items():
            procs = []
            for pid in pids():
                try:
                    procs.append(psutil.Process(pid))
                except psutil.NoSuchProcess:
                    continue
            self._procs[name] = procs
        self._start = self._sample()
        self._busy0 = _busy()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self._t0
        end = self._sample()
        busy1 = _busy()
        self.usage = CpuUsage(
            wall,
            psutil.cpu_count() or 1,
            {g: end[g] - self._start[g] for g in end},
            busy1[0] - self._busy0[0],
        )
