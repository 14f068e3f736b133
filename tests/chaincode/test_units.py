"""Chaincode logic in isolation: pure functions, schema, and dispatch over a fake stub."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chaincode import keys
from chaincode.contract import TRANSACTIONS, invoke
from chaincode.election import draw, reseed, seed_from_reveals
from chaincode.errors import ChaincodeError, Conflict, Forbidden, InvalidArgument, parse_wire_error
from chaincode.rewards import split_reward
from chaincode.schema import (
    decimal,
    decimal_text,
    parse_json_argument,
    per_round_spend,
    validate_profile,
)
from ledger_client.embedded.simulator import drive

from .fake_stub import FakeStub

ROOT = Path(__file__).resolve().parents[2]


def _profile(**overrides: object) -> dict[str, object]:
    from tests.ledger.conftest import profile_spec

    return profile_spec("p1", **overrides)


@given(
    total=st.integers(0, 10**9),
    scores=st.dictionaries(
        st.from_regex(r"org[1-9]/node[0-9]", fullmatch=True),
        st.integers(0, 10**6),
        min_size=1,
        max_size=8,
    ),
)
def test_the_reward_split_mints_exactly_the_total_in_proportion(
    total: int, scores: dict[str, int]
) -> None:
    if sum(scores.values()) == 0:
        with pytest.raises(InvalidArgument):
            split_reward(total, scores)
        return
    shares = split_reward(total, scores)
    assert sum(shares.values()) == total
    weight = sum(scores.values())
    for node, s in scores.items():
        exact = Fraction(total * s, weight)
        assert exact - 1 < shares[node] < exact + 1


def test_leftover_units_go_to_the_largest_remainders_then_by_node_id() -> None:
    assert split_reward(10, {"b/x": 1, "a/x": 1, "c/x": 1}) == {"a/x": 4, "b/x": 3, "c/x": 3}
    assert split_reward(1000, {"a/x": 5, "b/x": 3, "c/x": 3}) == {
        "a/x": 454,
        "b/x": 273,
        "c/x": 273,
    }


def test_the_draw_is_deterministic_and_follows_the_weights() -> None:
    weights = {"a/x": 100, "b/x": 50, "c/x": 50}
    seed = seed_from_reveals({"a/x": "11" * 32, "b/x": "22" * 32})
    assert draw(seed, weights) == draw(seed, dict(reversed(list(weights.items()))))
    counts = Counter(draw(reseed(seed, i), weights) for i in range(4000))
    assert 0.45 < counts["a/x"] / 4000 < 0.55
    assert 0.2 < counts["b/x"] / 4000 < 0.3
    assert draw(seed, weights, exclude=["a/x", "b/x", "c/x"]) is None
    assert draw(seed, weights, exclude=["a/x", "b/x"]) == "c/x"


def test_the_seed_depends_on_every_reveal() -> None:
    base = seed_from_reveals({"a/x": "11" * 32, "b/x": "22" * 32})
    assert base != seed_from_reveals({"a/x": "11" * 32, "b/x": "23" * 32})
    assert base == seed_from_reveals({"b/x": "22" * 32, "a/x": "11" * 32})


@given(st.decimals(min_value=0, max_value=10**6, places=8, allow_nan=False))
def test_decimal_text_is_exact(value: object) -> None:
    text = format(value, "f")
    assert Fraction(decimal_text(decimal(text.rstrip("0").rstrip(".") or "0", "x"))) == Fraction(
        text
    )


def test_decimals_refuse_floats_and_garbage() -> None:
    for bad in (1.5, "1,5", "nan", "inf", "0x10", "", "1e999"):
        with pytest.raises(InvalidArgument):
            decimal(bad, "epsilon")
    assert decimal("1e-5", "delta") == Fraction(1, 100000)


def test_composite_keys_round_trip_and_refuse_separators() -> None:
    key = keys.composite("round", "digits", "0000000001")
    assert keys.split(key) == ("round", ["digits", "0000000001"])
    start, end = keys.prefix_range("round", "digits")
    assert start <= key < end
    with pytest.raises(InvalidArgument):
        keys.composite("node", "a\x00b")


def test_the_profile_schema_accepts_a_valid_profile() -> None:
    validate_profile(_profile())


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"model": {"family": "xgboost-classifier"}}, "aggregation"),  # trees are never averaged
        ({"aggregation": {"strategy": "xgb-bagging"}}, "aggregation"),
        (
            {
                "privacy": {
                    "mode": "dp-model",
                    "epsilon_per_round": "1",
                    "delta_per_round": "0",
                    "epsilon_budget": "3",
                    "delta_budget": "0",
                }
            },
            "model",
        ),
        (
            {
                "privacy": {
                    "mode": "client-dp",
                    "epsilon_per_round": 1.0,
                    "delta_per_round": "1e-5",
                    "epsilon_budget": "3",
                    "delta_budget": "1e-4",
                    "clip_norm": "1",
                }
            },
            "privacy",
        ),
        ({"min_nodes": 0}, "min_nodes"),
        ({"surprise": True}, "(document)"),
        ({"parent": "p1"}, "parent"),
        ({"characteristics": {"Bad Name": "x"}}, "characteristics"),
    ],
)
def test_the_profile_schema_refuses_with_the_field(change: dict[str, object], where: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate_profile(_profile(**change))
    assert caught.value.details["field"].startswith(where), caught.value.message


def test_wire_errors_survive_a_peer_wrapping_them() -> None:
    err = Forbidden("only the coordinator", node="org1/node0")
    wrapped = f"rpc error: code = Aborted desc = chaincode response 500, {err}"
    back = parse_wire_error(wrapped)
    assert isinstance(back, Forbidden) and back.message == "only the coordinator"
    assert back.details == {"node": "org1/node0"}
    assert parse_wire_error("plain text") is None


def _stub(state: dict[str, bytes], ref: str, consortium_dir: Path) -> FakeStub:
    from ledger_client import Consortium

    c = Consortium.load(consortium_dir)
    msp = c.identity(ref)
    return FakeStub(state, mspid=msp.identity.msp_id, cert=msp.identity.credentials)


def test_dispatch_over_a_fake_stub(consortium_dir: Path) -> None:
    state: dict[str, bytes] = {}
    admin = _stub(state, "org1/admin", consortium_dir)
    drive(invoke(admin, "InitConsortium", [json.dumps(["org1", "org2"])]))
    assert admin.events[0][0] == "ConsortiumInitialized"
    node = _stub(state, "org2/node1", consortium_dir)
    first = json.loads(drive(invoke(node, "RegisterNode", [])))
    assert first["id"] == "org2/node1" and first["org"] == "org2"
    assert json.loads(drive(invoke(node, "RegisterNode", []))) == first  # idempotent
    with pytest.raises(InvalidArgument):
        drive(invoke(node, "RegisterNode", ["extra"]))
    with pytest.raises(Forbidden):  # a node is not an admin
        drive(invoke(node, "VoteProfile", ["p1", "activate", "true"]))
    outsider = _stub(state, "org3/node0", consortium_dir)  # org3 is not in this consortium
    with pytest.raises(Forbidden):
        drive(invoke(outsider, "RegisterNode", []))


def test_every_transaction_names_its_parameters() -> None:
    for name, spec in TRANSACTIONS.items():
        assert name[0].isupper() and spec.description, name
        assert isinstance(spec.params, tuple)
    assert {"CommitModel", "SubmitUpdate", "ElectCoordinator", "MintRewards"} <= set(TRANSACTIONS)
    assert issubclass(Conflict, ChaincodeError)


def test_the_fabric_contract_api_dispatches_the_same_contract(consortium_dir: Path) -> None:
    """Through fabric-chaincode-python's own ContractChaincode, in a process of its own."""
    script = f"""
import asyncio, json, sys
sys.path.insert(0, {str(ROOT)!r})
from chaincode.fabric_contract import new_chaincode
from tests.chaincode.fake_stub import FakeStub
from ledger_client import Consortium
c = Consortium.load({str(consortium_dir)!r})
cc = new_chaincode()
state = {{}}
def stub(ref, *args):
    msp = c.identity(ref)
    s = FakeStub(state, mspid=msp.identity.msp_id, cert=msp.identity.credentials)
    s.args = list(args)
    return s
async def main():
    out = []
    for ref, args in [("org1/admin", ["InitConsortium", json.dumps(["org1", "org2", "org3"])]),
                      ("org1/node0", ["RegisterNode"]),
                      ("org1/node0", ["GetNode", "org1/node0"]),
                      ("org1/node0", ["VoteProfile", "p", "activate", "true"]),
                      ("org1/node0", ["NoSuch"])]:
        r = await cc.invoke(stub(ref, *args))
        out.append([r.status, r.payload.decode(), r.message])
    print("RESULT" + json.dumps(out))
asyncio.run(main())
"""
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT"))
    results = json.loads(line[len("RESULT") :])
    assert [r[0] for r in results] == [200, 200, 200, 500, 500]
    assert json.loads(results[2][1])["reputation"] == 100
    assert parse_wire_error(results[3][2]).code == "FORBIDDEN"  # type: ignore[union-attr]


