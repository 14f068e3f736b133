"""Model bytes that organizations can exchange: safetensors arrays plus a JSON header.

Loading never runs code: safetensors is a length-prefixed JSON header followed by raw
little-endian buffers, and the header here holds only JSON hyper-parameters. (A pickle, the
default of ``torch.save`` and ``joblib``, executes whatever its author put in it on load.)

Layout: the safetensors ``__metadata__`` has one key, ``fedspec``, whose value is sorted-key
JSON ``{"family", "format", "hyperparameters"}``; the tensors are the model's named arrays.
One key, because safetensors writes several metadata keys in no fixed order, and the same
model must always give the same bytes (their hash is what the ledger records).
XGBoost models are not stored here: they are XGBoost's own UBJSON (see :mod:`.xgb`).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np
import safetensors.numpy

from federated.errors import IncompatibleModelError
from federated.types import NDArray

FORMAT = "fedspec-model/1"
_METADATA_KEY = "fedspec"
# safetensors: an 8-byte little-endian header length, then that many bytes of JSON.
_LENGTH_PREFIX = 8


def to_json_value(value: Any) -> Any:
    """Turn a hyper-parameter into plain JSON (tuples, ranges and numpy values included)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray | tuple | list | range):
        return [to_json_value(item) for item in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"hyper-parameter value {value!r} cannot be stored as JSON")


def pack(family: str, hyperparameters: Mapping[str, Any], arrays: Mapping[str, NDArray]) -> bytes:
    """Serialize a model's hyper-parameters and named arrays (arrays are stored exactly)."""
    header = {
        "family": family,
        "format": FORMAT,
        "hyperparameters": {name: to_json_value(value) for name, value in hyperparameters.items()},
    }
    metadata = {_METADATA_KEY: json.dumps(header, sort_keys=True, allow_nan=False)}
    tensors = {name: np.ascontiguousarray(array) for name, array in arrays.items()}
    return bytes(safetensors.numpy.save(tensors, metadata=metadata))


def read_header(data: bytes) -> dict[str, Any] | None:
    """The fedspec header of safetensors bytes, or ``None`` when ``data`` is not such bytes."""
    if len(data) < _LENGTH_PREFIX:
        return None
    (length,) = struct.unpack("<Q", data[:_LENGTH_PREFIX])
    if length > len(data) - _LENGTH_PREFIX:
        return None
    try:
        outer = json.loads(data[_LENGTH_PREFIX : _LENGTH_PREFIX + length])
        header = json.loads(outer["__metadata__"][_METADATA_KEY])
    except (UnicodeDecodeError, ValueError, TypeError, KeyError):
        return None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        return None
    return header


def unpack(data: bytes, family: str) -> tuple[dict[str, Any], dict[str, NDArray]]:
    """Read bytes written by :func:`pack` for ``family``: ``(hyperparameters, arrays)``.

    Raises ``IncompatibleModelError`` when the bytes are not a fedspec safetensors model or
    hold another family (``details`` carry ``expected`` and ``found``).
    """
    header = read_header(data)
    if header is None:
        raise IncompatibleModelError(
            f"expected a {family} model in fedspec safetensors format; these bytes are not one",
            expected=family,
            found=None,
        )
    found = header.get("family")
    if found != family:
        raise IncompatibleModelError(
            f"expected a {family} model, the bytes hold a {found} model",
            expected=family,
            found=found,
        )
    hyperparameters = header.get("hyperparameters")
    try:
        arrays = safetensors.numpy.load(data)
    except safetensors.SafetensorError as exc:
        raise IncompatibleModelError(f"corrupt {family} model bytes: {exc}") from exc
    if not isinstance(hyperparameters, dict):
        raise IncompatibleModelError(f"corrupt {family} model bytes: header is not an object")
    return hyperparameters, {name: np.array(array) for name, array in arrays.items()}


def family_in(data: bytes) -> str | None:
    """The family named in fedspec safetensors bytes, or ``None`` for other bytes."""
    header = read_header(data)
    family = None if header is None else header.get("family")
    return family if isinstance(family, str) else None
