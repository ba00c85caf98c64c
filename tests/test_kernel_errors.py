"""Bad input, on both backends: what is refused, with which exception and message, and
what is converted (to the same result as the well-formed call).

The policy (``densa._checks``): float32 / float64 only (TypeError otherwise), one dtype
per call (TypeError), ndim and shape agreement checked (ValueError naming the argument
and the shapes), unknown names refused (ValueError listing the valid ones), N = 0
refused (ValueError); Fortran-ordered and strided arrays are converted once, in Python.
The extension checks shapes again in C++ (std::invalid_argument -> ValueError).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from densa import _core, native
from helpers import BACKENDS, assert_matches, draw_layer

backends = pytest.mark.parametrize("backend", list(BACKENDS.values()), ids=list(BACKENDS))

M_IN, M_OUT, N = 4, 3, 5


def _layer(dtype=np.float64):
    W, b, x, dy = draw_layer(np.random.default_rng(0), M_IN, M_OUT, N, dtype)
    z = (x @ W.T + b).astype(dtype)
    return W, b, x, z, dy


def _raises(exc, *fragments):
    """pytest.raises whose message must contain every fragment, literally."""
    return pytest.raises(exc, match="(?s)" + "".join(f"(?=.*{re.escape(f)})" for f in fragments))


# -- ndim ------------------------------------------------------------------------------


@backends
@pytest.mark.parametrize(
    ("arg", "bad_shape", "ndim"),
    [("W", (M_OUT * M_IN,), 2), ("b", (M_OUT, 1), 1), ("x", (M_IN,), 2), ("x", (1, N, M_IN), 2)],
)
def test_forward_wrong_ndim(backend, arg, bad_shape, ndim):
    args = dict(zip("Wbx", _layer()[:3]))
    args[arg] = np.ones(bad_shape)
    with _raises(ValueError, f"{arg} must be {ndim}-D", str(bad_shape)):
        backend.dense_forward(args["W"], args["b"], args["x"], "relu")


@backends
@pytest.mark.parametrize(
    ("arg", "bad_shape"),
    [("W", (M_IN,)), ("x", (M_IN,)), ("z", (N * M_OUT,)), ("dy", (1, N, M_OUT))],
)
def test_backward_wrong_ndim(backend, arg, bad_shape):
    W, _, x, z, dy = _layer()
    args = {"W": W, "x": x, "z": z, "dy": dy}
    args[arg] = np.ones(bad_shape)
    with _raises(ValueError, f"{arg} must be 2-D", str(bad_shape)):
        backend.dense_backward(args["W"], args["x"], args["z"], args["dy"], "relu")


# -- shapes that do not agree -----------------------------------------------------------


@backends
def test_bias_does_not_match_W(backend):
    W, _, x, _, _ = _layer()
    b = np.zeros(M_OUT + 1)
    with _raises(ValueError, "b has shape (4,)", "W has shape (3, 4)"):
        backend.dense_forward(W, b, x, "relu")


@backends
def test_x_does_not_match_W_forward(backend):
    W, b, _, _, _ = _layer()
    x = np.ones((N, M_IN + 2))
    with _raises(ValueError, "x has shape (5, 6)", "W has shape (3, 4)"):
        backend.dense_forward(W, b, x, "relu")


@backends
def test_x_does_not_match_W_backward(backend):
    W, _, _, z, dy = _layer()
    x = np.ones((N, M_IN - 1))
    with _raises(ValueError, "x has shape (5, 3)", "W has shape (3, 4)"):
        backend.dense_backward(W, x, z, dy, "relu")


@backends
@pytest.mark.parametrize("bad", [(N, M_OUT + 1), (N + 1, M_OUT)])
def test_z_does_not_match_x_and_W(backend, bad):
    W, _, x, _, _ = _layer()
    z = np.ones(bad)
    dy = np.ones(bad)
    with _raises(ValueError, f"z has shape {bad}", f"{(N, M_OUT)}"):
        backend.dense_backward(W, x, z, dy, "relu")


@backends
def test_dy_does_not_match_z(backend):
    W, _, x, z, _ = _layer()
    dy = np.ones((N, M_OUT + 1))
    with _raises(ValueError, "dy has shape (5, 4)", "z has shape (5, 3)"):
        backend.dense_backward(W, x, z, dy, "relu")


# -- names ----------------------------------------------------------------------------


@backends
def test_unknown_activation(backend):
    W, b, x, z, dy = _layer()
    with _raises(ValueError, "activation", "'swish'", "relu", "gelu"):
        backend.dense_forward(W, b, x, "swish")
    with _raises(ValueError, "activation", "'ReLU'"):
        backend.dense_backward(W, x, z, dy, "ReLU")
    with _raises(TypeError, "activation must be a string", "int"):
        backend.dense_forward(W, b, x, 3)
    with _raises(TypeError, "activation must be a string", "bytes"):
        backend.dense_forward(W, b, x, b"relu")  # pybind11 alone would take bytes
    with _raises(TypeError, "activation must be a string", "bytes"):
        backend.dense_backward(W, x, z, dy, b"relu")


@backends
@pytest.mark.parametrize("kind", ["masked", "matrix"])
@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_array_subclasses_are_read_as_plain_arrays(backend, kind):
    """A mask is ignored and np.matrix's own product never runs, as documented."""
    W, b, x, z, dy = _layer()
    if kind == "masked":
        wrap = lambda a: np.ma.masked_array(a, mask=np.eye(*a.shape, dtype=bool))  # noqa: E731
    else:
        wrap = np.asmatrix
    expected = native.dense_forward(W, b, x, "tanh")
    got = backend.dense_forward(wrap(W), b, wrap(x), "tanh")
    for e, g in zip(expected, got):
        assert type(g) is np.ndarray
        assert_matches(g, e, "forward", reduction=M_IN)
    expected = native.dense_backward(W, x, z, dy, "tanh")
    got = backend.dense_backward(wrap(W), wrap(x), wrap(z), wrap(dy), "tanh")
    for e, g in zip(expected, got):
        assert type(g) is np.ndarray
        assert_matches(g, e, "backward", reduction=N)


