"""Tree bagging for rounds whose nodes cannot stay connected: trees are appended, never
averaged.

Each node boosts a few iterations on its own rows starting from the current global model
and sends back only those new iterations (:func:`bagging_local_update`). The coordinator
appends every node's iterations to the global model, in node-id order so the result does
not depend on arrival order (:class:`XGBBagging`), with their leaf values scaled by
1/(number of contributing nodes) so the round moves the model by the *average* of the
nodes' steps rather than their sum. The model is the only state, so a different
coordinator next round needs nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from federated.errors import IncompatibleModelError, InvalidInputError, InvalidUpdateError
from federated.trees.booster_json import (
    append_iterations,
    from_document,
    load_booster,
    num_iterations,
    num_trees,
    scale_leaves,
    signature,
    to_document,
)
from federated.types import (
    AggregateResult,
    FitFailure,
    FitResult,
    GlobalModel,
    NDArray,
    Scalar,
    Strategy,
)

TREE_FAMILIES = ("xgboost-classifier", "xgboost-regressor")
# Objectives whose link makes base_score 0.5 the neutral margin (logit 0).
_PROBABILITY_OBJECTIVES = ("binary:logistic", "binary:logitraw", "reg:logistic", "multi:")


def _fresh_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters for a first round: every node must start from the same ``base_score``,
    or their trees would correct different intercepts and could not be joined."""
    fresh = dict(params)
    if "base_score" not in fresh:
        objective = str(fresh.get("objective", "reg:squarederror"))
        if not objective.startswith(_PROBABILITY_OBJECTIVES):
            raise InvalidInputError(
                f"objective {objective!r} needs an explicit base_score for bagging "
                "(every node must start from the same intercept)"
            )
        fresh["base_score"] = 0.5
    return fresh


def bagging_local_update(
    global_model: bytes,
    X: NDArray,
    y: NDArray,
    params: Mapping[str, Any],
    *,
    local_rounds: int,
    feature_names: Sequence[str] | None = None,
) -> bytes:
    """Node side: boost ``local_rounds`` iterations on local rows from ``global_model``
    (``b""`` for none) and return only the new iterations, as UBJSON."""
    # Deferred: loads xgboost only when used.
    import xgboost as xgb

    if local_rounds < 1:
        raise InvalidInputError(f"local_rounds must be at least 1, got {local_rounds}")
    names = list(feature_names) if feature_names is not None else None
    dtrain = xgb.DMatrix(X, label=y, feature_names=names)
    start = load_booster(global_model) if global_model else None
    train_params = {"tree_method": "hist", **params}
    if start is None:
        train_params = _fresh_params(train_params)
    before = start.num_boosted_rounds() if start is not None else 0
    booster = xgb.train(train_params, dtrain, num_boost_round=local_rounds, xgb_model=start)
    return bytes(booster[before:].save_raw(raw_format="ubj"))


def bagging_rounds(
    partitions: Mapping[str, tuple[NDArray, NDArray]],
    params: Mapping[str, Any],
    *,
    rounds: int,
    local_rounds: int,
    strategy: Strategy | None = None,
    initial: GlobalModel | None = None,
) -> GlobalModel:
    """In-process bagging rounds over ``partitions`` (node → (X, y)), as the flows' tree
    round runs them: every node boosts ``local_rounds`` iterations from the global model
    (XGBoost's ``seed`` is the params' seed plus the round), then ``strategy`` (default
    :class:`XGBBagging`) appends. For simulations and benchmarks; the flows run the same
    two functions across processes.
    """
    strategy = strategy or XGBBagging()
    current = initial or GlobalModel("xgboost-classifier", b"")
    base_seed = int(params.get("seed", 0))
    for server_round in range(1, rounds + 1):
        start = current.parameters if isinstance(current.parameters, bytes) else b""
        round_params = {**params, "seed": base_seed + server_round}
        results = [
            FitResult(node, bagging_local_update(
                start, X, y, round_params, local_rounds=local_rounds
            ), len(y))
            for node, (X, y) in partitions.items()
        ]  # fmt: skip
        model = strategy.aggregate_fit(server_round, current, results, []).model
        if model is None:
            raise InvalidUpdateError(f"round {server_round} produced no model")
        current = model
    return current


def _current_bytes(current: GlobalModel) -> bytes:
    if current.family not in TREE_FAMILIES:
        raise IncompatibleModelError(
            f"tree strategies take {TREE_FAMILIES}, not {current.family!r}"
        )
    if not isinstance(current.parameters, bytes | bytearray):
        raise IncompatibleModelError("a tree model's parameters are bytes (XGBoost UBJSON)")
    return bytes(current.parameters)


def _updates(results: Sequence[FitResult]) -> list[tuple[str, bytes]]:
    """``(node_id, model bytes)`` in node-id order; one update per node, bytes only."""
    ordered = sorted(results, key=lambda r: r.node_id)
    updates: list[tuple[str, bytes]] = []
    for result in ordered:
        if updates and updates[-1][0] == result.node_id:
            raise InvalidUpdateError("more than one update from the node", node_id=result.node_id)
        if not isinstance(result.parameters, bytes | bytearray):
            raise InvalidUpdateError("tree updates are bytes", node_id=result.node_id)
        updates.append((result.node_id, bytes(result.parameters)))
    return updates


TreeWeights = Literal["nodes", "none"]


