"""The hidden split's fused backward step into a relu layer (cpp/densa/relu_backward.hpp):
dy = W2ᵀ dz2, dz = relu'(z) ⊙ dy and db = Σ dz in one pass, where the split computed
them in three (an OpenBLAS product, then two passes).

The kernel is held to NumPy's float64 values over the shapes it takes (m up to 32 rows
in whole vectors, any number of outputs and samples, odd ones included), to the
three-pass path's handling of zeros, NaN and inf, and in training to the reference and
to the three-pass path, with the same bits on one thread as on two."""

from __future__ import annotations

import numpy as np
import pytest

import densa
from densa import _core
from helpers import assert_matches

ROWS = [8, 16, 24, 32]  # the team's hidden units: whole 8-float vectors
# Trained parameters after a few epochs, float32: as tests/test_hidden_split.py.
TRAIN_TOL = {"rtol": 2e-4, "atol": 2e-5}
OUTPUTS = [1, 2, 3, 10, 17]
SAMPLES = [1, 2, 3, 7, 32, 33, 64]


def _case(m, o, bs, seed=0):
    rng = np.random.default_rng([m, o, bs, seed])
    W = rng.standard_normal((o, m)).astype(np.float32)  # W2's columns of the team: (o, m)
    D = rng.standard_normal((o, bs)).astype(np.float32)  # dz2, an output per row
    z = rng.standard_normal((bs, m)).astype(np.float32)  # z1, a sample per row
    z[rng.random(z.shape) < 0.1] = 0.0  # relu'(0) is 0
    return W, D, z


def _expected(W, D, z):
    dy = D.T.astype(np.float64) @ W.astype(np.float64)  # (bs, m)
    dz = np.where(z > 0, dy, 0.0)
    return dz, dz.sum(axis=0)


def _kernel_or_skip(*args):
    out = _core._relu_backward(*args)
    if out is None and _core.isa == "baseline":
        pytest.skip("this module (baseline) has no AVX2 + FMA kernel")
    assert out is not None, "the kernel should take this shape"
    return out


@pytest.mark.parametrize("bs", SAMPLES)
@pytest.mark.parametrize("o", OUTPUTS)
@pytest.mark.parametrize("m", ROWS)
def test_fused_step_matches_numpy(m, o, bs):
    W, D, z = _case(m, o, bs)
    dz, db = _kernel_or_skip(W, D, z)
    want_dz, want_db = _expected(W, D, z)
    assert dz.shape == (bs, m)
    assert db.shape == (m,)
    assert_matches(dz, want_dz.astype(np.float32), "dz", reduction=o)
    assert_matches(db, want_db.astype(np.float32), "db", reduction=o * bs)
    # relu' is exact: every unit off (z <= 0) gives exactly 0
    assert np.all(dz[z <= 0] == 0)


def test_shapes_it_does_not_take_are_left_to_the_three_passes():
    for m in (4, 12, 40, 64):  # not whole vectors, or more than 32 rows
        W, D, z = _case(m, 10, 32)
        assert _core._relu_backward(W, D, z) is None


def test_nan_inf_and_signed_zeros_as_the_three_pass_path():
    """dz = f'(z) · dy multiplies, as activation_backward does: an off unit gives 0 · dy,
    which is -0 for a negative dy and NaN for an infinite or NaN one; a NaN z is off."""
    m, o, bs = 16, 3, 5
    W = np.ones((o, m), np.float32)
    D = np.zeros((o, bs), np.float32)
    D[:, 0] = -1.0  # dy = -3 for sample 0
    D[0, 1] = np.inf  # dy = +inf for sample 1
    D[0, 2] = np.nan  # dy = NaN for sample 2
    D[:, 3] = 2.0  # dy = 6 for sample 3
    z = np.ones((bs, m), np.float32)
    z[:, :4] = -1.0  # units 0-3 off
    z[:, 4] = np.nan  # unit 4 off (NaN > 0 is false)
    z[:, 5] = 0.0  # unit 5 off
    dz, db = _kernel_or_skip(W, D, z)
    with np.errstate(invalid="ignore"):
        dy = D.T @ W
        three_pass = (z > 0).astype(np.float32) * dy
    np.testing.assert_array_equal(np.isnan(dz), np.isnan(three_pass))
    np.testing.assert_array_equal(np.signbit(dz), np.signbit(three_pass))
    np.testing.assert_array_equal(dz[~np.isnan(dz)], three_pass[~np.isnan(three_pass)])
    assert np.isnan(db[0])  # sample 2's NaN reaches every unit's bias gradient
    assert np.signbit(dz[0, 0])
    assert dz[0, 0] == 0


def _digits_fit(threads, fused, backend="native", epochs=3):
    rng = np.random.default_rng(5)
    X = rng.random((300, 64), dtype=np.float32)
    y = rng.integers(0, 10, 300)
    net = densa.Network(
        [densa.Dense(64, 64, "relu"), densa.Dense(64, 10, "identity")],
        loss="softmax_cross_entropy",
        backend=backend,
        seed=2,
    )
    _core._set_relu_backward(fused)
    try:
        with densa.threads(threads):
            net.fit(
                X,
                y,
                epochs=epochs,
                batch_size=32,
                optimizer=densa.SGD(0.1, momentum=0.9),
                progress=False,
            )
    finally:
        _core._set_relu_backward(True)
    return [a.copy() for layer in net.layers for a in (layer.W, layer.b)]


def test_training_with_it_matches_the_reference_and_the_three_passes():
    fused = _digits_fit(2, True)
    three = _digits_fit(2, False)
    ref = _digits_fit(1, True, backend="reference")
    for a, b, r in zip(fused, three, ref):
        assert_matches(a, r, "fused against the reference", **TRAIN_TOL)
        assert_matches(b, r, "three passes against the reference", **TRAIN_TOL)
    if _core.isa != "baseline":  # the fused step ran: it rounds differently
        assert any(not np.array_equal(a, b) for a, b in zip(fused, three))


def test_training_with_it_gives_the_same_bits_on_one_and_two_threads():
    one, two = _digits_fit(1, True), _digits_fit(2, True)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
