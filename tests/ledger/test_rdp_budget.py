"""Record-level DP-SGD budgets on the embedded ledger: each round's Rényi-DP curve is derived
by the chaincode from the profile's mechanism and composed exactly across rounds and across
the family's profiles; a round that would pass the budget is refused with BUDGET_EXCEEDED
and writes nothing."""

from __future__ import annotations

import hashlib
from fractions import Fraction

import pytest

from chaincode import rdp
from chaincode.schema import decimal_text, dp_sgd_round_rdp
from ledger_client import EndorseError, ModelCommitment, UpdateCommitment

from .conftest import LedgerEnv

NODES = ["org1/node0", "org2/node0"]
MECHANISM = {"noise_multiplier": "1.1", "sample_rate": "0.1", "epochs_per_round": "1"}
DELTA = "1e-5"


def _privacy(epsilon_budget: str) -> dict[str, str]:
    return {
        "mode": "dp-sgd",
        **MECHANISM,
        "clip_norm": "1",
        "epsilon_budget": epsilon_budget,
        "delta_budget": DELTA,
    }


ROUND = dp_sgd_round_rdp(_privacy("1"))
ROUND_EPSILON = decimal_text(Fraction(rdp.epsilon(ROUND, Fraction(DELTA))))
# Exactly two rounds' worth: the accountant's ε of two composed rounds, as the budget.
TWO_ROUNDS = decimal_text(Fraction(rdp.epsilon(rdp.scale(ROUND, 2), Fraction(DELTA))))


def _update(ref: str, n: int, eps: str = ROUND_EPSILON, delta: str = DELTA) -> UpdateCommitment:
    return UpdateCommitment(
        sha256=hashlib.sha256(f"{ref}:{n}".encode()).hexdigest(),
        num_samples=100,
        validation_sha256=hashlib.sha256(b"suite").hexdigest(),
        epsilon=eps,
        delta=delta,
    )


def _round(env: LedgerEnv, profile: str, n: int) -> None:
    """One whole round of ``profile``: both nodes commit, the coordinator commits a model."""
    rnd = env.elected_round(profile, NODES)
    assert rnd.number == n
    for ref in NODES:
        env.ledger(ref).submit_update(profile, n, _update(ref, n))
    env.ledger(rnd.coordinator).commit_model(
        profile,
        n,
        ModelCommitment(
            sha256=hashlib.sha256(f"{profile}:{n}".encode()).hexdigest(),
            uri=f"models:/{profile}/{n}",
            metrics={"accuracy": 800_000},
            inclusion={ref: _update(ref, n).sha256 for ref in NODES},
            contributions=dict.fromkeys(NODES, 1),
        ),
    )


def _refused_over_budget(env: LedgerEnv, profile: str, n: int) -> None:
    node = env.ledger(NODES[0])
    record_before = node.budget(NODES[0], profile).raw
    rnd = env.elected_round(profile, NODES)
    before = env.height()
    with pytest.raises(EndorseError) as refused:
        node.submit_update(profile, rnd.number, _update(NODES[0], n))
    assert refused.value.code == "BUDGET_EXCEEDED", refused.value
    assert "over the family" in refused.value.message
    assert env.height() == before  # nothing written
    assert node.budget(NODES[0], profile).raw == record_before


def test_rounds_compose_exactly_and_the_one_past_the_budget_is_refused(env: LedgerEnv) -> None:
    env.bootstrap()
    env.active_profile(privacy=_privacy(TWO_ROUNDS))
    node = env.ledger(NODES[0])
    fresh = node.budget(NODES[0], "digits-8x8")
    assert fresh.raw["accountant"] == "rdp" and fresh.raw["rounds_left"] == 2
    assert fresh.raw["round"] == {"epsilon": ROUND_EPSILON, "delta": "0.00001"}
    # The update declares the round's own ε at the profile's δ, and nothing else.
    rnd = env.elected_round("digits-8x8", NODES)
    before = env.height()
    with pytest.raises(EndorseError) as wrong:
        node.submit_update("digits-8x8", 1, _update(NODES[0], 1, eps="1"))
    assert wrong.value.code == "INVALID_ARGUMENT" and ROUND_EPSILON in wrong.value.message
    assert env.height() == before
    for ref in NODES:
        env.ledger(ref).submit_update("digits-8x8", 1, _update(ref, 1))
    env.ledger(rnd.coordinator).commit_model(
        "digits-8x8",
        1,
        ModelCommitment(
            sha256=hashlib.sha256(b"m1").hexdigest(),
            uri="models:/digits-8x8/1",
            metrics={"accuracy": 800_000},
            inclusion={ref: _update(ref, 1).sha256 for ref in NODES},
            contributions=dict.fromkeys(NODES, 1),
        ),
    )
    one = node.budget(NODES[0], "digits-8x8")
    assert one.spent.epsilon == ROUND_EPSILON and one.rounds == 1
    assert one.raw["rdp"]["profile"] == rdp.to_text(ROUND)  # the curve, exactly
    assert one.raw["rounds_left"] == 1
    _round(env, "digits-8x8", 2)
    two = node.budget(NODES[0], "digits-8x8")
    # Two rounds compose to exactly the budget (RDP adds; converted once, not Σε).
    assert two.spent.epsilon == TWO_ROUNDS and two.raw["family"]["epsilon"] == TWO_ROUNDS
    assert Fraction(TWO_ROUNDS) < 2 * Fraction(ROUND_EPSILON)
    assert two.remaining is not None and two.remaining.epsilon == "0"
    assert two.raw["rounds_left"] == 0
    _refused_over_budget(env, "digits-8x8", 3)


def test_the_budget_composes_across_the_family_s_profiles(env: LedgerEnv) -> None:
    env.bootstrap()
    env.active_profile("digits-a", privacy=_privacy(TWO_ROUNDS))
    env.active_profile("digits-b", privacy=_privacy(TWO_ROUNDS))
    _round(env, "digits-a", 1)
    _round(env, "digits-b", 1)
    node = env.ledger(NODES[0])
    a = node.budget(NODES[0], "digits-a")
    # One round in each profile: each profile's own spend is one round, the family's two.
    assert a.spent.epsilon == ROUND_EPSILON and a.raw["family"]["epsilon"] == TWO_ROUNDS
    assert a.raw["rounds_left"] == 0
    _refused_over_budget(env, "digits-a", 2)


def test_older_modes_spends_count_towards_a_dp_sgd_budget(env: LedgerEnv) -> None:
    env.bootstrap()
    env.active_profile("client", privacy={
        "mode": "client-dp", "epsilon_per_round": "1", "delta_per_round": "1e-6",
        "epsilon_budget": "3", "delta_budget": "1e-4", "clip_norm": "1",
    })  # fmt: skip
    env.active_profile("digits-sgd", privacy=_privacy("100"))
    rnd = env.elected_round("client", NODES)
    node = env.ledger(NODES[0])
    node.submit_update("client", rnd.number, _update(NODES[0], 1, eps="1", delta="1e-6"))
    view = node.budget(NODES[0], "digits-sgd").raw
    assert view["rdp"]["other"] == {"epsilon": "1", "delta": "0.000001"}
    # ε over the family: the RDP total at δ − 1e-6, plus the older mode's ε = 1.
    expected = Fraction(rdp.epsilon(rdp.zero(), Fraction(DELTA) - Fraction("1e-6"))) + 1
    assert Fraction(view["family"]["epsilon"]) == expected
