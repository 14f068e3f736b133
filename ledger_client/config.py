"""Which ledger to open: the backend and where its files or peers are."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

BACKENDS = ("embedded", "fabric")


@dataclass(frozen=True)
class LedgerConfig:
    backend: str = "embedded"
    ledger_path: Path = Path(".fedspec/ledger.sqlite")
    consortium_dir: Path = Path(".fedspec/consortium")
    channel: str = "fedspec"
    chaincode: str = "fedspec"
    # Fabric: peer Gateway endpoints by organization, e.g. {"org1": "127.0.0.1:7051"}.
    fabric_peers: dict[str, str] = field(default_factory=dict)
