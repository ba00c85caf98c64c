"""Activations f and f' on a grid from -1e4 to 1e4: finite, at their known limits, and
equal to the documented formulas, on both backends and in both dtypes.

The public kernels are dense_forward / dense_backward, so f is probed through a layer
with W = I and b = 0 (then z = x exactly and y = f(z)), and f' through dense_backward
with dy = 1 (then dz = 1 · f'(z) = f'(z) exactly).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from densa import native, reference
from helpers import ACTIVATIONS, BACKENDS, DTYPES, assert_matches

_MODERATE = [1e-30, 1e-3, 0.5, 1.0, 3.0, 20.0, 100.0, 1e3, 1e4]


def z_grid(dtype) -> np.ndarray:
    """Zero, ±tiny (smallest normal and subnormal of dtype), moderate values, ±1e4."""
    info = np.finfo(dtype)
    pos = [float(info.smallest_subnormal), float(info.tiny), *_MODERATE]
    return np.array([0.0, *pos, *(-p for p in pos)], dtype=dtype)


def probe(backend, activation, z):
    """``(f(z), f'(z))`` of a 1-D array z, through one dense layer of the backend."""
    m = z.size
    W = np.eye(m, dtype=z.dtype)
    b = np.zeros(m, dtype=z.dtype)
    x = z.reshape(1, m)
    z_out, y = backend.dense_forward(W, b, x, activation)
    np.testing.assert_array_equal(z_out, x)  # W = I, b = 0: z is x exactly
    dz = backend.dense_backward(W, x, z_out, np.ones_like(x), activation, return_dz=True)[3]
    return y.ravel(), dz.ravel()


# f and f' written one scalar at a time with Python's math (double precision), in forms
# chosen apart from the kernels' where that is easy (sech² from cosh, sigmoid' from exp).
def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))


def _gelu_u(z: float) -> tuple[float, float]:
    c = math.sqrt(2 / math.pi)
    return c * (z + 0.044715 * z**3), c * (1 + 3 * 0.044715 * z**2)


def _sech2(u: float) -> float:
    return 0.0 if abs(u) > 350 else 1 / math.cosh(u) ** 2


def scalar_f(name: str, z: float) -> float:
    if name in ("identity", "linear"):
        return z
    if name == "sigmoid":
        return _sigmoid(z)
    if name == "tanh":
        return math.tanh(z)
    if name == "relu":
        return max(z, 0.0)
    if name == "leaky_relu":
        return z if z > 0 else 0.01 * z
    if name == "elu":
        return z if z > 0 else math.expm1(z)
    if name == "softplus":
        return max(z, 0.0) + math.log1p(math.exp(-abs(z)))
    if name == "gelu":
        return 0.5 * z * (1 + math.tanh(_gelu_u(z)[0]))
    raise AssertionError(name)


def scalar_df(name: str, z: float) -> float:
    if name in ("identity", "linear"):
        return 1.0
    if name in ("sigmoid", "softplus"):  # softplus' = sigmoid; sigmoid' = e/(1+e)², e = exp(-|z|)
        if name == "softplus":
            return _sigmoid(z)
        e = math.exp(-abs(z))
        return e / (1 + e) ** 2
    if name == "tanh":
        return _sech2(z)
    if name == "relu":
        return 1.0 if z > 0 else 0.0
    if name == "leaky_relu":
        return 1.0 if z > 0 else 0.01
    if name == "elu":
        return 1.0 if z > 0 else math.exp(z)
    if name == "gelu":
        u, du = _gelu_u(z)
        return 0.5 * (1 + math.tanh(u)) + 0.5 * z * _sech2(u) * du
    raise AssertionError(name)


