"""A member's own data: a file mapped onto a profile, validated, stored for one of its nodes
(or as the consortium's evaluation set of a profile); what this home holds; removal.

The profile comes from the ledger; the file is read and checked against it
(:func:`federated.datasets.read_data_file`), then validated with Great Expectations by the
suite a node runs before each round, on the same training rows. Only then is anything
written, into a directory beside the target renamed into place: a refused file leaves the
home as it was. Nothing here writes to the ledger; the fingerprint stored with the data is
what ``fedspec round volunteer`` records there.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from federated.datasets import (
    Dataset,
    LoadedFile,
    dataset_fingerprint,
    evaluation_data_dir,
    node_data_dir,
    read_data_file,
    read_dataset_meta,
    split_node_rows,
    write_evaluation_set,
    write_node_dataset,
)
from federated.errors import DatasetError, DataValidationError
from federated.validation import check_local_data, explain
from fedspec.app.settings import Settings
from ledger_client import Consortium, open_ledger
from ledger_client.errors import IdentityError

VALID_FRACTION = 0.2  # a node's local validation rows, as the demo's directories hold
SPLIT_SEED = 0
META = "dataset.json"


@dataclass(frozen=True)
class AddedData:
    """What ``data add`` wrote: where, how many rows, the fingerprint and the validation."""

    node: str | None  # None: the consortium's evaluation set of the profile
    profile: str
    file: str
    format: str
    directory: str
    rows: dict[str, int]
    fingerprint: dict[str, Any]
    ignored: list[str]
    validation: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def own_nodes(settings: Settings) -> list[str]:
    """The nodes whose keys this home holds (every node in the one-machine shortcut)."""
    consortium = Consortium.load(settings.ledger.consortium_dir)
    return [ref for ref in consortium.node_refs() if ref.partition("/")[0] in consortium.own]


def _check_own(settings: Settings, node: str) -> None:
    own = own_nodes(settings)
    if node not in own:
        raise IdentityError(
            f"{node} is not a node of this home (its nodes: {', '.join(own) or 'none'})"
        )


def _profile_spec(settings: Settings, identity: str, profile_id: str) -> dict[str, Any]:
    return open_ledger(settings.ledger, identity).get_profile(profile_id).spec


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _validated(file: Path, data: Dataset, spec: Mapping[str, Any]) -> dict[str, Any]:
    """The summary of the suite a node runs before each round; refused when it fails."""
    names = data.info.feature_names
    outcome = check_local_data(data.X, data.y, spec, feature_names=names)
    if not outcome.summary.success:
        reason = explain(outcome, data.X, spec, names)
        raise DataValidationError(f"{file}: {reason}", result=outcome.result)
    return {"sha256": outcome.summary.sha256, **outcome.summary.as_dict(), "at": _now()}


def _check_training_rows(file: Path, total: int, train: Dataset) -> None:
    needed = train.info.min_rows
    if train.n_rows < needed:
        raise DatasetError(
            f"{file}: {total} rows leave {train.n_rows} for training once "
            f"{VALID_FRACTION:.0%} are kept for local validation; the profile asks for at "
            f"least {needed}"
        )


def _source_meta(file: Path, loaded: LoadedFile, spec_profile: str) -> dict[str, Any]:
    return {
        "profile": spec_profile,
        "source": {"file": file.name, "format": loaded.format, "ignored": list(loaded.ignored)},
        "added_at": _now(),
    }


def add_node_data(settings: Settings, node: str, profile_id: str, file: Path) -> AddedData:
    """Map ``file`` onto ``profile_id`` and store it as ``node``'s data for that profile."""
    _check_own(settings, node)
    spec = _profile_spec(settings, node, profile_id)
    loaded = read_data_file(file, spec, profile_id)
    train, valid = split_node_rows(loaded.dataset, valid_fraction=VALID_FRACTION, seed=SPLIT_SEED)
    _check_training_rows(file, loaded.dataset.n_rows, train)
    validation = _validated(file, train, spec)  # the rows the node validates every round
    fingerprint = dataset_fingerprint(
        np.concatenate([train.X, valid.X]), np.concatenate([train.y, valid.y]), spec
    )
    meta = {
        **_source_meta(file, loaded, profile_id),
        "fingerprint": fingerprint,
        "validation": validation,
    }
    org, _, name = node.partition("/")
    directory = write_node_dataset(train, valid, settings.data_dir / "nodes", org, name, meta=meta)
    return AddedData(
        node=node,
        profile=profile_id,
        file=str(file),
        format=loaded.format,
        directory=str(directory),
        rows={"train": train.n_rows, "valid": valid.n_rows},
        fingerprint=fingerprint,
        ignored=list(loaded.ignored),
        validation=validation,
    )


