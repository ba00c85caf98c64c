"""Building networks: seeds, initializers, layer chaining and the Dense parameter setters."""

from __future__ import annotations

import numpy as np
import pytest

import densa
from densa import initializers, native
from network_cases import BACKENDS, make_net, params, spirals

ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu")
RELU_LIKE = ("relu", "leaky_relu", "elu", "gelu")


def _train(seed, backend="native", opt=None, shuffle=True):
    X, y = spirals(n_per_class=64, seed=1)
    net = make_net(
        "softmax_cross_entropy",
        sizes=(2, 16, 16, 2),
        activations=("relu", "tanh", "identity"),
        backend=backend,
        seed=seed,
    )
    initial = params(net)
    net.fit(X, y, epochs=3, batch_size=16, optimizer=opt, shuffle=shuffle, progress=False)
    return initial, params(net)


# ----- seeds ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("backend", "make_opt"),
    [
        ("native", lambda: densa.SGD(lr=0.05, momentum=0.9)),
        ("reference", lambda: densa.SGD(lr=0.05, momentum=0.9)),
        pytest.param("native", lambda: densa.Adam(lr=0.01)),
        ("reference", lambda: densa.Adam(lr=0.01)),
    ],
    ids=["native-sgd", "reference-sgd", "native-adam", "reference-adam"],
)
def test_same_seed_gives_same_network_and_same_training(backend, make_opt):
    init_a, trained_a = _train(seed=123, backend=backend, opt=make_opt())
    init_b, trained_b = _train(seed=123, backend=backend, opt=make_opt())
    for a, b in zip(init_a + trained_a, init_b + trained_b):
        np.testing.assert_array_equal(a, b)
    # Training changed every weight matrix (so the equality above is about training too).
    for a, b in zip(init_a[::2], trained_a[::2]):
        assert not np.array_equal(a, b)


def test_different_seed_gives_different_network_and_training():
    init_a, trained_a = _train(seed=1)
    init_b, trained_b = _train(seed=2)
    for a, b in zip(init_a[::2], init_b[::2]):  # weights differ; biases all start at 0
        assert not np.array_equal(a, b)
    for a, b in zip(trained_a, trained_b):
        assert not np.array_equal(a, b)


def test_seed_drives_shuffling():
    """Same initial weights (copied in), different seeds: shuffling alone separates them."""
    net_a = make_net("mse", seed=1)
    net_b = make_net("mse", seed=2)
    for la, lb in zip(net_a.layers, net_b.layers):
        lb.W = la.W
    X = np.random.default_rng(0).standard_normal((64, 4))
    y = np.random.default_rng(1).standard_normal((64, 3))
    kw = {"epochs": 2, "batch_size": 8, "optimizer": densa.SGD(lr=0.05), "progress": False}
    net_a.fit(X, y, shuffle=False, **kw)
    net_b.fit(X, y, shuffle=False, **{**kw, "optimizer": densa.SGD(lr=0.05)})
    np.testing.assert_array_equal(net_a.layers[0].W, net_b.layers[0].W)
    net_a.fit(X, y, shuffle=True, **{**kw, "optimizer": densa.SGD(lr=0.05)})
    net_b.fit(X, y, shuffle=True, **{**kw, "optimizer": densa.SGD(lr=0.05)})
    assert not np.array_equal(net_a.layers[0].W, net_b.layers[0].W)


