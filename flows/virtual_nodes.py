"""Virtual nodes of a profile for ``fedspec simulate``: their rows, and a chunk's training.

A virtual node is a slice of one built-in dataset (``federated.datasets.LOADERS``), scaled
by the profile's plan (``TrainingPlan.prepare``) exactly as a real node's rows are, and
trained by the code of real rounds: :func:`federated.simulation.train_node` for parametric
families (with the profile's privacy), :func:`federated.trees.bagging_local_update` for
tree families. Nothing here imports Prefect or Dask: :func:`train_chunk` is what an engine
worker imports and runs, one call for many virtual nodes.

Seeds are derived as :func:`federated.simulation.run_simulation` derives them (from the
run's seed, the round and the node's index), so a simulation on any engine gives the model
the sequential in-process simulation gives for the same seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from federated.errors import FederatedError
from federated.plan import TrainingPlan
from federated.privacy import PrivacySpend
from federated.types import FitFailure, FitResult, GlobalModel, NDArray
from fedspec.errors import ErrorCode, FedspecError


class SimulationError(FedspecError):
    """A simulation that cannot run as asked: no nodes, more nodes than rows, no dataset."""

    code = ErrorCode.SIMULATION_INVALID


class EngineUnavailableError(FedspecError):
    """The engine is not installed, or its scheduler cannot be reached."""

    code = ErrorCode.SIMULATION_ENGINE_UNAVAILABLE


@dataclass(frozen=True)
class VirtualNode:
    """One virtual node's scaled rows; ``index`` is its place in the population (seeds)."""

    index: int
    node_id: str
    X: NDArray
    y: NDArray


@dataclass(frozen=True)
class Population:
    """Every virtual node of a run, in order, and the coordinator's held-out rows."""

    plan: TrainingPlan
    dataset: str
    nodes: tuple[VirtualNode, ...]
    evaluation: tuple[NDArray, NDArray]

    def partitions(self) -> dict[str, tuple[NDArray, NDArray]]:
        """node → (X, y), in population order: what ``run_simulation`` takes."""
        return {n.node_id: (n.X, n.y) for n in self.nodes}


@dataclass(frozen=True)
class RoundTask:
    """What every virtual node of a round trains with (small: sent with every chunk)."""

    plan: TrainingPlan
    hyperparameters: Mapping[str, Any]
    server_round: int
    seed: int


NodeOutcome = tuple[FitResult | FitFailure, PrivacySpend | None]


def build_population(
    profile_id: str,
    spec: Mapping[str, Any],
    *,
    nodes: int,
    dataset: str | None = None,
    dirichlet: float | None = None,
    min_rows: int = 1,
    seed: int = 0,
    test_fraction: float = 0.2,
) -> Population:
    """Split ``dataset`` (default: the catalog dataset named like the profile) over
    ``nodes`` virtual nodes, IID or by Dirichlet(``dirichlet``) label skew, after holding out
    ``test_fraction`` of the rows for evaluation.

    Raises :class:`SimulationError` for no nodes, an unknown dataset, a dataset whose rows
    do not fit the profile, or more nodes than the rows allow at ``min_rows`` each.
    """
    # Deferred: the catalog's loaders import sklearn, scipy, pandas.
    from federated.datasets import LOADERS, holdout_split, partition_dirichlet, partition_iid

    if nodes < 1:
        raise SimulationError(f"--nodes must be at least 1, got {nodes}")
    if min_rows < 1:
        raise SimulationError(f"--min-rows must be at least 1, got {min_rows}")
    name = dataset or profile_id
    if name not in LOADERS:
        raise SimulationError(
            f"no built-in dataset {name!r} for profile {profile_id}; "
            f"pass --dataset with one of {sorted(LOADERS)}"
        )
    plan = TrainingPlan.from_profile(profile_id, spec)
    if plan.uses_control_variates:
        # Every round's node would need its c_i from the last; the engines keep no node state.
        raise SimulationError(
            f"profile {profile_id} uses scaffold, whose nodes keep a control variate between "
            "rounds; virtual-node simulations keep none (federated.simulation.run_simulation "
            "and benchmarks/non_iid.py simulate it)"
        )
    data = LOADERS[name]()
    _check_fits(plan, name, data.X, data.y)
    pool, test = holdout_split(data, test_fraction=test_fraction, seed=seed)
    most = len(pool) // min_rows
    if nodes > most:
        raise SimulationError(
            f"{nodes} virtual nodes need {nodes * min_rows} training rows at --min-rows "
            f"{min_rows}; {name} has {len(pool)} (at most {most} nodes)"
        )
    width = len(str(nodes - 1))
    ids = [f"virtual/{i:0{width}d}" for i in range(nodes)]
    y_pool = data.y[pool]
    try:
        parts = (
            partition_iid(len(pool), ids, seed=seed)
            if dirichlet is None
            else partition_dirichlet(y_pool, ids, alpha=dirichlet, seed=seed, min_rows=min_rows)
        )
    except FederatedError as error:  # e.g. a Dirichlet draw that leaves a node too few rows
        raise SimulationError(f"{name} over {nodes} nodes: {error.message}") from error
    X_pool = plan.prepare(data.X[pool])
    members = tuple(
        VirtualNode(i, node, X_pool[parts[node]], y_pool[parts[node]]) for i, node in enumerate(ids)
    )
    return Population(plan, name, members, (plan.prepare(data.X[test]), data.y[test]))