# (z, f(z), f'(z)) that hold exactly in both dtypes: saturation at ±1e4, and z = 0 where
# the kinks take the documented side (relu'(0) = 0, leaky_relu'(0) = 0.01).
_SAME_AS_IDENTITY = [(-1e4, -1e4, 1.0), (0.0, 0.0, 1.0), (1e4, 1e4, 1.0)]
KNOWN = {
    "identity": _SAME_AS_IDENTITY,
    "linear": _SAME_AS_IDENTITY,
    "sigmoid": [(-1e4, 0.0, 0.0), (0.0, 0.5, 0.25), (1e4, 1.0, 0.0)],
    "tanh": [(-1e4, -1.0, 0.0), (0.0, 0.0, 1.0), (1e4, 1.0, 0.0)],
    "relu": [(-1e4, 0.0, 0.0), (0.0, 0.0, 0.0), (1e4, 1e4, 1.0)],
    "leaky_relu": [(-1e4, -100.0, 0.01), (0.0, 0.0, 0.01), (1e4, 1e4, 1.0)],
    "elu": [(-1e4, -1.0, 0.0), (0.0, 0.0, 1.0), (1e4, 1e4, 1.0)],
    "softplus": [(-1e4, 0.0, 0.0), (0.0, math.log(2.0), 0.5), (1e4, 1e4, 1.0)],
    "gelu": [(-1e4, 0.0, 0.0), (0.0, 0.0, 0.5), (1e4, 1e4, 1.0)],
}

backends = pytest.mark.parametrize("backend", list(BACKENDS.values()), ids=list(BACKENDS))
dtypes = pytest.mark.parametrize("dtype", DTYPES)
activations = pytest.mark.parametrize("activation", ACTIVATIONS)


@activations
@dtypes
@backends
def test_finite_on_whole_grid(backend, dtype, activation):
    z = z_grid(dtype)
    f, df = probe(backend, activation, z)
    assert f.dtype == np.dtype(dtype)
    assert df.dtype == np.dtype(dtype)
    assert np.all(np.isfinite(f)), f"f not finite at z = {z[~np.isfinite(f)]}"
    assert np.all(np.isfinite(df)), f"f' not finite at z = {z[~np.isfinite(df)]}"


@activations
@dtypes
@backends
def test_known_limits(backend, dtype, activation):
    zs, fs, dfs = (np.array(col, dtype=dtype) for col in zip(*KNOWN[activation]))
    f, df = probe(backend, activation, zs)
    # Within one rounding of dtype: leaky_relu(-1e4) = 0.01 · -1e4 rounds 0.01 first.
    eps = float(np.finfo(dtype).eps)
    np.testing.assert_allclose(f, fs, rtol=eps, atol=0, err_msg=f"f at z = {zs}")
    np.testing.assert_allclose(df, dfs, rtol=eps, atol=0, err_msg=f"f' at z = {zs}")


@activations
@dtypes
@backends
def test_matches_scalar_formulas(backend, dtype, activation):
    z = z_grid(dtype)
    f, df = probe(backend, activation, z)
    f_exp = np.array([scalar_f(activation, float(v)) for v in z]).astype(dtype)
    df_exp = np.array([scalar_df(activation, float(v)) for v in z]).astype(dtype)
    # 64 ulp of 1: the formulas cancel in places (gelu's 1 + tanh u for u < 0), where a
    # few ulp of tanh become many ulp of the result, but never more than this.
    tol = 64 * float(np.finfo(dtype).eps)
    np.testing.assert_allclose(f, f_exp, rtol=tol, atol=tol, err_msg=f"{activation} f")
    np.testing.assert_allclose(df, df_exp, rtol=tol, atol=tol, err_msg=f"{activation} f'")


@activations
@dtypes
def test_native_matches_reference_on_grid(dtype, activation):
    z = z_grid(dtype)
    f_n, df_n = probe(native, activation, z)
    f_r, df_r = probe(reference, activation, z)
    assert_matches(f_n, f_r, "y = f(z)")
    assert_matches(df_n, df_r, "dz = f'(z)")


_SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 1e-310, -1e-310, 2.5, -2.5, 3e38]


