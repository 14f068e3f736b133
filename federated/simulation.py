"""Node-side and coordinator-side steps of a round, and an in-process simulation of rounds.

:func:`train_node` (one node's local training, with its privacy) and
:func:`aggregate_round` (the elected coordinator's aggregation) are what flows run in
production. :func:`run_simulation` chains them over in-memory partitions for tests and
benchmarks only: it keeps the privacy spends in a dict where production keeps them on the
ledger.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from federated.errors import (
    EmptyPartitionError,
    FederatedError,
    IncompatibleModelError,
    QuorumNotMetError,
)
from federated.models import PARAMETRIC_FAMILIES, ParametricClassifier, create_model, load_model
from federated.privacy import (
    DP_ESTIMATOR_FAMILIES,
    PrivacyConfig,
    PrivacySpend,
    privatize_update,
)
from federated.strategies import scaffold
from federated.types import (
    AggregateResult,
    FitFailure,
    FitResult,
    GlobalModel,
    NDArray,
    NDArrays,
    Scalar,
    Strategy,
)

Attack = Callable[[GlobalModel, FitResult], FitResult]
"""Turns an honest node's result into a poisoned one (simulation only)."""

Partitions = Mapping[str, tuple[NDArray, NDArray]]


def initial_model(
    family: str, hyperparameters: Mapping[str, Any], *, seed: int | None = None
) -> GlobalModel:
    """The round-0 global model: seeded initial weights of a parametric family.

    The hyper-parameters must declare the output classes and input size (``classes``,
    ``n_features`` / ``image_size``), so no node's data decides the model's shape.
    """
    if family not in PARAMETRIC_FAMILIES:
        raise IncompatibleModelError(
            f"{family} has no weight arrays; tree families start from an empty ensemble "
            f"(see federated.trees)",
            family=family,
        )
    model = _parametric(family, _with_seed(hyperparameters, seed))
    return GlobalModel(family=family, parameters=model.get_parameters())


def train_node(
    global_model: GlobalModel,
    X: NDArray,
    y: NDArray,
    *,
    family: str,
    hyperparameters: Mapping[str, Any],
    privacy: PrivacyConfig | None = None,
    spent: Sequence[PrivacySpend] = (),
    node_id: str = "node",
    seed: int | None = None,
    noise_seed: int | None = None,
    control: NDArrays | None = None,
) -> tuple[FitResult, PrivacySpend | None]:
    """One node's round: check the privacy budget, train from the global model, release.

    Order matters: the budget (rebuilt from ``spent``, the node's recorded spends in this
    profile) is checked before the data is touched, so a round that would exceed it raises
    ``PrivacyBudgetError`` with no training done. Then the adapter of ``family`` starts from
    ``global_model``, trains on ``(X, y)`` and, under ``gaussian-update`` privacy, its update
    is clipped and noised here, on the node. Returns the result and the (ε, δ) spent (to be
    recorded on the ledger), or ``None`` without privacy.

    ``seed`` seeds training (``random_state``); ``noise_seed`` seeds the DP noise and must
    stay ``None`` (OS entropy) outside tests: anyone who knows it can remove the noise.
    Under privacy the result's metrics carry only the family and the spend, since training
    metrics are data-dependent values the DP guarantee does not cover.

    ``control`` is the node's SCAFFOLD control variate ``c_i`` (zeros in its first round):
    training then corrects every gradient by ``c − c_i`` (``c`` from the global model's
    ``server_state``) and the result carries ``Δc_i``; the node's next ``c_i`` is
    ``control + result.control_delta`` (:mod:`federated.strategies.scaffold`).
    """
    if global_model.family != family:
        raise IncompatibleModelError(
            f"global model is {global_model.family!r}, the node trains {family!r}",
            node_id=node_id,
        )
    if family not in PARAMETRIC_FAMILIES:
        raise IncompatibleModelError(
            f"{family} ships trees as bytes; its rounds are trained by federated.trees",
            node_id=node_id,
        )
    params = _with_seed(hyperparameters, seed)
    if privacy is not None:
        params = _private_hyperparameters(privacy, family, params, node_id)
        # Before anything touches X or y: a refused round trains nothing.
        privacy.check_round(spent, node_id=node_id)
    if len(y) == 0:
        raise EmptyPartitionError("no rows to train on", node_id=node_id)

    model = _parametric(family, params)
    if isinstance(global_model.parameters, bytes):
        raise IncompatibleModelError("global model parameters are bytes", node_id=node_id)
    if global_model.parameters:
        model.set_parameters(list(global_model.parameters))
    control_delta = _fit(model, X, y, global_model, control, privacy, noise_seed, node_id)
    released = model.get_parameters()

    metrics: dict[str, Scalar] = {"family": family}
    spend: PrivacySpend | None = None
    if privacy is None:
        metrics.update({f"train_{k}": v for k, v in model.metrics(X, y).items()})
    elif privacy.mechanism == "gaussian-update" and privacy.clip_norm is not None:
        released = privatize_update(
            global_model.parameters,
            released,
            clip_norm=privacy.clip_norm,
            sigma=privacy.node_noise_sigma(),
            rng=np.random.default_rng(noise_seed),
        ).parameters
        spend = privacy.round_spend
    else:  # a DP estimator reports its own spend; DP-SGD spends the profile's round
        spend = PrivacySpend(
            float(getattr(model, "epsilon_spent_", privacy.epsilon)),
            float(getattr(model, "delta_spent_", privacy.delta)),
        )
    if privacy is not None and spend is not None:
        metrics["dp_mechanism"] = privacy.mechanism
        metrics["dp_epsilon"] = spend.epsilon
        metrics["dp_delta"] = spend.delta
    return FitResult(node_id, released, len(y), metrics, control_delta), spend


