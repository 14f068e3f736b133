"""A SCAFFOLD node's own control variate ``c_i``, kept between rounds in its private state.

``c_i`` is the node's running estimate of its local gradient (:mod:`federated.strategies.
scaffold`). It never leaves the node: only its change ``Δc_i`` does, inside the update whose
hash the node commits. The node keeps it in one file per profile in its own state directory,
``<home>/state/<org>/<node>/<profile>.scaffold-control.safetensors`` (mode 0600, replaced
atomically), never on the ledger or the tracking server. The file names the last round whose
``Δc_i`` it holds.

A round's ``Δc_i`` is applied once, whatever the retries: training reads ``c_i`` from the
file (zeros before the node's first SCAFFOLD round), the update with ``Δc_i`` is written to
the round's private state first, and only then is ``c_i + Δc_i`` written with that round's
number. A retried agent finds its stored update and applies it only if the file does not yet
hold that round. A node that missed a round (did not join it, was excluded before training,
crashed before training) keeps its old ``c_i``, the paper's choice for clients not sampled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from federated.errors import InvalidUpdateError, TrainingError
from federated.exchange import decode_control, encode_control
from federated.types import GlobalModel, NDArrays
from fedspec.fileio import write_atomic
from flows.environment import NodeEnvironment

SUFFIX = "scaffold-control.safetensors"


@dataclass(frozen=True)
class StoredControl:
    """``c_i`` and the last round whose ``Δc_i`` it holds (0: the zeros a node starts from)."""

    control: NDArrays
    round_no: int


def control_path(env: NodeEnvironment, profile_id: str) -> Path:
    """Where ``env``'s node keeps its ``c_i`` for ``profile_id``."""
    return env.state_dir / f"{profile_id}.{SUFFIX}"


def shapes_of(model: GlobalModel) -> list[tuple[int, ...]]:
    """The layer shapes ``c_i`` has: those of ``model``'s parameters."""
    if isinstance(model.parameters, bytes):
        raise TrainingError("scaffold needs array parameters, not a serialized model")
    return [np.shape(a) for a in model.parameters]


def load_control(
    env: NodeEnvironment, profile_id: str, family: str, shapes: Sequence[tuple[int, ...]]
) -> StoredControl:
    """The node's ``c_i`` for ``profile_id``, of the model's layer ``shapes``; zeros (round
    0) when it has none yet. A file of another profile, node or family, or of other shapes,
    is refused with :class:`TrainingError`: training with it would correct by a wrong ``c_i``.
    """
    shapes = [tuple(s) for s in shapes]
    path = control_path(env, profile_id)
    if not path.exists():
        return StoredControl([np.zeros(s) for s in shapes], 0)
    try:
        control, info = decode_control(path.read_bytes())
        round_no = int(info["round"])
    except (InvalidUpdateError, ValueError) as exc:
        raise TrainingError(f"{path.name} is unreadable: {exc}", node_id=env.node) from exc
    owner = (info.get("family"), info["profile"], info["node"])
    if owner != (family, profile_id, env.node):
        raise TrainingError(
            f"{path.name} holds the control variate of {owner}, not of "
            f"{(family, profile_id, env.node)}",
            node_id=env.node,
        )
    if [a.shape for a in control] != shapes:
        raise TrainingError(
            f"{path.name} does not match the model's layer shapes", node_id=env.node
        )
    return StoredControl(control, round_no)


def apply_delta(
    env: NodeEnvironment, profile_id: str, family: str, round_no: int, delta: NDArrays
) -> StoredControl:
    """``c_i ← c_i + Δc_i`` for ``round_no``, once: a file already holding that round (or a
    later one) is left as it is, so a retried agent never applies a round's change twice."""
    stored = load_control(env, profile_id, family, [np.shape(d) for d in delta])
    if stored.round_no >= round_no:
        return stored
    updated = StoredControl(
        [c + np.asarray(d, dtype=np.float64) for c, d in zip(stored.control, delta, strict=True)],
        round_no,
    )
    data = encode_control(
        updated.control, family=family, profile=profile_id, node=env.node, round_no=round_no
    )
    write_atomic(control_path(env, profile_id), data, mode=0o600)
    return updated
