"""Share transport and verification: AES-GCM between peers, SHA-256 commitments.

A dealer encrypts the pair of shares meant for peer v under the key both derive from their
*cipher* key pairs (:func:`keys.agree`), with associated data (profile, round, sender,
recipient): the coordinator relays the ciphertext and can neither read nor redirect it.

Beside the ciphertexts the dealer publishes, for every recipient and kind of secret, a
commitment ``SHA-256(label ‖ share)`` bound to (profile, round, dealer, recipient, kind),
and a commitment to its self-mask seed. When a holder reveals a share in the unmasking
round, the coordinator checks it against the dealer's commitment, so a share altered by its
holder (or in transit) is caught and named. The commitments hide the shares computationally
because each share is a uniform 127-bit field element per chunk. They do not catch a dealer
that hands out inconsistent shares with matching commitments (that needs verifiable secret
sharing, e.g. Feldman's); the coordinator checks the *reconstructed* secrets instead (the
mask key against the registered public key, the seed against its commitment).
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from federated.errors import ShareVerificationError
from federated.secagg.context import Entropy, RoundContext, system_entropy

NONCE_BYTES = 12
TAG_BYTES = 16
SELF_MASK_SHARE = "self-mask-seed"
MASK_KEY_SHARE = "mask-key"
KINDS = (SELF_MASK_SHARE, MASK_KEY_SHARE)


def share_commitment(
    context: RoundContext, *, dealer: str, recipient: str, kind: str, share: bytes
) -> bytes:
    """SHA-256 of the share, bound to the round, the dealer, the recipient and the kind."""
    label = context.label("share-commitment", dealer, recipient, kind)
    return hashlib.sha256(label + share).digest()


def seed_commitment(context: RoundContext, *, dealer: str, seed: bytes) -> bytes:
    """SHA-256 of a self-mask seed (256 random bits), bound to the round and the dealer."""
    return hashlib.sha256(context.label("seed-commitment", dealer) + seed).digest()


def check_share(
    context: RoundContext,
    expected: bytes,
    *,
    dealer: str,
    recipient: str,
    kind: str,
    share: bytes,
) -> None:
    """Raise ``ShareVerificationError`` naming dealer and holder unless ``share`` matches."""
    actual = share_commitment(context, dealer=dealer, recipient=recipient, kind=kind, share=share)
    if not hmac.compare_digest(actual, expected):
        raise ShareVerificationError(
            f"the {kind} share dealt by {dealer!r} to {recipient!r} does not match its commitment",
            dealer=dealer,
            recipient=recipient,
            kind=kind,
        )


def _associated_data(context: RoundContext, sender: str, recipient: str) -> bytes:
    return context.label("share-transport", sender, recipient)


def seal(
    key: bytes,
    plaintext: bytes,
    *,
    context: RoundContext,
    sender: str,
    recipient: str,
    entropy: Entropy = system_entropy,
) -> bytes:
    """``nonce ‖ AES-256-GCM(plaintext)`` with the round and both parties as associated data.

    The nonce is random: both directions of a pair share one key.
    """
    nonce = entropy(NONCE_BYTES)
    ad = _associated_data(context, sender, recipient)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, ad)


def open_sealed(
    key: bytes, blob: bytes, *, context: RoundContext, sender: str, recipient: str
) -> bytes:
    """Decrypt :func:`seal`; a tampered, misdirected or replayed blob is a
    ``ShareVerificationError`` naming the sender (dealer) and recipient."""
    ad = _associated_data(context, sender, recipient)
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], ad)
    except (InvalidTag, ValueError) as exc:
        raise ShareVerificationError(
            f"shares from {sender!r} to {recipient!r} fail authentication",
            dealer=sender,
            recipient=recipient,
        ) from exc


def pack(*parts: bytes) -> bytes:
    """Length-prefixed concatenation."""
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def unpack(data: bytes, count: int) -> list[bytes]:
    """Inverse of :func:`pack` for exactly ``count`` parts (``ValueError`` otherwise)."""
    parts, offset = [], 0
    for _ in range(count):
        size = int.from_bytes(data[offset : offset + 4], "big")
        parts.append(data[offset + 4 : offset + 4 + size])
        offset += 4 + size
    if offset != len(data):
        raise ValueError("malformed packed message")
    return parts