def _fit(
    model: ParametricClassifier,
    X: NDArray,
    y: NDArray,
    global_model: GlobalModel,
    control: NDArrays | None,
    privacy: PrivacyConfig | None,
    noise_seed: int | None,
    node_id: str,
) -> NDArrays | None:
    """Train ``model`` as the round asks (SCAFFOLD, DP-SGD or plain); SCAFFOLD's ``Δc_i``."""
    if control is not None:
        return _fit_scaffold(model, X, y, global_model, control, privacy, node_id)
    if privacy is not None and privacy.mechanism == "dp-sgd":
        _fit_dp_sgd(model, X, y, privacy, noise_seed, node_id)
    else:
        model.fit(X, y)
    return None


def _fit_scaffold(
    model: ParametricClassifier,
    X: NDArray,
    y: NDArray,
    global_model: GlobalModel,
    control: NDArrays,
    privacy: PrivacyConfig | None,
    node_id: str,
) -> NDArrays:
    """SCAFFOLD's local training: SGD steps corrected by ``c − c_i``; returns ``Δc_i``.

    Refused (``IncompatibleModelError``) for families without torch gradients, other
    optimizers than SGD and under privacy (see :mod:`federated.strategies.scaffold`).
    """
    from federated.models.torch_adapters import TorchClassifier  # torch only when used

    scaffold.check_family(model.family)
    if not isinstance(model, TorchClassifier):
        raise IncompatibleModelError(f"{model.family} has no torch training", node_id=node_id)
    if privacy is not None:
        raise IncompatibleModelError(
            "scaffold's control-variate change is a second, un-noised release of the node's "
            "gradients; it cannot run under privacy",
            node_id=node_id,
            strategy=scaffold.Scaffold.name,
        )
    if model.optimizer != "sgd":
        raise IncompatibleModelError(
            f"scaffold corrects SGD steps (its c_i is (x − y)/(K·η)); the node trains with "
            f"optimizer={model.optimizer!r}: set optimizer='sgd'",
            node_id=node_id,
            strategy=scaffold.Scaffold.name,
        )
    start = model.get_parameters()
    server = scaffold.server_control(global_model)
    model.set_control_correction([c - ci for c, ci in zip(server, control, strict=True)])
    model.fit(X, y)
    return scaffold.control_update(
        control,
        server,
        start,
        model.get_parameters(),
        steps=model.local_steps_,
        learning_rate=model.learning_rate,
    )


def _fit_dp_sgd(
    model: ParametricClassifier,
    X: NDArray,
    y: NDArray,
    privacy: PrivacyConfig,
    noise_seed: int | None,
    node_id: str,
) -> None:
    """Record-level DP-SGD: only torch families have per-sample gradients to clip."""
    fit = getattr(model, "fit_dp_sgd", None)
    if fit is None:
        raise IncompatibleModelError(
            f"{model.family} cannot train by DP-SGD; use a torch family", node_id=node_id
        )
    assert privacy.noise_multiplier is not None
    assert privacy.sample_rate is not None
    assert privacy.clip_norm is not None
    fit(
        X,
        y,
        noise_multiplier=privacy.noise_multiplier,
        max_grad_norm=privacy.clip_norm,
        sample_rate=privacy.sample_rate,
        steps=privacy.steps,
        noise_seed=noise_seed,
    )


