"""SCAFFOLD's bytes (federated.exchange): an update carries Δc_i beside its weights, under
the hash the ledger records; a node's own c_i file is its own kind; a malformed Δc_i is one
node's failure in the screen, never the round's."""

from __future__ import annotations

import numpy as np
import pytest

from federated.errors import InvalidUpdateError
from federated.exchange import (
    decode_control,
    decode_update,
    encode_control,
    encode_update,
    sha256_hex,
)
from federated.strategies import FedAvg, Scaffold, guard_strategy
from federated.types import FitResult, GlobalModel

WEIGHTS = [np.arange(6, dtype=np.float32).reshape(2, 3), np.array([0.5, -1.0], np.float32)]
DELTA = [np.full((2, 3), 1e-9 + 1 / 3), np.array([-2.5, 7.0])]


def _result(delta: list[np.ndarray] | None = DELTA, node: str = "org1/node0") -> FitResult:
    return FitResult(node, WEIGHTS, 17, {"trained_round": 2}, delta)


def test_an_update_round_trips_its_control_delta_exactly_in_float64() -> None:
    data = encode_update(_result(), "torch-mlp")
    result, family = decode_update(data)
    assert family == "torch-mlp" and result.num_examples == 17
    assert result.control_delta is not None
    for got, sent in zip(result.control_delta, DELTA, strict=True):
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, sent)  # not rounded through float32
    assert not isinstance(result.parameters, bytes)
    assert len(result.parameters) == len(WEIGHTS)  # control tensors are not parameters
    for weights, sent in zip(result.parameters, WEIGHTS, strict=True):
        np.testing.assert_array_equal(weights, sent)


def test_the_update_hash_covers_the_control_delta_and_plain_updates_are_unchanged() -> None:
    plain = encode_update(_result(None), "torch-mlp")
    assert decode_update(plain)[0].control_delta is None
    with_delta = encode_update(_result(), "torch-mlp")
    moved = encode_update(_result([DELTA[0], DELTA[1] + 1e-12]), "torch-mlp")
    assert len({sha256_hex(plain), sha256_hex(with_delta), sha256_hex(moved)}) == 3
    assert encode_update(_result(), "torch-mlp") == with_delta  # deterministic bytes


def test_a_control_file_is_its_own_kind_with_its_owner_and_round() -> None:
    data = encode_control(DELTA, family="torch-mlp", profile="p", node="org1/node0", round_no=3)
    control, info = decode_control(data)
    assert (info["family"], info["profile"], info["node"], info["round"]) == (
        "torch-mlp", "p", "org1/node0", "3",
    )  # fmt: skip
    for got, sent in zip(control, DELTA, strict=True):
        np.testing.assert_array_equal(got, sent)
    with pytest.raises(InvalidUpdateError, match="not a fedspec update"):
        decode_update(data)  # a c_i file is never mistaken for an update, nor the reverse
    with pytest.raises(InvalidUpdateError, match="not a fedspec control"):
        decode_control(encode_update(_result(), "torch-mlp"))


def test_the_screen_leaves_out_a_node_whose_control_delta_is_missing_or_bad() -> None:
    current = GlobalModel("torch-mlp", WEIGHTS)
    good = [_result(node=f"org{i}/node0") for i in (1, 2)]
    misshapen = _result([DELTA[0]], node="org3/node0")
    missing = _result(None, node="org4/node0")
    infinite = _result([DELTA[0], np.array([np.inf, 0.0])], node="org5/node0")
    out = guard_strategy(Scaffold(), min_nodes=2).aggregate_fit(
        1, current, [*good, misshapen, missing, infinite], []
    )
    assert out.model is not None and set(out.included) == {"org1/node0", "org2/node0"}
    reasons = {f.node_id: (f.code, f.reason) for f in out.failures}
    assert reasons["org3/node0"][0] == "INVALID_UPDATE"
    assert "shapes" in reasons["org3/node0"][1]
    assert "control_delta" in reasons["org4/node0"][1]
    assert "NaN or inf" in reasons["org5/node0"][1]
    # Every other strategy ignores a Δc_i it does not use.
    plain = guard_strategy(FedAvg(), min_nodes=2).aggregate_fit(1, current, [*good, missing], [])
    assert len(plain.included) == 3
