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
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
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
    fingerprint: dict[str, Any] | None = None  # as written by `fedspec data add`

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


def evaluation_data_dir(root: Path | str, dataset: str) -> Path:
    """``<root>/<dataset>``, refusing names that could leave ``root``."""
    return Path(root) / _safe("dataset", dataset)


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
        fingerprint=meta.get("fingerprint") if isinstance(meta.get("fingerprint"), dict) else None,
    )


def split_node_rows(
    dataset: Dataset, *, valid_fraction: float = 0.2, seed: int = 0
) -> tuple[Dataset, Dataset]:
    """A node's rows as ``(train, valid)``, split as :func:`materialize_partitions` splits."""
    info = dataset.info
    train_rows, valid_rows = split_rows(
        dataset.y,
        fraction=valid_fraction,
        seed=seed,
        groups=dataset.keys.get(info.group_key) if info.group_key else None,
        stratify=info.task_type == "classification",
    )
    return dataset.subset(train_rows), dataset.subset(valid_rows)


def write_node_dataset(
    train: Dataset,
    valid: Dataset,
    root: Path | str,
    org_id: str,
    node_id: str,
    *,
    meta: Mapping[str, Any],
) -> Path:
    """Write (or replace) one node's directory for ``train.info.name``, in the layout
    :func:`load_node_data` reads, with ``meta`` added to its ``dataset.json``. All or
    nothing: the files are written beside it and the directory is renamed into place."""
    directory = node_data_dir(root, org_id, node_id, train.info.name)

    def fill(staging: Path) -> None:
        _write_arrays(staging / "train.npz", train.X, train.y)
        _write_arrays(staging / "valid.npz", valid.X, valid.y)
        rows = {"train": train.n_rows, "valid": valid.n_rows}
        base = {"info": train.info.to_json_dict(), "node_id": node_id, "org_id": org_id}
        _write_meta(staging, {**meta, **base, "rows": rows})

    _replace_directory(directory, fill)
    return directory


def write_evaluation_set(dataset: Dataset, root: Path | str, *, meta: Mapping[str, Any]) -> Path:
    """Write (or replace) ``<root>/<dataset>`` as :func:`write_holdout` does, every row a
    test row, with ``meta`` added; all or nothing, like :func:`write_node_dataset`."""
    directory = evaluation_data_dir(root, dataset.info.name)

    def fill(staging: Path) -> None:
        _write_arrays(staging / "test.npz", dataset.X, dataset.y)
        body = {"info": dataset.info.to_json_dict(), "rows": {"test": dataset.n_rows}}
        _write_meta(staging, {**meta, **body})

    _replace_directory(directory, fill)
    return directory


def _replace_directory(target: Path, fill: Callable[[Path], None]) -> None:
    # Readers look for dataset.json in directories that do not start with "."; the staging
    # and retired copies do, so a reader sees the old directory or the new one, whole.
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".new"))
    retired = target.parent / f"{staging.name[: -len('.new')]}.old"
    try:
        fill(staging)
        if target.exists():
            os.replace(target, retired)
        os.replace(staging, target)
    except BaseException:
        if retired.exists() and not target.exists():
            os.replace(retired, target)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(retired, ignore_errors=True)


def read_dataset_meta(directory: Path | str) -> dict[str, Any]:
    """The ``dataset.json`` of a node's or an evaluation directory."""
    return _read_meta(Path(directory))


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
