"""What every secret of a round is bound to: the profile, the round and the parties.

Each derived key, associated data and commitment starts from :meth:`RoundContext.label`,
an unambiguous (length-prefixed) encoding of a purpose, the profile, the round and the node
ids, so that nothing derived for one round, profile, pair or purpose is valid for another.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from federated.errors import SecAggParameterError

# A source of random bytes: ``os.urandom`` in production. Tests and benchmarks may pass a
# seeded ``random.Random(seed).randbytes``, which is NOT secure (see ``seeded_entropy``).
Entropy = Callable[[int], bytes]

DOMAIN = b"fedspec-secagg-v1"


def system_entropy(size: int) -> bytes:
    """``size`` bytes from the operating system's CSPRNG."""
    return os.urandom(size)


def seeded_entropy(seed: int) -> Entropy:
    """A reproducible byte source for tests and benchmarks only: anyone who knows ``seed``
    knows every key and mask derived from it."""
    return random.Random(seed).randbytes


def derived_entropy(secret: bytes) -> Entropy:
    """A deterministic byte source keyed by a 32-byte ``secret`` (the ChaCha20 keystream):
    secure as long as the secret stays on the node. A node keeps the secret in its private
    state so that a retried agent re-derives the same keys, seed, shares and nonces and
    re-publishes byte-identical messages (which the ledger accepts as retries), rather than
    a second, different set."""
    if len(secret) != 32:
        raise SecAggParameterError(f"the entropy secret must be 32 bytes, got {len(secret)}")
    stream = Cipher(algorithms.ChaCha20(secret, b"\x00" * 16), mode=None).encryptor()

    def draw(size: int) -> bytes:
        return stream.update(b"\x00" * size)

    return draw


@dataclass(frozen=True)
class RoundContext:
    """The (profile, round) a secure aggregation belongs to."""

    profile_id: str
    round: int

    def __post_init__(self) -> None:
        if not self.profile_id:
            raise SecAggParameterError("a secure aggregation needs a profile id")
        if self.round < 0:
            raise SecAggParameterError(f"round must be >= 0, got {self.round}")

    def label(self, purpose: str, *parts: str) -> bytes:
        """``DOMAIN ‖ purpose ‖ profile ‖ round ‖ parts…``, each field length-prefixed."""
        fields = [purpose, self.profile_id, str(self.round), *parts]
        encoded = [DOMAIN, *(f.encode("utf-8") for f in fields)]
        return b"".join(len(f).to_bytes(4, "big") + f for f in encoded)
