"""Record-level DP-SGD through whole rounds: the nodes train by DP-SGD, the ledger composes
their Rényi-DP curves, and a round past the budget is refused by every node before training."""

from __future__ import annotations

from fractions import Fraction

import pytest

from chaincode import rdp
from chaincode.schema import decimal_text, dp_sgd_round_rdp
from flows.node_agent import NOT_VALIDATED

from .conftest import NODES, RoundHome

pytestmark = pytest.mark.integration

MECHANISM = {
    "mode": "dp-sgd",
    "noise_multiplier": "1",
    "sample_rate": "0.2",
    "epochs_per_round": "1",
    "clip_norm": "1",
    "delta_budget": "0.00001",
}
ROUND_EPSILON = decimal_text(
    Fraction(rdp.epsilon(dp_sgd_round_rdp({**MECHANISM}), Fraction("0.00001")))
)
# A budget of exactly one round: the second is refused.
DP_SGD = {**MECHANISM, "epsilon_budget": ROUND_EPSILON}


@pytest.mark.privacy(DP_SGD)
def test_dp_sgd_rounds_compose_on_the_ledger_and_refuse_past_the_budget(
    round_home: RoundHome,
) -> None:
    ledger = round_home.ledger()
    round_no, parent = round_home.open_round()
    outcomes = round_home.agents(round_no, parent)
    assert ledger.get_round(round_home.profile_id, round_no).status == "closed"
    assert {o.status for o in outcomes.values()} == {"ok"}, outcomes
    for update in ledger.list_updates(round_home.profile_id, round_no):
        assert update.privacy.epsilon == ROUND_EPSILON and update.privacy.delta == "0.00001"
    budget = ledger.budget(NODES[0], round_home.profile_id)
    assert budget.raw["accountant"] == "rdp" and budget.rounds == 1
    assert budget.spent.epsilon == ROUND_EPSILON and budget.raw["rounds_left"] == 0

    round_no, parent = round_home.open_round()
    outcomes = round_home.agents(round_no, parent)
    rnd = ledger.get_round(round_home.profile_id, round_no)
    assert rnd.status == "failed" and rnd.failure is not None
    for node, outcome in outcomes.items():
        assert outcome.status == "excluded" and "BUDGET_EXCEEDED" in outcome.reason, node
    for update in ledger.list_updates(round_home.profile_id, round_no):
        assert update.sha256 == "" and update.validation.summary_sha256 == NOT_VALIDATED
    assert ledger.budget(NODES[0], round_home.profile_id).rounds == 1
