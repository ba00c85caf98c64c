"""The input policy of docs/robustness.md, entry by entry: what converts (to the same
result as the well-formed call), what is refused and with which exception, naming the
argument; sizes that cannot be allocated raise MemoryError, and the network stays
usable afterwards.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import densa
from densa import native, reference

BACKENDS = ("native", "reference")
N_IN, N_OUT, N = 3, 2, 8


def _net(loss="mse", dtype="float32", backend="native", **kw):
    layers = [densa.Dense(N_IN, 5, "tanh"), densa.Dense(5, N_OUT, "identity")]
    return densa.Network(layers, loss=loss, dtype=dtype, backend=backend, seed=0, **kw)


def _X():
    return np.random.default_rng(0).uniform(-3, 3, (N, N_IN)).round(1)


def _raises(exc, *fragments):
    """pytest.raises whose message must contain every fragment, literally."""
    return pytest.raises(exc, match="(?s)" + "".join(f"(?=.*{re.escape(f)})" for f in fragments))


# ----- dtypes and layouts that convert ------------------------------------------------------
CONVERTED = ["bool", "int8", "int64", "uint8", "uint64", "float16", "float32", "float64"]


@pytest.mark.parametrize("net_dtype", ["float32", "float64"])
@pytest.mark.parametrize("dtype", CONVERTED)
def test_real_dtypes_convert_to_the_network_dtype(dtype, net_dtype):
    X = _X()
    if dtype == "bool":
        X = X > 0
    elif np.dtype(dtype).kind == "u":
        X = np.abs(X)
    X = X.astype(dtype)
    net = _net(dtype=net_dtype)
    out = net.predict(X)
    assert out.dtype == np.dtype(net_dtype)
    expected = net.predict(X.astype(np.float64).astype(net_dtype))
    np.testing.assert_array_equal(out, expected)
    y = np.ones((N, N_OUT), dtype=dtype)
    assert (
        net.evaluate(X, y)["loss"] == net.evaluate(X.astype(net_dtype), y.astype(net_dtype))["loss"]
    )


LAYOUTS = {
    "fortran": lambda X: np.asfortranarray(X),
    "column_stride": lambda X: np.repeat(X, 2, axis=1)[:, ::2],
    "row_stride": lambda X: np.repeat(X, 3, axis=0)[::3],
    "reversed": lambda X: X[::-1][::-1],
    "transposed": lambda X: np.ascontiguousarray(X.T).T,
    "list": lambda X: X.tolist(),
    "read_only": lambda X: np.frombuffer(X.tobytes(), dtype=X.dtype).reshape(X.shape),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_layouts_convert_once_to_the_same_result(layout, backend):
    X = _X().astype(np.float32)
    view = LAYOUTS[layout](X)
    net = _net(backend=backend)
    np.testing.assert_array_equal(net.predict(view), net.predict(X))
    # fit accepts it too, and trains exactly as on the C-contiguous array
    twin = _net(backend=backend)
    y = np.ones((N, N_OUT), np.float32)
    net.fit(view, y, epochs=2, batch_size=4, progress=False)
    twin.fit(X, y, epochs=2, batch_size=4, progress=False)
    for a, b in zip(net.layers, twin.layers):
        np.testing.assert_array_equal(a.W, b.W)


# ----- dtypes that are refused --------------------------------------------------------------
REFUSED = {
    "complex64": np.zeros((N, N_IN), np.complex64),
    "complex128": np.zeros((N, N_IN), np.complex128),
    "object": np.zeros((N, N_IN), object),
    "str": np.full((N, N_IN), "1.5"),
    "bytes": np.full((N, N_IN), b"1"),
    "datetime64": np.zeros((N, N_IN), "datetime64[s]"),
    "timedelta64": np.zeros((N, N_IN), "timedelta64[s]"),
    "structured": np.zeros((N, N_IN), [("a", "f4")]),
    "none": None,
}


@pytest.mark.parametrize("what", REFUSED)
def test_non_real_inputs_are_refused_with_type_error(what):
    net = _net()
    X = REFUSED[what]
    with _raises(TypeError, "X has dtype"):
        net.predict(X)
    with _raises(TypeError, "X has dtype"):
        net.fit(X, np.ones((N, N_OUT)), epochs=1, progress=False)
    with _raises(TypeError, "y has dtype"):
        net.evaluate(_X(), X if X is not None else np.full((N, N_OUT), None))


@pytest.mark.parametrize("backend", [native, reference], ids=BACKENDS)
@pytest.mark.parametrize("dtype", ["float16", "int32", "bool", "complex128", "object"])
def test_kernels_take_only_float32_and_float64(backend, dtype):
    W = np.ones((2, 3), dtype)
    b = np.ones(2, np.float32)
    x = np.ones((4, 3), np.float32)
    with _raises(TypeError, "W has dtype", "float32 or float64"):
        backend.dense_forward(W, b, x, "relu")


# ----- shapes ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("X", "fragment"),
    [
        (np.float64(1.0), "must be 2-D"),
        (np.ones(N_IN), "must be 2-D"),
        (np.ones((2, N, N_IN)), "must be 2-D"),
        (np.ones((0, N_IN)), "no samples"),
        (np.ones((N, N_IN + 1)), f"expects {N_IN}"),
        (np.ones((N, 0)), f"expects {N_IN}"),
    ],
)
def test_wrong_shapes_are_refused(X, fragment):
    with _raises(ValueError, "X", fragment):
        _net().predict(X)


def test_ragged_lists_are_refused():
    with pytest.raises(ValueError, match="inhomogeneous"):  # NumPy's own message
        _net().predict([[1.0, 2.0, 3.0], [1.0, 2.0]])


# ----- NaN, inf and values beyond the dtype's range ------------------------------------
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_are_refused_by_default_and_let_through_on_request(value):
    X = _X()
    X[3, 1] = value
    with _raises(ValueError, "X contains NaN or inf", "check_finite=False"):
        _net().predict(X)
    y = np.zeros((N, N_OUT))
    y[2, 0] = value
    with _raises(ValueError, "y contains NaN or inf", "check_finite=False"):
        _net().fit(_X(), y, epochs=1, progress=False)
    with _raises(ValueError, "validation_data[0] contains NaN or inf"):
        _net().fit(_X(), np.zeros((N, N_OUT)), validation_data=(X, y), progress=False)
    # check_finite=False: the value flows through (and fit reports the divergence)
    lenient = _net(check_finite=False)
    out = lenient.predict(X)
    if np.isnan(value):
        assert np.isnan(out[3]).all()
    else:  # tanh saturates: as for a huge finite value
        np.testing.assert_array_equal(out, lenient.predict(np.nan_to_num(X, posinf=1e30)))
    assert np.isfinite(np.delete(out, 3, axis=0)).all()
    # The message says the data went unchecked: no learning rate would help here.
    with _raises(
        densa.TrainingDivergedError,
        "try a smaller learning rate; with check_finite=False, X and y were not checked "
        "for NaN or inf, which check_finite=True would refuse)",
    ):
        lenient.fit(_X(), y, epochs=1, progress=False)


def test_a_mask_is_ignored_and_hides_no_nan():
    """Masked arrays are read as plain arrays (docs/robustness.md): the values under the
    mask are used, so a NaN there is refused like any other, never trained on."""
    net = _net()
    X = _X()
    masked = np.ma.masked_array(X, mask=np.zeros_like(X, dtype=bool))
    masked.mask[0, 0] = True
    np.testing.assert_array_equal(net.predict(masked), net.predict(X))
    X_nan = X.copy()
    X_nan[0, 0] = np.nan
    hidden = np.ma.masked_array(X_nan, mask=np.zeros_like(X, dtype=bool))
    hidden.mask[0, 0] = True
    with _raises(ValueError, "X contains NaN or inf"):
        net.predict(hidden)
    with _raises(ValueError, "X contains NaN or inf"):
        net.fit(hidden, np.ones((N, N_OUT)), epochs=1, progress=False)
    y_nan = np.ma.masked_array(np.ones((N, N_OUT)), mask=np.zeros((N, N_OUT), dtype=bool))
    y_nan.data[1, 1] = np.nan
    y_nan.mask[1, 1] = True
    with _raises(ValueError, "y contains NaN or inf"):
        net.fit(X, y_nan, epochs=1, progress=False)


def test_values_beyond_float32_are_inf_in_a_float32_network():
    X = _X()
    X[0, 0] = 1e300  # finite in float64, inf in float32: refused without a warning
    with _raises(ValueError, "beyond float32's range"):
        _net(dtype="float32").predict(X)
    assert np.isfinite(_net(dtype="float64").predict(X)).all()
    with _raises(ValueError, "y contains NaN or inf, or values beyond float32's range"):
        _net().fit(_X(), np.full((N, N_OUT), -1e300), epochs=1, progress=False)


# ----- targets ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("y", "error", "fragments"),
    [
        (np.full(N, 2), ValueError, ("labels must lie in [0, 2)", "from 2 to 2")),
        (np.full(N, -1), ValueError, ("labels must lie in [0, 2)",)),
        (np.full(N, 2**64 - 1, np.uint64), ValueError, ("labels", "18446744073709551615")),
        (np.full(N, 1e20), ValueError, ("labels must lie in [0, 2)", "1e+20")),
        (np.full(N, 0.5), ValueError, ("whole numbers",)),
        (np.full(N, np.nan), ValueError, ("whole numbers",)),
        (np.full(N, np.inf), ValueError, ("labels must lie",)),
        (np.array(["a"] * N), TypeError, ("y has dtype",)),
        (np.zeros(N - 1, int), ValueError, ("y has 7 rows but X has 8 samples",)),
        (np.zeros((N, 3)), ValueError, ("y has shape (8, 3)", "2 outputs")),
        (np.int64(0), ValueError, ("y must be 1-D or 2-D",)),
        (np.zeros((N, 2, 1)), ValueError, ("y must be 1-D or 2-D",)),
        (np.zeros((N, 2)), ValueError, ("rows of class probabilities summing to 1", "row 0")),
        (np.ones((N, 2)), ValueError, ("summing to 1", "row 0 sums to 2", "8 of 8 rows")),
        (np.eye(2)[[0, 1, 0, 1, 0, 1, 0, 0]] * [1, 0.9], ValueError, ("row 1 sums to 0.9",)),
    ],
)
def test_bad_class_labels_are_refused(y, error, fragments):
    net = _net("softmax_cross_entropy")
    with _raises(error, *fragments):
        net.fit(_X(), y, epochs=1, progress=False)
    with _raises(error, *fragments):
        net.evaluate(_X(), y)


def test_probability_rows_are_accepted_within_rounding():
    net = _net("softmax_cross_entropy")
    labels = np.arange(N) % 2
    onehot = np.eye(2)[labels]
    rng = np.random.default_rng(0)
    soft = rng.dirichlet([1.0, 1.0], size=N).astype(np.float32)  # sums 1 to ~1e-7
    soft *= 1 - 5e-4  # sums a little off 1, as rounded probabilities of many classes
    assert net.evaluate(_X(), onehot) == net.evaluate(_X(), labels)
    assert np.isfinite(net.evaluate(_X(), soft)["loss"])


def test_softmax_over_one_output_is_refused():
    with _raises(ValueError, "softmax_cross_entropy needs at least 2 outputs"):
        densa.Network([densa.Dense(3, 1, "identity")], loss="softmax_cross_entropy")


def test_labels_of_any_integer_or_bool_kind_are_accepted():
    net = _net("softmax_cross_entropy")
    ref = net.evaluate(_X(), np.arange(N) % 2)
    for y in [(np.arange(N) % 2).astype(t) for t in ("uint8", "int16", "float16", "bool")]:
        assert net.evaluate(_X(), y) == ref
    assert net.evaluate(_X(), list(np.arange(N) % 2)) == ref


@pytest.mark.parametrize("bad", [-0.1, 1.5, -np.inf])
def test_binary_targets_must_lie_in_0_1(bad):
    y = np.zeros((N, N_OUT))
    y[0, 1] = bad
    with _raises(ValueError, "binary_cross_entropy targets must lie in [0, 1]"):
        _net("binary_cross_entropy", check_finite=False).fit(_X(), y, progress=False)


# ----- hyperparameters ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "error", "fragment"),
    [
        (lambda: densa.SGD(lr=0), ValueError, "lr must be a finite number > 0"),
        (lambda: densa.SGD(lr=-1e-3), ValueError, "lr must be"),
        (lambda: densa.SGD(lr=float("nan")), ValueError, "lr must be"),
        (lambda: densa.SGD(lr=float("inf")), ValueError, "lr must be"),
        (lambda: densa.SGD(lr="0.1"), TypeError, "lr must be a number"),
        (lambda: densa.SGD(lr=True), TypeError, "lr must be a number"),
        (lambda: densa.SGD(momentum=1.0), ValueError, "momentum must lie in [0.0, 1.0)"),
        (lambda: densa.SGD(momentum=-0.1), ValueError, "momentum"),
        (lambda: densa.SGD(weight_decay=-1), ValueError, "weight_decay"),
        (
            lambda: densa.SGD(weight_decay=float("inf")),
            ValueError,
            "weight_decay must be a finite number >= 0.0, got inf",
        ),
        (lambda: densa.Adam(eps=float("inf")), ValueError, "eps must be a finite number"),
        (lambda: densa.SGD(l2=-1), ValueError, "l2 must be a finite number >= 0.0, got -1"),
        (lambda: densa.Adam(l2=float("nan")), ValueError, "l2 must be a finite number"),
        (lambda: densa.SGD(nesterov=True), ValueError, "nesterov=True needs momentum > 0"),
        (lambda: densa.Adam(lr=0), ValueError, "lr must be"),
        (lambda: densa.Adam(betas=(1.0, 0.9)), ValueError, "betas[0] must lie in [0.0, 1.0)"),
        (lambda: densa.Adam(betas=(0.9, -0.5)), ValueError, "betas[1]"),
        (lambda: densa.Adam(betas=(0.9, float("nan"))), ValueError, "betas[1]"),
        (lambda: densa.Adam(betas=0.9), TypeError, "betas must be a pair"),
        (lambda: densa.Adam(eps=0), ValueError, "eps must be > 0"),
        (lambda: densa.EarlyStopping(patience=-1), ValueError, "patience must be >= 0"),
        (lambda: densa.EarlyStopping(patience=1.5), TypeError, "patience must be an integer"),
        (lambda: densa.EarlyStopping(min_delta=True), TypeError, "min_delta must be a number"),
        (lambda: densa.EarlyStopping(min_delta=10**400), ValueError, "min_delta must be a finite"),
        (lambda: densa.Adam(lr=10**400), ValueError, "lr must be a finite number > 0"),
        (lambda: densa.SGD(weight_decay=10**400), ValueError, "weight_decay must be a finite"),
        (lambda: densa.EarlyStopping(monitor="acc"), ValueError, "monitor"),
    ],
)
def test_bad_optimizer_and_early_stopping_arguments(make, error, fragment):
    with _raises(error, fragment):
        make()


def test_numpy_scalars_are_numbers_like_python_ones():
    net = _net()
    history = net.fit(
        _X(),
        np.ones((N, N_OUT)),
        epochs=2,
        validation_split=np.float32(0.25),
        early_stopping=densa.EarlyStopping(patience=np.int64(3), min_delta=np.float32(0.1)),
        shuffle=np.bool_(True),
        progress=False,
    )
    assert len(history.val_loss) == 2
    with _raises(TypeError, "progress must be True or False, got str"):
        net.fit(_X(), np.ones((N, N_OUT)), progress="yes")


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"epochs": -1}, ValueError, "epochs must be >= 0"),
        ({"epochs": 2.0}, TypeError, "epochs must be an integer"),
        ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
        ({"batch_size": True}, TypeError, "batch_size must be an integer"),
        ({"optimizer": "rmsprop"}, ValueError, "optimizer: unknown name 'rmsprop'"),
        ({"optimizer": 0.1}, TypeError, "optimizer must be"),
        ({"validation_split": 1.0}, ValueError, "validation_split must lie in [0, 1)"),
        ({"validation_split": float("nan")}, ValueError, "validation_split"),
        ({"validation_split": "0.2"}, TypeError, "validation_split must be a number"),
        ({"shuffle": "no"}, TypeError, "shuffle must be True or False, got str"),
        ({"shuffle": 0.5}, TypeError, "shuffle must be True or False"),
        ({"validation_data": [1, 2, 3]}, TypeError, "validation_data must be a pair"),
        ({"early_stopping": -2}, ValueError, "patience"),
        (
            {"early_stopping": True},
            TypeError,
            "early_stopping must be a densa.EarlyStopping, an integer (the patience) or "
            "None, got True",
        ),
        ({"on_epoch_end": "print"}, TypeError, "on_epoch_end must be callable"),
        (
            {"early_stopping": densa.EarlyStopping(monitor="val_loss")},
            ValueError,
            "early stopping on val_loss needs validation data",
        ),
    ],
)
def test_bad_fit_arguments_are_refused_before_training(kwargs, error, fragment):
    net = _net()
    before = [layer.W.copy() for layer in net.layers]
    with _raises(error, fragment):
        net.fit(_X(), np.ones((N, N_OUT)), progress=False, **kwargs)
    for layer, W in zip(net.layers, before):
        np.testing.assert_array_equal(layer.W, W)
    assert net.history is None
    assert net.optimizer is None


# ----- names and constructor arguments --------------------------------------------------
@pytest.mark.parametrize(
    ("make", "error", "fragments"),
    [
        (lambda: densa.Dense(3, 2, "swish"), ValueError, ("activation", "'swish'", "relu")),
        (lambda: densa.Dense(3, 2, None), TypeError, ("activation must be a string",)),
        (lambda: densa.Dense(3, 2, init="zeros"), ValueError, ("init", "'zeros'")),
        (lambda: densa.Dense(0, 2), ValueError, ("n_in must be positive",)),
        (lambda: densa.Dense(3, 2.0), TypeError, ("n_out must be an integer",)),
        (lambda: _net(loss="hinge"), ValueError, ("loss", "'hinge'")),
        (lambda: _net(loss=None), TypeError, ("loss must be a string",)),
        (lambda: _net(backend="gpu"), ValueError, ("backend", "'gpu'")),
        (lambda: _net(backend=1), TypeError, ("backend must be a string",)),
        (lambda: _net(dtype="float16"), ValueError, ("dtype must be 'float32' or 'float64'",)),
        (lambda: _net(dtype=5), TypeError, ("dtype must be 'float32' or 'float64', got int",)),
        (lambda: _net(dtype=None), TypeError, ("dtype must be", "got NoneType")),
        (lambda: _net(dtype=["float32"]), TypeError, ("dtype must be", "got list")),
        (lambda: densa.Network(3), TypeError, ("layers must be a sequence of densa.Dense",)),
        (lambda: densa.Network("dense"), TypeError, ("layers must be a sequence",)),
        (lambda: densa.Network([densa.Dense(2, 2)], seed=-1), ValueError, ("seed must be >= 0",)),
        (lambda: densa.Network([densa.Dense(2, 2)], seed=1.5), TypeError, ("seed must be",)),
        (lambda: _net(check_finite="no"), TypeError, ("check_finite must be True or False",)),
        (
            lambda: densa.EarlyStopping(restore_best="x"),
            TypeError,
            ("restore_best must be True or False, got str",),
        ),
        (lambda: densa.Network([densa.Dense(2, 3), densa.Dense(4, 1)]), ValueError, ("outputs 3",)),
    ],
)
def test_bad_names_and_constructor_arguments(make, error, fragments):
    with _raises(error, *fragments):
        make()


@pytest.mark.parametrize("backend", [native, reference], ids=BACKENDS)
def test_kernels_refuse_the_same_bad_optimizer_and_trainer_arguments(backend):
    theta = np.ones(6)
    with _raises(ValueError, "grad has 5 entries"):
        backend.sgd_step(theta, np.ones(5), None, 0.1, 0.0, False, 0.0)
    with _raises(ValueError, "velocity and parameter sizes differ"):
        backend.sgd_step(theta, np.ones(6), np.ones(2), 0.1, 0.9, False, 0.0)
    with _raises(ValueError, "adam", "sizes differ"):
        backend.adam_step(theta, np.ones(6), np.zeros(6), np.zeros(5), 1, 0.1, 0.9, 0.99, 1e-8, 0)
    with _raises(ValueError, "step count must be at least 1"):
        backend.adam_step(theta, np.ones(6), np.zeros(6), np.zeros(6), 0, 0.1, 0.9, 0.99, 1e-8, 0)
    with pytest.raises(TypeError):
        backend.sgd_step(np.ones(6, np.int64), np.ones(6), None, 0.1, 0.0, False, 0.0)
    np.testing.assert_array_equal(theta, 1.0)  # nothing was written
    hyper = {"lr": 0.1, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0}
    W, b = np.ones((2, 3)), np.zeros(2)
    trainer = backend.Trainer([W], [b], ["relu"], "mse", "sgd", hyper, [[]], [[]], None, 4)
    X, T, order = np.ones((5, 3)), np.ones((5, 2)), np.arange(5, dtype=np.int64)
    # A negative first batch would read before `order` in C++: refused on both backends.
    with _raises(ValueError, "first_batch must be >= 0, got -1"):
        trainer.run(X, T, order, 4, -1, 1)
    with _raises(ValueError, "n_batches must be >= 0"):
        trainer.run(X, T, order, 4, 0, -3)
    with _raises(ValueError, "order holds an index out of range"):
        trainer.run(X, T, order - 1, 4, 0, 1)
    with _raises(ValueError, "batch size out of range"):
        trainer.run(X, T, order, 0, 0, 1)
    np.testing.assert_array_equal(W, 1.0)
    # first_batch + n_batches beyond int64 would overflow in C++: clamped, nothing runs.
    big = 2**63 - 1
    assert trainer.run(X, T, order, 4, big, big)[1:3] == (0, 0)
    assert trainer.run(X, T, order, 4, 1, big)[1:3] == (1, 1)  # the last, short batch
    assert trainer.run(X, T, order, 4, 0, 10)[1:3] == (5, 2)  # still usable


# ----- sizes that cannot be allocated ---------------------------------------------------
# 10**12 elements (4 or 8 TB) fail at once, whatever the machine's memory: the kernel's
# overcommit heuristic refuses a mapping larger than RAM + swap, and AddressSanitizer
# (in the sanitizer run) refuses anything above its 1-3 TiB limit; nothing is touched.
HUGE = 10**6


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_layer_too_large_to_allocate_raises_memory_error(dtype):
    with pytest.raises(MemoryError):
        densa.Network([densa.Dense(HUGE, HUGE)], dtype=dtype)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_batch_too_large_for_its_workspaces_raises_memory_error(backend):
    # Layers of 10**6 units are small (4 MB each) but a batch of 10**6 samples needs
    # 10**12-element activations: the native trainer's workspaces (std::bad_alloc ->
    # MemoryError) or the reference's first forward pass (NumPy's MemoryError).
    layers = [densa.Dense(1, HUGE, "relu"), densa.Dense(HUGE, 1, "identity")]
    net = densa.Network(layers, dtype="float32", backend=backend, seed=0)
    X = np.linspace(-1, 1, HUGE, dtype=np.float32)[:, None]
    y = X.copy()
    before = [layer.W.copy() for layer in net.layers]
    with pytest.raises(MemoryError):
        net.fit(X, y, epochs=1, batch_size=10**12, progress=False)
    for layer, W in zip(net.layers, before):
        np.testing.assert_array_equal(layer.W, W)
    if backend == "native":  # refused before training: nothing was replaced
        assert net.optimizer is None
        assert net.history is None
    # The network is intact and usable.
    net.fit(X[:8], y[:8], epochs=1, batch_size=4, progress=False)
    assert np.isfinite(net.predict(X[:4])).all()


@pytest.mark.parametrize("backend", [native, reference], ids=BACKENDS)
def test_kernel_outputs_too_large_raise_memory_error(backend):
    W = np.ones((HUGE, 1), np.float32)
    b = np.zeros(HUGE, np.float32)
    x = np.ones((HUGE, 1), np.float32)
    with pytest.raises(MemoryError):
        backend.dense_forward(W, b, x, "relu")


def test_native_trainer_workspaces_too_large_raise_memory_error():
    hyper = {"lr": 0.1, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0}
    W, b = np.ones((HUGE, 1), np.float32), np.zeros(HUGE, np.float32)
    with pytest.raises(MemoryError):
        native.Trainer([W], [b], ["relu"], "mse", "sgd", hyper, [[]], [[]], None, HUGE)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int64"])
def test_all_finite_survives_a_sum_that_overflows(dtype):
    """The finite check sums first (in the array's own float dtype) and checks element
    by element only when the sum is not finite: huge finite values must still pass, and
    a single NaN or inf anywhere must still fail."""
    from densa._checks import all_finite

    info = np.finfo(dtype) if dtype.startswith("float") else np.iinfo(dtype)
    big = np.full((5000, 3), info.max, dtype=dtype)  # their sum overflows any float
    assert all_finite(big)
    if dtype.startswith("float"):
        for bad in (np.nan, np.inf, -np.inf):
            worse = big.copy()
            worse[4321, 1] = bad
            assert not all_finite(worse)
            small = np.ones((7, 2), dtype=dtype)
            small[3, 0] = bad
            assert not all_finite(small)