def test_no_seed_gives_fresh_randomness():
    a, b = make_net("mse", seed=None), make_net("mse", seed=None)
    assert not np.array_equal(a.layers[0].W, b.layers[0].W)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_native_adam_step_does_not_depend_on_alignment(dtype):
    """The same numbers at different addresses must give the same update, or the same
    seed trains differently from run to run (the allocator decides the addresses)."""
    rng = np.random.default_rng(0)
    n, itemsize = 28, np.dtype(dtype).itemsize

    def at_offset(values, offset):  # a C-contiguous view starting `offset` items past 64 B
        buf = np.zeros(n + 2 * (64 // itemsize) + 8, dtype=dtype)  # room for any start
        start = (-buf.ctypes.data % 64) // itemsize + offset
        view = buf[start : start + n]
        view[...] = values
        return view

    differing = 0
    for _ in range(50):
        theta0 = rng.standard_normal(n).astype(dtype)
        grad = (0.03 * rng.standard_normal(n)).astype(dtype)
        results = []
        for offset in range(64 // itemsize):
            theta = at_offset(theta0, offset)
            m, v = at_offset(np.zeros(n), 0), at_offset(np.zeros(n), 0)
            native.adam_step(theta, at_offset(grad, 0), m, v, 1, 0.01, 0.9, 0.999, 1e-8, 0.0)
            results.append(theta.copy())
        differing += any(not np.array_equal(r, results[0]) for r in results)
    assert differing == 0


# ----- initializers -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("dtype", "activation"),
    [(dtype, act) for dtype in ("float32", "float64") for act in ACTIVATIONS],
)
def test_native_predictions_repeat_bit_for_bit(dtype, activation):
    """The same network on the same input gives the same bits, whatever addresses the
    allocator hands out for the outputs (held-back buffers move them around)."""
    net = make_net(
        "mse",
        sizes=(4, 37, 29, 3),
        activations=(activation, activation, "identity"),
        dtype=dtype,
    )
    X = np.random.default_rng(1).standard_normal((96, 4))
    first = net.predict(X)
    held = []
    for i in range(100):
        held.append(np.empty(i % 17 + 1))
        np.testing.assert_array_equal(net.predict(X), first, err_msg=f"call {i}")


# Spread of each initializer as (n_in, n_out) -> (variance, bound or None for normal).
FORMULAS = {
    "glorot_uniform": lambda i, o: (2 / (i + o), np.sqrt(6 / (i + o))),
    "glorot_normal": lambda i, o: (2 / (i + o), None),
    "he_uniform": lambda i, o: (2 / i, np.sqrt(6 / i)),
    "he_normal": lambda i, o: (2 / i, None),
}


def _check_statistics(W, init, n_in, n_out):
    variance, bound = FORMULAS[init](n_in, n_out)
    w = W.astype(np.float64).ravel()
    # 120 000 draws: the sample variance is within ~0.5% (uniform) / ~0.4% (normal) of
    # the truth at one standard error; 3% is six of them, and He vs Glorot differ by 25%.
    assert np.var(w) == pytest.approx(variance, rel=0.03), init
    assert abs(np.mean(w)) < 0.02 * np.sqrt(variance), init
    kurtosis = np.mean((w - w.mean()) ** 4) / np.var(w) ** 2
    if bound is not None:
        assert np.max(np.abs(w)) <= bound * (1 + 1e-6)
        assert np.max(np.abs(w)) > 0.999 * bound  # the whole interval is used
        assert kurtosis == pytest.approx(1.8, abs=0.05)  # a uniform distribution's
    else:
        assert kurtosis == pytest.approx(3.0, abs=0.1)  # a normal distribution's
        assert np.max(np.abs(w)) > 3.5 * np.sqrt(variance)  # tails, unlike a uniform


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_default_initializer_follows_activation(activation):
    n_in, n_out = 400, 300
    layer = densa.Dense(n_in, n_out, activation=activation)
    expected = "he_uniform" if activation in RELU_LIKE else "glorot_uniform"
    assert layer.init == expected
    net = densa.Network([layer], dtype="float64", seed=0)
    _check_statistics(net.layers[0].W, expected, n_in, n_out)
    np.testing.assert_array_equal(net.layers[0].b, np.zeros(n_out))


@pytest.mark.parametrize("init", list(FORMULAS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_named_initializer_statistics(init, dtype):
    n_in, n_out = 400, 300
    net = densa.Network(
        [densa.Dense(n_in, n_out, activation="tanh", init=init)], dtype=dtype, seed=3
    )
    W, b = net.layers[0].W, net.layers[0].b
    assert W.dtype == b.dtype == np.dtype(dtype)
    assert W.flags.c_contiguous
    assert W.shape == (n_out, n_in)
    _check_statistics(W, init, n_in, n_out)
    np.testing.assert_array_equal(b, np.zeros(n_out))


def test_unknown_initializer_is_refused():
    with pytest.raises(ValueError, match=r"init: unknown name 'xavier'.*he_normal"):
        densa.Dense(3, 2, init="xavier")
    assert initializers.default_for("gelu") == "he_uniform"


# ----- construction errors ----------------------------------------------------------------
def test_layers_that_do_not_chain_name_both_layers():
    first, second = densa.Dense(3, 4, activation="tanh"), densa.Dense(5, 2, activation="identity")
    with pytest.raises(ValueError, match="outputs 4 values but layers") as info:
        densa.Network([densa.Dense(2, 3), first, second])
    message = str(info.value)
    assert "layers[1]" in message
    assert "layers[2]" in message
    assert repr(first) in message
    assert repr(second) in message
    assert "expects 5 inputs" in message


def test_the_same_dense_object_twice_is_refused():
    d = densa.Dense(2, 2)
    with pytest.raises(ValueError, match="same Dense object") as info:
        densa.Network([d, d])
    assert str(info.value) == (
        "layers[1] is the same Dense object as layers[0]; each layer needs its own "
        "weights (build another densa.Dense)"
    )
    with pytest.raises(ValueError, match=r"layers\[2\] is the same Dense object as layers\[0\]"):
        densa.Network([d, densa.Dense(2, 2), d])
    assert not d.initialized  # refused before any layer was changed


def test_fit_checks_net_layers_again_after_they_were_changed():
    # net.layers is a list the user can change: fit names the layers, rather than the
    # trainer's "layer 0: W and layer 1: W share memory".
    X, y = np.ones((4, 3)), np.ones((4, 3))
    net = densa.Network([densa.Dense(3, 3), densa.Dense(3, 3, "identity")], seed=0)
    net.layers[1] = net.layers[0]
    with pytest.raises(ValueError, match="same Dense object") as info:
        net.fit(X, y, epochs=1, progress=False)
    assert str(info.value) == (
        "net.layers[1] is the same Dense object as net.layers[0]; each layer needs its "
        "own weights (build another densa.Dense) (net.layers was changed after construction)"
    )
    net = densa.Network([densa.Dense(3, 3)], seed=0)
    net.layers.append(densa.Dense(4, 3))
    with pytest.raises(
        ValueError, match=r"net.layers\[0\] .* outputs 3 values but net.layers\[1\]"
    ):
        net.fit(X, y, epochs=1, progress=False)


def test_layers_are_listed_input_side_first():
    layers = [densa.Dense(2, 5), densa.Dense(5, 4, "tanh"), densa.Dense(4, 1, "identity")]
    net = densa.Network(layers, seed=0)
    assert net.layers == layers
    assert (net.n_in, net.n_out) == (2, 1)
    assert net.n_params == (2 * 5 + 5) + (5 * 4 + 4) + (4 * 1 + 1)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"layers": []}, ValueError, "layers is empty"),
        ({"layers": ["dense"]}, TypeError, r"layers\[0\] must be a densa.Dense"),
        ({"dtype": "float16"}, ValueError, "dtype must be 'float32' or 'float64'"),
        ({"loss": "hinge"}, ValueError, "hinge"),
        ({"backend": "gpu"}, ValueError, "backend: unknown name 'gpu'"),
        # Strict bools, as fit's: "no" would otherwise count as True.
        ({"check_finite": "no"}, TypeError, "check_finite must be True or False, got str: 'no'"),
        ({"check_finite": 1}, TypeError, "check_finite must be True or False, got int: 1"),
        ({"seed": 1.5}, TypeError, "seed must be None or an integer >= 0, got float: 1.5"),
        ({"seed": -1}, ValueError, "seed must be >= 0, got -1"),
    ],
)
def test_network_arguments_are_checked(kwargs, error, match):
    args = {"layers": [densa.Dense(2, 2)], **kwargs}
    with pytest.raises(error, match=match):
        densa.Network(**args)


