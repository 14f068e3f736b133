"""The ledger's exact Rényi-DP accountant (chaincode.rdp) against opacus's float one, and
the dp-sgd privacy mode's validation."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from chaincode import rdp
from chaincode.errors import InvalidArgument
from chaincode.schema import dp_sgd_round_rdp, per_round_spend, validate_profile

MECHANISMS = [("1.0", "0.1", 100), ("0.7", "0.05", 400), ("2", "1", 3), ("1.1", "0.0625", 160)]


# opacus warns when the best order is its smallest; the comparison holds there too.
@pytest.mark.filterwarnings("ignore:Optimal order is the smallest alpha")
@pytest.mark.parametrize(("sigma", "q", "steps"), MECHANISMS)
def test_the_exact_curve_and_epsilon_agree_with_opacus(sigma: str, q: str, steps: int) -> None:
    from opacus.accountants import RDPAccountant
    from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

    curve = rdp.round_rdp(Fraction(sigma), Fraction(q), steps)
    theirs = compute_rdp(
        q=float(q), noise_multiplier=float(sigma), steps=steps, orders=list(rdp.ORDERS)
    )
    for ours, float_value in zip(curve, theirs, strict=True):
        assert float(ours) == pytest.approx(float_value, rel=1e-12)
    eps = rdp.epsilon(curve, Fraction("1e-5"))
    same_orders, _ = get_privacy_spent(orders=list(rdp.ORDERS), rdp=theirs, delta=1e-5)
    assert float(eps) == pytest.approx(same_orders, rel=1e-12)
    assert float(eps) >= same_orders  # rounded up, never down
    # opacus's accountant with its default (partly fractional) orders is at most a few
    # percent tighter: integer orders only cost a little.
    accountant = RDPAccountant()
    accountant.history = [(float(sigma), float(q), steps)]
    default = accountant.get_epsilon(delta=1e-5)
    assert default <= float(eps) <= default * 1.03


def test_composition_adds_curves_and_converts_once() -> None:
    curve = rdp.round_rdp(Fraction("1.1"), Fraction("0.1"), 10)
    three = rdp.add(curve, curve, curve)
    assert three == rdp.scale(curve, 3)
    # 30 steps at once: the same, but for each round's rounding up at the 18th decimal.
    at_once = rdp.round_rdp(Fraction("1.1"), Fraction("0.1"), 30)
    assert all(0 <= a - b <= Decimal("3e-18") for a, b in zip(three, at_once, strict=True))
    delta = Fraction("1e-5")
    assert rdp.epsilon(three, delta) < 3 * rdp.epsilon(curve, delta)  # tighter than Σε
    # The stored text round-trips exactly.
    assert rdp.from_text(rdp.to_text(three)) == three


def test_the_standing_refuses_the_round_past_the_budget() -> None:
    curve = rdp.round_rdp(Fraction("1.1"), Fraction("0.1"), 10)
    delta = Fraction("1e-5")
    budget = Fraction(rdp.epsilon(rdp.scale(curve, 2), delta))
    standing = rdp.Standing(rdp.zero(), rdp.zero(), Fraction(0), Fraction(0), delta, budget)
    assert standing.rounds_left(curve) == 2
    once = standing.with_round(curve)
    assert once.refusal(curve) is None
    twice = once.with_round(curve)
    assert twice.refusal(curve) is not None and twice.rounds_left(curve) == 0
    # Older modes' δ using up the profile's δ leave no room at all.
    spent = rdp.Standing(rdp.zero(), rdp.zero(), Fraction(1), delta, delta, Fraction(100))
    assert spent.family_epsilon is None and spent.refusal(curve) is not None


def _dp_sgd_profile(**privacy: str) -> dict[str, object]:
    from tests.ledger.conftest import profile_spec

    base = {
        "mode": "dp-sgd",
        "noise_multiplier": "1.1",
        "sample_rate": "0.1",
        "epochs_per_round": "1",
        "clip_norm": "1",
        "epsilon_budget": "8",
        "delta_budget": "1e-5",
    }
    return profile_spec("p1", privacy={**base, **privacy})


def test_a_dp_sgd_profile_is_validated_exactly() -> None:
    profile = _dp_sgd_profile()
    validate_profile(profile)
    privacy: dict[str, Any] = dict(profile["privacy"])  # type: ignore[call-overload]
    spend_eps, spend_delta = per_round_spend(privacy)
    assert spend_delta == Fraction("1e-5")
    assert spend_eps == Fraction(rdp.epsilon(dp_sgd_round_rdp(privacy), spend_delta))


@pytest.mark.parametrize(
    ("privacy", "fragment"),
    [
        ({"noise_multiplier": "0.2"}, "privacy.noise_multiplier must be ≥ 0.3"),
        ({"sample_rate": "0"}, "privacy.sample_rate must be > 0 and ≤ 1"),
        ({"sample_rate": "1.5"}, "privacy.sample_rate"),
        ({"epochs_per_round": "0"}, "privacy.epochs_per_round"),
        ({"epochs_per_round": "100", "sample_rate": "0.0001"}, "at most 100000 steps"),
        ({"clip_norm": "0"}, "privacy.clip_norm must be > 0"),
        ({"epsilon_budget": "0"}, "privacy.epsilon_budget must be > 0"),
        ({"delta_budget": "0"}, "privacy.delta_budget must be > 0 and < 1"),
        ({"epsilon_per_round": "1"}, "derives each round's spend"),
    ],
)
def test_a_dp_sgd_profile_with_bad_numbers_is_refused(
    privacy: dict[str, str], fragment: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        validate_profile(_dp_sgd_profile(**privacy))
    assert fragment in refused.value.message


def test_dp_sgd_needs_its_mechanism_and_other_modes_refuse_it() -> None:
    from tests.ledger.conftest import profile_spec

    with pytest.raises(InvalidArgument, match="noise_multiplier"):
        validate_profile(
            profile_spec(
                "p1", privacy={"mode": "dp-sgd", "epsilon_budget": "8", "delta_budget": "1e-5"}
            )
        )
    client = dict(profile_spec("p1")["privacy"], noise_multiplier="1")
    with pytest.raises(InvalidArgument, match="only privacy mode dp-sgd"):
        validate_profile(profile_spec("p1", privacy=client))
    # The old name and the clear name of client-level DP are both accepted.
    for mode in ("client-dp", "client-level-dp"):
        validate_profile(profile_spec("p1", privacy=dict(profile_spec("p1")["privacy"], mode=mode)))
