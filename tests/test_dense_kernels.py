"""Native dense_forward / dense_backward against the NumPy reference.

Every activation, both dtypes, and layer shapes drawn at random under fixed seeds,
plus the edges: one sample (N = 1), one input (m_in = 1), one output (m_out = 1),
all three at once, and layers over 1024 wide.
"""

from __future__ import annotations

import numpy as np
import pytest

from densa import native, reference
from helpers import ACTIVATIONS, DTYPES, assert_matches, draw_layer


def _random_shape(seed: int, n=None, m_in=None, m_out=None):
    rng = np.random.default_rng(seed)
    draw = rng.integers(1, 97, size=3)
    return (
        int(draw[0]) if m_in is None else m_in,
        int(draw[1]) if m_out is None else m_out,
        int(draw[2]) % 64 + 1 if n is None else n,
    )


def _case(name, shape):
    m_in, m_out, n = shape
    return pytest.param(shape, id=f"{name}:{m_in}to{m_out}xN{n}")


# (m_in, m_out, N), each drawn under its own seed; the named edges fix one dimension.
SHAPES = [_case(f"seed{s}", _random_shape(s)) for s in range(5)] + [
    _case("N=1", _random_shape(10, n=1)),
    _case("m_in=1", _random_shape(11, m_in=1)),
    _case("m_out=1", _random_shape(12, m_out=1)),
    _case("all=1", (1, 1, 1)),
    _case("wide", _random_shape(13, m_in=1030, m_out=1024)),
]


def _layer(shape, dtype, activation):
    m_in, m_out, n = shape
    # A fixed seed per (shape, dtype, activation); hash() would be salted per process.
    rng = np.random.default_rng(
        [m_in, m_out, n, np.dtype(dtype).itemsize, ACTIVATIONS.index(activation)]
    )
    return draw_layer(rng, m_in, m_out, n, dtype)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_forward_matches_reference(activation, dtype, shape):
    W, b, x, _ = _layer(shape, dtype, activation)
    m_in = W.shape[1]
    z_n, y_n = native.dense_forward(W, b, x, activation)
    z_r, y_r = reference.dense_forward(W, b, x, activation)
    for got in (z_n, y_n):
        assert got.dtype == np.dtype(dtype)
        assert got.flags.c_contiguous
    # z_j = W x + b sums m_in products and the bias; y = f(z) inherits z's error.
    assert_matches(z_n, z_r, "z", reduction=m_in + 1)
    assert_matches(y_n, y_r, "y", reduction=m_in + 1)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_backward_matches_reference(activation, dtype, shape):
    W, b, x, dy = _layer(shape, dtype, activation)
    m_out, n = W.shape[0], x.shape[0]
    # Both backends differentiate at the same z, so that only the backward is compared.
    z, _ = reference.dense_forward(W, b, x, activation)
    dx_n, dW_n, db_n, dz_n = native.dense_backward(W, x, z, dy, activation, return_dz=True)
    dx_r, dW_r, db_r, dz_r = reference.dense_backward(W, x, z, dy, activation, return_dz=True)
    for got in (dx_n, dW_n, db_n, dz_n):
        assert got.dtype == np.dtype(dtype)
    assert_matches(dz_n, dz_r, "dz")  # dz = dy ⊙ f'(z), element-wise
    assert_matches(dW_n, dW_r, "dW", reduction=n)  # dW = dz·xᵀ, a sum over N samples
    assert_matches(db_n, db_r, "db", reduction=n)  # db = Σ_n dz
    assert_matches(dx_n, dx_r, "dx", reduction=m_out)  # dx = Wᵀ·dz, a sum over m_out


@pytest.mark.parametrize("backend", [native, reference], ids=["native", "reference"])
def test_return_dz_only_adds_dz(backend):
    W, b, x, dy = _layer((7, 5, 9), np.float64, "tanh")
    z, _ = backend.dense_forward(W, b, x, "tanh")
    three = backend.dense_backward(W, x, z, dy, "tanh")
    four = backend.dense_backward(W, x, z, dy, "tanh", return_dz=True)
    assert len(three) == 3
    assert len(four) == 4
    # Compared within tolerance, not bit for bit: see NONDETERMINISM in helpers.py.
    for name, a, e, k in zip(("dx", "dW", "db"), three, four[:3], (5, 9, 9)):
        assert_matches(a, e, name, reduction=k)


