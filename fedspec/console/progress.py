"""Live progress of every profile's rounds, read from the ledger's chaincode events.

The ledger sees every step of every round (joins, reveals, elections, updates, models), so
following its events shows progress the same way in the embedded and the distributed mode,
without the flows reporting to the display.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from fedspec.app.settings import Settings

if TYPE_CHECKING:
    from ledger_client import FedspecLedger


@dataclass
class ProfileState:
    round: int = 0
    phase: str = "waiting"
    joined: int = 0
    revealed: int = 0
    updates: int = 0
    excluded: int = 0
    coordinator: str = ""
    models: int = 0
    last_model: str = ""
    notes: list[str] = field(default_factory=list)


class LedgerProgress:
    def __init__(self, settings: Settings, profile_ids: list[str], rounds: int) -> None:
        self.settings = settings
        self.rounds = rounds
        self.states = {pid: ProfileState() for pid in profile_ids}
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def apply(self, name: str, payload: dict[str, Any]) -> None:
        state = self.states.get(str(payload.get("profile", "")))
        if state is None:
            return
        with self._lock:
            if name == "RoundOpened":
                state.round, state.phase = int(payload["round"]), "joining"
                state.joined = state.revealed = state.updates = state.excluded = 0
                state.coordinator = ""
            elif name == "RoundJoined":
                state.joined += 1
            elif name == "SeedRevealed":
                state.phase, state.revealed = "revealing", state.revealed + 1
            elif name in ("CoordinatorElected", "CoordinatorReplaced"):
                state.phase, state.coordinator = "training", str(payload.get("coordinator", ""))
            elif name == "UpdateCommitted":
                if payload.get("passed", True):
                    state.updates += 1
                else:
                    state.excluded += 1
            elif name == "ModelCommitted":
                state.phase, state.models = "closed", state.models + 1
                state.last_model = str(payload.get("sha256", ""))[:12]
            elif name == "RoundFailed":
                state.phase = f"failed ({(payload.get('failure') or {}).get('code', '')})"
            elif name == "RewardsMinted":
                state.phase = "rewarded"

    def render(self) -> Table:
        t = Table(title="rounds in progress (from the ledger's events)", title_justify="left")
        for column in (
            "profile",
            "round",
            "phase",
            "joined",
            "revealed",
            "updates",
            "excluded",
            "coordinator",
            "last model",
        ):
            t.add_column(column)
        with self._lock:
            for pid, s in self.states.items():
                t.add_row(
                    pid,
                    f"{s.round}/{self.rounds}",
                    s.phase,
                    str(s.joined),
                    str(s.revealed),
                    str(s.updates),
                    str(s.excluded),
                    s.coordinator,
                    s.last_model,
                )
        return t

    def _reader(self) -> FedspecLedger:
        # Deferred: the command line starts without it.
        from ledger_client import Consortium, open_ledger

        # Any member may read events; the first admin exists in every consortium (org1 need not).
        return open_ledger(
            self.settings.ledger, Consortium.load(self.settings.ledger.consortium_dir).default_admin
        )

    def _follow(self, reader: FedspecLedger, start: int) -> None:
        # Deferred: the command line starts without it.
        from ledger_client.errors import LedgerError

        network = reader.contract.network
        chaincode = self.settings.ledger.chaincode
        while not self._stop.is_set():
            try:
                for event in network.get_chaincode_events(
                    chaincode, start_block=start, timeout=0.5
                ):
                    payload = event.json()
                    if isinstance(payload, dict):
                        self.apply(event.name, payload)
                    start = event.block_number + 1
                    if self._stop.is_set():
                        return
            except LedgerError:
                # A Fabric peer may reset an events stream (RST_STREAM CANCEL, seen on a
                # loaded machine as the short window ends) or be restarting: the display is
                # only a view, so it resumes from the next unseen block instead of dying
                # with a traceback in the middle of the command's output.
                self._stop.wait(0.5)

    @contextmanager
    def live(self, console: Console) -> Iterator[None]:
        # The height is read here, before the work this display follows begins: read on the
        # follower thread, it could come after the first events (the round opening) and miss
        # them.
        reader = self._reader()
        follower = threading.Thread(
            target=self._follow, args=(reader, reader.height()), name="ledger-progress", daemon=True
        )
        follower.start()
        try:
            with Live(
                self.render(), console=console, refresh_per_second=4, transient=False
            ) as live:
                ticker = threading.Thread(target=self._tick, args=(live,), daemon=True)
                ticker.start()
                yield
                self._stop.set()
                live.update(self.render())
        finally:
            self._stop.set()
            follower.join(timeout=5)

    def _tick(self, live: Live) -> None:
        while not self._stop.wait(0.25):
            live.update(self.render())
