"""Differential privacy for fedspec's nodes: update clipping and Gaussian noise calibrated
with diffprivlib (client level), record-level DP-SGD's float RDP accounting (``rdp``, on
opacus; the ledger's exact accountant is ``chaincode.rdp``), and a per-node, per-profile
budget accountant rebuilt from the ledger.

See ``docs/privacy.md`` for exactly which guarantee each mode gives, and which it does not.
"""

from federated.privacy.accountant import NodeBudget, PrivacySpend, compose
from federated.privacy.config import (
    DP_ESTIMATOR_FAMILIES,
    MECHANISMS,
    Mechanism,
    PrivacyConfig,
)
from federated.privacy.gaussian import (
    PrivatizedUpdate,
    calibrate_sigma,
    privatize_update,
    released_norm_bounds,
    update_norm,
)

__all__ = [
    "DP_ESTIMATOR_FAMILIES",
    "MECHANISMS",
    "Mechanism",
    "NodeBudget",
    "PrivacyConfig",
    "PrivacySpend",
    "PrivatizedUpdate",
    "calibrate_sigma",
    "compose",
    "privatize_update",
    "released_norm_bounds",
    "update_norm",
]
