"""Client-level differential privacy for a parameter update: clip, then Gaussian noise.

The node computes its update ``Δ = w_local − w_global``, scales it down to L2 norm at most
``C`` (so one node's whole contribution has sensitivity ``C``), adds ``N(0, σ²)`` to every
coordinate and releases ``w_global + Δ̃``. This runs on the node, never on the coordinator:
the coordinator is just another elected peer and is not trusted with raw updates.

σ is calibrated by diffprivlib's analytic Gaussian mechanism (Balle & Wang, 2018), which
is tight at any ε (the classic mechanism needs ε ≤ 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from federated.types import NDArray, NDArrays


def calibrate_sigma(epsilon: float, delta: float, clip_norm: float) -> float:
    """Per-coordinate noise σ that makes an update of L2 sensitivity ``clip_norm`` (ε, δ)-DP."""
    # Deferred: loads diffprivlib only when used.
    from diffprivlib.mechanisms import GaussianAnalytic  # slow import (scikit-learn)

    if clip_norm <= 0:
        raise ValueError(f"clip_norm must be > 0, got {clip_norm}")
    mechanism = GaussianAnalytic(epsilon=epsilon, delta=delta, sensitivity=clip_norm)
    # variance() is the mechanism's public read-out of its calibrated scale σ².
    return math.sqrt(float(mechanism.variance(0.0)))


@dataclass(frozen=True)
class PrivatizedUpdate:
    """What the node releases, and the σ and clip norm it used (the norm before clipping is
    deliberately not kept: it depends on the data and is not covered by the guarantee)."""

    parameters: NDArrays
    sigma: float
    clip_norm: float


def privatize_update(
    global_parameters: Sequence[NDArray],
    local_parameters: Sequence[NDArray],
    *,
    clip_norm: float,
    sigma: float,
    rng: np.random.Generator,
) -> PrivatizedUpdate:
    """Clip ``local − global`` to ``clip_norm``, add ``N(0, σ²)`` noise, return global + that.

    Noise is drawn in one vectorized call per layer from ``rng`` rather than through
    diffprivlib's ``randomise``, which samples one scalar per Python call (minutes for a
    million weights); the distribution is the same N(0, σ²) diffprivlib calibrated. In
    production ``rng`` must be seeded from OS entropy, never from anything another party
    knows (a known seed lets the coordinator subtract the noise).
    """
    if len(local_parameters) != len(global_parameters):
        raise ValueError(f"{len(local_parameters)} layers against {len(global_parameters)}")
    delta = [
        np.subtract(w, g, dtype=np.float64)
        for w, g in zip(local_parameters, global_parameters, strict=True)
    ]
    norm = update_norm(delta)
    scale = 1.0 if norm <= clip_norm else clip_norm / norm
    released: NDArrays = []
    for base, d in zip(global_parameters, delta, strict=True):
        noisy = d * scale
        if sigma > 0:
            noisy += rng.normal(0.0, sigma, size=noisy.shape)
        reference = np.asarray(base)
        dtype = reference.dtype if reference.dtype.kind == "f" else np.dtype(np.float64)
        released.append((reference + noisy).astype(dtype, copy=False))
    return PrivatizedUpdate(released, sigma, clip_norm)


def update_norm(arrays: Sequence[NDArray]) -> float:
    """L2 norm of all layers together, as one vector."""
    return math.sqrt(sum(float(np.vdot(a, a)) for a in arrays))


def released_norm_bounds(
    dimension: int, *, clip_norm: float, sigma: float, failure_probability: float = 1e-9
) -> tuple[float, float]:
    """Range that ``‖released − global‖`` of an honest node falls in, except with probability
    at most ``failure_probability`` on each side.

    With ``Δ̃ = Δ + z``, ``‖Δ‖ = a ≤ C`` and ``z ~ N(0, σ²I_d)``:
    ``‖Δ̃‖² = a² + 2⟨Δ, z⟩ + ‖z‖²``, where ``⟨Δ, z⟩ ~ N(0, σ²a²)`` and ``‖z‖²/σ² ~ χ²(d)``.
    Each side takes a Gaussian tail (``P(N > √(2x)) ≤ e⁻ˣ``) and a χ² tail from Laurent &
    Massart (2000) (``P(χ² ≥ d + 2√(dx) + 2x) ≤ e⁻ˣ``, ``P(χ² ≤ d − 2√(dx)) ≤ e⁻ˣ``), with
    ``x = ln(2/p)``, then the worst ``a`` in ``[0, C]``. The χ² spread, about ``2σ²√(dx)``,
    is what no check can see below: an unclipped update is only caught once its excess
    energy ``‖Δ‖² − C²`` is above that.
    """
    if not 0.0 < failure_probability < 1.0:
        raise ValueError("failure_probability must be in (0, 1)")
    if clip_norm < 0 or sigma < 0 or dimension < 1:
        raise ValueError("need clip_norm >= 0, sigma >= 0 and dimension >= 1")
    x = math.log(2.0 / failure_probability)
    t = math.sqrt(2.0 * x)
    c = clip_norm
    chi2_high = dimension + 2.0 * math.sqrt(dimension * x) + 2.0 * x
    chi2_low = max(0.0, dimension - 2.0 * math.sqrt(dimension * x))
    upper = math.sqrt(c * c + 2.0 * sigma * c * t + sigma * sigma * chi2_high)
    # a² − 2σta is smallest at a = σt, or at a = C when σt > C.
    a = min(sigma * t, c)
    lower_sq = sigma * sigma * chi2_low + a * a - 2.0 * sigma * t * a
    return math.sqrt(max(0.0, lower_sq)), upper