def _same_bits(a: np.ndarray, b: np.ndarray, what: str) -> None:
    """Equal bit for bit, zeros' signs included; NaNs only need to sit at the same places
    (their payloads are not part of any formula)."""
    assert a.dtype == b.dtype, what
    nan = np.isnan(a)
    np.testing.assert_array_equal(nan, np.isnan(b), err_msg=f"{what}: NaN positions")
    bits = np.uint32 if a.dtype == np.float32 else np.uint64
    np.testing.assert_array_equal(a[~nan].view(bits), b[~nan].view(bits), err_msg=what)


@pytest.mark.parametrize("activation", ["identity", "linear", "relu", "leaky_relu"])
@dtypes
@pytest.mark.parametrize("n", [1, 7, 37, 300])
def test_exact_activations_equal_the_reference_bit_for_bit(dtype, activation, n):
    """identity, relu and leaky_relu run without the aligned chunks (activation.hpp,
    "exact"), fused with the bias add: each is one compare, select or multiply per
    element, so native results must equal the reference formulas bit for bit, for
    special values too (NaN, ±inf, ±0, subnormals) and for every length (SIMD tails)."""
    rng = np.random.default_rng(n)
    with np.errstate(over="ignore"):
        values = np.array(_SPECIAL, dtype=dtype)
    z = np.resize(values, n)
    z[len(values) :] = rng.standard_normal(max(0, n - len(values))).astype(dtype)
    rng.shuffle(z)
    dy = rng.standard_normal(n).astype(dtype)
    dy[rng.random(n) < 0.2] = np.nan
    dy[rng.random(n) < 0.1] = -0.0
    f = reference.activations.activation(activation)
    one = np.ones((1, 1), dtype=dtype)
    zero_b = np.zeros(1, dtype=dtype)
    b = np.full(1, 0.75, dtype=dtype)

    # Forward through a 1 -> 1 layer (W = 1): z_out = x + b, then y = f(z_out).
    x = z.reshape(n, 1)
    for bias in (zero_b, b):
        z_out, y = native.dense_forward(one, bias, x, activation)
        with np.errstate(invalid="ignore", over="ignore"):
            _same_bits(z_out.ravel(), (x * one[0, 0] + bias).ravel(), "z = W x + b")
            _same_bits(y.ravel(), f.f(z_out).ravel(), "y = f(z)")

    # Backward with z given directly, special values included: dz = dy * f'(z).
    dz = native.dense_backward(one, x, x, dy.reshape(n, 1), activation, return_dz=True)[3]
    with np.errstate(invalid="ignore", over="ignore"):
        _same_bits(dz.ravel(), (dy * f.df(z)).ravel(), "dz = dy * f'(z)")


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "elu", "softplus", "gelu"])
@dtypes
def test_native_bits_of_a_value_do_not_depend_on_its_place(dtype, activation):
    """f and f' of a value are the same bits wherever it sits in the batch (no scalar SIMD tail)."""
    # Eigen computes an array's last len % packet elements with scalar code, which
    # rounds otherwise; elementwise.hpp pads every chunk so that all take the packet
    # path. Dropping the first k samples moves every value k·m places earlier, and the
    # array's end (and the 512-value chunks' ends) past other values.
    rng = np.random.default_rng(3)
    m = 7
    x0 = (3 * rng.standard_normal((75, m))).astype(dtype)  # 525 values: two chunks
    W = np.eye(m, dtype=dtype)  # z = x exactly (b = 0), dz = f'(z) exactly (dy = 1)
    b = np.zeros(m, dtype=dtype)

    def f_and_df(x):
        z, y = native.dense_forward(W, b, x, activation)
        dz = native.dense_backward(W, x, z, np.ones_like(x), activation, return_dz=True)[3]
        return y, dz

    y0, dz0 = f_and_df(x0)
    for k in (1, 2, 3, 5, 9, 13, 40, 74):
        y, dz = f_and_df(x0[k:])
        _same_bits(y, y0[k:], f"y = f(z), the first {k} samples dropped")
        _same_bits(dz, dz0[k:], f"dz = f'(z), the first {k} samples dropped")
