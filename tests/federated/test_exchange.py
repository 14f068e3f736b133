"""The exchange format: round trips, stable bytes, refusal of anything else."""

from __future__ import annotations

import numpy as np
import pytest

from federated.errors import InvalidUpdateError
from federated.exchange import (
    decode_global_model,
    decode_update,
    encode_global_model,
    encode_update,
    sha256_hex,
)
from federated.types import FitResult, GlobalModel


def test_global_models_round_trip_with_state_and_stable_bytes() -> None:
    rng = np.random.default_rng(0)
    params = [rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=3)]
    state = {
        "fedadam.m": [np.zeros((4, 3)), np.ones(3)],
        "fedadam.v": [np.full((4, 3), 2.0), np.ones(3)],
    }
    model = GlobalModel("torch-mlp", params, state)
    data = encode_global_model(model)
    assert encode_global_model(model) == data  # same content, same hash
    back = decode_global_model(data)
    assert back.family == "torch-mlp"
    assert all(
        np.array_equal(a, b) and a.dtype == b.dtype
        for a, b in zip(back.parameters, params, strict=True)
    )
    assert sorted(back.server_state) == ["fedadam.m", "fedadam.v"]
    assert np.array_equal(back.server_state["fedadam.v"][0], state["fedadam.v"][0])


def test_tree_models_travel_as_bytes() -> None:
    blob = b"{UBJSON tree bytes" * 10
    back = decode_global_model(encode_global_model(GlobalModel("xgboost-classifier", blob)))
    assert back.parameters == blob


def test_updates_round_trip_and_other_files_are_refused() -> None:
    result = FitResult("org1/node0", [np.arange(6.0).reshape(2, 3)], 42, {"loss": 0.5})
    data = encode_update(result, "sklearn-linear")
    back, family = decode_update(data)
    assert family == "sklearn-linear" and back.node_id == "org1/node0" and back.num_examples == 42
    assert back.metrics == {"loss": 0.5} and np.array_equal(
        back.parameters[0], result.parameters[0]
    )
    assert len(sha256_hex(data)) == 64
    for junk in (b"", b"\x00" * 7, b"\xff" * 64, data[:-5]):
        with pytest.raises(InvalidUpdateError):
            decode_update(junk)
    with pytest.raises(InvalidUpdateError, match="kind"):
        decode_update(encode_global_model(GlobalModel("sklearn-linear", [np.zeros(2)])))