def test_every_transaction_is_documented() -> None:
    doc = (ROOT / "docs" / "ledger.md").read_text()
    missing = [name for name in TRANSACTIONS if f"`{name}" not in doc]
    assert not missing, f"docs/ledger.md does not describe {missing}"


def _privacy(**changes: str) -> dict[str, object]:
    base = {
        "mode": "client-dp",
        "epsilon_per_round": "1",
        "delta_per_round": "1e-5",
        "epsilon_budget": "3",
        "delta_budget": "1e-4",
        "clip_norm": "1",
    }
    return {**base, **changes}


@pytest.mark.parametrize(
    ("privacy", "field"),
    [
        (_privacy(epsilon_budget="-1"), "privacy.epsilon_budget"),
        (_privacy(epsilon_budget="0.5"), "privacy.epsilon_budget"),
        (_privacy(epsilon_per_round="0"), "privacy.epsilon_per_round"),
        (_privacy(epsilon_per_round="-0"), "privacy.epsilon_per_round"),
        (_privacy(epsilon_per_round="1e2", epsilon_budget="1e3"), None),  # 100 is the bound
        (_privacy(epsilon_per_round="100.000000000001"), "privacy.epsilon_per_round"),
        (_privacy(epsilon_budget="1e99"), "privacy.epsilon_budget"),
        (_privacy(delta_per_round="0"), "privacy.delta_per_round"),
        (_privacy(delta_per_round="1", delta_budget="1"), "privacy.delta_per_round"),
        (_privacy(delta_budget="1"), "privacy.delta_budget"),
        (_privacy(delta_budget="1e-6"), "privacy.delta_budget"),
        (_privacy(clip_norm="0"), "privacy.clip_norm"),
        (_privacy(clip_norm="1000001"), "privacy.clip_norm"),
        ({"mode": "none", "epsilon_budget": "1"}, "privacy.epsilon_budget"),
        ({"mode": "none"}, None),
    ],
)
def test_privacy_numbers_are_checked_exactly(privacy: dict[str, object], field: str | None) -> None:
    if field is None:
        validate_profile(_profile(privacy=privacy))
        return
    with pytest.raises(InvalidArgument) as caught:
        validate_profile(_profile(privacy=privacy))
    assert caught.value.details["field"] == field, caught.value.message