def test_numpy_bools_are_bools():
    net = densa.Network([densa.Dense(2, 2)], check_finite=np.bool_(False))
    assert net.check_finite is False
    assert densa.EarlyStopping(restore_best=np.bool_(False)).restore_best is False
    with pytest.raises(TypeError, match="restore_best must be True or False, got str: 'x'"):
        densa.EarlyStopping(restore_best="x")


# ----- Dense parameter setters ------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_setters_copy_and_convert_to_the_network_dtype(dtype):
    net = make_net("mse", dtype=dtype)
    layer = net.layers[1]
    new_W = np.arange(layer.W.size, dtype=np.float64).reshape(layer.W.shape)
    new_b = np.arange(layer.n_out)  # integers are converted
    layer.W, layer.b = new_W, new_b
    assert layer.W.dtype == layer.b.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(layer.W, new_W)
    np.testing.assert_array_equal(layer.b, new_b)
    new_W[0, 0] = -99.0  # the layer holds a copy
    new_b[0] = -99
    assert layer.W[0, 0] == 0.0
    assert layer.b[0] == 0
    assert layer.W is not new_W
    # The network computes with the new values: z of layer 1 = W x + b.
    x = np.random.default_rng(0).standard_normal((3, net.n_in))
    g = net.gradients(x, np.zeros((3, net.n_out)))
    np.testing.assert_allclose(
        g[1].z, g[1].last_input @ layer.W.T.astype(np.float64) + layer.b, rtol=1e-5
    )


