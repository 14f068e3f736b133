"""The slots that bound how many co-located node agents do local work at once."""

from __future__ import annotations

import threading

import pytest

from fedspec.errors import ConfigError, ErrorCode
from flows import local_work


@pytest.fixture
def fresh_slots(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setattr(local_work, "_slots", [])
    return monkeypatch


def test_slot_count_defaults_to_the_cpus_and_at_least_two(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(local_work.ENV, raising=False)
    monkeypatch.setattr(local_work.os, "sched_getaffinity", lambda _pid: {0}, raising=False)
    assert local_work.slot_count() == 2
    monkeypatch.setattr(local_work.os, "sched_getaffinity", lambda _pid: set(range(6)))
    assert local_work.slot_count() == 6


@pytest.mark.parametrize("text", ["0", "-1", "two", "1.5", " "])
def test_a_bad_setting_is_a_config_error(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setenv(local_work.ENV, text)
    if not text.strip():  # blank means unset
        assert local_work.slot_count() >= 2
        return
    with pytest.raises(ConfigError) as caught:
        local_work.slot_count()
    assert caught.value.code == ErrorCode.CONFIG_INVALID
    assert local_work.ENV in caught.value.message


def test_no_more_agents_than_slots_work_at_once(fresh_slots: pytest.MonkeyPatch) -> None:
    fresh_slots.setenv(local_work.ENV, "2")
    inside: list[int] = []
    most = 0
    lock = threading.Lock()
    two_in = threading.Event()
    release = threading.Event()

    def agent() -> None:
        nonlocal most
        with local_work.local_work_slot():
            with lock:
                inside.append(1)
                most = max(most, len(inside))
                if len(inside) == 2:
                    two_in.set()
            release.wait(30)
            with lock:
                inside.pop()

    threads = [threading.Thread(target=agent) for _ in range(6)]
    for t in threads:
        t.start()
    assert two_in.wait(30)
    with lock:  # the other four are held at the semaphore, not inside
        assert len(inside) == 2
    release.set()
    for t in threads:
        t.join(30)
    assert most == 2
    assert not inside


def test_the_slots_are_made_once_per_process(fresh_slots: pytest.MonkeyPatch) -> None:
    fresh_slots.setenv(local_work.ENV, "3")
    first = local_work.local_work_slot()
    fresh_slots.setenv(local_work.ENV, "5")  # read on first use only
    assert local_work.local_work_slot() is first
