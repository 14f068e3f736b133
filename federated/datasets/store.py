"""Each node's data in its own directory, and the coordinator's held-out test set apart.

Layout under a caller-chosen root (nothing is written anywhere else)::

    <root>/<org>/<node>/<dataset>/train.npz   X, y        (the node's training rows)
                                  valid.npz   X, y        (its local validation rows)
                                  dataset.json            (metadata, no data)
    <holdout_root>/<dataset>/test.npz, dataset.json       (coordinator's evaluation)

Arrays are ``.npz`` read with ``allow_pickle=False`` and metadata is JSON: neither can run
code when loaded. A node's code reads only its own directory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from federated.datasets.info import Dataset, DatasetInfo
from federated.datasets.split import split_rows
from federated.errors import DatasetError, EmptyPartitionError
from federated.types import NDArray

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_META = "dataset.json"


@dataclass(frozen=True)
class NodeData:
    """One node's local data as read from its directory."""

    node_id: str
    org_id: str
    directory: Path
    train: Dataset
    valid: Dataset

    @property
    def info(self) -> DatasetInfo:
        return self.train.info


def _safe(kind: str, name: str) -> str:
    if not _SAFE_NAME.match(name) or ".." in name:
        raise DatasetError(f"{kind} {name!r} is not a safe directory name")
    return name


def node_data_dir(root: Path | str, org_id: str, node_id: str, dataset: str) -> Path:
    """``<root>/<org>/<node>/<dataset>``, refusing names that could leave ``root``."""
    return (
        Path(root) / _safe("org id", org_id) / _safe("node id", node_id) / _safe("dataset", dataset)
    )


def _write_arrays(path: Path, X: NDArray, y: NDArray) -> None:
    with path.open("wb") as fh:
        np.savez_compressed(fh, X=np.ascontiguousarray(X), y=np.ascontiguousarray(y))


def _read_arrays(path: Path) -> tuple[NDArray, NDArray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            X, y = archive["X"], archive["y"]
    except (OSError, KeyError, ValueError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc
    return X, y


def _write_meta(directory: Path, meta: Mapping[str, Any]) -> None:
    (directory / _META).write_text(json.dumps(meta, sort_keys=True, indent=1), encoding="utf-8")


def _read_meta(directory: Path) -> dict[str, Any]:
    try:
        meta = json.loads((directory / _META).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read metadata in {directory}: {exc}") from exc
    if not isinstance(meta, dict):
        raise DatasetError(f"metadata in {directory} is not an object")
    return meta


def materialize_partitions(
    dataset: Dataset,
    partitions: Mapping[str, NDArray],
    root: Path | str,
    *,
    orgs: Mapping[str, str] | None = None,
    valid_fraction: float = 0.2,
    seed: int = 0,
) -> dict[str, Path]:
    """Write each node's rows (split into train and local validation) into its directory.

    ``orgs`` maps node id → organization id (default: each node is its own organization).
    Returns ``{node_id: directory}``.
    """
    info = dataset.info
    groups_key = info.group_key
    written: dict[str, Path] = {}
    for node_id, rows in sorted(partitions.items()):
        if len(rows) == 0:
            raise EmptyPartitionError("partition has no rows", node_id=node_id)
        org_id = orgs[node_id] if orgs is not None else node_id
        part = dataset.subset(np.asarray(rows))
        train_rows, valid_rows = split_rows(
            part.y,
            fraction=valid_fraction,
            seed=seed,
            groups=part.keys.get(groups_key) if groups_key else None,
            stratify=info.task_type == "classification",
        )
        directory = node_data_dir(root, org_id, node_id, info.name)
        directory.mkdir(parents=True, exist_ok=True)
        _write_arrays(directory / "train.npz", part.X[train_rows], part.y[train_rows])
        _write_arrays(directory / "valid.npz", part.X[valid_rows], part.y[valid_rows])
        _write_meta(
            directory,
            {
                "info": info.to_json_dict(),
                "node_id": node_id,
                "org_id": org_id,
                "rows": {"train": int(train_rows.size), "valid": int(valid_rows.size)},
            },
        )
        written[node_id] = directory
    return written


def load_node_data(directory: Path | str) -> NodeData:
    """Read one node's directory (as written by :func:`materialize_partitions`)."""
    directory = Path(directory)
    meta = _read_meta(directory)
    info = DatasetInfo.from_json_dict(meta.get("info", {}))
    X_train, y_train = _read_arrays(directory / "train.npz")
    X_valid, y_valid = _read_arrays(directory / "valid.npz")
    node_id = str(meta.get("node_id", ""))
    if X_train.shape[0] == 0:
        raise EmptyPartitionError(f"no training rows in {directory}", node_id=node_id)
    return NodeData(
        node_id=node_id,
        org_id=str(meta.get("org_id", "")),
        directory=directory,
        train=Dataset(X=X_train, y=y_train, info=info),
        valid=Dataset(X=X_valid, y=y_valid, info=info),
    )


def write_holdout(dataset: Dataset, rows: NDArray, root: Path | str) -> Path:
    """Write the coordinator's test rows to ``<root>/<dataset>``; keep ``root`` apart from
    the node directories."""
    directory = Path(root) / _safe("dataset", dataset.info.name)
    directory.mkdir(parents=True, exist_ok=True)
    part = dataset.subset(np.asarray(rows))
    _write_arrays(directory / "test.npz", part.X, part.y)
    _write_meta(directory, {"info": dataset.info.to_json_dict(), "rows": {"test": part.n_rows}})
    return directory


def load_holdout(directory: Path | str) -> Dataset:
    """Read the coordinator's test rows written by :func:`write_holdout`."""
    directory = Path(directory)
    info = DatasetInfo.from_json_dict(_read_meta(directory).get("info", {}))
    X, y = _read_arrays(directory / "test.npz")
    return Dataset(X=X, y=y, info=info)