def test_dp_model_spends_epsilon_only() -> None:
    model = {"family": "dp-logistic-regression"}
    ok = {
        "mode": "dp-model",
        "epsilon_per_round": "1",
        "delta_per_round": "0",
        "epsilon_budget": "3",
        "delta_budget": "0",
    }
    validate_profile(_profile(privacy=ok, model=model))
    with pytest.raises(InvalidArgument, match="must be 0"):
        validate_profile(_profile(privacy={**ok, "delta_per_round": "1e-5"}, model=model))
    assert per_round_spend(ok) == (Fraction(1), Fraction(0))
    assert per_round_spend({"mode": "none"}) == (Fraction(0), Fraction(0))


def test_json_arguments_nested_too_deeply_are_refused_not_crashed() -> None:
    assert parse_json_argument("[" * 32 + "]" * 32, "doc") == json.loads("[" * 32 + "]" * 32)
    for levels in (33, 5000, 30000):
        with pytest.raises(InvalidArgument, match="nests deeper than 32"):
            parse_json_argument("[" * levels + "]" * levels, "doc")
    with pytest.raises(InvalidArgument, match="larger than"):
        parse_json_argument('"\udcff' + "x" * 70000 + '"', "doc")


def _dp_round(
    consortium_dir: Path, privacy: dict[str, object]
) -> tuple[dict[str, bytes], FakeStub]:
    """A profile and a round in training with org1/node0 as participant, straight in state."""
    state: dict[str, bytes] = {}
    admin = _stub(state, "org1/admin", consortium_dir)
    drive(invoke(admin, "InitConsortium", [json.dumps(["org1", "org2"])]))
    node = _stub(state, "org1/node0", consortium_dir)
    drive(invoke(node, "RegisterNode", []))
    spec = _profile(privacy=privacy)
    drive(invoke(admin, "ProposeProfile", [json.dumps(spec)]))
    record = json.loads(state[keys.profile("p1")])
    state[keys.profile("p1")] = json.dumps({**record, "status": "active"}).encode()
    round_record = {"profile": "p1", "number": 1, "status": "training"}
    round_record["participants"] = ["org1/node0"]
    state[keys.round_("p1", 1)] = json.dumps(round_record).encode()
    return state, node


