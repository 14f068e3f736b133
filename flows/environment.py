"""Where a node's work runs: its identity, its ledger connection, its data, its private state.

In the embedded mode every node of the demo runs in one process with one ``FEDSPEC_HOME``;
in the distributed mode each organization's worker has its own home, keys and data
directory, and the same code runs there. A node reads only its own data directory.

Layout under ``<home>``::

    consortium/                      identities (MSP folders)
    ledger.sqlite                    the embedded ledger
    mlflow/                          the embedded MLflow store and artifacts
    data/nodes/<org>/<node>/<dataset>/   each node's local data (train, valid)
    data/evaluation/<dataset>/       the profiles' held-out evaluation sets
    state/<org>/<node>/              a node's private state (election secrets, updates,
                                     SCAFFOLD's c_i per profile)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from federated.datasets import (
    NodeData,
    dataset_fingerprint,
    load_holdout,
    load_node_data,
    schema_sha256,
)
from federated.datasets.info import Dataset
from federated.errors import DatasetError
from federated.plan import matches
from fedspec.app.settings import Settings
from fedspec.fileio import write_atomic
from fedspec.lazy import LazyProperty
from flows.timing import TimedProxy
from ledger_client import FedspecLedger, open_ledger


@dataclass(frozen=True)
class NodeEnvironment:
    node: str  # "org1/node0"
    settings: Settings

    @property
    def org(self) -> str:
        return self.node.partition("/")[0]

    @property
    def name(self) -> str:
        return self.node.partition("/")[2]

    @LazyProperty
    def ledger(self) -> FedspecLedger:
        # Every ledger call is a "ledger" span of the round benchmark (flows.timing).
        return cast(
            FedspecLedger, TimedProxy(open_ledger(self.settings.ledger, self.node), "ledger")
        )

    @property
    def data_root(self) -> Path:
        return self.settings.data_dir / "nodes" / self.org / self.name

    @property
    def state_dir(self) -> Path:
        path = self.settings.home / "state" / self.org / self.name
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    def local_data(self, characteristics: dict[str, Any]) -> NodeData:
        """This node's dataset whose characteristics fit the profile's."""
        if self.data_root.is_dir():
            for directory in sorted(
                p
                for p in self.data_root.iterdir()
                # A dot directory is one being written or replaced (`fedspec data add`).
                if (p / "dataset.json").is_file() and not p.name.startswith(".")
            ):
                meta = json.loads((directory / "dataset.json").read_text())
                if matches(meta["info"]["characteristics"], characteristics):
                    return load_node_data(directory)
        raise DatasetError(
            f"{self.node} has no local data fitting {characteristics}", node_id=self.node
        )

    def evaluation_data(self, characteristics: dict[str, Any]) -> Dataset:
        """The profile's held-out evaluation set (shared by the consortium, not a node's data).

        Of the sets that fit, the one that says least beyond what the profile asks for: a
        generic profile is evaluated on the mixed set of everything it covers, not on the
        set of one of its specializations, which fits it too."""
        root = self.settings.data_dir / "evaluation"
        fitting: list[tuple[int, str, Path]] = []
        if root.is_dir():
            for directory in sorted(
                p
                for p in root.iterdir()
                if (p / "dataset.json").is_file() and not p.name.startswith(".")
            ):
                meta = json.loads((directory / "dataset.json").read_text())
                have = meta["info"]["characteristics"]
                if matches(have, characteristics):
                    extra = len(set(have) - set(characteristics))
                    fitting.append((extra, directory.name, directory))
        if fitting:
            return load_holdout(min(fitting)[2])
        raise DatasetError(
            f"no evaluation data fitting {characteristics} under {root}", node_id=self.node
        )

    # -- private round state: what a retried node needs to resume without changing its mind --
    def _state_file(self, profile_id: str, round_no: int, name: str) -> Path:
        return self.state_dir / f"{profile_id}.{round_no:06d}.{name}"

    def read_state(self, profile_id: str, round_no: int, name: str) -> bytes | None:
        path = self._state_file(profile_id, round_no, name)
        return path.read_bytes() if path.exists() else None

    def write_state(self, profile_id: str, round_no: int, name: str, data: bytes) -> None:
        path = self._state_file(profile_id, round_no, name)
        write_atomic(path, data, mode=0o600)


@dataclass(frozen=True)
class Volunteering:
    """Who volunteered, and why each other node did not."""

    joined: list[str]
    refused: dict[str, str]  # node → reason


def volunteer_fitting(settings: Settings, profile_id: str, nodes: Sequence[str]) -> Volunteering:
    """Each of ``nodes`` volunteers for ``profile_id`` if it holds data that fits the
    profile's characteristics: its own decision, on its own data (a split profile's child
    gets the nodes of its group). It volunteers with that data's fingerprint (hashes and a
    row count, never rows). Volunteering is idempotent on the ledger; a node that does not
    volunteer is named with its reason."""
    joined, refused = [], {}
    for node in nodes:
        env = NodeEnvironment(node, settings)
        spec = env.ledger.get_profile(profile_id).spec
        try:
            data = env.local_data(dict(spec["characteristics"]))
        except DatasetError as exc:
            refused[node] = exc.message
            continue
        env.ledger.volunteer(profile_id, _fingerprint(data, spec))
        joined.append(node)
    return Volunteering(joined, refused)


def _fingerprint(data: NodeData, spec: dict[str, Any]) -> dict[str, Any]:
    """The fingerprint `fedspec data add` stored, if it was made under this profile's schema;
    otherwise (a demo's directory, another profile's data) computed the same way here."""
    stored = data.fingerprint
    if stored is not None and stored.get("schema_sha256") == schema_sha256(spec):
        return stored
    X = np.concatenate([data.train.X, data.valid.X])
    y = np.concatenate([data.train.y, data.valid.y])
    return dataset_fingerprint(X, y, spec)
