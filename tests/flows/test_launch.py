"""A round's node tasks wait until all of them are launched (flows.rounds._launching)."""

from __future__ import annotations

import threading

import pytest

from flows import rounds

WAIT_S = 30.0


def test_a_node_task_waits_for_the_launch_to_end() -> None:
    entered, done = threading.Event(), threading.Event()

    def task() -> None:
        entered.set()
        rounds._launched("p", 3)
        done.set()

    with rounds._launching("p", 3):
        worker = threading.Thread(target=task)
        worker.start()
        assert entered.wait(WAIT_S)
        assert not done.wait(0.2)  # held while the launch goes on
    assert done.wait(WAIT_S)
    worker.join(WAIT_S)
    assert ("p", 3) not in rounds._launches


def test_no_launch_under_way_means_no_wait() -> None:
    with rounds._launching("p", 3):
        finished = threading.Event()
        other = threading.Thread(target=lambda: (rounds._launched("p", 4), finished.set()))
        other.start()
        assert finished.wait(WAIT_S)  # another round's launch holds nobody
        other.join(WAIT_S)
    rounds._launched("p", 3)  # a retried task after the launch: at once


def test_a_failed_launch_still_lets_the_launched_tasks_go() -> None:
    released = threading.Event()

    def task() -> None:
        rounds._launched("p", 5)
        released.set()

    worker = threading.Thread(target=task)

    def launch() -> None:
        with rounds._launching("p", 5):
            worker.start()
            raise RuntimeError("Prefect refused a submit")

    with pytest.raises(RuntimeError):
        launch()
    assert released.wait(WAIT_S)
    worker.join(WAIT_S)
