"""Mask vectors: a 32-byte key expanded into a uniform vector over Z_{2^k}.

The expansion is the ChaCha20 keystream (OpenSSL, through ``cryptography``) read as
little-endian ``uint{k}``. A cryptographic generator is required: the claim that a masked
vector is uniform to the coordinator holds only if the mask is indistinguishable from
uniform to someone who sees it added to data. numpy's PCG64 or Philox are statistically
good but not cryptographic (PCG64's state can be recovered from its outputs). Every key is
used for one vector only (keys come from HKDF bound to purpose, profile, round and the
pair), so the all-zero nonce is safe.
"""

from __future__ import annotations

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from federated.secagg.context import RoundContext
from federated.types import NDArray

SELF_PURPOSE = "self-mask"
_NONCE = bytes(16)  # ChaCha20 in cryptography: 4-byte counter ‖ 12-byte nonce, all zero


def expand(key: bytes, dimension: int, bits: int) -> NDArray:
    """``dimension`` uniform values in Z_{2^bits} from the ChaCha20 keystream of ``key``."""
    width = bits // 8
    encryptor = Cipher(algorithms.ChaCha20(key, _NONCE), mode=None).encryptor()
    stream = encryptor.update(bytes(dimension * width))
    native = np.dtype(np.uint32 if bits == 32 else np.uint64)
    return np.frombuffer(stream, dtype=native.newbyteorder("<")).astype(native)


def self_mask_key(seed: bytes, *, context: RoundContext, node_id: str) -> bytes:
    """The key a node's self-mask is expanded from: HKDF of its private seed ``b``."""
    info = context.label(SELF_PURPOSE, node_id)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(seed)


def pairwise_sign(node_id: str, peer_id: str) -> int:
    """+1 if ``node_id`` adds the pair's mask (the peer sorts after it), −1 if it subtracts."""
    return 1 if peer_id > node_id else -1


def apply(total: NDArray, mask: NDArray, sign: int) -> None:
    """``total ± mask`` in place, modulo 2^k (numpy's unsigned arithmetic wraps)."""
    if sign > 0:
        np.add(total, mask, out=total)
    else:
        np.subtract(total, mask, out=total)
