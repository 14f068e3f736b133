"""Differential privacy through whole rounds: spends on the ledger, refusal over budget."""

from __future__ import annotations

import pytest

from flows.node_agent import NOT_VALIDATED
from ledger_client import EpsilonDelta

from .conftest import NODES, RoundHome

pytestmark = pytest.mark.integration

CLIENT_DP = {
    "mode": "client-dp",
    "epsilon_per_round": "1",
    "delta_per_round": "0.000001",
    "epsilon_budget": "1.5",
    "delta_budget": "0.00001",
    "clip_norm": "1",
}


@pytest.mark.privacy(CLIENT_DP)
def test_private_rounds_record_spends_and_refuse_a_round_over_budget(
    round_home: RoundHome,
) -> None:
    ledger = round_home.ledger()
    round_no, parent = round_home.open_round()
    outcomes = round_home.agents(round_no, parent)
    assert ledger.get_round(round_home.profile_id, round_no).status == "closed"
    assert {o.status for o in outcomes.values()} == {"ok"}
    updates = ledger.list_updates(round_home.profile_id, round_no)
    assert sorted(u.node for u in updates) == sorted(NODES)
    for update in updates:
        assert update.privacy == EpsilonDelta("1", "0.000001")
    budget = ledger.budget(NODES[0], round_home.profile_id)
    assert budget.spent.epsilon == "1"
    assert budget.remaining is not None and budget.remaining.epsilon == "0.5"

    # ε = 0.5 left, a round spends 1: every node refuses before reading its data.
    round_no, parent = round_home.open_round()
    outcomes = round_home.agents(round_no, parent)
    rnd = ledger.get_round(round_home.profile_id, round_no)
    assert rnd.status == "failed" and rnd.failure is not None
    assert rnd.failure["code"] == "QUORUM_NOT_MET"
    assert sorted(outcomes) == sorted(NODES)
    for node, outcome in outcomes.items():
        assert outcome.status == "excluded" and "BUDGET_EXCEEDED" in outcome.reason, node
    updates = ledger.list_updates(round_home.profile_id, round_no)
    assert sorted(u.node for u in updates) == sorted(NODES)
    for update in updates:
        assert update.sha256 == "" and update.validation.summary_sha256 == NOT_VALIDATED
    assert ledger.budget(NODES[0], round_home.profile_id).spent.epsilon == "1"