def _update_json(eps: str, delta: str, *, passed: bool = True) -> str:
    return json.dumps(
        {
            "sha256": "ab" * 32 if passed else "",
            "num_samples": 10 if passed else 0,
            "validation": {"summary_sha256": "cd" * 32, "passed": passed},
            "privacy": {"epsilon": eps, "delta": delta},
        }
    )


def test_an_update_declares_exactly_the_prescribed_spend(consortium_dir: Path) -> None:
    state, node = _dp_round(consortium_dir, _privacy())
    for eps, delta in [("0", "0"), ("0", "1e-5"), ("0.5", "1e-5"), ("1", "1e-6"), ("3", "1e-4")]:
        with pytest.raises(InvalidArgument) as caught:
            drive(invoke(node, "SubmitUpdate", ["p1", "1", _update_json(eps, delta)]))
        assert caught.value.details["expected"] == {"epsilon": "1", "delta": "0.00001"}
        assert "prescribes ε=1, δ=0.00001" in caught.value.message
    assert keys.update("p1", 1, "org1/node0") not in state
    done = json.loads(drive(invoke(node, "SubmitUpdate", ["p1", "1", _update_json("1.0", "1e-5")])))
    assert done["privacy"] == {"epsilon": "1", "delta": "0.00001"}
    budget = json.loads(state[keys.budget("org1/node0", "p1")])
    assert budget["epsilon"] == "1" and budget["rounds"] == 1


def test_an_update_on_a_profile_without_privacy_spends_nothing(consortium_dir: Path) -> None:
    _, node = _dp_round(consortium_dir, {"mode": "none"})
    with pytest.raises(InvalidArgument) as caught:
        drive(invoke(node, "SubmitUpdate", ["p1", "1", _update_json("0.5", "0")]))
    assert "prescribes ε=0, δ=0" in caught.value.message
    drive(invoke(node, "SubmitUpdate", ["p1", "1", _update_json("0", "0")]))
