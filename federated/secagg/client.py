"""A node's side of one secure aggregation (all state for one round, then discarded)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from federated.errors import (
    MaskedVectorError,
    SecAggKeyError,
    SecAggProtocolError,
    ShareVerificationError,
    TooFewRespondersError,
)
from federated.secagg import masks, shamir, transport
from federated.secagg.context import Entropy, system_entropy
from federated.secagg.keys import (
    CIPHER_PURPOSE,
    MASK_PURPOSE,
    KeyDirectory,
    NodeKeys,
    PublicKeys,
    agree,
    private_bytes,
)
from federated.secagg.messages import MaskedInput, ShareBundle, UnmaskResponse
from federated.secagg.params import SecAggParams
from federated.types import NDArray

SEED_BYTES = 32


class SecAggClient:
    """One node in one round: :meth:`advertise` → :meth:`share_keys` → :meth:`receive` (each
    peer's bundle) → :meth:`mask` → :meth:`unmask_response` (once)."""

    def __init__(
        self, params: SecAggParams, node_id: str, *, entropy: Entropy = system_entropy
    ) -> None:
        params.index(node_id)  # refuses a node outside the cohort
        self.params = params
        self.node_id = node_id
        self._entropy = entropy
        self.keys = NodeKeys.generate(node_id, entropy=entropy)
        self._seed = entropy(SEED_BYTES)
        self._directory: KeyDirectory | None = None
        # Shares this node holds, by dealer and kind (its own included).
        self._held: dict[str, dict[str, bytes]] = {}
        self._answered: tuple[str, ...] | None = None

    def advertise(self) -> PublicKeys:
        """Message 1: this round's public keys."""
        return self.keys.public()

    def share_keys(self, directory: KeyDirectory) -> ShareBundle:
        """Message 2: shares of the self-mask seed and of the mask private key, one pair per
        cohort member, encrypted to each peer, with commitments."""
        params, me = self.params, self.node_id
        if directory.nodes() != params.cohort:
            missing = sorted(set(params.cohort) - set(directory.nodes()))
            raise SecAggProtocolError(
                f"the key directory does not match the cohort (missing {missing})", node_id=me
            )
        if directory[me] != self.keys.public():
            raise SecAggKeyError("the directory holds other keys for this node", node_id=me)
        self._directory = directory
        n, t = len(params.cohort), params.threshold
        seed_shares = shamir.split(self._seed, n, t, entropy=self._entropy)
        key_shares = shamir.split(
            private_bytes(self.keys.mask_private), n, t, entropy=self._entropy
        )
        ciphertexts: dict[str, bytes] = {}
        commitments: dict[str, dict[str, bytes]] = {}
        for holder, seed_share, key_share in zip(
            params.cohort, seed_shares, key_shares, strict=True
        ):
            payload = {
                transport.SELF_MASK_SHARE: seed_share.to_bytes(),
                transport.MASK_KEY_SHARE: key_share.to_bytes(),
            }
            commitments[holder] = {
                kind: transport.share_commitment(
                    params.context, dealer=me, recipient=holder, kind=kind, share=share
                )
                for kind, share in payload.items()
            }
            if holder == me:
                self._held[me] = payload
                continue
            key = self._cipher_key(holder)
            plaintext = transport.pack(*(payload[k] for k in transport.KINDS))
            ciphertexts[holder] = transport.seal(
                key, plaintext, context=params.context, sender=me, recipient=holder,
                entropy=self._entropy,
            )  # fmt: skip
        seed_commitment = transport.seed_commitment(params.context, dealer=me, seed=self._seed)
        return ShareBundle(me, ciphertexts, commitments, seed_commitment)

    def receive(self, bundle: ShareBundle) -> None:
        """Decrypt and check the shares a peer dealt to this node (message 2, relayed)."""
        me, dealer = self.node_id, bundle.dealer
        self.params.index(dealer)
        if dealer == me or dealer in self._held:
            raise SecAggProtocolError(f"a second bundle from {dealer!r}", node_id=me)
        blob = bundle.ciphertexts.get(me)
        if blob is None:
            raise ShareVerificationError(
                f"{dealer!r} sent no shares to {me!r}", dealer=dealer, recipient=me
            )
        plaintext = transport.open_sealed(
            self._cipher_key(dealer), blob, context=self.params.context, sender=dealer, recipient=me
        )
        try:
            parts = transport.unpack(plaintext, len(transport.KINDS))
        except ValueError as exc:
            raise ShareVerificationError(
                f"malformed shares from {dealer!r}", dealer=dealer, recipient=me
            ) from exc
        payload = dict(zip(transport.KINDS, parts, strict=True))
        for kind, share in payload.items():
            transport.check_share(
                self.params.context,
                bundle.commitments.get(me, {}).get(kind, b""),
                dealer=dealer,
                recipient=me,
                kind=kind,
                share=share,
            )
        self._held[dealer] = payload

    def mask(self, values: NDArray) -> MaskedInput:
        """Message 3: ``encode(x) + PRG(b) + Σ_{v>u} PRG(s_uv) − Σ_{v<u} PRG(s_uv)`` mod 2^k,
        over the peers whose shares this node received."""
        params, me = self.params, self.node_id
        encoding = params.encoding
        flat = np.asarray(values).ravel()
        if flat.size != params.dimension:
            raise MaskedVectorError(
                f"input has {flat.size} values, the round expects {params.dimension}", node_id=me
            )
        directory = self._require_directory()
        total = encoding.encode(flat)
        self_key = masks.self_mask_key(self._seed, context=params.context, node_id=me)
        masks.apply(total, masks.expand(self_key, params.dimension, encoding.bits), +1)
        for peer in self._peers():
            secret = agree(
                self.keys.mask_private, directory[peer].mask_key, context=params.context,
                purpose=MASK_PURPOSE, node_a=me, node_b=peer,
            )  # fmt: skip
            mask = masks.expand(secret, params.dimension, encoding.bits)
            masks.apply(total, mask, masks.pairwise_sign(me, peer))
        return MaskedInput(me, encoding.bits, total)

    def unmask_response(self, survivors: Sequence[str]) -> UnmaskResponse:
        """Message 4, answered once per round: the seed share of every survivor and the
        mask-key share of every other dealer. A second request with another survivor list is
        refused, so no dealer is ever revealed both as surviving and as dropped."""
        me = self.node_id
        chosen = tuple(sorted(set(survivors)))
        if self._answered is not None and self._answered != chosen:
            raise SecAggProtocolError("a second, different unmasking request", node_id=me)
        if me not in chosen:
            raise SecAggProtocolError("asked to unmask while listed as dropped", node_id=me)
        unknown = sorted(set(chosen) - set(self._held))
        if unknown:
            raise SecAggProtocolError(f"survivors {unknown} never dealt shares", node_id=me)
        if len(chosen) < self.params.threshold:
            raise TooFewRespondersError(
                f"{len(chosen)} survivors, fewer than the threshold {self.params.threshold}",
                node_id=me,
            )
        self._answered = chosen
        seeds = {u: self._held[u][transport.SELF_MASK_SHARE] for u in chosen}
        keys = {
            u: held[transport.MASK_KEY_SHARE] for u, held in self._held.items() if u not in chosen
        }
        return UnmaskResponse(me, seeds, keys)

    def holds(self, dealer: str) -> bool:
        """Whether this node holds shares dealt by ``dealer`` (its own included)."""
        return dealer in self._held

    def _peers(self) -> list[str]:
        return sorted(u for u in self._held if u != self.node_id)

    def _require_directory(self) -> KeyDirectory:
        if self._directory is None:
            raise SecAggProtocolError("share_keys must come first", node_id=self.node_id)
        return self._directory

    def _cipher_key(self, peer: str) -> bytes:
        return agree(
            self.keys.cipher_private,
            self._require_directory()[peer].cipher_key,
            context=self.params.context,
            purpose=CIPHER_PURPOSE,
            node_a=self.node_id,
            node_b=peer,
        )
