"""Arrays cross into C++ without copies; a wrong layout is converted once, in Python.

``densa._core.mapped_address(x)`` returns the address of the first element of the Eigen
view the kernels compute on, so a shared data pointer can be asserted directly.
"""

from __future__ import annotations

import numpy as np
import pytest

from densa import _checks, _core, native
from helpers import DTYPES, assert_matches, draw_layer, unaligned

dtypes = pytest.mark.parametrize("dtype", DTYPES)


@dtypes
def test_kernels_map_c_contiguous_arrays_in_place(dtype):
    x = np.arange(24, dtype=dtype).reshape(6, 4)
    assert _core.mapped_address(x) == x.ctypes.data
    # A C-contiguous view that starts inside another array is mapped where it starts.
    rows = x[2:5]
    assert rows.flags.c_contiguous
    assert _core.mapped_address(rows) == rows.ctypes.data
    assert rows.ctypes.data == x.ctypes.data + 2 * x.strides[0]


@dtypes
def test_float_array_passes_c_contiguous_arrays_through(dtype):
    for shape, ndim in (((5, 3), 2), ((7,), 1)):
        a = np.ones(shape, dtype=dtype)
        assert _checks.float_array(a, "a", ndim) is a


@dtypes
@pytest.mark.parametrize(
    "make",
    [
        lambda a: np.asfortranarray(a),
        lambda a: a[:, ::2],
        lambda a: a[::-1],
        lambda a: a.T,
    ],
    ids=["fortran", "strided", "reversed", "transposed"],
)
def test_float_array_copies_other_layouts_once(dtype, make):
    base = np.arange(48, dtype=dtype).reshape(8, 6)
    a = make(base)
    assert not a.flags.c_contiguous
    out = _checks.float_array(a, "a", 2)
    assert out.flags.c_contiguous
    assert out.dtype == np.dtype(dtype)
    assert not np.shares_memory(out, base)
    np.testing.assert_array_equal(out, a)


REFUSED = {
    "fortran_W": lambda W, b, x, other: (np.asfortranarray(W), b, x),
    "fortran_x": lambda W, b, x, other: (W, b, np.asfortranarray(x)),
    "strided_x": lambda W, b, x, other: (W, b, np.repeat(x, 2, axis=1)[:, ::2]),
    "int64_x": lambda W, b, x, other: (W, b, x.astype(np.int64)),
    "float16_x": lambda W, b, x, other: (W, b, x.astype(np.float16)),
    "mixed_dtypes": lambda W, b, x, other: (W, b, x.astype(other)),
    "unaligned_x": lambda W, b, x, other: (W, b, unaligned(x)),
    "unaligned_W": lambda W, b, x, other: (unaligned(W), b, x),
    "byteswapped_x": lambda W, b, x, other: (W, b, x.astype(x.dtype.newbyteorder())),
}


@dtypes
@pytest.mark.parametrize("case", list(REFUSED))
def test_raw_extension_refuses_instead_of_copying(dtype, case):
    W = np.ones((3, 4), dtype=dtype)
    b = np.zeros(3, dtype=dtype)
    x = np.ones((5, 4), dtype=dtype)
    z, _ = _core.dense_forward(W, b, x, "relu")  # the right layout and dtype pass
    np.testing.assert_array_equal(z, 4.0)
    other = np.float64 if dtype == np.float32 else np.float32
    with pytest.raises(TypeError, match="expected a C-contiguous, aligned float"):
        _core.dense_forward(*REFUSED[case](W, b, x, other), "relu")


@dtypes
@pytest.mark.parametrize("case", ["unaligned_x", "byteswapped_x", "fortran_W"])
def test_public_kernels_convert_what_the_extension_refuses(dtype, case):
    rng = np.random.default_rng(1)
    W, b, x, dy = draw_layer(rng, 6, 5, 4, dtype)
    other = np.float64 if dtype == np.float32 else np.float32
    W2, b2, x2 = REFUSED[case](W, b, x, other)
    for got, want in zip(
        native.dense_forward(W2, b2, x2, "relu"), native.dense_forward(W, b, x, "relu")
    ):
        np.testing.assert_array_equal(got, want)
    z = native.dense_forward(W, b, x, "relu")[0]
    got = native.dense_backward(W2, x2, unaligned(z), unaligned(dy), "relu", True)
    for g, w in zip(got, native.dense_backward(W, x, z, dy, "relu", True)):
        np.testing.assert_array_equal(g, w)


