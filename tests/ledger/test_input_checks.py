"""The chaincode's input checks through the embedded ledger: privacy numbers on proposal, an
update's declared spend on submission. A refused transaction writes nothing (height unchanged)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import pytest

from fedspec.errors import ErrorCode, FedspecError
from ledger_client import UpdateCommitment

from .conftest import LedgerEnv, profile_spec

NODES = ["org1/node0", "org2/node0"]
CLIENT_DP = profile_spec()["privacy"]  # ε 1, δ 1e-5 per round; budget ε 3, δ 1e-4


def _update(node: str, epsilon: str, delta: str, *, passed: bool = True) -> UpdateCommitment:
    return UpdateCommitment(
        sha256=hashlib.sha256(node.encode()).hexdigest() if passed else "",
        num_samples=100 if passed else 0,
        validation_sha256=hashlib.sha256(b"summary").hexdigest(),
        validation_passed=passed,
        validation_reason="" if passed else "labels outside the profile's",
        epsilon=epsilon,
        delta=delta,
    )


def _refused(env: LedgerEnv, fragment: str, write: Any) -> FedspecError:
    """Refused with INVALID_ARGUMENT (by the facade's own check, or as the peer's endorsement
    error carrying the chaincode's), naming ``fragment``; the height is unchanged."""
    before = env.height()
    with pytest.raises(FedspecError) as caught:
        write()
    assert caught.value.code == ErrorCode.INVALID_ARGUMENT, caught.value
    assert fragment in caught.value.message, caught.value.message
    assert env.height() == before
    return caught.value


@pytest.mark.parametrize(
    ("privacy", "fragment"),
    [
        ({"epsilon_budget": "-1"}, "privacy.epsilon_budget must be ≥ epsilon_per_round (1)"),
        ({"epsilon_per_round": "0"}, "privacy.epsilon_per_round must be > 0"),
        ({"epsilon_per_round": "-0.5"}, "privacy.epsilon_per_round must be > 0"),
        ({"epsilon_per_round": "101", "epsilon_budget": "200"}, "≤ 100"),
        ({"epsilon_budget": "1e9"}, "≤ 10000"),
        ({"delta_per_round": "0"}, "privacy.delta_per_round must be > 0 and < 1"),
        ({"delta_per_round": "1", "delta_budget": "1"}, "privacy.delta_per_round"),
        ({"delta_budget": "1e-6"}, "privacy.delta_budget must be ≥ delta_per_round"),
        ({"delta_budget": "1"}, "privacy.delta_budget must be ≥ delta_per_round (0.00001) and < 1"),
        ({"clip_norm": "0"}, "privacy.clip_norm must be > 0"),
        ({"clip_norm": "-1"}, "privacy.clip_norm must be > 0"),
        ({"clip_norm": "1e7"}, "privacy.clip_norm"),
    ],
)
def test_a_proposal_with_privacy_numbers_out_of_bounds_writes_nothing(
    env: LedgerEnv, privacy: dict[str, str], fragment: str
) -> None:
    env.bootstrap(register=[])
    spec = profile_spec(privacy={**CLIENT_DP, **privacy})
    # The facade checks first (as the CLI does); the chaincode checks what is actually sent.
    _refused(env, fragment, lambda: env.ledger("org1/admin").propose_profile(spec))
    raw = json.dumps(spec, sort_keys=True)
    _refused(env, fragment, lambda: env.ledger("org1/admin").submit("ProposeProfile", raw))


def test_dp_model_is_epsilon_dp_and_none_carries_no_numbers(env: LedgerEnv) -> None:
    env.bootstrap(register=[])
    admin = env.ledger("org1/admin")
    dp_model = {
        "mode": "dp-model",
        "epsilon_per_round": "1",
        "delta_per_round": "1e-5",
        "epsilon_budget": "3",
        "delta_budget": "1e-4",
    }
    model = {"family": "dp-logistic-regression"}
    _refused(
        env,
        "privacy.delta_per_round must be 0",
        lambda: admin.propose_profile(profile_spec("dpm", privacy=dp_model, model=model)),
    )
    _refused(
        env,
        "privacy mode none spends no budget",
        lambda: admin.propose_profile(
            profile_spec("plain", privacy={"mode": "none", "epsilon_budget": "1"})
        ),
    )
    ok = {**dp_model, "delta_per_round": "0", "delta_budget": "0"}
    assert admin.propose_profile(profile_spec("dpm", privacy=ok, model=model)).status == "proposed"


def test_an_update_declares_exactly_the_profile_s_per_round_spend(env: LedgerEnv) -> None:
    env.bootstrap()
    env.active_profile()
    rnd = env.elected_round("digits-8x8", NODES)
    node = env.ledger(NODES[0])
    for eps, delta in [("0", "0"), ("0", "1e-5"), ("0.5", "1e-5"), ("1", "0"), ("2", "1e-5")]:
        _refused(
            env,
            f"prescribes ε=1, δ=0.00001 per round; the update declares ε={eps}",
            lambda e=eps, d=delta: node.submit_update(
                "digits-8x8", rnd.number, _update(NODES[0], e, d)
            ),
        )
    assert node.budget(NODES[0], "digits-8x8").spent.epsilon == "0"
    # The prescribed spend, written either way, is taken and counted once.
    before = env.height()
    node.submit_update("digits-8x8", rnd.number, _update(NODES[0], "1.0", "0.00001"))
    assert env.height() == before + 1
    assert node.budget(NODES[0], "digits-8x8").spent.epsilon == "1"
    # Data that failed validation is never trained on: it declares no spend, and may not.
    other = env.ledger(NODES[1])
    _refused(
        env,
        "carries no sha256 and no spend",
        lambda: other.submit_update(
            "digits-8x8", rnd.number, _update(NODES[1], "1", "1e-5", passed=False)
        ),
    )
    other.submit_update("digits-8x8", rnd.number, _update(NODES[1], "0", "0", passed=False))


def test_an_update_on_a_profile_without_privacy_declares_no_spend(env: LedgerEnv) -> None:
    env.bootstrap()
    env.active_profile("plain-8x8", privacy={"mode": "none"})
    rnd = env.elected_round("plain-8x8", NODES)
    node = env.ledger(NODES[0])
    _refused(
        env,
        "(privacy mode none) prescribes ε=0, δ=0 per round; the update declares ε=1, δ=0",
        lambda: node.submit_update("plain-8x8", rnd.number, _update(NODES[0], "1", "0")),
    )
    node.submit_update("plain-8x8", rnd.number, _update(NODES[0], "0", "0"))


@pytest.mark.parametrize(
    ("num_samples", "fragment"),
    [(-1, "num_samples"), (10**13, "num_samples"), (True, "num_samples"), (0, "num_samples ≥ 1")],
)
def test_counts_are_positive_integers_within_bounds(
    env: LedgerEnv, num_samples: Any, fragment: str
) -> None:
    env.bootstrap()
    env.active_profile()
    rnd = env.elected_round("digits-8x8", NODES)
    node = env.ledger(NODES[0])
    update = _update(NODES[0], "1", "1e-5")
    bad = dataclasses.replace(update, num_samples=num_samples)
    _refused(env, fragment, lambda: node.submit_update("digits-8x8", rnd.number, bad))
