"""Property-based fuzzing of every transaction's arguments through the embedded ledger.

Whatever the arguments, a transaction either succeeds or is refused with a typed error whose
code is one of the contract's stable codes (never INTERNAL, which would mean an unexpected
exception), and a refused transaction writes nothing.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaincode.contract import TRANSACTIONS
from ledger_client import EndorseError, FedspecLedger

from .conftest import LedgerEnv, profile_spec
from .test_scenarios import NODES

TYPED = {
    "INVALID_ARGUMENT",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "FORBIDDEN",
    "CONFLICT",
    "FAILED_PRECONDITION",
    "BUDGET_EXCEEDED",
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
plausible = st.sampled_from(
    [
        "digits-8x8",
        "1",
        "0",
        "-1",
        "99999999999",
        "true",
        "false",
        "activate",
        "retire",
        "org1",
        "org1/node0",
        "org2/node0",
        "",
        "QUORUM_NOT_MET",
        "a" * 64,
        "00" * 32,
        json.dumps(["org1", "org2", "org3"]),
        json.dumps(profile_spec("fuzzed")),
        json.dumps({"resolution": "8x8"}),
        "\x00",
        "\udcff"[:0] + "é",
    ]
)
argument = st.one_of(plausible, st.text(max_size=40), json_values.map(json.dumps))


@pytest.fixture
def ready(env: LedgerEnv) -> LedgerEnv:
    env.bootstrap()
    env.active_profile()
    env.elected_round("digits-8x8", NODES)
    return env


@pytest.mark.parametrize("name", sorted(TRANSACTIONS))
def test_any_arguments_give_success_or_a_typed_refusal(ready: LedgerEnv, name: str) -> None:
    params = TRANSACTIONS[name].params
    callers = ["org1/node0", "org2/admin", "org3/node1"]

    @settings(
        max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        args=st.one_of(
            st.lists(argument, min_size=len(params), max_size=len(params)),
            st.lists(argument, max_size=len(params) + 2),
        ),
        caller=st.sampled_from(callers),
    )
    def check(args: list[str], caller: str) -> None:
        ledger: FedspecLedger = ready.ledger(caller)
        before = ready.height()
        try:
            ledger.submit(name, *args)
        except EndorseError as exc:
            refusal: EndorseError | None = exc
        except UnicodeEncodeError:
            return  # lone surrogates cannot be sent at all: the client refuses before signing
        else:
            refusal = None
        if refusal is not None:
            assert refusal.code in TYPED, f"{name}{tuple(args)} → {refusal}"
            assert ready.height() == before

    check()
