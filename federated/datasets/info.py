"""What a loaded dataset is: arrays plus the metadata a profile is built from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from federated.errors import DatasetError
from federated.types import NDArray

Characteristic = str | int | bool | list[str]
TaskType = Literal["classification", "regression"]


@dataclass(frozen=True)
class DatasetInfo:
    """Metadata of a dataset, in the vocabulary of a specialization profile.

    ``characteristics`` match the profile's ``characteristics`` (what clients search by),
    ``feature_schema`` its ``feature_schema`` (shape or named columns with ranges; bounds are
    exact decimal strings, as on the ledger) and :meth:`task` its ``task``.
    ``group_key`` names the natural key whose rows are not independent (all windows cut from
    one recording): splits keep such a group on one side so validation does not leak.
    """

    name: str
    feature_names: tuple[str, ...]
    task_type: TaskType
    classes: tuple[int, ...] | None
    characteristics: Mapping[str, Characteristic]
    feature_schema: Mapping[str, Any]
    min_rows: int = 1
    group_key: str | None = None

    def task(self) -> dict[str, Any]:
        """The profile's ``task`` object for this dataset."""
        task: dict[str, Any] = {"type": self.task_type, "min_rows": self.min_rows}
        if self.classes is not None:
            task["labels"] = list(self.classes)
        return task

    def profile_spec(self) -> dict[str, Any]:
        """The data part of a profile: ``characteristics``, ``feature_schema`` and ``task``."""
        return {
            "characteristics": {
                k: list(v) if isinstance(v, list) else v for k, v in self.characteristics.items()
            },
            "feature_schema": dict(self.feature_schema),
            "task": self.task(),
        }

    def to_json_dict(self) -> dict[str, Any]:
        """Plain JSON (written beside each node's arrays)."""
        return {
            "name": self.name,
            "feature_names": list(self.feature_names),
            "task_type": self.task_type,
            "classes": None if self.classes is None else list(self.classes),
            "characteristics": dict(self.characteristics),
            "feature_schema": dict(self.feature_schema),
            "min_rows": self.min_rows,
            "group_key": self.group_key,
        }

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> DatasetInfo:
        try:
            classes = data["classes"]
            return cls(
                name=str(data["name"]),
                feature_names=tuple(str(n) for n in data["feature_names"]),
                task_type=data["task_type"],
                classes=None if classes is None else tuple(int(c) for c in classes),
                characteristics=dict(data["characteristics"]),
                feature_schema=dict(data["feature_schema"]),
                min_rows=int(data["min_rows"]),
                group_key=data.get("group_key"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"malformed dataset metadata: {exc}") from exc


@dataclass(frozen=True)
class Dataset:
    """Rows ``X`` (float64, one row per example), labels ``y`` and per-row natural keys.

    ``keys`` maps a natural-key name (``"subject"``, ``"origin"``, ``"carrier"``…) to one
    string per row; partitioners and group-aware splits read them.
    """

    X: NDArray
    y: NDArray
    info: DatasetInfo
    keys: Mapping[str, NDArray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.X.shape[0]
        if self.X.ndim != 2 or self.y.shape != (n,):
            raise DatasetError(
                f"{self.info.name}: X must be 2-D and y 1-D of equal length, "
                f"got {self.X.shape} and {self.y.shape}"
            )
        if self.X.shape[1] != len(self.info.feature_names):
            raise DatasetError(f"{self.info.name}: feature names do not match X's width")
        for key, values in self.keys.items():
            if values.shape != (n,):
                raise DatasetError(f"{self.info.name}: key {key!r} has {values.shape[0]} rows")

    @property
    def n_rows(self) -> int:
        return int(self.X.shape[0])

    def subset(self, rows: NDArray) -> Dataset:
        """The rows at integer positions ``rows``, with their keys."""
        idx = np.asarray(rows, dtype=np.int64)
        return Dataset(
            X=self.X[idx],
            y=self.y[idx],
            info=self.info,
            keys={k: v[idx] for k, v in self.keys.items()},
        )
