"""Per-round X25519 key pairs, the directory of public keys, and pairwise key agreement.

Each node holds **two** key pairs per round, as in Bonawitz et al. (2017):

- the *mask* pair ``(s_sk, s_pk)``: pairwise masks are expanded from ``X25519(s_sk_u, s_pk_v)``;
- the *cipher* pair ``(c_sk, c_pk)``: the shares a node sends to a peer are encrypted under
  ``X25519(c_sk_u, c_pk_v)``.

They must differ because a dropped node's ``s_sk`` is reconstructed by the coordinator. With
one key pair, that key would also decrypt every share the dropped node received, among them
its shares of the survivors' self-mask seeds: the coordinator would gain one share of each
survivor's seed per dropped node, lowering the number of colluders it needs.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from federated.errors import SecAggKeyError
from federated.secagg.context import Entropy, RoundContext, system_entropy

KEY_BYTES = 32
MASK_PURPOSE = "pairwise-mask"
CIPHER_PURPOSE = "share-encryption"


def public_bytes(key: X25519PublicKey) -> bytes:
    """The raw 32-byte encoding of a public key."""
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def private_bytes(key: X25519PrivateKey) -> bytes:
    """The raw 32-byte encoding of a private key (what is secret-shared)."""
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


@dataclass(frozen=True)
class PublicKeys:
    """What a node advertises for one round (later: registered on the ledger with its join)."""

    node_id: str
    mask_key: bytes
    cipher_key: bytes

    def __post_init__(self) -> None:
        for name, key in (("mask", self.mask_key), ("cipher", self.cipher_key)):
            if len(key) != KEY_BYTES:
                raise SecAggKeyError(
                    f"{name} key must be {KEY_BYTES} bytes, got {len(key)}", node_id=self.node_id
                )
        if self.mask_key == self.cipher_key:
            raise SecAggKeyError("mask and cipher keys must differ", node_id=self.node_id)

    @property
    def nbytes(self) -> int:
        """Bytes on the wire: the two keys and the node id."""
        return 2 * KEY_BYTES + len(self.node_id.encode())


class NodeKeys:
    """A node's two private keys for one round. Never leaves the node, except that the
    mask key is secret-shared among the cohort."""

    def __init__(
        self, node_id: str, mask_private: X25519PrivateKey, cipher_private: X25519PrivateKey
    ) -> None:
        self.node_id = node_id
        self.mask_private = mask_private
        self.cipher_private = cipher_private

    @classmethod
    def generate(cls, node_id: str, *, entropy: Entropy = system_entropy) -> NodeKeys:
        """Fresh key pairs from ``entropy`` (the OS CSPRNG unless a test passes a seed)."""
        mask = X25519PrivateKey.from_private_bytes(entropy(KEY_BYTES))
        cipher = X25519PrivateKey.from_private_bytes(entropy(KEY_BYTES))
        return cls(node_id, mask, cipher)

    def public(self) -> PublicKeys:
        """The public halves, to advertise."""
        return PublicKeys(
            self.node_id,
            public_bytes(self.mask_private.public_key()),
            public_bytes(self.cipher_private.public_key()),
        )


class KeyDirectory:
    """The round's public keys by node: what the ledger will hold once wired.

    A registration is refused when made on behalf of another node, when the node already
    registered different keys (the same keys again is an idempotent retry), or when a key
    is already registered by another node (copying a peer's key would let a node pose as
    that peer's partner in every pairwise secret).
    """

    def __init__(self) -> None:
        self._keys: dict[str, PublicKeys] = {}
        self._owners: dict[bytes, str] = {}

    def register(self, keys: PublicKeys, *, registrant: str) -> None:
        """Record ``keys``; ``registrant`` is the authenticated identity that sends them."""
        if keys.node_id != registrant:
            raise SecAggKeyError(
                f"{registrant!r} cannot register keys for another node ({keys.node_id!r})",
                node_id=registrant,
            )
        known = self._keys.get(keys.node_id)
        if known == keys:
            return
        if known is not None:
            raise SecAggKeyError("keys already registered for this round", node_id=keys.node_id)
        for key in (keys.mask_key, keys.cipher_key):
            owner = self._owners.get(key)
            if owner is not None:
                raise SecAggKeyError(
                    f"a key already registered by {owner!r}", node_id=keys.node_id, owner=owner
                )
        self._keys[keys.node_id] = keys
        self._owners[keys.mask_key] = keys.node_id
        self._owners[keys.cipher_key] = keys.node_id

    def __getitem__(self, node_id: str) -> PublicKeys:
        try:
            return self._keys[node_id]
        except KeyError:
            raise SecAggKeyError("no keys registered", node_id=node_id) from None

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._keys

    def nodes(self) -> tuple[str, ...]:
        """Registered node ids, sorted."""
        return tuple(sorted(self._keys))


def agree(
    private: X25519PrivateKey,
    peer_public: bytes,
    *,
    context: RoundContext,
    purpose: str,
    node_a: str,
    node_b: str,
) -> bytes:
    """A 32-byte secret shared by ``node_a`` and ``node_b``: X25519, then HKDF-SHA256 with
    ``info`` binding purpose, profile, round and the two ids in sorted order, so that both
    ends derive the same key and a key from another round, profile, pair or purpose yields
    an unrelated one."""
    try:
        raw = private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    except ValueError as exc:  # a low-order point gives an all-zero secret
        raise SecAggKeyError(f"unusable public key of {node_b!r}: {exc}", node_id=node_b) from exc
    first, second = sorted((node_a, node_b))
    info = context.label(purpose, first, second)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(raw)
