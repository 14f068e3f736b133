"""A round record as the ledger returns it (``GetRound``), for unit tests that need one
without a ledger: a closed round of two participants unless ``changes`` say otherwise."""

from __future__ import annotations

from typing import Any

from ledger_client import Round


def round_record(**changes: Any) -> Round:
    doc: dict[str, Any] = {
        "profile": "p",
        "round": 3,
        "status": "closed",
        "coordinator": "org1/node0",
        "participants": ["org1/node0", "org2/node0"],
        "withheld": [],
        "base_model": "",
        "base_round": 0,
        "min_nodes": 2,
        "join_deadline": 0,
        "reveal_deadline": 0,
        "coordinator_deadline": 0,
        "seed": "",
        "failure": None,
        "rewards": None,
        "model": "ab" * 32,
    }
    doc.update(changes)
    return Round.from_json(doc)
