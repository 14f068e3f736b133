"""fedspec.lazy.LazyProperty: computed on first use and kept on the instance, and, unlike
Python 3.11's functools.cached_property, never one computation at a time across instances."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from fedspec.lazy import LazyProperty


class _Slow:
    gate = threading.Barrier(4, timeout=60)

    def __init__(self) -> None:
        self.computed = 0

    @LazyProperty
    def value(self) -> int:
        """Waits until four instances compute at once (one at a time would time out)."""
        self.computed += 1
        _Slow.gate.wait()
        return id(self)


def test_a_value_is_computed_once_per_instance_and_kept_on_it() -> None:
    @dataclass(frozen=True)
    class Record:
        items: tuple[int, ...]

        @LazyProperty
        def total(self) -> int:
            return sum(self.items)

    record = Record((1, 2, 3))
    assert record.total == 6 and record.__dict__["total"] == 6  # kept, even on a frozen one
    assert record == Record((1, 2, 3))  # not a field
    assert isinstance(Record.total, LazyProperty)

    slow = [_Slow() for _ in range(4)]
    threads = [threading.Thread(target=lambda s=s: s.value) for s in slow]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    # All four computed at once: under a lock shared by the class the barrier would break.
    assert not _Slow.gate.broken
    assert [s.value for s in slow] == [id(s) for s in slow]
    assert [s.computed for s in slow] == [1, 1, 1, 1]  # kept: never computed again