@dtypes
def test_in_place_optimizer_steps_refuse_unaligned_parameters(dtype):
    theta = unaligned(np.ones(10, dtype=dtype))
    with pytest.raises(TypeError, match="sgd_step: theta must be aligned"):
        native.sgd_step(theta, np.ones(10, dtype=dtype), None, 0.1, 0.0, False, 0.0)
    np.testing.assert_array_equal(theta, 1.0)


@dtypes
def test_mapped_address_refuses_a_fortran_array(dtype):
    with pytest.raises(TypeError, match="incompatible function arguments"):
        _core.mapped_address(np.asfortranarray(np.ones((5, 4), dtype=dtype)))


@dtypes
def test_native_reads_inputs_in_place_and_returns_fresh_outputs(dtype):
    W, b, x, dy = draw_layer(np.random.default_rng(0), 6, 5, 4, dtype)
    before = [a.copy() for a in (W, b, x, dy)]
    z, y = native.dense_forward(W, b, x, "tanh")
    grads = native.dense_backward(W, x, z, dy, "tanh", return_dz=True)
    for name, a, saved in zip(("W", "b", "x", "dy"), (W, b, x, dy), before):
        np.testing.assert_array_equal(a, saved, err_msg=f"{name} was modified")
    for out in (z, y, *grads):
        assert out.flags.owndata
        assert out.flags.writeable
        for a in (W, b, x, dy, z):
            assert out is z or not np.shares_memory(out, a)


@dtypes
def test_optimizer_updates_the_callers_array(dtype):
    theta = np.ones((4, 3), dtype=dtype)
    address = theta.ctypes.data
    grad = np.full((4, 3), 0.5, dtype=dtype)
    native.sgd_step(theta, grad, None, 0.1, 0.0, False, 0.0)
    assert theta.ctypes.data == address
    assert_matches(theta, np.full((4, 3), 0.95, dtype=dtype), "theta")


@dtypes
def test_optimizer_refuses_a_layout_it_would_have_to_copy(dtype):
    # An update written into a converted copy would be lost: refuse instead.
    theta = np.asfortranarray(np.ones((4, 3), dtype=dtype))
    grad = np.full((4, 3), 0.5, dtype=dtype)
    with pytest.raises(TypeError, match="sgd_step: theta must be C-contiguous"):
        native.sgd_step(theta, grad, None, 0.1, 0.0, False, 0.0)
    np.testing.assert_array_equal(theta, 1.0)


@dtypes
def test_trainer_trains_the_callers_arrays(dtype):
    rng = np.random.default_rng(1)
    W, b, x, _ = draw_layer(rng, 3, 2, 8, dtype)
    t = rng.standard_normal((8, 2)).astype(dtype)
    W_before, b_before = W.copy(), b.copy()
    addresses = (W.ctypes.data, b.ctypes.data)
    hyper = {"lr": 0.1, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0}
    trainer = native.Trainer([W], [b], ["identity"], "mse", "sgd", hyper, [[]], [[]], None, 8)
    trainer.run(x, t, np.arange(8, dtype=np.int64), 8, 0, 1)
    assert (W.ctypes.data, b.ctypes.data) == addresses
    assert not np.array_equal(W, W_before)
    assert not np.array_equal(b, b_before)
    # A layout it would have to copy is refused: the copy would be trained instead.
    with pytest.raises(TypeError, match=r"layer 0: W must be C-contiguous \(it is updated"):
        native.Trainer(
            [np.asfortranarray(W)], [b], ["identity"], "mse", "sgd", hyper, [[]], [[]], None, 8
        )


@dtypes
@pytest.mark.parametrize(
    "make",
    [unaligned, lambda a: a.astype(a.dtype.newbyteorder())],
    ids=["unaligned", "byteswapped"],
)
def test_network_trains_on_arrays_the_extension_cannot_read_in_place(dtype, make):
    import densa

    rng = np.random.default_rng(2)
    X = rng.standard_normal((40, 3)).astype(dtype)
    y = rng.integers(0, 2, 40)
    nets = []
    for data in (X, make(X)):
        net = densa.Network(
            [densa.Dense(3, 5, "relu"), densa.Dense(5, 2)],
            loss="softmax_cross_entropy",
            dtype=dtype,
            seed=0,
        )
        net.fit(data, y, epochs=3, batch_size=8, progress=False)
        nets.append(net)
        np.testing.assert_array_equal(net.predict(data), net.predict(X))
    for a, b in zip(nets[0].layers, nets[1].layers):
        np.testing.assert_array_equal(a.W, b.W)
        np.testing.assert_array_equal(a.b, b.b)
