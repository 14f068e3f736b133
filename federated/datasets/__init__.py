"""Real datasets that ship inside pip packages, partitioners, and per-node storage.

Loaders return a :class:`Dataset` (float64 rows, labels, natural keys) whose
:class:`DatasetInfo` carries the profile vocabulary (characteristics, feature schema, task).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from federated.datasets.files import LoadedFile, read_data_file
from federated.datasets.fingerprint import dataset_fingerprint, schema_sha256
from federated.datasets.flights import load_flights
from federated.datasets.images import load_digits_8x8, load_mnist_8x8, load_mnist_28x28
from federated.datasets.info import Dataset, DatasetInfo
from federated.datasets.partition import (
    Partition,
    check_partition,
    partition_dirichlet,
    partition_iid,
    partition_natural,
)
from federated.datasets.rdata import load_chem97, load_tv16
from federated.datasets.split import holdout_split, split_rows
from federated.datasets.store import (
    NodeData,
    evaluation_data_dir,
    load_holdout,
    load_node_data,
    materialize_partitions,
    node_data_dir,
    read_dataset_meta,
    split_node_rows,
    write_evaluation_set,
    write_holdout,
    write_node_dataset,
)
from federated.datasets.watch import load_watch_windows
from federated.errors import DatasetError

LOADERS: dict[str, Callable[..., Dataset]] = {
    "digits-8x8": load_digits_8x8,
    "mnist-28x28": load_mnist_28x28,
    "mnist-8x8": load_mnist_8x8,
    "watch": load_watch_windows,
    "flights": load_flights,
    "chem97": load_chem97,
    "tv16": load_tv16,
}


def load_dataset(name: str, **options: Any) -> Dataset:
    """Load a dataset by catalog name (``digits-8x8``, ``mnist-28x28``, ``watch``,
    ``flights``, ``chem97``, ``tv16``); ``options`` go to its loader (``sensor=``,
    ``sample_size=``…)."""
    try:
        loader = LOADERS[name]
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}; known: {sorted(LOADERS)}") from None
    return loader(**options)


__all__ = [
    "LOADERS",
    "Dataset",
    "DatasetInfo",
    "LoadedFile",
    "NodeData",
    "Partition",
    "check_partition",
    "dataset_fingerprint",
    "evaluation_data_dir",
    "holdout_split",
    "load_chem97",
    "load_dataset",
    "load_digits_8x8",
    "load_flights",
    "load_holdout",
    "load_mnist_8x8",
    "load_mnist_28x28",
    "load_node_data",
    "load_tv16",
    "load_watch_windows",
    "materialize_partitions",
    "node_data_dir",
    "partition_dirichlet",
    "partition_iid",
    "partition_natural",
    "read_data_file",
    "read_dataset_meta",
    "schema_sha256",
    "split_node_rows",
    "split_rows",
    "write_evaluation_set",
    "write_holdout",
    "write_node_dataset",
]
