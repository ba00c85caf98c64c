"""Generated garbage through the public API: every case either succeeds, and then the
result has the documented shape and dtype (and is finite where it must be), or raises
one of the documented exceptions (docs/robustness.md). Anything else (another
exception, a NumPy warning, a crash, a hang) fails.

Hypothesis draws arrays of every kind (float16/32/64, ints, unsigned, bool, complex,
object, strings; 0-d to 3-d; empty; NaN and inf; Fortran-ordered, strided and
transposed views; nested lists), network architectures, and arguments (activations,
losses, backends, batch sizes, learning rates, epochs, optimizers). In CI (CI=true)
the draws are derandomized, so a failure there reproduces; locally they explore.
DENSA_FUZZ_EXAMPLES caps the examples per test (the sanitizer run uses fewer).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import densa
from densa import native, reference
from densa._checks import ACTIVATIONS, LOSSES

_CAP = int(os.environ.get("DENSA_FUZZ_EXAMPLES", "0") or 0)


def fuzz(examples: int):
    """Hypothesis settings for one test: ``examples`` cases, no deadline (the machine
    is shared), the health checks about slow or large generation off (they are
    expected here, and must not fail a strict run)."""
    return settings(
        max_examples=min(examples, _CAP) if _CAP else examples,
        deadline=None,
        derandomize=bool(os.environ.get("CI")),
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )


# The documented outcomes of a call that does not succeed.
INPUT_ERRORS = (TypeError, ValueError)


def mostly(valid, invalid, percent_invalid=15):
    """One of ``valid`` most of the time, else one of ``invalid``: every knob of a call
    is drawn so, so that a fair share of calls gets past validation and runs."""
    pick_valid = [True] * (100 - percent_invalid) + [False] * percent_invalid
    return st.sampled_from(pick_valid).flatmap(lambda ok: st.sampled_from(valid if ok else invalid))


# ----- arrays ---------------------------------------------------------------------------
REAL = ["float16", "float32", "float64", "int8", "int32", "int64", "uint8", "uint64", "bool"]
OTHER = ["complex64", "complex128", "object", "str"]
FINITE_MAX = 1e3  # the documented finiteness checks use inputs below this magnitude
ROWS = mostly(list(range(1, 13)), [0])  # samples per call; N = 0 is refused


def _elements(dtype: str, allow_nan: bool):
    if dtype.startswith("float"):
        width = {"float16": 16, "float32": 32, "float64": 64}[dtype]
        if not allow_nan:
            return st.floats(-FINITE_MAX, FINITE_MAX, width=width)
        return st.one_of(
            st.floats(-FINITE_MAX, FINITE_MAX, width=width),
            st.sampled_from([np.nan, np.inf, -np.inf, 1e300 if width == 64 else 6e4]),
        )
    if dtype.startswith("complex"):
        return st.complex_numbers(max_magnitude=10, allow_nan=False, allow_infinity=False)
    if dtype == "object":
        return st.one_of(st.floats(-10, 10), st.integers(-10, 10), st.none(), st.text(max_size=2))
    if dtype == "str":
        return st.text(alphabet="0123456789.-e", max_size=4)
    return None  # integers and bool: the dtype's whole range


@st.composite
def arrays(draw, shape=None, dtypes=None, allow_nan=True):
    """An array of any dtype and layout; ``shape`` fixes it, else 0-d to 3-d."""
    dtype = draw(st.sampled_from(dtypes) if dtypes else mostly(REAL, OTHER, 30))
    if shape is None:
        shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6))
    np_dtype = np.dtype("U4") if dtype == "str" else np.dtype(dtype)
    nan = allow_nan and draw(st.integers(0, 4)) == 0  # NaN/inf/huge in a fifth of arrays
    base = draw(hnp.arrays(np_dtype, shape, elements=_elements(dtype, nan)))
    layout = draw(st.sampled_from(["c", "fortran", "strided", "transposed", "list"]))
    if layout == "fortran":
        return np.asfortranarray(base)
    if layout == "strided" and base.ndim >= 1:
        # The same values, every other element of a twice-as-long axis.
        return np.repeat(base, 2, axis=-1)[..., ::2]
    if layout == "transposed" and base.ndim == 2:
        return np.ascontiguousarray(base.T).T
    if layout == "list" and dtype in REAL:
        return base.tolist()
    return base


@st.composite
def networks(draw):
    n_layers = draw(st.integers(1, 3))
    sizes = draw(st.lists(st.integers(1, 6), min_size=n_layers + 1, max_size=n_layers + 1))
    acts = draw(st.lists(st.sampled_from(ACTIVATIONS), min_size=n_layers, max_size=n_layers))
    loss = draw(st.sampled_from(LOSSES))
    if loss != "mse":
        acts[-1] = "identity"  # logits, as documented
    if loss == "softmax_cross_entropy":
        sizes[-1] = max(sizes[-1], 2)  # a softmax over one output is refused
    layers = [densa.Dense(a, b, act) for a, b, act in zip(sizes[:-1], sizes[1:], acts)]
    return densa.Network(
        layers,
        loss=loss,
        dtype=draw(st.sampled_from(["float32", "float64"])),
        backend=draw(st.sampled_from(["native", "reference"])),
        seed=draw(st.integers(0, 3)),
        check_finite=draw(st.booleans()),
    )


@st.composite
def inputs_for(draw, net, rows=None):
    """X for ``net``: mostly the right width, sometimes anything."""
    n = draw(ROWS) if rows is None else rows
    if draw(st.integers(0, 9)) == 0:
        return draw(arrays())
    return draw(arrays(shape=(n, net.n_in)))


@st.composite
def targets_for(draw, net, n):
    """y for ``net`` and n samples: mostly well-formed labels or a matrix of values in
    [0, 1], with one entry corrupted now and then; sometimes anything."""
    kind = draw(mostly(["labels", "matrix"], ["anything"]))
    if kind == "anything":
        return draw(arrays())
    if kind == "labels":
        labels = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, net.n_out - 1)))
        dtype = draw(st.sampled_from(["int64", "int8", "uint8", "float64", "bool"]))
        y = (labels % 2).astype(bool) if dtype == "bool" else labels.astype(dtype)
    else:
        dtype = draw(st.sampled_from(["float32", "float64", "int64", "bool"]))
        elements = st.floats(0, 1, width=32) if dtype.startswith("float") else st.integers(0, 1)
        y = draw(hnp.arrays(np.float64, (n, net.n_out), elements=elements)).astype(dtype)
    bad = draw(mostly([None], [-1, net.n_out, 0.5, np.nan, np.inf, 1e300], 20))
    if bad is not None and n:
        y = y.astype(np.float64)
        y.flat[draw(st.integers(0, y.size - 1))] = bad
    return y


def _finite_input(X, net) -> bool:
    """Whether the documented output must be finite: real inputs of moderate size."""
    try:
        a = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return bool(net.check_finite and a.size and np.all(np.abs(a) <= FINITE_MAX))


# ----- inference ------------------------------------------------------------------------
@fuzz(500)
@given(data=st.data())
def test_fuzz_predict(data):
    net = data.draw(networks())
    X = data.draw(inputs_for(net))
    method = data.draw(st.sampled_from(["predict", "predict_raw", "predict_classes"]))
    try:
        out = getattr(net, method)(X)
    except INPUT_ERRORS as exc:
        event(f"{method}: {type(exc).__name__}")
        return
    event(f"{method}: ok")
    n = np.asarray(X).shape[0]
    if method == "predict_classes":
        assert net.loss != "mse"
        assert out.dtype.kind == "i"
        if net.loss == "softmax_cross_entropy":
            assert out.shape == (n,)
            assert np.all((out >= 0) & (out < net.n_out))
        else:
            assert out.shape == ((n,) if net.n_out == 1 else (n, net.n_out))
            assert np.all((out == 0) | (out == 1))
        return
    assert out.shape == (n, net.n_out)
    assert out.dtype == net.dtype
    if _finite_input(X, net):
        assert np.all(np.isfinite(out))
        if method == "predict" and net.loss != "mse":
            assert np.all((out >= 0) & (out <= 1))
            if net.loss == "softmax_cross_entropy":
                np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


@fuzz(500)
@given(data=st.data())
def test_fuzz_evaluate_and_gradients(data):
    net = data.draw(networks())
    n = data.draw(ROWS)
    X = data.draw(inputs_for(net, rows=n))
    y = data.draw(targets_for(net, n))
    before = [layer.W.copy() for layer in net.layers]
    try:
        if data.draw(st.booleans()):
            scores = net.evaluate(X, y)
            assert set(scores) == ({"loss", "accuracy"} if net.loss != "mse" else {"loss"})
            # Moderate inputs and targets: a finite loss. (A 1e300 target makes mse
            # overflow to inf, which is the right answer.)
            if _finite_input(X, net) and _finite_input(y, net):
                assert np.isfinite(scores["loss"])
            if "accuracy" in scores:
                assert 0.0 <= scores["accuracy"] <= 1.0
        else:
            grads = net.gradients(X, y)
            assert len(grads) == len(net.layers)
            for g, layer in zip(grads, net.layers):
                assert g["dW"].shape == layer.W.shape
                assert g["dW"].dtype == net.dtype
                assert g["db"].shape == layer.b.shape
                assert g["dx"].shape == (n, layer.n_in)
        event("ok")
    except INPUT_ERRORS as exc:
        event(type(exc).__name__)
    for layer, W in zip(net.layers, before):  # never changes the parameters
        np.testing.assert_array_equal(layer.W, W)


# ----- training -------------------------------------------------------------------------
LEARNING_RATES = mostly([1e-3, 0.1, 3.0, 1e30], [-1.0, 0.0, float("nan"), float("inf"), "0.1"])
BATCH_SIZES = mostly([1, 2, 3, 64, 10**12], [-1, 0, 1.5, True, None])


@st.composite
def optimizers(draw):
    """An optimizer argument for fit: an object, a name or None; mostly valid."""
    kind = draw(mostly(["sgd", "adam", "name", "none"], ["bad"]))
    lr = draw(LEARNING_RATES)
    if kind == "sgd":
        momentum = draw(mostly([0.0, 0.9], [1.0, -0.5]))
        return lambda: densa.SGD(lr=lr, momentum=momentum)
    if kind == "adam":
        betas = draw(mostly([(0.9, 0.999), (0.0, 0.5)], [(1.0, 0.9), (0.5, float("nan")), (0.9,)]))
        return lambda: densa.Adam(lr=lr, betas=betas)
    if kind == "name":
        name = draw(mostly(["sgd", "adam"], ["rmsprop", ""]))
        return lambda: name
    if kind == "none":
        return lambda: None
    bad = draw(st.sampled_from([1, "SGD", densa.SGD]))
    return lambda: bad


@fuzz(500)
@given(data=st.data())
def test_fuzz_fit(data):
    net = data.draw(networks())
    n = data.draw(ROWS)
    X = data.draw(inputs_for(net, rows=n))
    y = data.draw(targets_for(net, n))
    epochs = data.draw(mostly([0, 1, 2, 3], [-1, 2.0, None]))
    batch_size = data.draw(BATCH_SIZES)
    validation_split = data.draw(mostly([0.0, 0.0, 0.25, 0.5], [0.99, 1.0, -0.1]))
    early = data.draw(mostly([None, None, 0, 1, densa.EarlyStopping(patience=0)], [-1, 1.5]))
    make_optimizer = data.draw(optimizers())
    try:
        history = net.fit(
            X,
            y,
            epochs=epochs,
            batch_size=batch_size,
            optimizer=make_optimizer(),
            validation_split=validation_split,
            early_stopping=early,
            shuffle=data.draw(st.booleans()),
            progress=False,
        )
    except INPUT_ERRORS as exc:
        event(type(exc).__name__)
        return
    except densa.TrainingDivergedError as exc:
        event("TrainingDivergedError")
        diverged = exc
    else:
        event("ok")
        diverged = None
        assert history is net.history
        assert history.epochs == epochs or (history.stopped_early and history.epochs < epochs)
    if diverged is not None:
        assert diverged.epoch >= 1
        assert diverged.batch >= 1
        assert f"epoch {diverged.epoch}, batch {diverged.batch} of" in str(diverged)
    for layer in net.layers:  # whatever happened, the parameters stay finite
        assert np.all(np.isfinite(layer.W))
        assert np.all(np.isfinite(layer.b))
        assert layer.W.dtype == net.dtype
    assert all(np.isfinite(net.history.loss))


# ----- constructors and hyperparameters ---------------------------------------------------
SIZES = [1, 3, 64, 0, -2, 2.0, True, "3", None, 10**6]  # 10**6 x 10**6 cannot be allocated
NAMES = [*ACTIVATIONS, "softmax", "ReLU", "", None, 3]


@fuzz(400)
@given(
    n_in=st.sampled_from(SIZES),
    n_out=st.sampled_from(SIZES),
    activation=st.sampled_from(NAMES),
    init=st.sampled_from([None, "he_normal", "glorot_uniform", "zeros", 1]),
    loss=st.sampled_from([*LOSSES, "hinge", None]),
    dtype=st.sampled_from(["float32", "float64", "float16", np.float64, "f8", None]),
    backend=st.sampled_from(["native", "reference", "cuda", None]),
    seed=st.sampled_from([None, 0, 7, -1, 1.5, "x"]),
)
def test_fuzz_constructors(n_in, n_out, activation, init, loss, dtype, backend, seed):
    try:
        layer = densa.Dense(n_in, n_out, activation, init=init)
    except INPUT_ERRORS:
        return
    if layer.n_in * layer.n_out > 10**9:  # the one case that must fail for memory
        with pytest.raises(MemoryError):
            densa.Network([layer], seed=0)
        return
    try:
        net = densa.Network([layer], loss=loss, dtype=dtype, backend=backend, seed=seed)
    except INPUT_ERRORS:
        return
    assert net.layers[0].W.shape == (layer.n_out, layer.n_in)
    assert net.layers[0].W.dtype == net.dtype
    assert np.all(np.isfinite(net.layers[0].W))
    assert np.all(net.layers[0].b == 0)


NUMBERS = [0, 1, -1, 0.5, 0.999, 1.0, 1e-8, 1e30, float("nan"), float("inf"), "1", None, True]


@fuzz(400)
@given(
    lr=st.sampled_from(NUMBERS),
    momentum=st.sampled_from(NUMBERS),
    beta1=st.sampled_from(NUMBERS),
    beta2=st.sampled_from(NUMBERS),
    eps=st.sampled_from(NUMBERS),
    weight_decay=st.sampled_from(NUMBERS),
    patience=st.sampled_from(NUMBERS),
    min_delta=st.sampled_from(NUMBERS),
)
def test_fuzz_hyperparameters(lr, momentum, beta1, beta2, eps, weight_decay, patience, min_delta):
    for make in (
        lambda: densa.SGD(lr=lr, momentum=momentum, weight_decay=weight_decay),
        lambda: densa.Adam(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay),
        lambda: densa.EarlyStopping(patience=patience, min_delta=min_delta),
    ):
        try:
            obj = make()
        except INPUT_ERRORS:
            continue
        # What is accepted is within the documented ranges.
        if isinstance(obj, densa.EarlyStopping):
            assert obj.patience >= 0
            assert 0 <= obj.min_delta < np.inf
            continue
        assert 0 < obj.lr < np.inf
        assert 0 <= obj.weight_decay < np.inf
        if isinstance(obj, densa.SGD):
            assert 0 <= obj.momentum < 1
        else:
            assert all(0 <= b < 1 for b in obj.betas)
            assert 0 < obj.eps < np.inf


# ----- kernels: both backends accept and refuse the same things ---------------------------
def _outcome(fn, *args):
    try:
        return "ok", fn(*args)
    except INPUT_ERRORS as exc:
        return type(exc), None


@fuzz(500)
@given(data=st.data())
def test_fuzz_dense_kernels_agree_on_what_they_accept(data):
    m_in, m_out, n = (data.draw(mostly([1, 2, 3, 4], [0])) for _ in range(3))
    dtypes = ["float32", "float64", "float16", "int64", "complex128", "object", "bool"]
    pick = data.draw(mostly(["none"], ["W", "b", "x"], 60))
    main = data.draw(st.sampled_from(["float32", "float64"]))

    def arg(name, shape):
        if name == pick:  # one argument may be anything
            return data.draw(arrays(dtypes=dtypes))
        return data.draw(arrays(shape=shape, dtypes=[main], allow_nan=False))

    W, b, x = arg("W", (m_out, m_in)), arg("b", (m_out,)), arg("x", (n, m_in))
    activation = data.draw(st.sampled_from(NAMES))
    got = {
        be.__name__: _outcome(be.dense_forward, W, b, x, activation) for be in (native, reference)
    }
    (kind_n, out_n), (kind_r, out_r) = got["densa.native"], got["densa.reference"]
    assert kind_n == kind_r, f"native: {kind_n}, reference: {kind_r}"
    event(f"dense_forward: {getattr(kind_n, '__name__', kind_n)}")
    if kind_n == "ok":
        for z_n, z_r in zip(out_n, out_r):
            assert z_n.shape == z_r.shape == (np.shape(x)[0], np.shape(W)[0])
            assert z_n.dtype == z_r.dtype == np.asarray(W).dtype
        z, y = out_n
        dy = np.ones_like(y)
        kind_bn = _outcome(native.dense_backward, W, x, z, dy, activation)[0]
        kind_br = _outcome(reference.dense_backward, W, x, z, dy, activation)[0]
        assert kind_bn == kind_br == "ok"


@fuzz(400)
@given(data=st.data())
def test_fuzz_loss_kernels_agree_on_what_they_accept(data):
    if data.draw(mostly([True], [False], 30)):
        shape = (data.draw(ROWS), data.draw(st.integers(1, 4)))
    else:
        shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    main = data.draw(st.sampled_from(["float32", "float64"]))
    dtypes = mostly([[main]], [["float32", "float64", "float16", "int32", "object"]], 30)
    output = data.draw(arrays(shape=shape, dtypes=data.draw(dtypes), allow_nan=False))
    other = data.draw(mostly([shape], [None], 30))
    target = data.draw(arrays(shape=other, dtypes=data.draw(dtypes), allow_nan=False))
    name = data.draw(mostly(list(LOSSES), ["hinge", None]))
    for fn in ("loss_forward", "loss_backward"):
        kind_n, out_n = _outcome(getattr(native, fn), name, output, target)
        kind_r, out_r = _outcome(getattr(reference, fn), name, output, target)
        assert kind_n == kind_r, f"{fn}: native {kind_n}, reference {kind_r}"
        event(f"{fn}: {getattr(kind_n, '__name__', kind_n)}")
        if kind_n == "ok" and fn == "loss_backward":
            assert out_n[1].shape == out_r[1].shape == np.shape(output)