@dataclass(frozen=True)
class XGBBagging:
    """Append every node's new boosting iterations to the global model.

    ``max_iterations_per_update`` bounds what one node can add in a round, so one node
    cannot flood the ensemble; ``accept_failures=False`` skips a round with any failure.

    ``tree_weights="nodes"`` (the default) multiplies the leaf values of every tree a node
    contributes by 1/n, n being the number of nodes aggregated this round; ``"none"``
    appends them as they are (each node's trees at the full learning rate, which diverges
    as nodes are added: 131 flight-destination nodes fall far below centralized training,
    see docs/benchmarks.md).

    Why scale on the coordinator rather than have nodes train at ``eta / n``: XGBoost's
    model is additive, ``F = base + Σ_trees f_t``, and every node's trees are boosted from
    the same global ``F`` on its own rows, so each node's trees are its own estimate
    ``Δ_k`` of one boosting step. Appending all of them moves ``F`` by ``Σ_k Δ_k``, n steps
    in the same direction at once (the overshoot that diverges); scaling each node's
    leaves by 1/n moves it by the mean ``(1/n) Σ_k Δ_k``, a single step of the size the
    learning rate intends: FedAvg of function-space updates, with trees kept whole, never
    averaged. Dividing ``eta`` on the nodes would shrink the first tree alike but change a
    node's later local iterations (each would refit residuals a nearly-unchanged model
    leaves, so a node's ``local_rounds`` trees would stop being a boosting trajectory), and
    nodes cannot know in advance how many of them will contribute (a node may fail or
    time out): only the coordinator counts the updates it appends.
    """

    max_iterations_per_update: int = 64
    accept_failures: bool = True
    tree_weights: TreeWeights = "nodes"

    def __post_init__(self) -> None:
        if self.tree_weights not in ("nodes", "none"):
            raise InvalidInputError(
                f"tree_weights must be 'nodes' or 'none', not {self.tree_weights!r}"
            )

    def node_config(self, server_round: int) -> dict[str, Scalar]:
        """Hyper-parameters every node must train with this round (none)."""
        del server_round
        return {}

    def unwrapped(self) -> XGBBagging:
        """Itself: a bare strategy."""
        return self

    def aggregate_fit(
        self,
        server_round: int,
        current: GlobalModel,
        results: Sequence[FitResult],
        failures: Sequence[FitFailure],
    ) -> AggregateResult:
        start = _current_bytes(current)
        if not results or (failures and not self.accept_failures):
            reason = (
                "no successful updates to aggregate"
                if not results
                else "a node failed and accept_failures is off"
            )
            return _no_model(failures, reason)
        document = to_document(start) if start else None
        # Without a global model, nodes may have fitted their own intercepts (base_score);
        # the lowest node id's is kept. From then on every node continues from the global
        # model, so every setting must match exactly.
        first_round = document is None
        appended = 0
        updates = _updates(results)
        weight = 1.0 / len(updates) if self.tree_weights == "nodes" else 1.0
        for node_id, data in updates:
            update = to_document(data, node_id=node_id)
            iterations = num_iterations(update)
            if not 1 <= iterations <= self.max_iterations_per_update:
                raise InvalidUpdateError(
                    f"{iterations} iterations, expected 1..{self.max_iterations_per_update}",
                    node_id=node_id,
                )
            if weight != 1.0:
                scale_leaves(update, weight)
            if document is None:
                document, appended = update, num_trees(update)
                continue
            mine, theirs = signature(update), signature(document)
            if first_round:
                del mine["base_score"], theirs["base_score"]
            if mine != theirs:
                raise InvalidUpdateError(
                    f"model settings differ from the global model's: {mine} != {theirs}",
                    node_id=node_id,
                )
            appended += append_iterations(document, update)
        if document is None:  # unreachable: results is not empty
            return _no_model(failures, "no successful updates to aggregate")
        metrics: dict[str, Scalar] = {
            "nodes_aggregated": len(results),
            "failures": len(failures),
            "trees_appended": appended,
            "num_trees": num_trees(document),
            "tree_weight": weight,
        }
        model = GlobalModel(
            family=current.family,
            parameters=from_document(document),
            server_state=current.server_state,
        )
        return AggregateResult(
            model,
            metrics,
            included=tuple(r.node_id for r in results),
            failures=tuple(failures),
        )


@dataclass(frozen=True)
class XGBHistogram:
    """The aggregation step of histogram federation: every node already holds the same
    model (the communicator made it so); check that they agree and return it."""

    def node_config(self, server_round: int) -> dict[str, Scalar]:
        """Hyper-parameters every node must train with this round (none)."""
        del server_round
        return {}

    def unwrapped(self) -> XGBHistogram:
        """Itself: a bare strategy."""
        return self

    def aggregate_fit(
        self,
        server_round: int,
        current: GlobalModel,
        results: Sequence[FitResult],
        failures: Sequence[FitFailure],
    ) -> AggregateResult:
        _current_bytes(current)
        if not results:
            return _no_model(failures, "no successful updates to aggregate")
        if failures:
            # One missing node changes the histograms: the round has no valid model.
            return _no_model(failures, "a node failed: the histograms lack its rows")
        updates = _updates(results)
        first_id, model = updates[0]
        for node_id, data in updates[1:]:
            if data != model:
                raise InvalidUpdateError("model differs from the other nodes'", node_id=node_id)
        trees = num_trees(to_document(model, node_id=first_id))
        return AggregateResult(
            GlobalModel(family=current.family, parameters=model, server_state=current.server_state),
            {"nodes_aggregated": len(updates), "failures": 0, "num_trees": trees},
            included=tuple(node_id for node_id, _ in updates),
        )


def _no_model(failures: Sequence[FitFailure], reason: str) -> AggregateResult:
    """A round without a model: the failures as they came, and why."""
    return AggregateResult(
        None,
        {"nodes_aggregated": 0, "failures": len(failures)},
        failures=tuple(failures),
        reason=reason,
    )