# Without return_dz, the native backward keeps dz in a thread's scratch (up to 65 536
# values) or in a temporary (larger): either way dx, dW and db must be the bits of the
# call that returns dz. Shapes in an order that grows the scratch, reuses it for smaller
# layers and passes over its limit, where a stale or short buffer would show.
SCRATCH_SHAPES = [(64, 64, 32), (7, 5, 9), (96, 80, 64), (3, 2, 1), (300, 257, 256), (64, 64, 32)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_backward_without_dz_equals_with_dz(activation, dtype):
    for shape in SCRATCH_SHAPES:
        W, b, x, dy = _layer(shape, dtype, activation)
        z, _ = native.dense_forward(W, b, x, activation)
        three = native.dense_backward(W, x, z, dy, activation)
        four = native.dense_backward(W, x, z, dy, activation, return_dz=True)
        assert len(three) == 3
        for name, a, e in zip(("dx", "dW", "db"), three, four[:3]):
            assert a.dtype == np.dtype(dtype), (shape, name)
            assert a.flags.c_contiguous, (shape, name)
            np.testing.assert_array_equal(a, e, err_msg=f"{name} at {shape}")
        # And both are the reference's gradients, so the scratch held a true dz.
        m_out, n = W.shape[0], x.shape[0]
        dx_r, dW_r, db_r = reference.dense_backward(W, x, z, dy, activation)
        assert_matches(three[0], dx_r, "dx", reduction=m_out)
        assert_matches(three[1], dW_r, "dW", reduction=n)
        assert_matches(three[2], db_r, "db", reduction=n)


@pytest.mark.parametrize("backend", [native, reference], ids=["native", "reference"])
def test_linear_is_identity(backend):
    W, b, x, dy = _layer((6, 4, 3), np.float32, "identity")
    z_i, y_i = backend.dense_forward(W, b, x, "identity")
    z_l, y_l = backend.dense_forward(W, b, x, "linear")
    assert_matches(y_l, y_i, "y", reduction=7)
    np.testing.assert_array_equal(y_i, z_i)  # f(z) = z, within one call
    g_i = backend.dense_backward(W, x, z_i, dy, "identity", return_dz=True)
    g_l = backend.dense_backward(W, x, z_l, dy, "linear", return_dz=True)
    for name, a, e, k in zip(("dx", "dW", "db", "dz"), g_l, g_i, (4, 3, 3, 1)):
        assert_matches(a, e, name, reduction=k)
    np.testing.assert_array_equal(g_i[3], dy)  # dz = dy ⊙ f'(z) with f'(z) = 1, exactly


@pytest.mark.parametrize("backend", [native, reference], ids=["native", "reference"])
def test_float32_is_computed_in_float32(backend):
    # A float32 call that secretly ran in float64 would return the float64 result
    # rounded once, bit for bit. Summing 1030 products in float32 rounds along the way,
    # so most elements differ from that by an ulp or more, while staying close to it.
    W, b, x, _ = _layer((1030, 64, 16), np.float32, "identity")
    z32, _ = backend.dense_forward(W, b, x, "identity")
    z64, _ = backend.dense_forward(
        W.astype(np.float64), b.astype(np.float64), x.astype(np.float64), "identity"
    )
    rounded = z64.astype(np.float32)
    assert np.mean(z32 != rounded) > 0.2
    assert_matches(z32, rounded, "z", reduction=1031)


@pytest.mark.parametrize("dtype", DTYPES)
def test_native_chain_matches_reference_chain(dtype):
    # Two layers, backward recursion: the dx of the upper layer is the dy of the lower.
    rng = np.random.default_rng(7)
    W1, b1, x, _ = draw_layer(rng, 9, 13, 11, dtype)
    W2, b2, _, dy = draw_layer(rng, 13, 4, 11, dtype)
    out = {}
    for name, be in (("native", native), ("reference", reference)):
        z1, y1 = be.dense_forward(W1, b1, x, "gelu")
        z2, y2 = be.dense_forward(W2, b2, y1, "sigmoid")
        dy1, dW2, db2 = be.dense_backward(W2, y1, z2, dy, "sigmoid")
        dx, dW1, db1 = be.dense_backward(W1, x, z1, dy1, "gelu")
        out[name] = {"y2": y2, "dW2": dW2, "db2": db2, "dy1": dy1, "dW1": dW1, "db1": db1, "dx": dx}
    for key, reduction in (
        ("y2", 23),
        ("dW2", 11),
        ("db2", 11),
        ("dy1", 4),
        ("dW1", 20),
        ("db1", 20),
        ("dx", 13),
    ):
        # Errors of the upper layer flow into the lower one: reduction adds both sums.
        assert_matches(out["native"][key], out["reference"][key], key, reduction=reduction)
