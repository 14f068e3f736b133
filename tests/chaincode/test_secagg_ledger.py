"""Secure aggregation's transactions over a fake stub: keys in the signed join, the profile
field, the threshold against the cohort, sharing, survivors, answers, and bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chaincode import keys
from chaincode.contract import invoke
from chaincode.errors import Conflict, FailedPrecondition, Forbidden, InvalidArgument
from chaincode.schema import validate_profile
from ledger_client.embedded.simulator import drive

from .fake_stub import FakeStub

NODES = ["org1/node0", "org2/node0", "org3/node0"]
SCHEDULE = {"join_window_s": 10, "reveal_window_s": 10, "coordinator_window_s": 30}


def _spec(threshold: int = 2, **overrides: Any) -> dict[str, Any]:
    from tests.ledger.conftest import profile_spec

    spec = profile_spec(
        "p1",
        aggregation={"strategy": "fedavg", "secure": {"threshold": threshold}},
        privacy={"mode": "none"},
        schedule=SCHEDULE,
    )
    spec.update(overrides)
    return spec


class Ledger:
    """One state, a stub per identity, one clock."""

    def __init__(self, consortium_dir: Path) -> None:
        from ledger_client import Consortium

        self.consortium = Consortium.load(consortium_dir)
        self.state: dict[str, bytes] = {}
        self.ts = 1_000

    def call(self, who: str, name: str, *args: str) -> Any:
        msp = self.consortium.identity(who)
        stub = FakeStub(
            self.state, mspid=msp.identity.msp_id, cert=msp.identity.credentials, ts=self.ts
        )
        return json.loads(drive(invoke(stub, name, list(args))))


def _keys(i: int) -> str:
    return json.dumps({"mask_key": f"{i:02x}" * 32, "cipher_key": f"{i + 100:02x}" * 32})


def _round(
    consortium_dir: Path, threshold: int = 2, nodes: list[str] = NODES, *, secure: bool = True
) -> Ledger:
    """Profile p1 (secure unless not ``secure``, active) and round 1 opened, as org1's admin."""
    ledger = Ledger(consortium_dir)
    ledger.call("org1/admin", "InitConsortium", json.dumps(["org1", "org2", "org3"]))
    for node in nodes:
        ledger.call(node, "RegisterNode")
    spec = _spec(threshold) if secure else _spec(aggregation={"strategy": "fedavg"})
    ledger.call("org1/admin", "ProposeProfile", json.dumps(spec))
    record = json.loads(ledger.state[keys.profile("p1")])
    ledger.state[keys.profile("p1")] = json.dumps({**record, "status": "active"}).encode()
    ledger.call("org1/admin", "OpenRound", "p1")
    return ledger


def _elected(ledger: Ledger, nodes: list[str] = NODES) -> dict[str, Any]:
    """Every node joins with keys and reveals; the coordinator is elected."""
    secrets = {n: f"{i + 1:02x}" * 32 for i, n in enumerate(nodes)}
    for i, node in enumerate(nodes):
        commitment = _sha(bytes.fromhex(secrets[node]))
        ledger.call(node, "JoinRoundWithKeys", "p1", "1", commitment, _keys(i + 1))
    ledger.ts += SCHEDULE["join_window_s"]
    for node in nodes:
        ledger.call(node, "RevealSeed", "p1", "1", secrets[node])
    return dict(ledger.call(nodes[0], "ElectCoordinator", "p1", "1"))


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _artifact(tag: str) -> str:
    return json.dumps({"sha256": _sha(tag.encode()), "uri": f"runs:/r/{tag}"})


def test_the_profile_field_refuses_aggregators_that_need_individual_updates() -> None:
    validate_profile(_spec())
    for strategy in ("median", "trimmed-mean", "multi-krum"):
        doc = _spec(aggregation={"strategy": strategy, "secure": {"threshold": 2}})
        with pytest.raises(InvalidArgument) as caught:
            validate_profile(doc)
        assert caught.value.details["field"] == "aggregation.secure"
        assert f"strategy {strategy} needs each node's update" in caught.value.message
        assert "\n" not in caught.value.message
    with pytest.raises(InvalidArgument, match="threshold"):
        validate_profile(_spec(aggregation={"strategy": "fedavg", "secure": {"threshold": 1}}))


def test_keys_go_in_the_signed_join_once_and_are_never_another_nodes(
    consortium_dir: Path,
) -> None:
    ledger = _round(consortium_dir)
    a, b = NODES[0], NODES[1]
    with pytest.raises(FailedPrecondition, match="uses secure aggregation"):
        ledger.call(a, "JoinRound", "p1", "1", "ab" * 32)
    for bad in ('{"mask_key": "00"}', _keys(1).replace("01", "zz"), json.dumps({
        "mask_key": "01" * 32, "cipher_key": "01" * 32
    })):  # fmt: skip
        with pytest.raises(InvalidArgument):
            ledger.call(a, "JoinRoundWithKeys", "p1", "1", "ab" * 32, bad)
    ledger.call(a, "JoinRoundWithKeys", "p1", "1", "ab" * 32, _keys(1))
    ledger.call(a, "JoinRoundWithKeys", "p1", "1", "ab" * 32, _keys(1))  # a retry
    with pytest.raises(Conflict):  # registered twice, with other keys
        ledger.call(a, "JoinRoundWithKeys", "p1", "1", "ab" * 32, _keys(2))
    with pytest.raises(Conflict, match="already registered by org1/node0"):  # a's key, by b
        ledger.call(b, "JoinRoundWithKeys", "p1", "1", "cd" * 32, _keys(1))
    state = ledger.call(a, "GetSecureAggregation", "p1", "1")
    assert state["keys"] == {a: json.loads(_keys(1))}
    assert state["threshold"] == 2 and state["dealers"] is None


