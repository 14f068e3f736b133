"""Fixed-point encoding of float vectors into Z_{2^k}, where masks add and cancel exactly.

A value ``x`` becomes ``q = rint(clip(x, −clip, clip) · scale)``, an integer in
``[−Q, Q]`` with ``Q = rint(clip · scale)``, stored as ``q mod 2^k`` in a ``uint{k}`` array
(two's complement). numpy's unsigned array arithmetic wraps around, so sums and masks are
exact arithmetic modulo ``2^k``. Values beyond ``±clip`` are clipped, not refused: the
bound is part of the profile (for client-level DP, ``clip`` is at least the L2 clip norm
plus a noise margin).

Decoding a sum of N encodings reads it back as a signed k-bit integer, which is the exact
integer sum ``Σ qᵢ`` as long as ``N · Q ≤ 2^(k−1) − 1`` (roughly ``N·clip·scale < 2^(k−1)``);
:meth:`FixedPoint.check_capacity` refuses a cohort for which that can fail.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from federated.errors import EncodingOverflowError, InvalidUpdateError, SecAggParameterError
from federated.types import NDArray

BITS = (32, 64)


@dataclass(frozen=True)
class FixedPoint:
    """``bits`` (k) is 32 or 64; ``scale`` multiplies values before rounding; ``clip`` bounds
    each coordinate's magnitude. Defaults: resolution 2⁻¹⁶, |x| ≤ 64, up to 511 nodes."""

    bits: int = 32
    scale: float = 2.0**16
    clip: float = 64.0

    def __post_init__(self) -> None:
        if self.bits not in BITS:
            raise SecAggParameterError(f"bits must be one of {BITS}, got {self.bits}")
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise SecAggParameterError(f"scale must be finite and > 0, got {self.scale}")
        if not (np.isfinite(self.clip) and self.clip > 0):
            raise SecAggParameterError(f"clip must be finite and > 0, got {self.clip}")
        self.check_capacity(1)

    @property
    def dtype(self) -> np.dtype[np.unsignedinteger]:
        """``uint32`` or ``uint64``: the ring Z_{2^k} with numpy's wrap-around."""
        return np.dtype(np.uint32 if self.bits == 32 else np.uint64)

    @property
    def max_level(self) -> int:
        """Q: the largest magnitude of an encoded coordinate."""
        return round(self.clip * self.scale)

    def max_nodes(self) -> int:
        """The largest cohort whose sum cannot wrap: ``⌊(2^(k−1) − 1) / Q⌋``."""
        return ((1 << (self.bits - 1)) - 1) // max(1, self.max_level)

    def check_capacity(self, nodes: int) -> None:
        """Raise ``EncodingOverflowError`` unless ``nodes · Q ≤ 2^(k−1) − 1``."""
        if nodes * self.max_level > (1 << (self.bits - 1)) - 1:
            raise EncodingOverflowError(
                f"{nodes} nodes × clip {self.clip:g} × scale {self.scale:g} does not fit in "
                f"2^{self.bits - 1}: at most {self.max_nodes()} nodes, or lower clip or scale",
                nodes=nodes,
                bits=self.bits,
            )

    def quantize(self, values: NDArray) -> NDArray:
        """The fixed-point integers ``rint(clip(x) · scale)`` as int64 (what a sum is exact in)."""
        x = np.asarray(values, dtype=np.float64).ravel()
        if not np.all(np.isfinite(x)):
            raise InvalidUpdateError("a vector to encode holds NaN or infinite values")
        clipped = np.clip(x, -self.clip, self.clip)
        return np.rint(clipped * self.scale).astype(np.int64)

    def encode(self, values: NDArray) -> NDArray:
        """Clip, quantize and map into Z_{2^k} (a flat ``uint{k}`` array)."""
        # int64 → uint64 is two's complement; uint32 keeps the low 32 bits of it.
        return self.quantize(values).astype(np.uint64).astype(self.dtype)

    def to_signed(self, encoded: NDArray) -> NDArray:
        """A ``uint{k}`` sum read as signed k-bit integers (int64): the exact fixed-point sum."""
        signed = np.dtype(np.int32 if self.bits == 32 else np.int64)
        return np.asarray(encoded, dtype=self.dtype).view(signed).astype(np.int64)

    def decode(self, encoded: NDArray) -> NDArray:
        """A ``uint{k}`` sum as float64 values (``signed / scale``)."""
        return self.to_signed(encoded).astype(np.float64) / self.scale
