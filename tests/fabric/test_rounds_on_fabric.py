"""Federated rounds committed on Fabric, and the network's faults: a peer or an orderer
stopped mid-work, then restarted, catching up until every copy of the world state agrees."""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

import pytest

from fabric_network import lifecycle
from fabric_network.control import start_process
from fabric_network.processes import stop
from tests.flows.conftest import NODES

from .conftest import FabricRounds

pytestmark = [pytest.mark.fabric, pytest.mark.integration, pytest.mark.slow]


def _query(env: FabricRounds, org: str, function: str, *args: str) -> Any:
    out = lifecycle.chaincode_query(
        env.layout, env.bins / "bin", env.config_dir, org, function, *args
    )
    return json.loads(out)


def _wait_heights_agree(env: FabricRounds, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            peers, orderers = _heights(env)
        except lifecycle.ToolError as exc:  # a restarted process still opening its ports
            peers, orderers = {"unreachable": str(exc)}, {}  # type: ignore[dict-item]
        if len(set(peers.values()) | set(orderers.values())) == 1 and "unreachable" not in peers:
            return next(iter(peers.values()))
        if time.monotonic() > deadline:
            raise AssertionError(f"heights do not agree: peers {peers}, orderers {orderers}")
        time.sleep(0.5)


def _heights(env: FabricRounds) -> tuple[dict[str, int], dict[str, int]]:
    peers = {
        org: lifecycle.peer_height(env.layout, env.bins / "bin", env.config_dir, org)
        for org in env.layout.orgs
    }
    orderers = {
        o.name: lifecycle.orderer_height(env.layout, env.bins / "bin", o.name)
        for o in env.layout.orderers
    }
    return peers, orderers


def _run_round(env: FabricRounds, *, stop_a_peer: bool = False) -> tuple[int, Any, list[str]]:
    """A round with every node as its own ``fedspec round node`` process; optionally one
    organization's peer (not the coordinator's) is stopped once training has started. Returns the round's number,
    its final state, and the nodes whose process was stopped."""
    rounds = env.rounds
    round_no, parent = rounds.open_round()
    procs = {node: rounds.spawn(node, round_no, parent) for node in NODES}
    cut_off: list[str] = []
    if stop_a_peer:
        rnd = rounds.wait_for(round_no, lambda r: r.status == "training", timeout=180)
        victim = next(n for n in reversed(rnd.participants) if n != rnd.coordinator)
        assert stop(env.layout.run_dir, f"peer0.{victim.split('/')[0]}")
        cut_off.append(victim)
    rnd = rounds.wait_for(round_no, lambda r: r.status in ("closed", "failed"), timeout=240)
    for node, proc in procs.items():
        if node in cut_off and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # its gateway is gone: nothing left to do
        _, err = proc.communicate(timeout=120)
        if rnd.status != "closed" and node not in cut_off:
            print(f"--- {node} exited {proc.returncode}:\n{err[-3000:]}")
    return round_no, rnd, cut_off


def test_a_round_commits_with_one_organizations_peer_stopped_and_it_catches_up(
    fabric_rounds: FabricRounds,
) -> None:
    """A round on Fabric with one organization's peer stopped once training started: the
    other three endorse, the round commits k-of-n; the restarted peer catches up, every
    peer holds the same model record, and what an operator reads with Fabric's own CLI is
    what the registry serves as the champion. (One round for both: a round costs ~100 s on
    the suite's serial Fabric worker.)"""
    from registry import get_version

    env = fabric_rounds
    round_no, rnd, cut_off = _run_round(env, stop_a_peer=True)
    org = cut_off[0].split("/")[0]
    try:
        # Three of four organizations remain: a majority still endorses, the round commits.
        assert rnd.status == "closed", rnd.failure
        model = env.rounds.ledger().get_model(env.rounds.profile_id, round_no)
        assert cut_off[0] not in {i["node"] for i in model.inclusion}
    finally:
        start_process(env.layout, f"peer0.{org}")
    height = _wait_heights_agree(env)
    assert height > 0
    # The restarted peer's world state is the others': the same record, byte for byte.
    records = {
        org: _query(env, org, "GetModel", env.rounds.profile_id, str(round_no))
        for org in env.layout.orgs
    }
    assert len({json.dumps(r, sort_keys=True) for r in records.values()}) == 1
    # What the operator reads on the restarted organization's peer with Fabric's CLI is what
    # the registry serves as the champion.
    version = get_version(env.rounds.profile_id, alias="champion")
    assert records[org]["sha256"] == model.sha256 == version.sha256
    assert int(version.tags["ledger_block"]) > 0


def test_ordering_continues_with_one_orderer_stopped_and_it_catches_up(
    fabric_rounds: FabricRounds,
) -> None:
    env = fabric_rounds
    admin = env.rounds.ledger("org2/admin")
    assert stop(env.layout.run_dir, "orderer0")
    try:
        for i in range(3):
            spec = {**admin.get_profile(env.rounds.profile_id).spec, "id": f"spare-{i}"}
            spec.pop("parent", None)
            admin.propose_profile(spec)
        assert [p.id for p in admin.list_profiles("proposed")] == ["spare-0", "spare-1", "spare-2"]
    finally:
        start_process(env.layout, "orderer0")
    _wait_heights_agree(env)
    for org in env.layout.orgs:
        assert _query(env, org, "GetProfile", "spare-2")["status"] == "proposed"
