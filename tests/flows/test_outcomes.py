"""A node's outcome in the distributed mode is read from the ledger, not from its flow run."""

from __future__ import annotations

import dataclasses

from flows.node_agent import NodeOutcome
from flows.rounds import _ledger_outcome
from ledger_client import UpdateRecord
from tests.round_records import round_record

OK_RUN = {"node": "org2/node0", "status": "ok", "reason": "", "flow_run": "r-2"}


_round = round_record


def _update(passed: bool = True, reason: str = "") -> UpdateRecord:
    return UpdateRecord.from_json(
        {
            "profile": "p",
            "round": 3,
            "node": "org2/node0",
            "sha256": "cd" * 32 if passed else "",
            "num_samples": 10,
            "validation": {"passed": passed, "reason": reason, "summary_sha256": "ef" * 32},
            "privacy": {"epsilon": "0", "delta": "0"},
            "metrics": {"loss": 250_000},
            "uri": "",
        }
    )


def test_a_participant_with_a_good_update_is_ok_with_the_model_and_its_metrics() -> None:
    outcome = _ledger_outcome(_round(), _update(), OK_RUN)
    assert outcome["status"] == "ok" and outcome["role"] == "participant"
    assert outcome["update_sha256"] == "cd" * 32 and outcome["model_sha256"] == "ab" * 32
    assert outcome["metrics"] == {"loss": 0.25} and outcome["flow_run"] == "r-2"


def test_an_outcome_read_from_the_ledger_has_the_shape_a_node_agent_returns() -> None:
    outcome = _ledger_outcome(_round(), _update(), OK_RUN)
    agent = dataclasses.asdict(NodeOutcome("org2/node0", "p", 3))
    assert set(outcome) == set(agent) | {"flow_run"}
    assert (outcome["node"], outcome["profile"], outcome["round"]) == ("org2/node0", "p", 3)


def test_a_node_outside_the_round_is_an_observer_with_the_reason() -> None:
    withheld = _round(participants=["org1/node0"], withheld=["org2/node0"])
    assert _ledger_outcome(withheld, None, OK_RUN)["reason"] == "withheld its reveal"
    late = _round(participants=["org1/node0"])
    outcome = _ledger_outcome(late, None, OK_RUN)
    assert (outcome["role"], outcome["status"]) == ("observer", "excluded")
    crashed = {**OK_RUN, "status": "failed", "reason": "flow run Crashed: killed"}
    outcome = _ledger_outcome(late, None, crashed)
    assert outcome["status"] == "failed" and outcome["reason"] == "flow run Crashed: killed"


def test_a_participant_without_an_update_failed_and_a_failed_validation_is_excluded() -> None:
    outcome = _ledger_outcome(_round(), None, OK_RUN)
    assert outcome["status"] == "failed" and outcome["reason"] == "committed no update"
    excluded = _ledger_outcome(_round(), _update(False, "DATA_VALIDATION_FAILED: labels"), OK_RUN)
    assert (excluded["role"], excluded["status"]) == ("excluded", "excluded")
    assert excluded["reason"] == "DATA_VALIDATION_FAILED: labels"


def test_an_update_counts_even_if_the_node_flow_failed_afterwards() -> None:
    failed = {**OK_RUN, "status": "failed", "reason": "flow run Failed: evaluation"}
    outcome = _ledger_outcome(_round(coordinator="org2/node0"), _update(), failed)
    assert outcome["status"] == "ok" and outcome["role"] == "coordinator"
    assert outcome["reason"] == "flow run Failed: evaluation"
