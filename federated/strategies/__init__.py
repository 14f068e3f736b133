"""Aggregation strategies in Flower's shape, and the wrappers that guard a round.

``create_strategy(name, **params)`` builds a strategy by the name a profile uses;
``guard_strategy(strategy, min_nodes=…, privacy=…)`` wraps it in update screening, the
privacy check and the quorum. The math is in :mod:`federated.strategies.aggregate`.
"""

from federated.strategies.dp_check import PrivacyCheck
from federated.strategies.factory import (
    AVERAGING_STRATEGIES,
    STRATEGY_NAMES,
    create_strategy,
    guard_strategy,
)
from federated.strategies.fedavg import FedAvg, FedProx
from federated.strategies.fedopt import FedAdam, FedYogi
from federated.strategies.quorum import Quorum
from federated.strategies.robust import CoordinateMedian, MultiKrum, TrimmedMean
from federated.strategies.scaffold import Scaffold
from federated.strategies.screen import UpdateScreen, check_update

__all__ = [
    "AVERAGING_STRATEGIES",
    "STRATEGY_NAMES",
    "CoordinateMedian",
    "FedAdam",
    "FedAvg",
    "FedProx",
    "FedYogi",
    "MultiKrum",
    "PrivacyCheck",
    "Quorum",
    "Scaffold",
    "TrimmedMean",
    "UpdateScreen",
    "check_update",
    "create_strategy",
    "guard_strategy",
]