@pytest.mark.parametrize("threshold", [1 + len(NODES), 1])
def test_a_threshold_past_the_cohort_or_not_a_majority_fails_the_election(
    consortium_dir: Path, threshold: int
) -> None:
    ledger = _round(consortium_dir, threshold=max(2, threshold))
    nodes = NODES if threshold > len(NODES) else NODES[:2]
    if threshold == 1:  # 2 of 4 is not a majority: a fourth node joins
        ledger.call("org1/node1", "RegisterNode")
        nodes = [*NODES, "org1/node1"]
    rnd = _elected(ledger, nodes)
    assert rnd["status"] == "failed"
    assert rnd["failure"]["code"] == "SECAGG_THRESHOLD_INVALID"
    assert "majority of the cohort" in rnd["failure"]["reason"]


def test_sharing_survivors_answers_and_recovery_on_the_ledger(consortium_dir: Path) -> None:
    ledger = _round(consortium_dir)
    rnd = _elected(ledger)
    assert rnd["status"] == "training"
    coordinator = rnd["coordinator"]
    other = next(n for n in NODES if n != coordinator)
    for node in NODES[:2]:
        ledger.call(node, "SubmitShares", "p1", "1", _artifact(f"shares-{node}"))
    with pytest.raises(FailedPrecondition, match="closes once every participant dealt"):
        ledger.call(NODES[0], "CloseSharing", "p1", "1")
    with pytest.raises(Forbidden):
        ledger.call("org1/node1", "SubmitShares", "p1", "1", _artifact("x"))
    ledger.call(NODES[2], "SubmitShares", "p1", "1", _artifact(f"shares-{NODES[2]}"))
    closed = ledger.call(NODES[1], "CloseSharing", "p1", "1")
    assert closed["dealers"] == sorted(NODES)
    with pytest.raises(Conflict):  # dealt once: another bundle is refused
        ledger.call(NODES[0], "SubmitShares", "p1", "1", _artifact("other"))

    survivors = sorted(set(NODES) - {NODES[2]}) if coordinator != NODES[2] else NODES[:2]
    dropped = sorted(set(NODES) - set(survivors))
    with pytest.raises(Forbidden):
        ledger.call(other, "RequestUnmask", "p1", "1", json.dumps(survivors))
    with pytest.raises(InvalidArgument, match="dealt no shares"):
        ledger.call(coordinator, "RequestUnmask", "p1", "1", json.dumps([*survivors, "org1/node1"]))
    with pytest.raises(InvalidArgument, match="fewer than the threshold"):
        ledger.call(coordinator, "RequestUnmask", "p1", "1", json.dumps(survivors[:1]))
    asked = ledger.call(coordinator, "RequestUnmask", "p1", "1", json.dumps(survivors))
    assert asked["dropped"] == dropped
    with pytest.raises(Conflict):  # survivors are fixed once: nodes answer once
        ledger.call(coordinator, "RequestUnmask", "p1", "1", json.dumps(sorted(NODES)))
    with pytest.raises(FailedPrecondition, match="not asked"):
        ledger.call(dropped[0], "SubmitUnmaskShares", "p1", "1", _artifact("answer"))
    for node in survivors:
        ledger.call(node, "SubmitUnmaskShares", "p1", "1", _artifact(f"answer-{node}"))
    result = {"recovered": [], "responders": survivors, "rejected": []}
    with pytest.raises(InvalidArgument, match="recovered must be the dropped nodes"):
        ledger.call(coordinator, "RecordUnmasked", "p1", "1", json.dumps(result))
    result["recovered"] = dropped
    result["rejected"] = [{"dealer": dropped[0], "holder": survivors[0], "kind": "mask-key"}]
    ledger.call(coordinator, "RecordUnmasked", "p1", "1", json.dumps(result))
    state = ledger.call(other, "GetSecureAggregation", "p1", "1")
    assert state["survivors"] == survivors and state["recovered"] == dropped
    assert sorted(state["answers"]) == survivors and sorted(state["shares"]) == sorted(NODES)
    assert state["rejected"] == result["rejected"]


def test_too_few_dealers_at_the_share_deadline_fail_the_round(consortium_dir: Path) -> None:
    ledger = _round(consortium_dir, threshold=2)
    _elected(ledger)
    ledger.call(NODES[0], "SubmitShares", "p1", "1", _artifact("only"))
    ledger.ts += SCHEDULE["coordinator_window_s"]
    ledger.call(NODES[1], "CloseSharing", "p1", "1")
    rnd = ledger.call(NODES[0], "GetRound", "p1", "1")
    assert rnd["status"] == "failed"
    assert rnd["failure"]["code"] == "SECAGG_TOO_FEW_RESPONDERS"
    assert "1 participants dealt shares, fewer than the threshold 2" in rnd["failure"]["reason"]
    with pytest.raises(FailedPrecondition, match="closed"):  # a late dealer
        ledger.call(NODES[1], "SubmitShares", "p1", "1", _artifact("late"))


def test_keys_and_sharing_are_refused_on_a_profile_without_secure_aggregation(
    consortium_dir: Path,
) -> None:
    ledger = _round(consortium_dir, secure=False)
    with pytest.raises(FailedPrecondition, match="does not use secure aggregation"):
        ledger.call(NODES[0], "JoinRoundWithKeys", "p1", "1", "ab" * 32, _keys(1))
    ledger.call(NODES[0], "JoinRound", "p1", "1", "ab" * 32)
    with pytest.raises(FailedPrecondition, match="does not use secure aggregation"):
        ledger.call(NODES[0], "GetSecureAggregation", "p1", "1")
