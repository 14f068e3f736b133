"""A member's own part in a round another member opens: wait for the round to open, then
run this home's node agents, with this home's keys and data only (``fedspec round join``)."""

from __future__ import annotations

import threading
import time
from typing import Any

from fedspec.app.settings import Settings
from fedspec.errors import ErrorCode, FedspecError
from flows.node_agent import run_node
from ledger_client import GatewayError, open_ledger
from ledger_client.records import Round

POLL_S = 0.5


def wait_for_open_round(
    settings: Settings, profile_id: str, reader: str, *, timeout_s: float
) -> Round:
    """The profile's round once one is open for joining (the current one, if it is)."""
    ledger = open_ledger(settings.ledger, reader)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            rnd: Round | None = ledger.round_status(profile_id)
        except GatewayError as exc:
            if exc.code != ErrorCode.NOT_FOUND or "no rounds yet" not in exc.message:
                raise
            rnd = None  # the profile exists; its first round is not open yet
        if rnd is not None and rnd.status == "joining" and rnd.phase == "joining":
            return rnd
        if time.monotonic() >= deadline:
            raise FedspecError(
                f"no round of {profile_id} opened for joining within {timeout_s:.0f} s",
                code=ErrorCode.FAILED_PRECONDITION,
            )
        time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))


def join_round(
    settings: Settings, profile_id: str, nodes: list[str], *, timeout_s: float
) -> list[dict[str, Any]]:
    """Wait for ``profile_id``'s next round, then take part in it with ``nodes`` (this home's
    own), each agent in its own thread as the round flow runs them; their outcomes."""
    rnd = wait_for_open_round(settings, profile_id, nodes[0], timeout_s=timeout_s)
    outcomes: dict[str, dict[str, Any]] = {}

    def run(node: str) -> None:
        try:
            outcomes[node] = run_node(node, profile_id, rnd.number, None, str(settings.home))
        except Exception as exc:  # one node's failure is its outcome, not the others'
            outcomes[node] = {
                "node": node,
                "round": rnd.number,
                "status": "failed",
                "reason": f"{type(exc).__name__}: {exc}"[:300],
            }

    threads = [threading.Thread(target=run, args=(n,), name=f"agent-{n}") for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [
        outcomes.get(n)
        or {"node": n, "round": rnd.number, "status": "failed", "reason": "the agent crashed"}
        for n in nodes
    ]
