"""The messages of one secure aggregation, in the order they are sent.

1. :class:`~federated.secagg.keys.PublicKeys` — node → all (via the coordinator; later the
   ledger with the node's join).
2. :class:`ShareBundle` — node → coordinator → each peer: encrypted shares and commitments.
3. :class:`MaskedInput` — node → coordinator: the masked vector.
4. :class:`UnmaskResponse` — surviving node → coordinator: the shares it reveals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from federated.types import NDArray

DIGEST_BYTES = 32


@dataclass(frozen=True)
class ShareBundle:
    """A dealer's shares: ``ciphertexts[v]`` for each peer v; ``commitments[v]`` maps the
    share kind to its commitment for every holder v (the dealer included, who keeps its own
    shares); ``seed_commitment`` commits to the dealer's self-mask seed."""

    dealer: str
    ciphertexts: Mapping[str, bytes]
    commitments: Mapping[str, Mapping[str, bytes]]
    seed_commitment: bytes

    @property
    def nbytes(self) -> int:
        """Bytes on the wire (ciphertexts, commitments, ids, seed commitment)."""
        ids = sum(len(v.encode()) for v in self.commitments) + len(self.dealer.encode())
        digests = sum(len(c) for kinds in self.commitments.values() for c in kinds.values())
        return sum(len(c) for c in self.ciphertexts.values()) + digests + ids + DIGEST_BYTES


@dataclass(frozen=True)
class MaskedInput:
    """A node's masked, encoded vector: ``values`` is ``uint{bits}``, flat."""

    node_id: str
    bits: int
    values: NDArray

    @property
    def nbytes(self) -> int:
        """Bytes on the wire."""
        return int(self.values.nbytes) + len(self.node_id.encode()) + 1


@dataclass(frozen=True)
class UnmaskResponse:
    """What a survivor reveals for the dealers it holds shares of: the self-mask seed share
    of each survivor, the mask-key share of each dropped node (never both for one dealer)."""

    node_id: str
    self_mask_shares: Mapping[str, bytes]
    mask_key_shares: Mapping[str, bytes]

    @property
    def nbytes(self) -> int:
        """Bytes on the wire."""
        shares = [*self.self_mask_shares.items(), *self.mask_key_shares.items()]
        return sum(len(k.encode()) + len(v) for k, v in shares) + len(self.node_id.encode())
