"""The messages of a wired round as bytes, and a model update as the vector a node masks.

Share bundles and unmasking answers travel as canonical JSON (base64 for bytes); a masked
vector as safetensors (one ``uint32``/``uint64`` tensor, the node and modulus in its
metadata). Every artifact is stored in MLflow and its SHA-256 committed on the ledger by its
sender, so a reader fetches it only if it is what the sender signed for.

FedAvg's weighting under masking: a node masks ``[n·w, n]`` (its weights times its example
count, then the count), so the unmasked sum is ``[Σ nᵢ·wᵢ, Σ nᵢ]`` and the mean is their
ratio; no one needs an individual ``wᵢ``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load, save

from federated.errors import MaskedVectorError, SecAggProtocolError
from federated.secagg.encoding import FixedPoint
from federated.secagg.messages import MaskedInput, ShareBundle, UnmaskResponse
from federated.types import NDArray, NDArrays

# The encoding of wired rounds: a weighted coordinate |n·w| up to 2^30 at a resolution of
# 2^-20 (weights of ±1 with a billion examples, or ±1,000 with a million), up to 8,191 nodes
# per round before the 64-bit sum could wrap.
WEIGHTED = FixedPoint(bits=64, scale=2.0**20, clip=2.0**30)
_TENSOR = "masked"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, what: str, node: str) -> bytes:
    if not isinstance(text, str):
        raise SecAggProtocolError(f"{what} is not base64 text", node_id=node)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SecAggProtocolError(f"{what} is not base64", node_id=node) from exc


def _dumps(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _loads(data: bytes, what: str, node: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SecAggProtocolError(f"{what} is not JSON", node_id=node) from exc
    if not isinstance(doc, dict):
        raise SecAggProtocolError(f"{what} is not a JSON object", node_id=node)
    return doc


def bundle_bytes(bundle: ShareBundle) -> bytes:
    """A share bundle as canonical JSON."""
    return _dumps(
        {
            "dealer": bundle.dealer,
            "ciphertexts": {v: _b64(c) for v, c in bundle.ciphertexts.items()},
            "commitments": {
                v: {kind: _b64(c) for kind, c in kinds.items()}
                for v, kinds in bundle.commitments.items()
            },
            "seed_commitment": _b64(bundle.seed_commitment),
        }
    )


def parse_bundle(data: bytes, dealer: str) -> ShareBundle:
    """The bundle ``dealer`` committed to; refused if it names another dealer or is malformed."""
    doc = _loads(data, "a share bundle", dealer)
    if doc.get("dealer") != dealer:
        raise SecAggProtocolError(f"a share bundle of {doc.get('dealer')!r}", node_id=dealer)
    try:
        return ShareBundle(
            dealer,
            {str(v): _unb64(c, "a ciphertext", dealer) for v, c in doc["ciphertexts"].items()},
            {
                str(v): {str(k): _unb64(c, "a commitment", dealer) for k, c in kinds.items()}
                for v, kinds in doc["commitments"].items()
            },
            _unb64(doc["seed_commitment"], "the seed commitment", dealer),
        )
    except (KeyError, AttributeError, TypeError) as exc:
        raise SecAggProtocolError("a malformed share bundle", node_id=dealer) from exc


def response_bytes(response: UnmaskResponse) -> bytes:
    """An unmasking answer as canonical JSON."""
    return _dumps(
        {
            "node": response.node_id,
            "self_mask_shares": {u: _b64(s) for u, s in response.self_mask_shares.items()},
            "mask_key_shares": {u: _b64(s) for u, s in response.mask_key_shares.items()},
        }
    )


def parse_response(data: bytes, node: str) -> UnmaskResponse:
    """The unmasking answer ``node`` committed to."""
    doc = _loads(data, "an unmasking answer", node)
    if doc.get("node") != node:
        raise SecAggProtocolError(f"an unmasking answer of {doc.get('node')!r}", node_id=node)
    try:
        return UnmaskResponse(
            node,
            {str(u): _unb64(s, "a share", node) for u, s in doc["self_mask_shares"].items()},
            {str(u): _unb64(s, "a share", node) for u, s in doc["mask_key_shares"].items()},
        )
    except (KeyError, AttributeError, TypeError) as exc:
        raise SecAggProtocolError("a malformed unmasking answer", node_id=node) from exc


def masked_bytes(masked: MaskedInput) -> bytes:
    """A masked vector as safetensors."""
    metadata = {"fedspec.kind": "masked-update", "node": masked.node_id, "bits": str(masked.bits)}
    return bytes(save({_TENSOR: np.ascontiguousarray(masked.values)}, metadata=metadata))


def parse_masked(data: bytes, node: str) -> MaskedInput:
    """The masked vector ``node`` committed to (length and modulus are checked against the
    round by :func:`~federated.secagg.unmasking.check_masked`)."""
    try:
        tensors = load(data)
        header_len = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8 : 8 + header_len]).get("__metadata__") or {}
        bits = int(metadata.get("bits", "0"))
    except (SafetensorError, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise MaskedVectorError(f"not a masked vector: {exc}", node_id=node) from exc
    if set(tensors) != {_TENSOR} or metadata.get("node") != node:
        raise MaskedVectorError("not this node's masked vector", node_id=node)
    return MaskedInput(node, bits, tensors[_TENSOR])


def weighted_vector(parameters: Sequence[NDArray], num_examples: int) -> NDArray:
    """What a node masks: ``[n·w, n]`` as float64, ``w`` its flattened weights."""
    flat = [np.asarray(p, dtype=np.float64).ravel() for p in parameters]
    return np.concatenate([*(f * float(num_examples) for f in flat), [float(num_examples)]])


def dimension(like: Sequence[NDArray]) -> int:
    """The masked vector's length for a model shaped like ``like``: its weights and a count."""
    return sum(int(np.asarray(p).size) for p in like) + 1


def weighted_mean(total: NDArray, like: Sequence[NDArray]) -> tuple[NDArrays, float]:
    """The mean weights from an unmasked sum ``[Σ nᵢ·wᵢ, Σ nᵢ]``, shaped and typed like
    ``like``, and the total count ``Σ nᵢ``."""
    count = float(total[-1])
    if count <= 0:
        raise SecAggProtocolError(f"the survivors' example count sums to {count:g}")
    arrays: NDArrays = []
    offset = 0
    for layer in like:
        p = np.asarray(layer)
        part = total[offset : offset + p.size] / count
        arrays.append(part.reshape(p.shape).astype(p.dtype, copy=False))
        offset += p.size
    return arrays, count