def add_evaluation_data(settings: Settings, profile_id: str, file: Path) -> AddedData:
    """Map ``file`` onto ``profile_id`` and store it as the profile's held-out evaluation set
    (what the elected coordinator scores each round's model on)."""
    admin = Consortium.load(settings.ledger.consortium_dir).default_admin
    spec = _profile_spec(settings, admin, profile_id)
    loaded = read_data_file(file, spec, profile_id)
    validation = _validated(file, loaded.dataset, spec)
    fingerprint = dataset_fingerprint(loaded.dataset.X, loaded.dataset.y, spec)
    meta = {
        **_source_meta(file, loaded, profile_id),
        "fingerprint": fingerprint,
        "validation": validation,
    }
    directory = write_evaluation_set(loaded.dataset, settings.data_dir / "evaluation", meta=meta)
    return AddedData(
        node=None,
        profile=profile_id,
        file=str(file),
        format=loaded.format,
        directory=str(directory),
        rows={"test": loaded.dataset.n_rows},
        fingerprint=fingerprint,
        ignored=list(loaded.ignored),
        validation=validation,
    )


# ---------------------------------------------------------------------------- reading
def _entry(directory: Path, node: str | None) -> dict[str, Any]:
    meta = read_dataset_meta(directory)
    try:
        rows = {str(k): int(v) for k, v in (meta.get("rows") or {}).items()}
    except (AttributeError, TypeError, ValueError):
        raise DatasetError(f"malformed row counts in {directory / META}") from None
    return {
        "node": node,
        "dataset": directory.name,
        "profile": meta.get("profile"),  # absent in directories the demo wrote
        "rows": sum(rows.values()),
        "split": rows,
        "fingerprint": meta.get("fingerprint"),
        "added_at": meta.get("added_at"),
        "source": meta.get("source"),
        "directory": str(directory),
    }


def _dataset_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if not p.name.startswith(".") and (p / META).is_file())


def list_data(settings: Settings) -> list[dict[str, Any]]:
    """Every dataset this home holds: each node's, then the evaluation sets (node ``None``)."""
    nodes_root = settings.data_dir / "nodes"
    found = []
    for org in _subfolders(nodes_root):
        for node in _subfolders(org):
            found += [_entry(d, f"{org.name}/{node.name}") for d in _dataset_dirs(node)]
    found += [_entry(d, None) for d in _dataset_dirs(settings.data_dir / "evaluation")]
    return found


def _subfolders(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def data_directory(settings: Settings, node: str | None, profile_id: str) -> Path:
    """Where ``node``'s data for ``profile_id`` lives (the evaluation set's, for ``None``);
    refused when there is none."""
    if node is None:
        directory = evaluation_data_dir(settings.data_dir / "evaluation", profile_id)
    else:
        org, _, name = node.partition("/")
        directory = node_data_dir(settings.data_dir / "nodes", org, name, profile_id)
    if not (directory / META).is_file():
        whose = "no evaluation set" if node is None else f"{node} holds no data"
        raise DatasetError(f"{whose} for {profile_id} in this home (under {directory.parent})")
    return directory


def show_data(settings: Settings, node: str | None, profile_id: str) -> dict[str, Any]:
    """One dataset: its schema, rows, label counts, fingerprint and last validation."""
    directory = data_directory(settings, node, profile_id)
    entry = _entry(directory, node)
    meta = read_dataset_meta(directory)
    info = meta.get("info") or {}
    labels: list[Any] = []
    for part in entry["split"]:
        try:
            with np.load(directory / f"{part}.npz", allow_pickle=False) as archive:
                labels.append(archive["y"])
        except (OSError, KeyError, ValueError) as exc:
            raise DatasetError(f"cannot read {directory / part}.npz: {exc}") from None
    values, counts = np.unique(np.concatenate(labels or [np.zeros(0)]), return_counts=True)
    classification = info.get("task_type") == "classification"
    return {
        **entry,
        "characteristics": info.get("characteristics"),
        "feature_schema": info.get("feature_schema"),
        "task_type": info.get("task_type"),
        "label_counts": (
            {_label(v): int(c) for v, c in zip(values, counts, strict=True)}
            if classification
            else None
        ),
        "validation": meta.get("validation"),
    }


def _label(value: Any) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def remove_data(settings: Settings, node: str | None, profile_id: str) -> Path:
    """Delete ``node``'s data for ``profile_id`` (or the evaluation set); the ledger keeps
    the node's volunteering, which ``round volunteer --withdraw`` ends."""
    directory = data_directory(settings, node, profile_id)
    shutil.rmtree(directory)
    return directory