def _check_fits(plan: TrainingPlan, name: str, X: NDArray, y: NDArray) -> None:
    hp = plan.hyperparameters
    width = hp.get("n_features") or (int(hp["image_size"]) ** 2 if "image_size" in hp else None)
    if width is not None and X.shape[1] != int(width):
        raise SimulationError(
            f"{name} has {X.shape[1]} features; profile {plan.profile_id} expects {width}"
        )
    classes = hp.get("classes")
    if classes is not None:
        unknown = sorted(set(np.unique(y).tolist()) - set(classes))
        if unknown:
            raise SimulationError(
                f"{name} has labels {unknown[:5]} outside profile {plan.profile_id}'s labels"
            )


def warm_up(family: str, hyperparameters: Mapping[str, Any]) -> None:
    """Import what training ``family`` needs (torch, xgboost, sklearn) in this process, so
    that an engine's first round measures training, not imports."""
    # Deferred: a worker imports the learning stack here, once.
    from federated.models import create_model

    create_model(family, **hyperparameters)


def train_chunk(
    current: GlobalModel,
    members: Sequence[VirtualNode],
    task: RoundTask,
    spent: Mapping[str, Sequence[PrivacySpend]] | None = None,
) -> list[NodeOutcome]:
    """Train ``members`` one after the other from ``current``; a node's
    ``FederatedError`` becomes its ``FitFailure``, as in a real round.

    One engine task per chunk of virtual nodes, not per node: a task costs the engine a
    scheduling round-trip and a (de)serialization of the global model, which for a node of
    a few rows is more than its training.
    """
    return [
        _train_one(current, node, task, (spent or {}).get(node.node_id, ())) for node in members
    ]


def _train_one(
    current: GlobalModel,
    node: VirtualNode,
    task: RoundTask,
    spent: Sequence[PrivacySpend],
) -> NodeOutcome:
    # Deferred: the worker pays for torch, sklearn, xgboost only when it trains.
    from federated.simulation import train_node

    node_seed, noise_seed = np.random.SeedSequence(
        [task.seed, task.server_round, node.index]
    ).generate_state(2)
    plan = task.plan
    try:
        if plan.is_tree:
            from federated.trees import bagging_local_update

            trees = bagging_local_update(
                current.parameters if isinstance(current.parameters, bytes) else b"",
                node.X,
                node.y,
                {**plan.xgb_params, "seed": int(node_seed)},
                local_rounds=plan.local_rounds,
            )
            return FitResult(node.node_id, trees, len(node.y), {}), None
        return train_node(
            current, node.X, node.y, family=plan.family, hyperparameters=task.hyperparameters,
            privacy=plan.privacy, spent=spent, node_id=node.node_id, seed=int(node_seed),
            noise_seed=int(noise_seed),
        )  # fmt: skip
    except FederatedError as error:
        return FitFailure(node.node_id, error.code, error.message), None
