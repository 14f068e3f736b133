"""Strategies by the names profiles use, and the standard stack of wrappers around them."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from federated.errors import IncompatibleModelError
from federated.privacy import PrivacyConfig
from federated.strategies.dp_check import PrivacyCheck
from federated.strategies.fedavg import FedAvg, FedProx
from federated.strategies.fedopt import FedAdam, FedYogi
from federated.strategies.quorum import Quorum
from federated.strategies.robust import CoordinateMedian, MultiKrum, TrimmedMean
from federated.strategies.scaffold import Scaffold
from federated.strategies.screen import UpdateScreen
from federated.types import Strategy

_ARRAY_STRATEGIES: dict[str, Callable[..., Strategy]] = {
    "fedavg": FedAvg,
    "fedprox": FedProx,
    "fedadam": FedAdam,
    "fedyogi": FedYogi,
    "median": CoordinateMedian,
    "trimmed-mean": TrimmedMean,
    "multi-krum": MultiKrum,
    "scaffold": Scaffold,
}

# Tree strategies live in federated.trees (XGBoost's own federation); imported on first use
# so that array-only deployments never load xgboost.
_TREE_STRATEGIES: dict[str, tuple[str, str]] = {
    "xgb-bagging": ("federated.trees", "XGBBagging"),
    "xgb-histogram": ("federated.trees", "XGBHistogram"),
}

STRATEGY_NAMES: tuple[str, ...] = (*_ARRAY_STRATEGIES, *_TREE_STRATEGIES)
"""Every name :func:`create_strategy` accepts."""

AVERAGING_STRATEGIES: frozenset[str] = frozenset(_ARRAY_STRATEGIES)
"""Strategies that combine weight arrays (never tree models)."""


def create_strategy(name: str, **params: Any) -> Strategy:
    """A new strategy named as profiles name it, configured by keyword arguments.

    ``fedavg``; ``fedprox`` (``proximal_mu``); ``fedadam`` / ``fedyogi`` (``eta``,
    ``beta_1``, ``beta_2``, ``tau``); ``median``; ``trimmed-mean`` (``proportion``);
    ``multi-krum`` (``num_malicious``, ``num_to_keep``); ``scaffold`` (``global_lr``,
    ``num_nodes``; torch families trained by SGD, without privacy or secure aggregation, in
    simulation and real rounds: see :mod:`federated.strategies.scaffold`); ``xgb-bagging`` and
    ``xgb-histogram`` from :mod:`federated.trees`. Unknown names or parameters raise
    ``IncompatibleModelError``.
    """
    factory = _ARRAY_STRATEGIES.get(name)
    if factory is None and name in _TREE_STRATEGIES:
        factory = _tree_strategy(name)
    if factory is None:
        raise IncompatibleModelError(
            f"unknown strategy {name!r}; known: {', '.join(STRATEGY_NAMES)}", strategy=name
        )
    try:
        return factory(**params)
    except TypeError as exc:
        raise IncompatibleModelError(
            f"{name}: unknown parameters {sorted(params)}: {exc}", strategy=name
        ) from exc


def guard_strategy(
    strategy: Strategy,
    *,
    min_nodes: int,
    privacy: PrivacyConfig | None = None,
    screen: bool = True,
) -> Strategy:
    """Wrap ``strategy`` in the order a round needs them, outermost first:

    :class:`UpdateScreen` (malformed updates become failures) →
    :class:`PrivacyCheck` (only for ``gaussian-update`` privacy) →
    :class:`Quorum` (counts the updates that are left) → ``strategy``.
    """
    guarded: Strategy = Quorum(strategy, min_nodes=min_nodes)
    if privacy is not None and privacy.mechanism == "gaussian-update":
        guarded = PrivacyCheck.from_config(guarded, privacy)
    if screen:
        guarded = UpdateScreen(guarded)
    return guarded


def _tree_strategy(name: str) -> Callable[..., Strategy]:
    module_name, class_name = _TREE_STRATEGIES[name]
    try:
        module = importlib.import_module(module_name)
        factory: Callable[..., Strategy] = getattr(module, class_name)
    except (ImportError, AttributeError) as exc:
        raise IncompatibleModelError(
            f"strategy {name!r} needs {module_name}.{class_name}, which is not available: {exc}",
            strategy=name,
        ) from exc
    return factory
