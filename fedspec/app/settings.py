"""One settings object selects backends and endpoints: switching is configuration, not code.

Sources, later ones winning: built-in defaults (everything embedded under ``.fedspec/``),
``<home>/fedspec.toml``, then environment variables:

======================== =====================================================
``FEDSPEC_HOME``          the data directory (default ``.fedspec``)
``FEDSPEC_LEDGER``        ``embedded`` (default) or ``fabric``
``FEDSPEC_LEDGER_PATH``   embedded ledger file (default ``<home>/ledger.sqlite``)
``FEDSPEC_CONSORTIUM``    consortium folder (default ``<home>/consortium``)
``FEDSPEC_FABRIC_PEERS``  ``org1=127.0.0.1:7051,org2=…`` Gateway endpoints (default: those
                          of ``fedspec network up`` in ``<home>/network``)
``MLFLOW_TRACKING_URI``   MLflow server (default SQLite in ``<home>/mlflow``)
``PREFECT_API_URL``       Prefect server (default: Prefect's local API)
======================== =====================================================

``[specialization]`` in ``fedspec.toml`` sets when fedspec proposes new profiles
(:class:`SpecializationSettings`).
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from fedspec.errors import ConfigError
from ledger_client.backends import BACKENDS, LedgerConfig


@dataclass(frozen=True)
class SpecializationSettings:
    """When fedspec proposes new profiles (``[specialization]`` in ``fedspec.toml``).

    Demand: a model query whose best eligible profile scores below ``demand_score`` is
    recorded on the ledger; a characteristic set asked ``demand_min_requests`` times by
    ``demand_min_requesters`` identities is proposed as a profile. Divergence: the thresholds
    of :class:`federated.divergence.SplitCriteria` and :class:`~federated.divergence.LossCriteria`,
    and how many checked rounds in a row must show the same split (``split_patience``).
    """

    demand_score: float = 0.5
    demand_min_requests: int = 3
    demand_min_requesters: int = 2
    split_max_norm_ratio: float = 0.75
    split_max_cross_similarity: float = 0.3
    split_min_gap: float = 0.2
    split_min_cluster_size: int = 2
    split_patience: int = 2
    loss_z: float = 3.0
    loss_min_relative: float = 0.25
    loss_patience: int = 3

    @classmethod
    def from_toml(cls, table: Mapping[str, Any]) -> SpecializationSettings:
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(table) - set(known))
        if unknown:
            raise ConfigError(f"[specialization] has unknown keys: {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for key, value in table.items():
            kind = int if known[key] in ("int", int) else float
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"[specialization] {key} must be a number")
            if kind is int and not isinstance(value, int):
                raise ConfigError(f"[specialization] {key} must be an integer")
            if value < 0:
                raise ConfigError(f"[specialization] {key} must not be negative")
            values[key] = kind(value)
        return cls(**values)


@dataclass(frozen=True)
class Settings:
    home: Path
    ledger: LedgerConfig
    mlflow_tracking_uri: str
    prefect_api_url: str | None
    specialization: SpecializationSettings = field(default_factory=SpecializationSettings)

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @classmethod
    def load(cls, home: Path | str | None = None, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        root = Path(home or env.get("FEDSPEC_HOME") or ".fedspec").absolute()
        doc = _read_toml(root / "fedspec.toml")
        ledger_doc = doc.get("ledger", {})
        backend = env.get("FEDSPEC_LEDGER") or ledger_doc.get("backend") or "embedded"
        if backend not in BACKENDS:
            raise ConfigError(f"ledger backend {backend!r} is not one of {', '.join(BACKENDS)}")
        peers_text = env.get("FEDSPEC_FABRIC_PEERS")
        peers = _parse_peers(peers_text) if peers_text else dict(ledger_doc.get("fabric_peers", {}))
        if backend == "fabric" and not peers:
            # `fedspec network up` records its peers' endpoints in the home's network folder.
            peers = _network_peers(root / "network" / "network.json")
        ledger = LedgerConfig(
            backend=backend,
            ledger_path=Path(
                env.get("FEDSPEC_LEDGER_PATH") or ledger_doc.get("path") or root / "ledger.sqlite"
            ),
            consortium_dir=Path(
                env.get("FEDSPEC_CONSORTIUM") or ledger_doc.get("consortium") or root / "consortium"
            ),
            channel=str(ledger_doc.get("channel", "fedspec")),
            chaincode=str(ledger_doc.get("chaincode", "fedspec")),
            fabric_peers=peers,
        )
        mlflow_default = f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"
        return cls(
            home=root,
            ledger=ledger,
            mlflow_tracking_uri=env.get("MLFLOW_TRACKING_URI")
            or doc.get("mlflow", {}).get("tracking_uri")
            or mlflow_default,
            prefect_api_url=env.get("PREFECT_API_URL") or doc.get("prefect", {}).get("api_url"),
            specialization=SpecializationSettings.from_toml(doc.get("specialization", {})),
        )


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc


def _network_peers(path: Path) -> dict[str, str]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return (
        {str(k): str(v) for k, v in doc.get("peers", {}).items()}
        if doc.get("status") == "ready"
        else {}
    )


def _parse_peers(text: str) -> dict[str, str]:
    peers = {}
    for item in text.split(","):
        org, sep, endpoint = item.strip().partition("=")
        if not sep or not org or ":" not in endpoint:
            raise ConfigError(f"FEDSPEC_FABRIC_PEERS entry {item!r} is not org=host:port")
        peers[org] = endpoint
    return peers
