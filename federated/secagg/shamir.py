"""Shamir secret sharing of byte strings over GF(2^127 − 1), threshold t of n.

Written here because no maintained Python library shares arbitrary-length byte secrets over a
prime field with the checks needed (share verification sits in :mod:`transport`, against
commitments). A secret is cut into 15-byte chunks (120 bits < 127), each chunk shared with
its own random polynomial of degree ``t − 1``; a share holds one field element per chunk at
the same x. Fewer than t shares reveal nothing about the secret (information-theoretically);
any t recover it by Lagrange interpolation at 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from federated.secagg.context import Entropy, system_entropy

PRIME = 2**127 - 1
CHUNK = 15
_ELEMENT = 16  # bytes per field element on the wire


@dataclass(frozen=True)
class Share:
    """One holder's share: x-coordinate, one field element per chunk, the secret's length."""

    x: int
    values: tuple[int, ...]
    length: int

    def to_bytes(self) -> bytes:
        """``x`` (4 bytes) ‖ length (2 bytes) ‖ 16 bytes per element, big-endian."""
        head = self.x.to_bytes(4, "big") + self.length.to_bytes(2, "big")
        return head + b"".join(v.to_bytes(_ELEMENT, "big") for v in self.values)

    @classmethod
    def from_bytes(cls, data: bytes) -> Share:
        """Parse :meth:`to_bytes` (``ValueError`` if malformed)."""
        if len(data) < 6 or (len(data) - 6) % _ELEMENT:
            raise ValueError("malformed share")
        x, length = int.from_bytes(data[:4], "big"), int.from_bytes(data[4:6], "big")
        values = tuple(
            int.from_bytes(data[i : i + _ELEMENT], "big") for i in range(6, len(data), _ELEMENT)
        )
        if len(values) != _chunks(length) or any(v >= PRIME for v in values):
            raise ValueError("malformed share")
        return cls(x, values, length)


def _chunks(length: int) -> int:
    return max(1, -(-length // CHUNK))


def _random_element(entropy: Entropy) -> int:
    # Rejection sampling: 127 random bits, redrawn in the 2^-127 case they equal PRIME.
    while True:
        value = int.from_bytes(entropy(_ELEMENT), "big") & PRIME
        if value < PRIME:
            return value


def split(secret: bytes, n: int, t: int, *, entropy: Entropy = system_entropy) -> list[Share]:
    """``n`` shares of ``secret`` at x = 1…n, any ``t`` of which recover it."""
    if not 1 <= t <= n or n >= PRIME:
        raise ValueError(f"need 1 <= t <= n, got t={t}, n={n}")
    if len(secret) >= 2**16:
        raise ValueError("secret too long")
    pieces = [secret[i : i + CHUNK] for i in range(0, len(secret), CHUNK)] or [b""]
    polys = [
        [int.from_bytes(p, "big")] + [_random_element(entropy) for _ in range(t - 1)]
        for p in pieces
    ]
    shares = []
    for x in range(1, n + 1):
        values = []
        for coefficients in polys:
            y = 0
            for c in reversed(coefficients):  # Horner
                y = (y * x + c) % PRIME
            values.append(y)
        shares.append(Share(x, tuple(values), len(secret)))
    return shares


@lru_cache(maxsize=256)
def _lagrange_at_zero(xs: tuple[int, ...]) -> tuple[int, ...]:
    # Cached: the coordinator combines every dealer's shares from the same set of holders.
    weights = []
    for i, xi in enumerate(xs):
        num, den = 1, 1
        for j, xj in enumerate(xs):
            if i != j:
                num = num * xj % PRIME
                den = den * (xj - xi) % PRIME
        weights.append(num * pow(den, -1, PRIME) % PRIME)
    return tuple(weights)


def combine(shares: Sequence[Share]) -> bytes:
    """The secret from shares at distinct x (at least the threshold of them; ``ValueError``
    if they are inconsistent in form or do not decode to a secret of the stated length)."""
    if not shares:
        raise ValueError("no shares")
    xs = [s.x for s in shares]
    length = shares[0].length
    if len(set(xs)) != len(xs) or not all(0 < x < PRIME for x in xs):
        raise ValueError("shares need distinct x in 1…p−1")
    if any(s.length != length or len(s.values) != _chunks(length) for s in shares):
        raise ValueError("shares of different secrets")
    weights = _lagrange_at_zero(tuple(xs))
    out = bytearray()
    for chunk in range(_chunks(length)):
        value = sum(w * s.values[chunk] for w, s in zip(weights, shares, strict=True)) % PRIME
        size = min(CHUNK, length - chunk * CHUNK)
        if value >= 256**size:
            raise ValueError("shares do not decode to a secret")
        out += value.to_bytes(size, "big")
    return bytes(out)