def test_setters_validate_shape_dtype_and_values():
    layer = make_net("mse").layers[0]  # Dense(4, 7)
    W0 = layer.W.copy()
    with pytest.raises(ValueError, match=r"W must have shape \(7, 4\).*got \(4, 7\)"):
        layer.W = np.zeros((4, 7))
    with pytest.raises(ValueError, match=r"b must have shape \(7,\).*got \(7, 1\)"):
        layer.b = np.zeros((7, 1))
    with pytest.raises(TypeError, match="W must hold real numbers, got dtype complex128"):
        layer.W = np.zeros((7, 4), dtype=complex)
    with pytest.raises(TypeError, match="b must hold real numbers, got dtype bool"):
        layer.b = np.zeros(7, dtype=bool)
    bad = np.zeros((7, 4))
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="W contains NaN or inf"):
        layer.W = bad
    np.testing.assert_array_equal(layer.W, W0)  # a refused value changes nothing


@pytest.mark.parametrize("backend", BACKENDS)
def test_assigning_weights_during_fit_reaches_the_trained_arrays(backend):
    """A callback that clips W (a max-norm constraint, say) assigns a new array: the
    values must land in the arrays the running fit trains, not in a copy it never sees."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 4))
    y = rng.standard_normal((64, 3))
    net = make_net("mse", backend=backend, seed=3)
    arrays = [layer.W for layer in net.layers]

    def clip(epoch, logs):
        for layer in net.layers:
            layer.W = np.clip(layer.W, -0.2, 0.2)

    history = net.fit(
        X,
        y,
        epochs=6,
        batch_size=8,
        optimizer=densa.SGD(lr=0.05),
        progress=False,
        on_epoch_end=clip,
    )
    assert all(layer.W is a for layer, a in zip(net.layers, arrays))
    # The weights are the trained ones: the last epoch's loss is the loss of the final
    # weights before the last clip, so re-evaluating after clipping stays close to it,
    # and training moved the weights (a copy would have frozen them after epoch 1).
    assert all(np.abs(layer.W).max() <= 0.2 for layer in net.layers)
    assert history.loss[-1] < history.loss[0]
    assert abs(net.evaluate(X, y)["loss"] - history.loss[-1]) < 0.1 * history.loss[0]


def test_assigning_values_beyond_float32_is_refused():
    net = make_net("mse", dtype="float32")
    layer = net.layers[0]
    W0 = layer.W.copy()
    with pytest.raises(ValueError, match=r"W has values beyond float32's range"):
        layer.W = np.full(layer.W.shape, 1e300)
    with pytest.raises(ValueError, match=r"b has values beyond float32's range"):
        layer.b = np.full(layer.n_out, -1e39)
    np.testing.assert_array_equal(layer.W, W0)


def test_a_layer_cannot_join_networks_of_two_dtypes():
    layers = [densa.Dense(4, 5, "tanh"), densa.Dense(5, 2, "identity")]
    a = densa.Network(layers, dtype="float32", seed=0)
    W = [layer.W.copy() for layer in layers]
    with pytest.raises(ValueError, match="already belongs to a float32 network and cannot join"):
        densa.Network([densa.Dense(3, 4, "tanh"), *layers], dtype="float64", seed=0)
    # Refused before anything changed: the first network is intact and still works.
    for layer, w in zip(a.layers, W):
        assert layer.W.dtype == np.float32
        np.testing.assert_array_equal(layer.W, w)
    assert a.predict(np.zeros((2, 4))).dtype == np.float32
    # The same dtype shares the layers (and their weights).
    b = densa.Network(layers, dtype="float32", seed=1)
    assert b.layers[0].W is a.layers[0].W


def test_unattached_layer_has_no_parameters_yet():
    layer = densa.Dense(3, 2)
    with pytest.raises(RuntimeError, match="not initialized yet"):
        _ = layer.W
    layer.W = np.ones((2, 3))  # set before joining: kept, converted to the network dtype
    net = densa.Network([layer], dtype="float32", seed=0)
    assert net.layers[0].W.dtype == np.float32
    np.testing.assert_array_equal(net.layers[0].W, np.ones((2, 3)))
    np.testing.assert_array_equal(net.layers[0].b, np.zeros(2))


@pytest.mark.parametrize("backend", BACKENDS)
def test_dtype_is_kept_through_training(backend):
    for dtype in ("float32", "float64"):
        net = make_net("mse", dtype=dtype, backend=backend)
        X = np.random.default_rng(0).standard_normal((16, 4))  # float64 in, converted once
        net.fit(X, np.zeros((16, 3)), epochs=1, progress=False)
        assert all(layer.W.dtype == np.dtype(dtype) for layer in net.layers)
        assert net.predict(X).dtype == np.dtype(dtype)