# -- dtypes ---------------------------------------------------------------------------

UNSUPPORTED = [np.float16, np.int64, np.int32, np.bool_, np.complex128, np.object_, np.str_]


@backends
@pytest.mark.parametrize("dtype", UNSUPPORTED, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("arg", ["W", "b", "x"])
def test_forward_unsupported_dtype(backend, dtype, arg):
    args = dict(zip("Wbx", _layer()[:3]))
    args[arg] = args[arg].astype(dtype)
    with _raises(TypeError, f"{arg} has dtype {args[arg].dtype}", "float32 or float64"):
        backend.dense_forward(args["W"], args["b"], args["x"], "relu")


@backends
@pytest.mark.parametrize("dtype", UNSUPPORTED, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("arg", ["z", "dy"])
def test_backward_unsupported_dtype(backend, dtype, arg):
    W, _, x, z, dy = _layer()
    args = {"W": W, "x": x, "z": z, "dy": dy}
    args[arg] = args[arg].astype(dtype)
    with _raises(TypeError, f"{arg} has dtype {args[arg].dtype}"):
        backend.dense_backward(args["W"], args["x"], args["z"], args["dy"], "relu")


@backends
def test_mixed_dtypes_forward(backend):
    W, b, x, _, _ = _layer()
    with _raises(TypeError, "mixed dtypes", "W is float64", "b is float32", "x is float64"):
        backend.dense_forward(W, b.astype(np.float32), x, "relu")


@backends
def test_mixed_dtypes_backward(backend):
    W, _, x, z, dy = _layer(np.float32)
    with _raises(TypeError, "mixed dtypes", "dy is float64", "W is float32"):
        backend.dense_backward(W, x, z, dy.astype(np.float64), "relu")


# -- empty batches --------------------------------------------------------------------


@backends
def test_empty_batch_forward(backend):
    W, b, _, _, _ = _layer()
    with _raises(ValueError, "x is empty", "(0, 4)"):
        backend.dense_forward(W, b, np.ones((0, M_IN)), "relu")
    with _raises(ValueError, "x is empty", "(5, 0)"):
        backend.dense_forward(np.ones((M_OUT, 0)), b, np.ones((N, 0)), "relu")


@backends
def test_empty_batch_backward(backend):
    W, _, _, _, _ = _layer()
    with _raises(ValueError, "x is empty", "(0, 4)"):
        backend.dense_backward(
            W, np.ones((0, M_IN)), np.ones((0, M_OUT)), np.ones((0, M_OUT)), "relu"
        )


# -- converted, not refused -----------------------------------------------------------

LAYOUTS = {
    "fortran": np.asfortranarray,
    "strided": lambda a: np.repeat(a, 2, axis=-1)[..., ::2],
    "reversed_twice": lambda a: a[::-1].copy()[::-1],
}


@backends
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("arg", ["W", "b", "x", "z", "dy"])
def test_other_layouts_are_converted(backend, dtype, layout, arg):
    W, b, x, z, dy = _layer(dtype)
    args = {"W": W, "b": b, "x": x, "z": z, "dy": dy}
    converted = dict(args)
    converted[arg] = LAYOUTS[layout](args[arg])
    np.testing.assert_array_equal(converted[arg], args[arg])
    if converted[arg].ndim == 2:
        assert not converted[arg].flags.c_contiguous
    # Same values, so the same result; within tolerance, not bit for bit (see
    # NONDETERMINISM in helpers.py).
    expected = backend.dense_forward(args["W"], args["b"], args["x"], "tanh")
    got = backend.dense_forward(converted["W"], converted["b"], converted["x"], "tanh")
    for name, g, e in zip(("z", "y"), got, expected):
        assert_matches(g, e, name, reduction=M_IN + 1)
    expected = backend.dense_backward(args["W"], args["x"], args["z"], args["dy"], "tanh", True)
    got = backend.dense_backward(
        converted["W"], converted["x"], converted["z"], converted["dy"], "tanh", True
    )
    for name, g, e, k in zip(("dx", "dW", "db", "dz"), got, expected, (M_OUT, N, N, 1)):
        assert_matches(g, e, name, reduction=k)


@backends
def test_nested_lists_are_converted(backend):
    W, b, x, _, _ = _layer()
    expected = backend.dense_forward(W, b, x, "sigmoid")
    got = backend.dense_forward(W.tolist(), b.tolist(), x.tolist(), "sigmoid")
    for name, g, e in zip(("z", "y"), got, expected):
        assert_matches(g, e, name, reduction=M_IN + 1)


# -- losses ---------------------------------------------------------------------------


@backends
def test_unknown_loss(backend):
    y = np.ones((N, M_OUT))
    with _raises(ValueError, "loss", "'hinge'", "mse", "softmax_cross_entropy"):
        backend.loss_forward("hinge", y, y)
    with _raises(ValueError, "loss", "'cross_entropy'"):
        backend.loss_backward("cross_entropy", y, y)
    with _raises(TypeError, "loss must be a string"):
        backend.loss_forward(None, y, y)


@backends
@pytest.mark.parametrize("name", ["mse", "softmax_cross_entropy", "binary_cross_entropy"])
@pytest.mark.parametrize("bad", [(N, M_OUT + 1), (N - 1, M_OUT)])
def test_loss_target_shape_mismatch(backend, name, bad):
    y = np.ones((N, M_OUT))
    t = np.zeros(bad)
    for fn in (backend.loss_forward, backend.loss_backward):
        with _raises(ValueError, f"target has shape {bad}", f"output has shape {(N, M_OUT)}"):
            fn(name, y, t)


@backends
def test_loss_bad_arrays(backend):
    y = np.ones((N, M_OUT))
    with _raises(ValueError, "output must be 2-D", "(5,)"):
        backend.loss_forward("mse", np.ones(N), np.ones(N))
    with _raises(TypeError, "target has dtype int64"):
        backend.loss_forward("mse", y, np.ones((N, M_OUT), dtype=np.int64))
    with _raises(TypeError, "mixed dtypes", "output is float64", "target is float32"):
        backend.loss_backward("mse", y, y.astype(np.float32))
    with _raises(ValueError, "output is empty", "(0, 3)"):
        backend.loss_backward("mse", np.ones((0, M_OUT)), np.ones((0, M_OUT)))


# -- the extension checks again, in C++ --------------------------------------------------
# Called directly, past the Python checks: a mismatch must become a ValueError naming
# the shapes, never an out-of-bounds read.


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extension_checks_shapes_itself(dtype):
    W, b, x, z, _ = _layer(dtype)
    with _raises(ValueError, "b has 4 entries", "W has shape (3, 4)"):
        _core.dense_forward(W, np.zeros(M_OUT + 1, dtype), x, "relu")
    with _raises(ValueError, "x has shape (5, 2)", "W has shape (3, 4)"):
        _core.dense_forward(W, b, np.ones((N, 2), dtype), "relu")
    with _raises(ValueError, "x must be 2-D", "ndim=1"):
        _core.dense_forward(W, b, np.ones(M_IN, dtype), "relu")
    with _raises(ValueError, "z has shape (5, 2)", "expected (5, 3)"):
        _core.dense_backward(W, x, np.ones((N, 2), dtype), np.ones((N, 2), dtype), "relu")
    with _raises(ValueError, "dy has shape (4, 3)", "z has shape (5, 3)"):
        _core.dense_backward(W, x, z, np.ones((N - 1, M_OUT), dtype), "relu")
    with _raises(ValueError, "activation", "'softmax'"):
        _core.dense_forward(W, b, x, "softmax")
    with _raises(ValueError, "target has shape (5, 2)", "output has shape (5, 3)"):
        _core.loss_forward("mse", z, np.ones((N, 2), dtype))
    with _raises(ValueError, "target has shape (4, 3)", "output has shape (5, 3)"):
        _core.loss_backward("mse", z, np.ones((N - 1, M_OUT), dtype))
    with _raises(ValueError, "loss", "'hinge'"):
        _core.loss_forward("hinge", z, z)
    with _raises(ValueError, "no samples"):
        _core.loss_forward("mse", np.ones((0, M_OUT), dtype), np.ones((0, M_OUT), dtype))


# -- optimizers -----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_native_optimizer_checks_sizes(dtype):
    theta = np.ones((2, 3), dtype)
    with _raises(ValueError, "grad has 5 entries", "parameter 6"):
        native.sgd_step(theta, np.ones(5, dtype), None, 0.1, 0.0, False, 0.0)
    with _raises(ValueError, "velocity and parameter sizes differ"):
        native.sgd_step(theta, np.ones((2, 3), dtype), None, 0.1, 0.9, False, 0.0)
    m, v = np.zeros(6, dtype), np.zeros(5, dtype)
    with _raises(ValueError, "adam", "sizes differ"):
        native.adam_step(theta, np.ones((2, 3), dtype), m, v, 1, 0.1, 0.9, 0.999, 1e-8, 0.0)
    with _raises(ValueError, "step count must be at least 1"):
        native.adam_step(theta, theta.copy(), m, m.copy(), 0, 0.1, 0.9, 0.999, 1e-8, 0.0)
    np.testing.assert_array_equal(theta, 1.0)  # nothing was written


@backends
def test_read_only_parameter_is_refused(backend):
    theta = np.ones(4)
    theta.flags.writeable = False
    with _raises(ValueError, "read-only"):
        backend.sgd_step(theta, np.ones(4), None, 0.1, 0.0, False, 0.0)
    np.testing.assert_array_equal(theta, 1.0)


# -- floating-point warnings ----------------------------------------------------------


def test_reference_kernels_overflow_without_warnings_like_native():
    """docs/robustness.md: densa emits no floating-point warnings on either backend (this
    suite turns warnings into errors). Overflowing inputs give inf / NaN in the same
    places on both backends, and an optimizer step is never stopped halfway."""
    from densa import reference

    big = np.float32(3e38)
    W = np.full((3, 4), big, np.float32)
    b = np.zeros(3, np.float32)
    x = np.full((2, 4), big, np.float32)
    dy = np.full((2, 3), big, np.float32)
    results = {}
    for name, be in (("native", native), ("reference", reference)):
        z, y = be.dense_forward(W, b, x, "tanh")
        dx, dW, db = be.dense_backward(W, x, z, dy, "identity")
        J, dJ = be.loss_backward("mse", z, -z)
        theta, v = np.full(4, big, np.float32), np.full(4, big, np.float32)
        be.sgd_step(theta, np.full(4, big, np.float32), v, 1.0, 0.5, False, 0.0)
        m, s = np.zeros(4, np.float32), np.zeros(4, np.float32)
        theta2 = np.ones(4, np.float32)
        # (v overflows to inf here; the parameter then differs: native NaN, reference 1.0;
        # the steps are compared on what they write first, m and v.)
        be.adam_step(theta2, np.full(4, big, np.float32), m, s, 1, 0.1, 0.9, 0.999, 1e-8, 0.0)
        results[name] = (z, y, dx, dW, db, np.float32(J), dJ, theta, v, m, s)
    for a, r in zip(results["native"], results["reference"]):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(r))
        np.testing.assert_array_equal(np.isinf(a), np.isinf(r))
    assert np.isinf(results["native"][0]).all()  # the overflow did happen
