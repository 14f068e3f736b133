"""The live display of `round run` follows the ledger's events; a stream the peer resets (a
Fabric peer answered RST_STREAM CANCEL on a loaded machine) must not end it with a traceback:
it resumes from the next block it has not seen."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from fedspec.app.settings import Settings
from fedspec.console.progress import LedgerProgress
from ledger_client.errors import GatewayError
from ledger_client.gateway import ChaincodeEvent


class ResettingNetwork:
    """Serves the round's events from block 5 on, resetting the first stream after one."""

    def __init__(self, done: threading.Event) -> None:
        self.events = [
            ChaincodeEvent(5, "tx5", "fedspec", "RoundOpened", _payload(round=1)),
            ChaincodeEvent(6, "tx6", "fedspec", "RoundJoined", _payload(round=1)),
            ChaincodeEvent(7, "tx7", "fedspec", "RoundJoined", _payload(round=1)),
        ]
        self.starts: list[int] = []
        self.done = done

    def get_chaincode_events(
        self, chaincode: str, *, start_block: int, timeout: float
    ) -> Iterator[ChaincodeEvent]:
        self.starts.append(start_block)
        served = [e for e in self.events if e.block_number >= start_block]
        if len(self.starts) == 1:
            yield served[0]
            raise GatewayError("chaincode events: Stream removed", code="CANCELLED")
        yield from served
        self.done.set()


def _payload(**fields: Any) -> bytes:
    return json.dumps({"profile": "p", **fields}).encode()


def test_a_reset_events_stream_resumes_after_the_last_block_seen(tmp_path: Path) -> None:
    done = threading.Event()
    network = ResettingNetwork(done)
    progress = LedgerProgress(Settings.load(tmp_path, env={}), ["p"], rounds=1)
    reader: Any = SimpleNamespace(contract=SimpleNamespace(network=network))
    follower = threading.Thread(target=progress._follow, args=(reader, 5), daemon=True)
    follower.start()
    assert done.wait(timeout=30)
    progress._stop.set()
    follower.join(timeout=30)
    assert not follower.is_alive()
    assert network.starts[:2] == [5, 6]  # resumed after block 5, nothing counted twice
    state = progress.states["p"]
    assert (state.round, state.phase, state.joined) == (1, "joining", 2)
