"""What every command needs: the settings, loaded once, and the identity to act as."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from fedspec.app.settings import Settings


class State:
    def __init__(self, home: Path | None) -> None:
        self._home = home

    @cached_property
    def settings(self) -> Settings:
        return Settings.load(self._home)

    def home_or(self, default: Path) -> Path:
        return self._home if self._home is not None else default

    def default_admin(self) -> str:
        from ledger_client import Consortium

        consortium = Consortium.load(self.settings.ledger.consortium_dir)
        first = consortium.members[0]
        return f"{first.name}/{first.admins[0]}"
