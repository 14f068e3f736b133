"""What a wired round adds to the protocol core: messages as bytes, the weighted vector a
node masks, and the secret-derived entropy that makes a retried node's messages identical."""

from __future__ import annotations

import numpy as np
import pytest

from federated.errors import MaskedVectorError, SecAggParameterError, SecAggProtocolError
from federated.secagg import (
    KeyDirectory,
    MaskedInput,
    SecAggClient,
    SecAggParams,
    check_masked,
    unmask,
)
from federated.secagg.context import derived_entropy
from federated.secagg.wire import (
    WEIGHTED,
    bundle_bytes,
    dimension,
    masked_bytes,
    parse_bundle,
    parse_masked,
    parse_response,
    response_bytes,
    weighted_mean,
    weighted_vector,
)

NODES = ["org1/node0", "org2/node0", "org3/node0", "org4/node0"]


def _model(rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.normal(0, 1, (8, 4)).astype(np.float32), rng.normal(0, 1, 4).astype(np.float32)]


def _clients(params: SecAggParams) -> dict[str, SecAggClient]:
    secrets = {n: bytes([i + 1]) * 32 for i, n in enumerate(NODES)}
    return {n: SecAggClient(params, n, entropy=derived_entropy(secrets[n])) for n in NODES}


def test_the_derived_entropy_replays_and_refuses_a_short_secret() -> None:
    a, b = derived_entropy(b"k" * 32), derived_entropy(b"k" * 32)
    assert a(10) + a(22) == b(32)  # the same stream, however it is drawn
    first = a(32)
    assert b(32) == first and a(32) != first  # never the same bytes twice in one stream
    assert derived_entropy(b"j" * 32)(32) != derived_entropy(b"k" * 32)(32)
    with pytest.raises(SecAggParameterError):
        derived_entropy(b"short")


def test_a_wired_round_through_bytes_is_fedavg_and_a_retry_deals_the_same_bytes() -> None:
    rng = np.random.default_rng(0)
    models = {n: _model(rng) for n in NODES}
    counts = {n: int(c) for n, c in zip(NODES, rng.integers(50, 500, len(NODES)), strict=True)}
    params = SecAggParams.create(
        "p", 1, NODES, threshold=3, dimension=dimension(models[NODES[0]]), encoding=WEIGHTED
    )
    clients = _clients(params)
    directory = KeyDirectory()
    for node, client in clients.items():
        directory.register(client.advertise(), registrant=node)
    wire = {n: bundle_bytes(c.share_keys(directory)) for n, c in clients.items()}
    # A retried node (same secret, rebuilt client) deals byte-identical shares.
    assert bundle_bytes(_clients(params)[NODES[0]].share_keys(directory)) == wire[NODES[0]]
    bundles = {n: parse_bundle(data, n) for n, data in wire.items()}
    for node, client in clients.items():
        for dealer, bundle in bundles.items():
            if dealer != node:
                client.receive(bundle)
    dropped = NODES[3]
    masked = {
        n: parse_masked(masked_bytes(clients[n].mask(weighted_vector(models[n], counts[n]))), n)
        for n in NODES
        if n != dropped
    }
    survivors = sorted(masked)
    responses = {
        n: parse_response(response_bytes(clients[n].unmask_response(survivors)), n)
        for n in survivors
    }
    result = unmask(params, directory, bundles, masked, responses)
    assert result.recovered == (dropped,)
    mean, count = weighted_mean(result.total, models[NODES[0]])
    assert count == sum(counts[n] for n in survivors)
    for i, layer in enumerate(mean):
        want = sum(models[n][i].astype(np.float64) * counts[n] for n in survivors) / count
        assert layer.dtype == np.float32 and layer.shape == want.shape
        np.testing.assert_allclose(layer, want, atol=1e-6)


def test_bad_bytes_are_refused_with_one_typed_error() -> None:
    params = SecAggParams.create("p", 1, NODES, threshold=3, dimension=5, encoding=WEIGHTED)
    good = MaskedInput(NODES[0], 64, np.zeros(5, dtype=np.uint64))
    assert parse_masked(masked_bytes(good), NODES[0]).values.dtype == np.uint64
    with pytest.raises(MaskedVectorError, match="not this node's"):
        parse_masked(masked_bytes(good), NODES[1])
    with pytest.raises(MaskedVectorError, match="not a masked vector"):
        parse_masked(b"garbage", NODES[0])
    short = MaskedInput(NODES[0], 64, np.zeros(4, dtype=np.uint64))
    with pytest.raises(MaskedVectorError, match="4 values where the round expects 5"):
        check_masked(params, parse_masked(masked_bytes(short), NODES[0]), set(NODES))
    narrow = MaskedInput(NODES[0], 32, np.zeros(5, dtype=np.uint32))
    with pytest.raises(MaskedVectorError, match="modulus 2\\^32"):
        check_masked(params, parse_masked(masked_bytes(narrow), NODES[0]), set(NODES))
    with pytest.raises(SecAggProtocolError, match="a share bundle of"):
        parse_bundle(b'{"dealer": "org9/node0"}', NODES[0])
    with pytest.raises(SecAggProtocolError, match="not JSON"):
        parse_response(b"\xff", NODES[0])
    with pytest.raises(SecAggProtocolError, match="example count"):
        weighted_mean(np.zeros(3), [np.zeros(2)])
