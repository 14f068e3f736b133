"""Rényi-DP accounting of DP-SGD, in exact decimal arithmetic that every peer agrees on.

A ``dp-sgd`` profile fixes the mechanism of a round: ``steps`` steps of the Poisson-
subsampled Gaussian mechanism (sampling rate ``q``, noise multiplier ``σ``, per-sample
clip norm ``C``). Its Rényi-DP at integer order α is (Mironov, Talwar & Zhang 2019, the
integer-order formula opacus also uses)

    RDP(α) = steps / (α − 1) · ln Σ_{k=0..α} C(α, k) q^k (1 − q)^(α−k) exp((k² − k) / (2σ²))

RDP composes by addition, order by order, across rounds and across profiles. A total is
converted to (ε, δ)-DP with the conversion of Balle et al. 2020 (Theorem 21), the one
opacus's ``RDPAccountant`` uses:

    ε(δ) = min_α [ RDP(α) + ln((α − 1)/α) − (ln δ + ln α) / (α − 1) ]

Floats never decide ledger validity: binomial coefficients and powers of q are exact
fractions, and ``exp``/``ln``/``+``/``×``/``÷`` are the decimal module's correctly rounded
operations at ``PRECISION`` significant digits, so every peer (and the node checking its
budget before training) computes the same digits. Stored RDP values are rounded *up* at
``RDP_PLACES`` decimals and ε up at ``EPSILON_PLACES``: rounding can only overstate a spend.

Only integer orders are used (fractional orders need erfc series with no correctly
rounded decimal counterpart); ε is therefore a few percent above what opacus reports with
its default fractional orders, never below (tests compare both).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Context, Decimal
from fractions import Fraction
from functools import lru_cache
from math import ceil, comb

from fedspec.search import most_that_fit

# Orders 2…64, then a few large ones for very small spends (opacus's default integer range).
ORDERS: tuple[int, ...] = (*range(2, 65), 80, 96, 128, 256)
PRECISION = 60
RDP_PLACES = 18
EPSILON_PLACES = 12
# Emax wide enough for exp((k² − k)/(2σ²)) at k = 256 and the smallest σ a profile allows.
_CONTEXT = Context(prec=PRECISION, Emax=10**8, Emin=-(10**8))
_RDP_QUANTUM = Decimal(1).scaleb(-RDP_PLACES)
_EPSILON_QUANTUM = Decimal(1).scaleb(-EPSILON_PLACES)


def _exact(value: Fraction) -> Decimal:
    """A fraction as a decimal, correctly rounded (one division)."""
    return _CONTEXT.divide(Decimal(value.numerator), Decimal(value.denominator))


def steps_per_round(sample_rate: Fraction, epochs: Fraction) -> int:
    """Steps of Poisson sampling at rate ``q`` in ``epochs`` expected passes: ⌈epochs / q⌉."""
    return ceil(epochs / sample_rate)


def _log_moment(alpha: int, q: Fraction, two_sigma_squared: Fraction) -> Decimal:
    """ln E[(p/p')^α] of one subsampled Gaussian step at integer order α (≥ 0)."""
    total = Decimal(0)
    for k in range(alpha + 1):
        weight = comb(alpha, k) * q**k * (1 - q) ** (alpha - k)
        if weight == 0:
            continue
        exponent = _exact(Fraction(k * k - k) / two_sigma_squared)
        total = _CONTEXT.add(total, _CONTEXT.multiply(_exact(weight), _CONTEXT.exp(exponent)))
    return _CONTEXT.ln(total)


@lru_cache(maxsize=64)
def round_rdp(noise_multiplier: Fraction, sample_rate: Fraction, steps: int) -> tuple[Decimal, ...]:
    """RDP at every order of :data:`ORDERS` of ``steps`` subsampled Gaussian steps."""
    if not (noise_multiplier > 0 and 0 < sample_rate <= 1 and steps >= 0):
        raise ValueError("need noise_multiplier > 0, 0 < sample_rate ≤ 1 and steps ≥ 0")
    two_sigma_squared = 2 * noise_multiplier**2
    out = []
    for alpha in ORDERS:
        per_step = _CONTEXT.divide(
            _log_moment(alpha, sample_rate, two_sigma_squared), Decimal(alpha - 1)
        )
        value = _CONTEXT.multiply(per_step, Decimal(steps))
        out.append(max(Decimal(0), value).quantize(_RDP_QUANTUM, rounding=ROUND_CEILING))
    return tuple(out)


def add(*curves: Iterable[Decimal]) -> tuple[Decimal, ...]:
    """The order-by-order sum of RDP curves (exact: the terms have ``RDP_PLACES`` decimals)."""
    total = [Decimal(0)] * len(ORDERS)
    for curve in curves:
        values = list(curve)
        if len(values) != len(ORDERS):
            raise ValueError(f"an RDP curve has {len(ORDERS)} orders, got {len(values)}")
        total = [_sum(a, b) for a, b in zip(total, values, strict=True)]
    return tuple(total)


def _sum(a: Decimal, b: Decimal) -> Decimal:
    # Exact: a context wide enough for any sum of quantized values the ledger can hold.
    return Context(prec=200).add(a, b)


def scale(curve: Sequence[Decimal], times: int) -> tuple[Decimal, ...]:
    """``times`` rounds of the same curve (exact)."""
    return tuple(Context(prec=200).multiply(value, Decimal(times)) for value in curve)


def epsilon(curve: Sequence[Decimal], delta: Fraction) -> Decimal:
    """The ε at ``delta`` of an RDP curve, rounded up at ``EPSILON_PLACES`` decimals (≥ 0)."""
    if not 0 < delta < 1:
        raise ValueError("delta must be in (0, 1)")
    ln_delta = _CONTEXT.ln(_exact(delta))
    best: Decimal | None = None
    for alpha, rdp in zip(ORDERS, curve, strict=True):
        a = Decimal(alpha)
        shift = _CONTEXT.subtract(
            _CONTEXT.ln(_CONTEXT.divide(a - 1, a)),
            _CONTEXT.divide(_CONTEXT.add(ln_delta, _CONTEXT.ln(a)), a - 1),
        )
        value = _CONTEXT.add(rdp, shift)
        best = value if best is None or value < best else best
    assert best is not None
    return max(Decimal(0), best).quantize(_EPSILON_QUANTUM, rounding=ROUND_CEILING)


def to_text(curve: Sequence[Decimal]) -> list[str]:
    """A curve as the decimal strings a ledger record holds."""
    return [format(value, "f") for value in curve]


def from_text(values: Sequence[str]) -> tuple[Decimal, ...]:
    """A curve back from :func:`to_text` (values the chaincode itself wrote)."""
    if len(values) != len(ORDERS):
        raise ValueError(f"an RDP curve has {len(ORDERS)} orders, got {len(values)}")
    return tuple(Decimal(v) for v in values)


@dataclass(frozen=True)
class Standing:
    """A node's record-level spend as the RDP accountant sees it, in one dp-sgd profile.

    ``profile_curve`` composes the node's rounds in this profile; ``family_curve`` its rounds
    in every dp-sgd profile of the family (the same records may train several profiles);
    ``other_epsilon``/``other_delta`` are its (ε, δ) spends under the older modes
    (client-level DP, dp-model), composed with the rest by basic composition.
    """

    profile_curve: tuple[Decimal, ...]
    family_curve: tuple[Decimal, ...]
    other_epsilon: Fraction
    other_delta: Fraction
    delta: Fraction  # the profile's δ budget: the δ every ε here is stated at
    epsilon_budget: Fraction

    @property
    def profile_epsilon(self) -> Decimal:
        """ε at δ of this profile's rounds alone."""
        return epsilon(self.profile_curve, self.delta)

    @property
    def family_epsilon(self) -> Decimal | None:
        """ε at δ of everything the node spent in the family; ``None`` when the older modes'
        δ already use up the profile's δ (nothing more can be spent)."""
        left = self.delta - self.other_delta
        if left <= 0:
            return None
        return _CONTEXT.add(epsilon(self.family_curve, left), _exact(self.other_epsilon))

    def with_round(self, curve: Sequence[Decimal]) -> Standing:
        """The standing after one more round costing ``curve`` in this profile."""
        return dataclasses.replace(
            self,
            profile_curve=add(self.profile_curve, curve),
            family_curve=add(self.family_curve, curve),
        )

    def refusal(self, curve: Sequence[Decimal]) -> str | None:
        """Why one more round costing ``curve`` would exceed the budget, or ``None``."""
        after = self.with_round(curve)
        family = after.family_epsilon
        if family is None:
            return (
                f"the older modes' spends (δ={_text(self.other_delta)}) use up this "
                f"profile's δ budget ({_text(self.delta)}); no record-level round fits"
            )
        if Fraction(family) > self.epsilon_budget:
            here = after.profile_epsilon.normalize()
            return (
                f"one more round would bring the node's record-level spend to "
                f"ε={family.normalize():f} at δ={_text(self.delta)} over the family "
                f"(ε={here:f} in this profile alone); the budget is ε={_text(self.epsilon_budget)}"
            )
        return None

    def rounds_left(self, curve: Sequence[Decimal], limit: int = 10_000) -> int:
        """How many more rounds costing ``curve`` fit (at most ``limit``)."""

        def fits(count: int) -> bool:
            grown = dataclasses.replace(
                self,
                profile_curve=add(self.profile_curve, scale(curve, count)),
                family_curve=add(self.family_curve, scale(curve, count)),
            )
            family = grown.family_epsilon
            return family is not None and Fraction(family) <= self.epsilon_budget

        return most_that_fit(fits, limit)  # ε only grows with the number of rounds


def _text(value: Fraction) -> str:
    return format(_exact(value).normalize(), "f")


def zero() -> tuple[Decimal, ...]:
    """The curve of no spend."""
    return tuple(Decimal(0) for _ in ORDERS)
