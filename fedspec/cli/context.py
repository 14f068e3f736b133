"""What every command needs: the settings, loaded once, and the identity to act as."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from fedspec.app.settings import Settings

if TYPE_CHECKING:
    from ledger_client import FedspecLedger


class State:
    def __init__(self, home: Path | None) -> None:
        self._home = home

    @cached_property
    def settings(self) -> Settings:
        return Settings.load(self._home)

    def home_or(self, default: Path) -> Path:
        return self._home if self._home is not None else default

    def default_admin(self) -> str:
        # Deferred, as in every command: the ledger client loads protobuf and gRPC modules
        # that `fedspec --help` and completion never need.
        from ledger_client import Consortium

        return Consortium.load(self.settings.ledger.consortium_dir).default_admin

    @property
    def checkpoints(self) -> Path:
        """Where this member keeps its signed checkpoints (rollback evidence)."""
        # Deferred: the command line starts without it.
        from ledger_client.checkpoints import FOLDER

        return self.settings.home / FOLDER

    def ledger(self, as_identity: str | None = None) -> FedspecLedger:
        """The ledger as ``as_identity`` (``--as``), or as the default admin, checked against
        that identity's checkpoint in the home (``LEDGER_ROLLED_BACK`` when the ledger is
        shorter than, or diverges from, it) and the checkpoint advanced to the head, and
        again after each write the command commits."""
        # Deferred: the command line starts without it.
        from ledger_client import open_ledger
        from ledger_client.checkpoints import CheckpointedLedger

        opened = open_ledger(self.settings.ledger, as_identity or self.default_admin())
        ledger = CheckpointedLedger(opened.contract, self.checkpoints, retries=opened.retries)
        ledger.check()
        return ledger