def aggregate_round(
    strategy: Strategy,
    current: GlobalModel,
    results: Sequence[FitResult],
    failures: Sequence[FitFailure],
    *,
    server_round: int = 1,
) -> AggregateResult:
    """The coordinator's step: ``strategy.aggregate_fit`` plus its wall time in the metrics.

    Errors of the strategy (``QuorumNotMetError``, ``IncompatibleModelError``…) propagate.
    """
    started = time.perf_counter()
    result = strategy.aggregate_fit(server_round, current, results, failures)
    model = result.model
    if model is not None and model.family != current.family:
        raise IncompatibleModelError(
            f"strategy returned a {model.family!r} model for a {current.family!r} round"
        )
    return result.with_metrics({"aggregate_seconds": time.perf_counter() - started})


def evaluate_model(
    model: GlobalModel, X: NDArray, y: NDArray, *, hyperparameters: Mapping[str, Any]
) -> dict[str, float]:
    """Metrics of a global model on held-out rows (the coordinator's evaluation)."""
    if isinstance(model.parameters, bytes):
        return load_model(model.family, model.parameters).metrics(X, y)
    adapter = _parametric(model.family, hyperparameters)
    adapter.set_parameters(list(model.parameters))
    return adapter.metrics(X, y)


def sign_flip(scale: float = 1.0) -> Attack:
    """Attack: release ``current − scale·Δ`` instead of ``current + Δ``."""
    return _rescale(-scale)


def scale_update(factor: float) -> Attack:
    """Attack: release ``current + factor·Δ`` (a boosted or shrunk update)."""
    return _rescale(factor)


def _rescale(factor: float) -> Attack:
    def attack(current: GlobalModel, result: FitResult) -> FitResult:
        if isinstance(current.parameters, bytes) or isinstance(result.parameters, bytes):
            return result
        poisoned = [
            (g + factor * (np.asarray(w, dtype=np.float64) - g)).astype(np.asarray(w).dtype)
            for w, g in zip(result.parameters, current.parameters, strict=True)
        ]
        return FitResult(result.node_id, poisoned, result.num_examples, result.metrics)

    return attack


@dataclass(frozen=True)
class RoundRecord:
    """What one simulated round did.

    ``failures`` are every node left out (in training, or by the strategy and its wrappers
    once aggregation ran); ``included`` the nodes whose updates entered the model.
    """

    server_round: int
    metrics: dict[str, Scalar]
    evaluation: dict[str, float]
    failures: list[FitFailure]
    spends: dict[str, PrivacySpend]
    train_seconds: float
    error: str | None = None
    included: tuple[str, ...] = ()


@dataclass
class SimulationHistory:
    """Every round's record, the last global model, and each node's privacy spends."""

    rounds: list[RoundRecord] = field(default_factory=list)
    model: GlobalModel | None = None
    spent: dict[str, list[PrivacySpend]] = field(default_factory=dict)

    def accuracies(self) -> list[float]:
        """Held-out accuracy after each round that produced a model."""
        return [r.evaluation["accuracy"] for r in self.rounds if "accuracy" in r.evaluation]


