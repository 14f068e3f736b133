"""How many node agents of one process do their local work at once.

A consortium member runs one agent per process, and this never makes it wait. The demo, a
simulation and ``benchmarks/scale.py`` run many agents in one process, and they all leave
the election in the same instant: at 200 nodes, 200 threads reading, validating and
training together on 2 cores starved the agents still waking up of the interpreter lock,
so the slowest node's election wait grew as N^1.6 (docs/benchmarks.md). Work that is bound
by the CPU of one process goes no faster with more threads than cores; the agents past the
slots wait on a semaphore, which holds no lock and takes no CPU.

``FEDSPEC_LOCAL_SLOTS`` sets the count (default: the CPUs this process may run on, at least
2). Nothing that waits on another node may run inside a slot, or the round could deadlock.
"""

from __future__ import annotations

import os
import threading
from contextlib import AbstractContextManager

from fedspec.errors import ConfigError

ENV = "FEDSPEC_LOCAL_SLOTS"


def slot_count() -> int:
    """The number of slots: ``FEDSPEC_LOCAL_SLOTS``, else the CPUs the process may use (≥ 2)."""
    text = os.environ.get(ENV, "").strip()
    if text:
        count = int(text) if text.isdecimal() else 0
        if count < 1:
            raise ConfigError(f"{ENV} must be a whole number ≥ 1, not {text!r}")
        return count
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(2, cpus or 1)


_lock = threading.Lock()
_slots: list[threading.BoundedSemaphore] = []  # made on first use: the setting is read then


def local_work_slot() -> AbstractContextManager[bool]:
    """A slot for one agent's local work, released on leaving the ``with`` block."""
    if not _slots:
        with _lock:
            if not _slots:
                _slots.append(threading.BoundedSemaphore(slot_count()))
    return _slots[0]
