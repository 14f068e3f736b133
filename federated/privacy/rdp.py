"""The node's float view of DP-SGD's Rényi-DP accounting (opacus), for simulations and plans.

What counts is the ledger's exact accountant (``chaincode.rdp``, decimal arithmetic that
every peer reproduces): a node checks its rounds against that before training (the flows
call it). This module gives the same numbers in floats for code below the ledger —
``run_simulation``, benchmarks, planning a profile — with the same integer orders, so the
two agree to ~1e-12 (tests/chaincode/test_rdp.py).
"""

from __future__ import annotations

import math
import warnings
from fractions import Fraction

# The ledger's orders (chaincode.rdp.ORDERS; a test keeps the two equal).
ORDERS: tuple[int, ...] = (*range(2, 65), 80, 96, 128, 256)


def steps_per_round(sample_rate: float, epochs: float) -> int:
    """⌈epochs / q⌉ Poisson-sampled steps, computed exactly on the floats' shortest decimal
    forms (``repr``): for a profile's decimal strings that is the ledger's own count (a node
    must never train more steps than the ledger accounts; ``PrivacyConfig.from_profile``
    checks it against the strings)."""
    return math.ceil(Fraction(repr(float(epochs))) / Fraction(repr(float(sample_rate))))


def dp_sgd_epsilon(
    noise_multiplier: float, sample_rate: float, steps: int, delta: float, *, rounds: int = 1
) -> float:
    """ε at ``delta`` of ``rounds`` rounds of ``steps`` subsampled Gaussian steps each."""
    # Deferred: opacus loads only where DP-SGD is used.
    from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

    if rounds == 0 or steps == 0:
        return 0.0
    curve = compute_rdp(
        q=sample_rate, noise_multiplier=noise_multiplier, steps=steps * rounds, orders=list(ORDERS)
    )
    with warnings.catch_warnings():  # "optimal order is the smallest/largest alpha": expected
        warnings.simplefilter("ignore", UserWarning)
        epsilon, _ = get_privacy_spent(orders=list(ORDERS), rdp=curve, delta=delta)
    return max(0.0, float(epsilon))


def noise_for_epsilon(
    epsilon: float, delta: float, sample_rate: float, steps: int, *, rounds: int = 1
) -> float:
    """The smallest noise multiplier (to 1e-3) whose ``rounds`` rounds cost at most
    ``epsilon`` at ``delta``: what a consortium writes in a dp-sgd profile."""
    low, high = 0.3, 1000.0
    if dp_sgd_epsilon(high, sample_rate, steps, delta, rounds=rounds) > epsilon:
        raise ValueError(f"no noise multiplier ≤ {high} reaches ε = {epsilon}")
    while high - low > 1e-3:
        middle = (low + high) / 2
        cost = dp_sgd_epsilon(middle, sample_rate, steps, delta, rounds=rounds)
        low, high = (low, middle) if cost <= epsilon else (middle, high)
    return math.ceil(high * 1000) / 1000