def run_simulation(
    partitions: Partitions,
    *,
    family: str,
    hyperparameters: Mapping[str, Any],
    strategy: Strategy,
    rounds: int,
    initial: GlobalModel | None = None,
    evaluation: tuple[NDArray, NDArray] | None = None,
    privacy: PrivacyConfig | None = None,
    spent: Mapping[str, Sequence[PrivacySpend]] | None = None,
    attacks: Mapping[str, Attack] | None = None,
    seed: int = 0,
    target_accuracy: float | None = None,
) -> SimulationHistory:
    """Run ``rounds`` rounds of ``strategy`` over in-memory ``partitions`` (node → (X, y)).

    Each round merges ``strategy.node_config(round)`` (e.g. FedProx's ``proximal_mu``) into
    the hyper-parameters, trains every node with :func:`train_node` (a node's
    ``FederatedError`` becomes its ``FitFailure``), applies ``attacks`` to the chosen
    nodes' results, aggregates with :func:`aggregate_round`, and evaluates on
    ``evaluation``. A round that raises ``QuorumNotMetError`` is recorded and ends the run;
    so does reaching ``target_accuracy``. A model that cannot be evaluated (e.g.
    ``PredictionError``: its probabilities are not finite) is kept, and its round recorded
    with that ``error`` code and no evaluation. Seeds derive from ``seed``, round and node.
    Under :class:`~federated.strategies.Scaffold` each node's control variate ``c_i`` is
    kept here by node id (at the node, in a real round), starting from zeros.
    """
    history = SimulationHistory(
        model=initial or initial_model(family, hyperparameters, seed=seed),
        spent={node: list((spent or {}).get(node, ())) for node in partitions},
    )
    controls: dict[str, NDArrays] | None = None
    if isinstance(strategy.unwrapped(), scaffold.Scaffold):
        assert history.model is not None
        scaffold.check_family(family)
        zeros = [np.zeros_like(c) for c in scaffold.server_control(history.model)]
        controls = {node: list(zeros) for node in partitions}
    for server_round in range(1, rounds + 1):
        current = history.model
        assert current is not None
        config = {**hyperparameters, **strategy.node_config(server_round)}
        results: list[FitResult] = []
        failures: list[FitFailure] = []
        spends: dict[str, PrivacySpend] = {}
        started = time.perf_counter()
        for index, (node, (X, y)) in enumerate(partitions.items()):
            node_seed, noise_seed = np.random.SeedSequence(
                [seed, server_round, index]
            ).generate_state(2)
            try:
                result, spend = train_node(
                    current, X, y, family=family, hyperparameters=config, privacy=privacy,
                    spent=history.spent[node], node_id=node, seed=int(node_seed),
                    noise_seed=int(noise_seed),
                    control=None if controls is None else controls[node],
                )  # fmt: skip
            except FederatedError as error:
                failures.append(FitFailure(node, error.code, error.message))
                continue
            if controls is not None and result.control_delta is not None:
                # c_i⁺ = c_i + Δc_i, kept whether or not the update enters the model: the
                # node trained and measured its gradient either way (as in the paper).
                controls[node] = [
                    c + d for c, d in zip(controls[node], result.control_delta, strict=True)
                ]
            if spend is not None:
                history.spent[node].append(spend)
                spends[node] = spend
            attack = (attacks or {}).get(node)
            results.append(attack(current, result) if attack else result)
        train_seconds = time.perf_counter() - started
        try:
            aggregation = aggregate_round(
                strategy, current, results, failures, server_round=server_round
            )
        except QuorumNotMetError as error:
            history.rounds.append(
                RoundRecord(server_round, {"reason": error.message}, {}, failures, spends,
                            train_seconds, error=error.code)
            )  # fmt: skip
            break
        evaluated: dict[str, float] = {}
        evaluation_error: str | None = None
        model = aggregation.model
        if model is not None:
            history.model = model
            if evaluation is not None:
                try:
                    evaluated = evaluate_model(model, *evaluation, hyperparameters=hyperparameters)
                except FederatedError as error:  # e.g. PredictionError: NaN probabilities
                    evaluation_error = error.code
        history.rounds.append(
            RoundRecord(
                server_round,
                aggregation.metrics,
                evaluated,
                list(aggregation.failures),
                spends,
                train_seconds,
                error=evaluation_error,
                included=aggregation.included,
            )
        )
        if target_accuracy is not None and evaluated.get("accuracy", 0.0) >= target_accuracy:
            break
    return history


def _with_seed(hyperparameters: Mapping[str, Any], seed: int | None) -> dict[str, Any]:
    params = dict(hyperparameters)
    if seed is not None and "random_state" not in params:
        params["random_state"] = seed
    return params


def _private_hyperparameters(
    privacy: PrivacyConfig, family: str, params: dict[str, Any], node_id: str
) -> dict[str, Any]:
    """Check the family fits the mechanism; a DP estimator trains at the profile's ε."""
    if privacy.mechanism == "dp-estimator":
        if family not in DP_ESTIMATOR_FAMILIES:
            raise IncompatibleModelError(
                f"dp-estimator privacy needs a DP family ({sorted(DP_ESTIMATOR_FAMILIES)}), "
                f"not {family!r}",
                node_id=node_id,
            )
        if params.get("epsilon", privacy.epsilon) != privacy.epsilon:
            raise IncompatibleModelError(
                f"hyper-parameter epsilon={params['epsilon']} differs from the profile's "
                f"per-round ε={privacy.epsilon}",
                node_id=node_id,
            )
        params["epsilon"] = privacy.epsilon
    return params


def _parametric(family: str, hyperparameters: Mapping[str, Any]) -> ParametricClassifier:
    model = create_model(family, **hyperparameters)
    if not isinstance(model, ParametricClassifier):
        raise IncompatibleModelError(f"{family} has no weight arrays", family=family)
    return model
