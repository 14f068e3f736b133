"""The Fabric benchmark's options and CPU meter (no network: the benchmark itself runs one)."""

from __future__ import annotations

import hashlib

import pytest

from benchmarks.cpu_meter import CpuMeter
from benchmarks.fabric_load import Clients
from benchmarks.fabric_networks import Setting
from fabric_network import configs


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("32", Clients(1, 32, 1)),
        ("8x4", Clients(1, 8, 4)),
        ("3*32x2", Clients(3, 32, 2)),
        ("2*16", Clients(2, 16, 1)),
    ],
)
def test_clients_spell_processes_threads_and_window(text: str, expected: Clients) -> None:
    clients = Clients.parse(text)
    assert clients == expected
    assert Clients.parse(str(clients)) == clients
    assert clients.in_flight == expected.processes * expected.threads * expected.window


@pytest.mark.parametrize("text", ["0", "2*0x1", "4x0", "x", "a*4"])
def test_clients_refuse_empty_or_malformed_counts(text: str) -> None:
    with pytest.raises(ValueError):
        Clients.parse(text)


def test_a_network_setting_defaults_to_the_network_fedspec_starts() -> None:
    default = Setting.parse("default")
    assert (default.orderers, default.timeout, default.size, default.gomaxprocs) == (
        3,
        configs.BATCH_TIMEOUT,
        configs.BATCH_MAX_MESSAGES,
        0,
    )
    tuned = Setting.parse("tuned:orderers=1,timeout=250ms,size=500,gomaxprocs=1")
    assert (tuned.name, tuned.orderers, tuned.timeout, tuned.size, tuned.gomaxprocs) == (
        "tuned",
        1,
        "250ms",
        500,
        1,
    )


@pytest.mark.parametrize("text", ["x:orderers=2", "x:batch=1", "x:size=many"])
def test_a_network_setting_refuses_what_it_cannot_start(text: str) -> None:
    with pytest.raises(ValueError):
        Setting.parse(text)


def test_the_meter_charges_this_process_s_work_to_the_client() -> None:
    with CpuMeter({"nobody": list}) as meter:
        digest = b""
        for _ in range(200_000):  # CPU work, not a duration
            digest = hashlib.sha256(digest).digest()
    usage = meter.usage
    assert usage is not None
    assert usage.by_group["nobody"] == 0.0
    assert usage.by_group["client"] > 0.0
    # The machine's busy time covers this process's (sampled from the same clock ticks).
    assert usage.machine_busy + 0.05 >= usage.by_group["client"]
    lines = usage.report(1000)
    assert lines[1].split()[0] == "nobody" and "client" in lines[2]
    assert any(line.lstrip().startswith("(groups)") for line in lines)
