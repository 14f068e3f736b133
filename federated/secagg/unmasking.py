"""The coordinator's side: check the masked vectors and revealed shares, rebuild the masks
of survivors and dropped nodes, and return the exact fixed-point sum of survivors' inputs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from federated.errors import (
    MaskedVectorError,
    SecAggProtocolError,
    ShareVerificationError,
    TooFewRespondersError,
)
from federated.secagg import masks, shamir, transport
from federated.secagg.keys import MASK_PURPOSE, KeyDirectory, agree, public_bytes
from federated.secagg.messages import MaskedInput, ShareBundle, UnmaskResponse
from federated.secagg.params import SecAggParams
from federated.types import NDArray


@dataclass(frozen=True)
class ShareRejection:
    """A revealed share that failed its commitment and was left out."""

    dealer: str
    recipient: str
    kind: str


@dataclass(frozen=True)
class UnmaskResult:
    """The survivors' sum and who is in it.

    ``fixed_point`` is the exact integer sum ``Σ rint(clip(x)·scale)`` (int64), ``total`` the
    same divided by the scale; ``survivors`` sent masked vectors (their inputs are in the
    sum, their self-masks were removed); ``recovered`` are the dropped nodes whose pairwise
    masks were rebuilt from shares of their mask keys; ``responders`` answered the unmasking
    request; ``rejected`` lists shares that failed their commitment (left out, the round
    continued with the others)."""

    fixed_point: NDArray
    total: NDArray
    survivors: tuple[str, ...]
    recovered: tuple[str, ...]
    responders: tuple[str, ...]
    rejected: tuple[ShareRejection, ...] = field(default=())


def check_masked(params: SecAggParams, masked: MaskedInput, dealers: set[str]) -> None:
    """Refuse a masked vector of the wrong length or modulus, or from a node that dealt no
    shares (its masks could never be removed)."""
    node, encoding = masked.node_id, params.encoding
    if node not in dealers:
        raise MaskedVectorError("a masked vector from a node that dealt no shares", node_id=node)
    values = masked.values
    if masked.bits != encoding.bits or values.dtype != encoding.dtype:
        raise MaskedVectorError(
            f"modulus 2^{masked.bits} ({values.dtype}) where the round uses 2^{encoding.bits}",
            node_id=node,
        )
    if values.ndim != 1 or values.size != params.dimension:
        raise MaskedVectorError(
            f"{values.size} values where the round expects {params.dimension}", node_id=node
        )


def unmask(
    params: SecAggParams,
    directory: KeyDirectory,
    bundles: Mapping[str, ShareBundle],
    masked: Mapping[str, MaskedInput],
    responses: Mapping[str, UnmaskResponse],
) -> UnmaskResult:
    """The sum of the survivors' inputs: ``Σ y_v − Σ PRG(b_v) ∓ Σ PRG(s_uv)`` (u dropped).

    ``bundles`` are the share bundles by dealer (the nodes that reached masking),
    ``masked`` the masked vectors by node (its keys are the survivors), ``responses`` the
    unmasking answers by node. Needs at least ``threshold`` responders, all survivors.
    """
    dealers = set(bundles)
    for node, vector in masked.items():
        if node != vector.node_id:
            raise SecAggProtocolError(f"vector filed under {node!r}", node_id=vector.node_id)
        check_masked(params, vector, dealers)
    survivors = tuple(sorted(masked))
    dropped = tuple(sorted(dealers - set(survivors)))
    responders = tuple(sorted(responses))
    _check_responses(params, survivors, dropped, responses)

    rejected: list[ShareRejection] = []
    encoding, context = params.encoding, params.context
    total = np.zeros(params.dimension, dtype=encoding.dtype)
    for vector in masked.values():
        np.add(total, vector.values, out=total)
    for node in survivors:
        seed = _reconstruct(params, node, transport.SELF_MASK_SHARE, bundles, responses, rejected)
        if (
            transport.seed_commitment(context, dealer=node, seed=seed)
            != bundles[node].seed_commitment
        ):
            raise ShareVerificationError(
                f"the self-mask seed rebuilt for {node!r} does not match its commitment",
                dealer=node,
                recipient=None,
            )
        key = masks.self_mask_key(seed, context=context, node_id=node)
        masks.apply(total, masks.expand(key, params.dimension, encoding.bits), -1)
    for node in dropped:
        raw = _reconstruct(params, node, transport.MASK_KEY_SHARE, bundles, responses, rejected)
        private = X25519PrivateKey.from_private_bytes(raw)
        if public_bytes(private.public_key()) != directory[node].mask_key:
            raise ShareVerificationError(
                f"the mask key rebuilt for {node!r} does not match its registered public key",
                dealer=node,
                recipient=None,
            )
        for survivor in survivors:
            secret = agree(
                private, directory[survivor].mask_key, context=context,
                purpose=MASK_PURPOSE, node_a=node, node_b=survivor,
            )  # fmt: skip
            mask = masks.expand(secret, params.dimension, encoding.bits)
            # The survivor applied sign(survivor, node); undo it.
            masks.apply(total, mask, -masks.pairwise_sign(survivor, node))
    return UnmaskResult(
        fixed_point=encoding.to_signed(total),
        total=encoding.decode(total),
        survivors=survivors,
        recovered=dropped,
        responders=responders,
        rejected=tuple(rejected),
    )


def _check_responses(
    params: SecAggParams,
    survivors: tuple[str, ...],
    dropped: tuple[str, ...],
    responses: Mapping[str, UnmaskResponse],
) -> None:
    t = params.threshold
    if len(survivors) < t:
        raise TooFewRespondersError(
            f"{len(survivors)} masked vectors arrived, fewer than the threshold {t}",
            survivors=list(survivors),
        )
    if len(responses) < t:
        raise TooFewRespondersError(
            f"{len(responses)} nodes answered the unmasking request, fewer than the threshold {t}",
            responders=sorted(responses),
        )
    alive, gone = set(survivors), set(dropped)
    for node, response in responses.items():
        if node != response.node_id or node not in alive:
            raise SecAggProtocolError(
                "an unmasking answer from a node that is not a survivor", node_id=node
            )
        both = set(response.self_mask_shares) & set(response.mask_key_shares)
        if both or not set(response.self_mask_shares) <= alive:
            raise SecAggProtocolError(
                "reveals a seed share of a node that is not a survivor", node_id=node
            )
        if not set(response.mask_key_shares) <= gone:
            raise SecAggProtocolError(
                "reveals a mask-key share of a node that did not drop", node_id=node
            )


def _reconstruct(
    params: SecAggParams,
    dealer: str,
    kind: str,
    bundles: Mapping[str, ShareBundle],
    responses: Mapping[str, UnmaskResponse],
    rejected: list[ShareRejection],
) -> bytes:
    """The dealer's secret from ``threshold`` shares that match their commitments."""
    valid: list[shamir.Share] = []
    failures: list[ShareVerificationError] = []
    for holder in sorted(responses):
        response = responses[holder]
        revealed = (
            response.self_mask_shares
            if kind == transport.SELF_MASK_SHARE
            else response.mask_key_shares
        )
        share = revealed.get(dealer)
        if share is None:
            continue
        expected = bundles[dealer].commitments.get(holder, {}).get(kind, b"")
        try:
            transport.check_share(
                params.context, expected, dealer=dealer, recipient=holder, kind=kind, share=share
            )
            parsed = shamir.Share.from_bytes(share)
            if parsed.x != params.index(holder):
                raise ShareVerificationError(
                    f"share of {dealer!r} held by {holder!r} has another holder's x",
                    dealer=dealer,
                    recipient=holder,
                )
        except (ShareVerificationError, ValueError) as exc:
            rejected.append(ShareRejection(dealer, holder, kind))
            if isinstance(exc, ShareVerificationError):
                failures.append(exc)
            continue
        valid.append(parsed)
        if len(valid) == params.threshold:
            break
    if len(valid) < params.threshold:
        message = (
            f"{len(valid)} valid {kind} shares of {dealer!r}, fewer than the threshold "
            f"{params.threshold}"
        )
        if failures:
            first = failures[0]
            raise ShareVerificationError(
                f"{message}: {first.message}",
                dealer=dealer,
                recipient=first.recipient,
                rejected=[(r.dealer, r.recipient, r.kind) for r in rejected],
            ) from first
        raise TooFewRespondersError(message, node_id=dealer)
    try:
        return shamir.combine(valid)
    except ValueError as exc:
        raise ShareVerificationError(
            f"the {kind} shares of {dealer!r} are inconsistent", dealer=dealer, recipient=None
        ) from exc
