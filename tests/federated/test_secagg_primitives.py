"""Secure aggregation's building blocks: fixed-point encoding, Shamir sharing, key
agreement and masks, and the uniformity of what the coordinator sees."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from federated.errors import InvalidUpdateError, SecAggParameterError
from federated.secagg import (
    FixedPoint,
    NodeKeys,
    RoundContext,
    agree,
    seeded_entropy,
    shamir,
    simulate,
)
from federated.secagg.keys import MASK_PURPOSE
from federated.secagg.masks import expand

# Family-wise significance of each uniformity test function (seeded, so deterministic); each
# of its chi-square tests runs at ALPHA / (number of tests) (Bonferroni).
ALPHA = 1e-3
# The demo's digits MLP (64 → 64 → 10): 64·64 + 64 + 64·10 + 10 parameters.
DIGITS_MLP = 4810

# --- fixed point ------------------------------------------------------------------------------


def test_encoding_round_trips_within_half_a_step_and_clips():
    encoding = FixedPoint(bits=32, scale=2.0**10, clip=4.0)
    x = np.array([0.0, 1.5, -1.5, 3.9999, -4.0, 7.0, -1e6, 2.0**-12])
    decoded = encoding.decode(encoding.encode(x))
    expected = np.clip(x, -4.0, 4.0)
    assert np.all(np.abs(decoded - expected) <= 0.5 / 2**10)
    assert decoded[5] == 4.0 and decoded[6] == -4.0


@pytest.mark.parametrize(
    "kwargs", [{"bits": 16}, {"scale": 0.0}, {"clip": -1.0}, {"clip": float("inf")}]
)
def test_unusable_encodings_are_refused(kwargs):
    with pytest.raises(SecAggParameterError):
        FixedPoint(**kwargs)


def test_nan_is_not_encoded():
    with pytest.raises(InvalidUpdateError):
        FixedPoint().encode(np.array([0.0, np.nan]))


# --- Shamir -----------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 15, 16, 32, 100])
def test_any_t_shares_recover_the_secret_and_t_minus_1_do_not(length):
    entropy = seeded_entropy(length)
    secret = entropy(length)
    shares = shamir.split(secret, 7, 4, entropy=entropy)
    rng = np.random.default_rng(length)
    for _ in range(5):
        chosen = [shares[i] for i in rng.choice(7, size=4, replace=False)]
        assert shamir.combine(chosen) == secret
    assert shamir.combine(shares) == secret
    if length:
        try:  # t − 1 shares interpolate to random field elements, which rarely even fit
            wrong: bytes | None = shamir.combine(shares[:3])
        except ValueError:
            wrong = None
        assert wrong != secret
    restored = [shamir.Share.from_bytes(s.to_bytes()) for s in shares]
    assert restored == shares


def test_malformed_shares_are_refused():
    shares = shamir.split(b"x" * 32, 3, 2, entropy=seeded_entropy(0))
    with pytest.raises(ValueError):
        shamir.Share.from_bytes(shares[0].to_bytes()[:-1])
    with pytest.raises(ValueError):
        shamir.combine([shares[0], shares[0]])


# --- keys and masks (5) -------------------------------------------------------------------


def _keys(name: str, seed: int) -> NodeKeys:
    return NodeKeys.generate(name, entropy=seeded_entropy(seed))


def test_both_ends_agree_and_any_other_round_profile_or_pair_gives_other_masks():
    a, b, c = _keys("a", 1), _keys("b", 2), _keys("c", 3)
    ctx = RoundContext("digits", 3)

    def secret(me, peer, context=ctx, purpose=MASK_PURPOSE):
        return agree(
            me.mask_private, peer.public().mask_key, context=context, purpose=purpose,
            node_a=me.node_id, node_b=peer.node_id,
        )  # fmt: skip

    assert secret(a, b) == secret(b, a)
    others = {
        "next round": secret(a, b, RoundContext("digits", 4)),
        "other profile": secret(a, b, RoundContext("mnist", 3)),
        "other pair": secret(a, c),
        "other purpose": secret(a, b, purpose="share-encryption"),
    }
    reference = expand(secret(a, b), DIGITS_MLP, 32)
    for name, other in others.items():
        assert other != secret(a, b), name
        mask = expand(other, DIGITS_MLP, 32)
        # Unrelated masks agree on a coordinate with probability 2^-32.
        assert np.count_nonzero(mask == reference) <= 1, name
    # The same key under another node's identity binds other ids: a different secret.
    impostor = agree(
        a.mask_private, b.public().mask_key, context=ctx, purpose=MASK_PURPOSE,
        node_a="a", node_b="mallory",
    )  # fmt: skip
    assert impostor != secret(a, b)


# --- what the coordinator sees (4) ------------------------------------------------------------


def _nibble_counts(values: np.ndarray, shift: int) -> np.ndarray:
    return np.bincount(
        ((values >> np.uint64(shift)) & np.uint64(15)).astype(np.int64), minlength=16
    )


def _uniform_p(values: np.ndarray, shift: int) -> float:
    counts = _nibble_counts(values.astype(np.uint64), shift)
    return float(stats.chisquare(counts).pvalue)


def _masked(inputs_value: float, seed: int) -> dict[str, np.ndarray]:
    inputs = {f"node-{i}": np.full(DIGITS_MLP, inputs_value) for i in range(5)}
    run = simulate(inputs, threshold=3, seed=seed)
    return {v: m.values for v, m in run.masked.items()}


def test_each_masked_vector_is_uniform_over_z_2_to_the_k():
    # Inputs as far from uniform as possible: every coordinate the same value.
    masked = _masked(1.25, seed=11)
    encoded = FixedPoint().encode(np.full(DIGITS_MLP, 1.25))
    shifts = (28, 24, 0)  # the top nibble, the next one, the bottom one
    alpha = ALPHA / (len(shifts) * (len(masked) + 1))
    for shift in shifts:
        for vector in masked.values():
            assert _uniform_p(vector, shift) > alpha
        pooled = np.concatenate(list(masked.values()))
        assert _uniform_p(pooled, shift) > alpha
        # The same test rejects the unmasked encoding: it has the power to see structure.
        assert _uniform_p(encoded, shift) < ALPHA


def test_masked_vectors_of_different_inputs_are_indistinguishable():
    low, high = _masked(-64.0, seed=12), _masked(64.0, seed=13)
    shifts = (28, 0)
    alpha = ALPHA / (len(shifts) * len(low))
    for shift in shifts:
        for node in low:
            table = np.stack(
                [
                    _nibble_counts(low[node].astype(np.uint64), shift),
                    _nibble_counts(high[node].astype(np.uint64), shift),
                ]
            )
            assert stats.chi2_contingency(table).pvalue > alpha
    # The same test tells the encodings apart.
    encoding = FixedPoint()
    table = np.stack(
        [
            _nibble_counts(encoding.encode(np.full(DIGITS_MLP, v)).astype(np.uint64), 28)
            + 1  # no empty cells
            for v in (-64.0, 64.0)
        ]
    )
    assert stats.chi2_contingency(table).pvalue < ALPHA
