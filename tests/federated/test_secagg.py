"""Secure aggregation end to end (all parties in one process): exact sums, dropouts,
wrong shares and the refusals of bad input."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from federated.errors import (
    EncodingOverflowError,
    MaskedVectorError,
    SecAggKeyError,
    SecAggProtocolError,
    ShareVerificationError,
    ThresholdError,
    TooFewRespondersError,
)
from federated.secagg import (
    FixedPoint,
    KeyDirectory,
    NodeKeys,
    SecAggClient,
    SecAggParams,
    UnmaskResponse,
    check_threshold,
    seeded_entropy,
    simulate,
    unmask,
)
from fedspec.errors import ErrorCode

DIM = 257


def make_inputs(n: int, seed: int = 0, dim: int = DIM) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"node-{i:02d}": rng.normal(0.0, 3.0, dim) for i in range(n)}


def plain_sum(inputs, encoding: FixedPoint, nodes=None) -> np.ndarray:
    nodes = sorted(inputs) if nodes is None else nodes
    return np.sum([encoding.quantize(inputs[v]) for v in nodes], axis=0)


class Round:
    """A round driven step by step, so tests can tamper with one message."""

    def __init__(self, n: int = 5, threshold: int = 3, seed: int = 7, deliver: bool = True):
        self.inputs = make_inputs(n, seed)
        self.params = SecAggParams.create(
            "digits", 3, list(self.inputs), threshold=threshold, dimension=DIM
        )
        entropy = seeded_entropy(seed)
        self.clients = {v: SecAggClient(self.params, v, entropy=entropy) for v in self.inputs}
        self.directory = KeyDirectory()
        for v, client in self.clients.items():
            self.directory.register(client.advertise(), registrant=v)
        self.bundles = {v: c.share_keys(self.directory) for v, c in self.clients.items()}
        for v, client in self.clients.items() if deliver else ():
            for dealer, bundle in self.bundles.items():
                if dealer != v:
                    client.receive(bundle)

    def run(self, dropped=(), silent=()):
        masked = {v: c.mask(self.inputs[v]) for v, c in self.clients.items() if v not in dropped}
        survivors = sorted(masked)
        responses = {
            v: self.clients[v].unmask_response(survivors) for v in survivors if v not in silent
        }
        return masked, responses


# (1) exact sums ---------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [32, 64])
def test_unmasked_sum_equals_the_plain_fixed_point_sum_exactly(bits):
    encoding = FixedPoint(bits=bits, scale=2.0**12, clip=16.0)
    inputs = make_inputs(8, seed=1)
    run = simulate(inputs, threshold=5, encoding=encoding, seed=1)
    assert np.array_equal(run.result.fixed_point, plain_sum(inputs, encoding))
    assert np.allclose(run.result.total, sum(inputs.values()), atol=8 / 2**12)
    assert run.result.survivors == tuple(sorted(inputs))
    assert run.result.recovered == ()


def test_sum_is_exact_at_the_clip_bounds_and_beyond_them():
    encoding = FixedPoint(bits=32, scale=2.0**16, clip=64.0)
    n = encoding.max_nodes()  # the largest cohort the encoding admits: 511
    assert n * encoding.max_level <= 2**31 - 1 < (n + 1) * encoding.max_level
    # Eleven nodes send the values, one their negation: ±clip, far beyond it (clipped), 0, and
    # less than half a step (rounds to 0).
    values = np.array([64.0, -64.0, 1e9, -1e9, 0.0, -(2.0**-17)])
    signs = np.array([1, -1, 1, -1])
    inputs = {f"n{i:03d}": values * (1 if i else -1) for i in range(12)}
    run = simulate(inputs, threshold=7, encoding=encoding, seed=2)
    assert np.array_equal(run.result.fixed_point, plain_sum(inputs, encoding))
    q = encoding.max_level
    assert list(run.result.fixed_point[:4]) == [10 * q * s for s in signs]
    # The full-capacity sum of n values at +clip and at -clip decodes without wrapping.
    top = np.full(3, encoding.max_level * n, dtype=np.int64)
    encoded = np.sum(
        [encoding.encode(np.full(3, 64.0)) for _ in range(n)], axis=0, dtype=np.uint64
    ).astype(np.uint32)
    assert np.array_equal(encoding.to_signed(encoded), top)
    negative = np.sum(
        [encoding.encode(np.full(3, -64.0)) for _ in range(n)], axis=0, dtype=np.uint64
    ).astype(np.uint32)
    assert np.array_equal(encoding.to_signed(negative), -top)


def test_negative_inputs_sum_exactly():
    encoding = FixedPoint(bits=64, scale=2.0**20, clip=1000.0)
    inputs = {f"n{i}": -np.abs(v) * 100 for i, v in enumerate(make_inputs(6, 3).values())}
    run = simulate(inputs, threshold=4, encoding=encoding, seed=3)
    assert np.array_equal(run.result.fixed_point, plain_sum(inputs, encoding))
    assert np.all(run.result.total < 0)


# (2) dropouts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dropped", "silent"),
    [
        (("node-02",), ()),
        ((), ("node-04",)),
        (("node-00", "node-05"), ("node-03",)),
        (("node-01", "node-03", "node-06"), ()),
    ],
)
def test_nodes_dropping_after_masking_still_yield_the_survivors_sum(dropped, silent):
    inputs = make_inputs(7, seed=4)  # t = 4: up to 3 nodes may drop
    run = simulate(inputs, threshold=4, dropped=dropped, silent=silent, seed=4)
    survivors = [v for v in sorted(inputs) if v not in dropped]
    assert np.array_equal(run.result.fixed_point, plain_sum(inputs, FixedPoint(), survivors))
    assert run.result.survivors == tuple(survivors)
    assert run.result.recovered == tuple(sorted(dropped))
    assert set(run.result.responders) == set(survivors) - set(silent)


def test_more_than_n_minus_t_dropouts_fail_cleanly():
    inputs = make_inputs(7, seed=5)
    with pytest.raises(TooFewRespondersError) as caught:
        simulate(inputs, threshold=4, dropped=("node-00", "node-01"), silent=("node-02", "node-03"))
    assert caught.value.code == ErrorCode.SECAGG_TOO_FEW_RESPONDERS
    with pytest.raises(TooFewRespondersError):
        simulate(inputs, threshold=4, dropped=("node-00", "node-01", "node-02", "node-03"))


# (3) wrong shares --------------------------------------------------------------------------


def _tamper(response: UnmaskResponse, dealer: str, field: str) -> UnmaskResponse:
    shares = dict(getattr(response, field))
    share = bytearray(shares[dealer])
    share[-1] ^= 1
    shares[dealer] = bytes(share)
    return replace(response, **{field: shares})


def test_an_altered_share_is_detected_and_named():
    game = Round(n=5, threshold=3)
    masked, responses = game.run(dropped=("node-01",))
    responses = {v: responses[v] for v in ("node-00", "node-02", "node-03")}  # exactly t
    responses["node-02"] = _tamper(responses["node-02"], "node-01", "mask_key_shares")
    with pytest.raises(ShareVerificationError) as caught:
        unmask(game.params, game.directory, game.bundles, masked, responses)
    assert caught.value.code == ErrorCode.SECAGG_SHARE_INVALID
    assert (caught.value.dealer, caught.value.recipient) == ("node-01", "node-02")


def test_a_round_with_spare_responders_continues_past_a_wrong_share():
    game = Round(n=5, threshold=3)
    masked, responses = game.run()
    responses["node-00"] = _tamper(responses["node-00"], "node-03", "self_mask_shares")
    result = unmask(game.params, game.directory, game.bundles, masked, responses)
    assert np.array_equal(result.fixed_point, plain_sum(game.inputs, FixedPoint()))
    assert [(r.dealer, r.recipient) for r in result.rejected] == [("node-03", "node-00")]


def test_a_tampered_or_misdirected_ciphertext_is_refused_by_its_recipient():
    game = Round(n=3, threshold=2, deliver=False)
    bundle = game.bundles["node-00"]
    flipped = bytearray(bundle.ciphertexts["node-01"])
    flipped[20] ^= 0x80
    # node-02's ciphertext handed to node-01: the associated data names the recipient.
    for bad in (bytes(flipped), bundle.ciphertexts["node-02"]):
        tampered = replace(bundle, ciphertexts={**bundle.ciphertexts, "node-01": bad})
        with pytest.raises(ShareVerificationError) as caught:
            game.clients["node-01"].receive(tampered)
        assert (caught.value.dealer, caught.value.recipient) == ("node-00", "node-01")
    game.clients["node-01"].receive(bundle)  # the genuine bundle still goes through


def test_a_share_that_does_not_match_its_dealers_commitment_is_refused_on_receipt():
    game = Round(n=3, threshold=2, deliver=False)
    bundle = game.bundles["node-00"]
    forged = {
        **bundle.commitments,
        "node-01": {k: bytes(32) for k in bundle.commitments["node-01"]},
    }
    with pytest.raises(ShareVerificationError) as caught:
        game.clients["node-01"].receive(replace(bundle, commitments=forged))
    assert caught.value.code == ErrorCode.SECAGG_SHARE_INVALID


# (6) refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "t"), [(5, 6), (6, 3), (4, 2), (1, 1), (3, 1)])
def test_a_threshold_above_the_cohort_or_not_a_majority_is_refused(n, t):
    with pytest.raises(ThresholdError) as caught:
        check_threshold(n, t)
    assert caught.value.code == ErrorCode.SECAGG_THRESHOLD_INVALID
    with pytest.raises(ThresholdError):
        SecAggParams.create("p", 1, [f"n{i}" for i in range(n)], threshold=t, dimension=4)


@pytest.mark.parametrize(("n", "t"), [(2, 2), (3, 2), (5, 3), (6, 4), (100, 51)])
def test_majority_thresholds_are_accepted(n, t):
    check_threshold(n, t)


def test_a_cohort_the_encoding_cannot_sum_is_refused():
    encoding = FixedPoint(bits=32, scale=2.0**16, clip=64.0)
    nodes = [f"n{i:03d}" for i in range(encoding.max_nodes() + 1)]
    with pytest.raises(EncodingOverflowError) as caught:
        SecAggParams.create("p", 1, nodes, threshold=len(nodes), dimension=1, encoding=encoding)
    assert caught.value.code == ErrorCode.SECAGG_OVERFLOW


def test_masked_vectors_of_the_wrong_length_or_modulus_are_refused():
    game = Round(n=3, threshold=2)
    masked, responses = game.run()
    good = masked["node-01"]
    wrong = [
        replace(good, values=good.values[:-1]),
        replace(good, bits=64, values=good.values.astype(np.uint64)),
        replace(good, values=good.values.astype(np.uint64)),
    ]
    for bad in wrong:
        with pytest.raises(MaskedVectorError) as caught:
            unmask(game.params, game.directory, game.bundles, {**masked, "node-01": bad}, responses)
        assert caught.value.code == ErrorCode.SECAGG_VECTOR_INVALID
        assert caught.value.node_id == "node-01"
    with pytest.raises(MaskedVectorError):
        game.clients["node-00"].mask(np.zeros(DIM + 1))


def test_keys_registered_twice_or_for_another_node_are_refused():
    directory = KeyDirectory()
    alice = NodeKeys.generate("alice", entropy=seeded_entropy(1)).public()
    bob = NodeKeys.generate("bob", entropy=seeded_entropy(2)).public()
    directory.register(alice, registrant="alice")
    directory.register(alice, registrant="alice")  # an identical retry is idempotent
    with pytest.raises(SecAggKeyError) as caught:
        directory.register(bob, registrant="alice")
    assert caught.value.code == ErrorCode.SECAGG_KEY_INVALID
    other = NodeKeys.generate("alice", entropy=seeded_entropy(3)).public()
    with pytest.raises(SecAggKeyError, match="already registered"):
        directory.register(other, registrant="alice")
    copied = replace(bob, mask_key=alice.mask_key)
    with pytest.raises(SecAggKeyError, match="already registered by 'alice'"):
        directory.register(copied, registrant="bob")
    with pytest.raises(SecAggKeyError):
        replace(bob, cipher_key=b"short")


def test_a_node_is_never_revealed_both_as_dropped_and_as_surviving():
    game = Round(n=5, threshold=3)
    client = game.clients["node-00"]
    survivors = ["node-00", "node-01", "node-02"]
    first = client.unmask_response(survivors)
    assert set(first.mask_key_shares) == {"node-03", "node-04"}
    assert client.unmask_response(survivors) == first  # the same request again
    with pytest.raises(SecAggProtocolError) as caught:
        client.unmask_response(["node-00", "node-03", "node-04"])
    assert caught.value.code == ErrorCode.SECAGG_PROTOCOL_VIOLATION
    game = Round(n=5, threshold=3)
    masked, responses = game.run()
    # A forged answer that reveals both kinds of share of one dealer is refused.
    forged = replace(
        responses["node-01"],
        mask_key_shares={"node-02": responses["node-01"].self_mask_shares["node-02"]},
    )
    with pytest.raises(SecAggProtocolError):
        unmask(game.params, game.directory, game.bundles, masked, {**responses, "node-01": forged})


def test_fewer_responders_than_the_threshold_are_refused():
    game = Round(n=5, threshold=3)
    masked, responses = game.run()
    few = {v: responses[v] for v in ("node-00", "node-01")}
    with pytest.raises(TooFewRespondersError):
        unmask(game.params, game.directory, game.bundles, masked, few)
    with pytest.raises(TooFewRespondersError):
        Round(n=5, threshold=3).clients["node-00"].unmask_response(["node-00", "node-01"])
