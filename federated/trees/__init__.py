"""Federated tree training (trees are never averaged).

- :func:`train_histogram_federated`: XGBoost's federated communicator; nodes share gradient
  histograms and all end with the model centralized training on the union would give.
- :class:`XGBBagging` with :func:`bagging_local_update`: for nodes that cannot stay
  connected; each round appends every node's new trees to the global model.
"""

from __future__ import annotations

from federated.trees.bagging import (
    TREE_FAMILIES,
    XGBBagging,
    XGBHistogram,
    bagging_local_update,
    bagging_rounds,
)
from federated.trees.histogram import (
    HistogramFederationResult,
    HistogramNode,
    NodeTrainingReport,
    federated_server,
    train_histogram_federated,
)
from federated.trees.tls import FederationCredentials, issue_credentials

__all__ = [
    "TREE_FAMILIES",
    "FederationCredentials",
    "HistogramFederationResult",
    "HistogramNode",
    "NodeTrainingReport",
    "XGBBagging",
    "XGBHistogram",
    "bagging_local_update",
    "bagging_rounds",
    "federated_server",
    "issue_credentials",
    "train_histogram_federated",
]
