"""The bytes that travel between organizations: global models and updates.

One format for every family: a safetensors file (no code runs on load) whose tensors are the
weight arrays (``param.<i>``), any server state (``state.<name>.<i>``), a SCAFFOLD node's
control-variate change ``Δc_i`` (``control.<i>``, in an update only), or, for tree models,
the XGBoost UBJSON as a ``uint8`` tensor (``blob``); its metadata names the family and the
kind. The sha256 of these bytes is what the ledger records and every loader checks, so an
update's hash covers its ``Δc_i`` as well as its weights.

A SCAFFOLD node's own control variate ``c_i`` never travels: :func:`encode_control` gives
the bytes of the file it keeps in its private state (kind ``control``, with the profile,
node and the last round whose ``Δc_i`` it holds).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from federated.errors import InvalidUpdateError
from federated.types import FitResult, GlobalModel, NDArrays, Scalar

FORMAT = "fedspec-exchange-v1"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tensors(parameters: NDArrays | bytes) -> dict[str, np.ndarray]:
    if isinstance(parameters, bytes):
        return {"blob": np.frombuffer(parameters, dtype=np.uint8).copy()}
    return {f"param.{i:04d}": np.ascontiguousarray(a) for i, a in enumerate(parameters)}


def _parameters(tensors: Mapping[str, np.ndarray]) -> NDArrays | bytes:
    if "blob" in tensors:
        return bytes(tensors["blob"].tobytes())
    return _prefixed(tensors, "param.")


def _prefixed(tensors: Mapping[str, np.ndarray], prefix: str) -> NDArrays:
    # Zero-padded indices: the sorted names are the arrays' order.
    return [tensors[k] for k in sorted(k for k in tensors if k.startswith(prefix))]


def _control_tensors(arrays: NDArrays) -> dict[str, np.ndarray]:
    # float64, as the strategy computes them: Δc_i is (x − y)/(K·η), a difference of close
    # float32 weights divided by a small step, and rounding it again would add error to c.
    return {
        f"control.{i:04d}": np.ascontiguousarray(a, dtype=np.float64) for i, a in enumerate(arrays)
    }


def _meta(kind: str, family: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    # safetensors stores metadata as a string map whose order it does not fix; one sorted
    # JSON entry keeps the bytes (and so the hash) identical for identical content.
    return {
        "fedspec": json.dumps(
            {"format": FORMAT, "kind": kind, "family": family, **(extra or {})}, sort_keys=True
        )
    }


def encode_global_model(model: GlobalModel) -> bytes:
    tensors = _tensors(model.parameters)
    for name, arrays in sorted(model.server_state.items()):
        for i, a in enumerate(arrays):
            tensors[f"state.{name}.{i:04d}"] = np.ascontiguousarray(a)
    return bytes(st_save(tensors, metadata=_meta("global", model.family)))


def decode_global_model(data: bytes) -> GlobalModel:
    tensors, info = _read(data, "global")
    state: dict[str, NDArrays] = {}
    for key in sorted(k for k in tensors if k.startswith("state.")):
        name = key[len("state.") : key.rindex(".")]
        state.setdefault(name, []).append(tensors[key])
    return GlobalModel(family=info["family"], parameters=_parameters(tensors), server_state=state)


def encode_update(result: FitResult, family: str) -> bytes:
    """The update's bytes: its weights and, under SCAFFOLD, its ``Δc_i`` (``control.<i>``)."""
    extra = {
        "node": result.node_id,
        "num_examples": str(result.num_examples),
        "metrics": json.dumps(dict(result.metrics), sort_keys=True),
    }
    tensors = _tensors(result.parameters)
    if result.control_delta is not None:
        tensors.update(_control_tensors(result.control_delta))
    return bytes(st_save(tensors, metadata=_meta("update", family, extra)))


def decode_update(data: bytes) -> tuple[FitResult, str]:
    """The update and its family; malformed bytes are an :class:`InvalidUpdateError`.

    ``control_delta`` is ``None`` when the update carries no ``control.<i>`` tensors (every
    strategy but SCAFFOLD); whether it matches the model is the strategy's check."""
    tensors, info = _read(data, "update")
    control = _prefixed(tensors, "control.")
    try:
        metrics: dict[str, Scalar] = json.loads(info.get("metrics", "{}"))
        result = FitResult(
            node_id=info["node"],
            parameters=_parameters(tensors),
            num_examples=int(info["num_examples"]),
            metrics=metrics,
            control_delta=control or None,
        )
    except (KeyError, ValueError) as exc:
        raise InvalidUpdateError(f"update metadata is incomplete: {exc}") from exc
    return result, info["family"]


def encode_control(
    control: NDArrays, *, family: str, profile: str, node: str, round_no: int
) -> bytes:
    """A SCAFFOLD node's control variate ``c_i`` as it keeps it: after round ``round_no``'s
    ``Δc_i`` (0 for the zeros it starts from), for ``profile`` and ``node``."""
    extra = {"profile": profile, "node": node, "round": str(round_no)}
    return bytes(st_save(_control_tensors(control), metadata=_meta("control", family, extra)))


def decode_control(data: bytes) -> tuple[NDArrays, dict[str, str]]:
    """``c_i`` and its metadata (family, profile, node, round); :class:`InvalidUpdateError`
    for bytes that are not a control file."""
    tensors, info = _read(data, "control")
    if any(k not in info for k in ("profile", "node", "round")):
        raise InvalidUpdateError("control file metadata is incomplete")
    return _prefixed(tensors, "control."), info


def _read(data: bytes, kind: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    try:
        tensors = st_load(data)
        info = json.loads(_metadata(data)["fedspec"])
    except Exception as exc:  # safetensors raises SafetensorError, json ValueError/KeyError
        raise InvalidUpdateError(f"not a fedspec {kind} file: {type(exc).__name__}: {exc}") from exc
    if info.get("format") != FORMAT or info.get("kind") != kind:
        raise InvalidUpdateError(
            f"not a fedspec {kind} file (format {info.get('format')!r}, kind {info.get('kind')!r})"
        )
    return tensors, info


def _metadata(data: bytes) -> dict[str, str]:
    """The safetensors header's ``__metadata__`` (an 8-byte length, then JSON)."""
    if len(data) < 8:
        raise ValueError("too short for a safetensors header")
    length = int.from_bytes(data[:8], "little")
    if length > len(data) - 8 or length > 100 * 1024 * 1024:
        raise ValueError("the safetensors header length is out of range")
    header = json.loads(data[8 : 8 + length])
    meta: dict[str, str] = header.get("__metadata__") or {}
    return meta
