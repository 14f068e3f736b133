"""One settings object selects backends and endpoints: switching is configuration, not code.

Sources, later ones winning: built-in defaults (everything embedded under ``.fedspec/``),
``<home>/fedspec.toml``, then environment variables:

======================== =====================================================
``FEDSPEC_HOME``          the data directory (default ``.fedspec``)
``FEDSPEC_LEDGER``        ``embedded`` (default) or ``fabric``
``FEDSPEC_LEDGER_PATH``   embedded ledger file (default ``<home>/ledger.sqlite``)
``FEDSPEC_CONSORTIUM``    consortium folder (default ``<home>/consortium``)
``FEDSPEC_FABRIC_PEERS``  ``org1=127.0.0.1:7051,org2=…`` Gateway endpoints (default: those
                          of ``fedspec network up`` in ``<home>/network``, else this
                          member's own peer, ``fedspec node up``, in ``<home>/node``)
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
from ledger_client.config import BACKENDS, LedgerConfig


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
        home_source = "--home" if home else "FEDSPEC_HOME"
        root = usable_path(home or env.get("FEDSPEC_HOME") or ".fedspec", home_source).absolute()
        doc = _read_toml(root / "fedspec.toml")
        ledger_doc = _table(doc, "ledger")
        backend = env.get("FEDSPEC_LEDGER") or _text(ledger_doc, "ledger", "backend") or "embedded"
        if backend not in BACKENDS:
            raise ConfigError(f"ledger backend {backend!r:.80} is not one of {', '.join(BACKENDS)}")
        peers_text = env.get("FEDSPEC_FABRIC_PEERS")
        peers = (
            _parse_peers(peers_text)
            if peers_text
            else {str(k): str(v) for k, v in _table(ledger_doc, "fabric_peers", "ledger.").items()}
        )
        if backend == "fabric" and not peers:
            # `fedspec network up` records its peers' endpoints in the home's network folder,
            # `fedspec node up` this member's own peer in its node folder.
            peers = _network_peers(root / "network" / "network.json") or _network_peers(
                root / "node" / "node.json"
            )
        ledger = LedgerConfig(
            backend=backend,
            ledger_path=usable_path(
                env.get("FEDSPEC_LEDGER_PATH")
                or _text(ledger_doc, "ledger", "path")
                or root / "ledger.sqlite",
                "FEDSPEC_LEDGER_PATH" if env.get("FEDSPEC_LEDGER_PATH") else "[ledger] path",
            ),
            consortium_dir=usable_path(
                env.get("FEDSPEC_CONSORTIUM")
                or _text(ledger_doc, "ledger", "consortium")
                or root / "consortium",
                "FEDSPEC_CONSORTIUM" if env.get("FEDSPEC_CONSORTIUM") else "[ledger] consortium",
            ),
            channel=_text(ledger_doc, "ledger", "channel") or "fedspec",
            chaincode=_text(ledger_doc, "ledger", "chaincode") or "fedspec",
            fabric_peers=peers,
        )
        mlflow_default = f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"
        return cls(
            home=root,
            ledger=ledger,
            mlflow_tracking_uri=env.get("MLFLOW_TRACKING_URI")
            or _text(_table(doc, "mlflow"), "mlflow", "tracking_uri")
            or mlflow_default,
            prefect_api_url=env.get("PREFECT_API_URL")
            or _text(_table(doc, "prefect"), "prefect", "api_url"),
            specialization=SpecializationSettings.from_toml(_table(doc, "specialization")),
        )


# The usual Linux limits (NAME_MAX, PATH_MAX): a longer name fails in the OS with
# ENAMETOOLONG, far from the option that named it.
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4095


def usable_path(value: Path | str, source: str) -> Path:
    """``value`` as a Path, or :class:`ConfigError` naming ``source`` (the option, variable
    or setting it came from) when no file system could take it."""
    try:
        raw = os.fsencode(value)
    except UnicodeError:
        raise ConfigError(f"{source}: the path cannot be encoded for this file system") from None
    if b"\x00" in raw:
        raise ConfigError(f"{source}: a path cannot hold a NUL character")
    if len(raw) > MAX_PATH_BYTES:
        raise ConfigError(f"{source}: the path is longer than {MAX_PATH_BYTES} bytes")
    longest = max(raw.split(b"/"), key=len)
    if len(longest) > MAX_NAME_BYTES:
        raise ConfigError(
            f"{source}: the path component {os.fsdecode(longest)[:40]!r}… is longer than "
            f"{MAX_NAME_BYTES} bytes"
        )
    return Path(value)


def _table(doc: Mapping[str, Any], key: str, prefix: str = "") -> dict[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"fedspec.toml: [{prefix}{key}] must be a table")
    return value


def _text(table: Mapping[str, Any], where: str, key: str) -> str | None:
    value = table.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"fedspec.toml: [{where}] {key} must be a string")
    return value or None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes().decode("utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read {path}: it is not UTF-8 text") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"cannot read {path}: it nests too deeply") from None


def _network_peers(path: Path) -> dict[str, str]:
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(doc, dict) or not isinstance(doc.get("peers"), dict):
        return {}
    return {str(k): str(v) for k, v in doc["peers"].items()} if doc.get("status") == "ready" else {}


def _parse_peers(text: str) -> dict[str, str]:
    peers = {}
    for item in text.split(","):
        org, sep, endpoint = item.strip().partition("=")
        if not sep or not org or ":" not in endpoint:
            raise ConfigError(f"FEDSPEC_FABRIC_PEERS entry {item!r:.80} is not org=host:port")
        peers[org] = endpoint
    return peers
