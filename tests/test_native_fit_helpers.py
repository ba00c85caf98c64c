"""The native backend's one-call helpers on fit's way in (cpp/bindings/module.cpp):
``ready_rows`` (is X or y already what the checks would return?), ``state_ready`` (does
the optimizer's state already fit?) and ``aligned_zeros_like`` (new state and the
finite copy's buffers). Each answers exactly as the Python it stands in for, and a fit
with them trains bit for bit as one without them."""

from __future__ import annotations

import numpy as np
import pytest

import densa
from densa import _core, _guard, _memory, native

DTYPES = [np.float32, np.float64]


def _misaligned(shape, dtype):
    """A C-contiguous array of `dtype` whose address is not a multiple of its size."""
    n = int(np.prod(shape))
    raw = np.zeros(n * np.dtype(dtype).itemsize + 1, np.uint8)
    return np.frombuffer(raw.data, dtype=dtype, count=n, offset=1).reshape(shape)


# ----- ready_rows ------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("rows", "cols"), [(1, 1), (1, 7), (5, 3), (64, 64), (1000, 2), (3, 300)])
def test_ready_rows_takes_exactly_what_needs_no_conversion(dtype, rows, cols):
    dt = np.dtype(dtype)
    a = np.random.default_rng(rows * cols).standard_normal((rows, cols)).astype(dtype)
    assert _core.ready_rows(a, dt, -1, cols, True)
    assert _core.ready_rows(a, dt, rows, cols, True)
    assert not _core.ready_rows(a, dt, rows + 1, cols, True)  # not the rows asked for
    assert not _core.ready_rows(a, dt, -1, cols + 1, True)  # not the columns
    other = np.dtype(np.float64 if dtype is np.float32 else np.float32)
    assert not _core.ready_rows(a, other, -1, cols, True)  # another dtype
    assert not _core.ready_rows(a.astype(dt.newbyteorder(">")), dt, -1, cols, True)
    # Fortran order and strided columns (one row or one element is C-contiguous anyway,
    # as NumPy's flags say).
    fortran = np.asfortranarray(np.repeat(a, 2, axis=1))
    assert _core.ready_rows(fortran, dt, -1, 2 * cols, True) == (rows == 1)
    strided = np.repeat(a, 2, axis=1)[:, ::2]
    assert _core.ready_rows(strided, dt, -1, cols, True) == strided.flags.c_contiguous
    assert strided.flags.c_contiguous == (rows == 1 and cols == 1)
    assert not _core.ready_rows(_misaligned((rows, cols), dtype), dt, -1, cols, False)
    assert not _core.ready_rows(a.reshape(-1), dt, -1, cols, True)  # 1-D
    assert not _core.ready_rows(a[:0], dt, -1, cols, True)  # no rows
    assert not _core.ready_rows(a.astype(np.int64), dt, -1, cols, True)
    assert not _core.ready_rows(a, np.dtype(np.int64), -1, cols, True)  # no network dtype


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [0, 17, -1])
def test_ready_rows_checks_finiteness_only_when_asked(dtype, bad, where):
    a = np.ones((40, 3), dtype)
    a.reshape(-1)[where] = bad
    assert not _core.ready_rows(a, np.dtype(dtype), -1, 3, True)
    assert _core.ready_rows(a, np.dtype(dtype), -1, 3, False)


def test_ready_rows_refuses_what_is_not_an_array():
    with pytest.raises(TypeError):
        _core.ready_rows([[1.0, 2.0]], np.dtype(np.float64), -1, 2, True)


@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize("check_finite", [True, False])
def test_prepared_inputs_are_the_checks_results(backend, check_finite):
    """_prepare_X / _prepare_xy return the caller's arrays when the helper takes them and
    exactly what the checks return otherwise, on both backends."""
    net = densa.Network(
        [densa.Dense(3, 4, "tanh"), densa.Dense(4, 1)],
        loss="mse",
        dtype="float32",
        backend=backend,
        check_finite=check_finite,
        seed=0,
    )
    X = np.random.default_rng(0).standard_normal((9, 3)).astype(np.float32)
    y2 = X[:, :1].copy()
    Xa, T = net._prepare_xy(X, y2)
    assert Xa is X
    assert T is y2
    _, T1 = net._prepare_xy(X, y2[:, 0])  # (N,) targets of a one-output network
    assert T1.shape == (9, 1)
    assert np.shares_memory(T1, y2)
    np.testing.assert_array_equal(T1, y2)
    # Converted (float64, Fortran order, a list) and refused inputs take the checks.
    for given in (X.astype(np.float64), np.asfortranarray(X), X.tolist()):
        got = net._prepare_X(given)
        assert got.dtype == np.float32
        assert got.flags.c_contiguous
        np.testing.assert_array_equal(got, X)
    bad = X.copy()
    bad[4, 1] = np.nan
    if check_finite:
        with pytest.raises(ValueError, match="NaN or inf"):
            net._prepare_X(bad)
        with pytest.raises(ValueError, match="NaN or inf"):
            net._prepare_xy(X, np.where(np.arange(9)[:, None] == 2, np.inf, y2))
    else:
        assert net._prepare_X(bad) is bad
    with pytest.raises(ValueError, match="features"):
        net._prepare_X(X[:, :2].copy())
    with pytest.raises(ValueError, match="rows"):
        net._prepare_xy(X, y2[:5])


@pytest.mark.parametrize("dtype", DTYPES)
def test_int64_labels_go_to_one_hot_directly_and_anything_else_as_before(dtype, monkeypatch):
    """_prepare_xy hands C-contiguous int64 class labels straight to the native one-hot
    call; every other labels array takes encode_targets, with the same result or the same
    message as before."""
    net = densa.Network(
        [densa.Dense(3, 5, "relu"), densa.Dense(5, 4)],
        loss="softmax_cross_entropy",
        dtype=np.dtype(dtype).name,
        seed=0,
    )
    X = np.random.default_rng(1).standard_normal((10, 3)).astype(dtype)
    y = np.array([0, 3, 1, 2, 2, 0, 3, 1, 0, 2], np.int64)
    want = np.eye(4, dtype=dtype)[y]
    calls = []
    real = native._one_hot
    monkeypatch.setattr(native, "_one_hot", lambda *a: calls.append(a[0]) or real(*a))
    for labels in (
        y,  # int64, C-contiguous: straight to one_hot (the only call)
        y.astype(np.int32),  # converted by encode_targets, then one_hot
        y.astype(">i8"),
        np.repeat(y, 2)[::2],  # strided
        y.astype(np.float64),  # whole floats: encode_targets' NumPy path
        np.ma.masked_array(y),  # a subclass: as a plain array, through encode_targets
    ):
        calls.clear()
        _, T = net._prepare_xy(X, labels)
        assert T.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(T, want)
        if labels is y:
            assert len(calls) == 1
            assert calls[0] is y
    # Refusals keep their messages: out of range, wrong length, not whole numbers.
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        net._prepare_xy(X, np.where(y == 3, 4, y))
    with pytest.raises(ValueError, match="rows but X has 10 samples"):
        net._prepare_xy(X, y[:7])
    with pytest.raises(ValueError, match="whole numbers"):
        net._prepare_xy(X, y + 0.5)


# ----- state_ready -----------------------------------------------------------------------
def _layers(dtype, sizes=(5, 7, 3)):
    net = densa.Network(
        [densa.Dense(a, b, "tanh") for a, b in zip(sizes[:-1], sizes[1:])], dtype=dtype, seed=0
    )
    return net.layers


def _params(layers):
    return [layer.W for layer in layers], [layer.b for layer in layers]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opt", [densa.SGD(0.1, momentum=0.9), densa.Adam()])
def test_state_ready_says_yes_to_prepared_state_only(dtype, opt):
    layers = _layers(dtype)
    Ws, bs = _params(layers)
    n = opt.n_state
    opt.reset()
    assert not _core.state_ready(Ws, bs, opt.state_W, opt.state_b, n, 64)  # none yet
    opt.prepare(layers)
    assert _core.state_ready(Ws, bs, opt.state_W, opt.state_b, n, 64)
    assert not _core.state_ready(Ws, bs, opt.state_W, opt.state_b, n + 1, 64)  # count
    assert not _core.state_ready(Ws[:-1], bs[:-1], opt.state_W, opt.state_b, n, 64)
    with pytest.raises(ValueError, match="alignment"):
        _core.state_ready(Ws, bs, opt.state_W, opt.state_b, n, 0)

    def spoiled(change):
        """The verdict with one array of layer 1's W state replaced by change(it)."""
        state_W = [list(s) for s in opt.state_W]
        state_W[1][n - 1] = change(state_W[1][n - 1])
        return _core.state_ready(Ws, bs, state_W, opt.state_b, n, 64)

    other = np.float64 if dtype == "float32" else np.float32
    assert spoiled(lambda a: a)  # the test's own premise
    assert not spoiled(lambda a: _memory.aligned_zeros(a.shape, other))  # dtype
    assert not spoiled(lambda a: _memory.aligned_zeros(a.shape[::-1], a.dtype))  # shape
    assert not spoiled(lambda a: _memory.aligned_zeros(a.size, a.dtype))  # ndim

    def every_other(a):  # not C-contiguous
        return _memory.aligned_zeros((a.shape[0], 2 * a.shape[1]), a.dtype)[:, ::2]

    assert not spoiled(every_other)
    assert not spoiled(lambda a: _memory.aligned_zeros(a.size + 1, a.dtype)[1:].reshape(a.shape))
    assert not spoiled(lambda a: a.tolist())  # not an array

    def read_only(a):
        a = a.copy()
        a.flags.writeable = False
        return a

    assert not spoiled(read_only)


@pytest.mark.parametrize("helpers", [True, False])
def test_prepare_keeps_fitting_state_and_realigns_the_rest(helpers):
    layers = _layers("float32")
    opt = densa.SGD(0.1, momentum=0.9)
    kwargs = {}
    if helpers:
        kwargs = {"ready": native._state_ready, "zeros_like": native._aligned_zeros_like}
    opt.prepare(layers, **kwargs)
    first = [a for s in opt.state_W + opt.state_b for a in s]
    for a in first:
        assert _memory.is_aligned(a)
        assert not a.any()
    first[0][...] = 3.0
    opt.prepare(layers, **kwargs)  # fits: the same arrays, values kept
    again = [a for s in opt.state_W + opt.state_b for a in s]
    assert all(x is y for x, y in zip(first, again))
    assert (again[0] == 3.0).all()
    moved = _misaligned(first[1].shape, np.float32)
    moved[...] = 5.0
    opt.state_W[1][0] = moved
    opt.prepare(layers, **kwargs)  # realigned in place of the misaligned one, values kept
    assert opt.state_W[1][0] is not moved
    assert _memory.is_aligned(opt.state_W[1][0])
    assert (opt.state_W[1][0] == 5.0).all()


# ----- aligned_zeros_like ----------------------------------------------------------------
@pytest.mark.parametrize("alignment", [1, 8, 64, 4096])
def test_aligned_zeros_like_is_what_aligned_zeros_makes(alignment):
    like = [
        np.ones((3, 4), np.float32),
        np.ones(7, np.float64),
        np.ones((0, 5), np.float32),
        np.ones((), np.float64),
        np.ones(1, np.int64),
        np.asfortranarray(np.ones((4, 6), np.float32)),
    ]
    for _ in range(4):  # several allocations: the allocator's offsets vary between them
        made = _core.aligned_zeros_like(like, alignment)
        assert len(made) == len(like)
        bases = set()
        for a, template in zip(made, like):
            assert a.shape == template.shape
            assert a.dtype == template.dtype
            assert a.flags.c_contiguous
            assert a.flags.writeable
            assert a.ctypes.data % alignment == 0
            assert not a.any()
            # A view of a uint8 array of its own that owns the memory, as _memory's are:
            # native.Trainer's distinct-allocation test reads exactly this.
            assert a.base.__class__ is np.ndarray
            assert a.base.flags.owndata
            assert a.base.dtype == np.uint8
            bases.add(id(a.base))
            a[...] = 1  # writable over its whole extent
        assert len(bases) == len(like)


def test_aligned_zeros_like_refuses_what_it_cannot_copy():
    with pytest.raises(TypeError):
        _core.aligned_zeros_like([[1.0, 2.0]], 64)
    with pytest.raises(ValueError, match="alignment"):
        _core.aligned_zeros_like([np.ones(3)], 0)


def test_guard_buffers_from_the_helper_copy_and_restore():
    net = densa.Network([densa.Dense(3, 4, "tanh"), densa.Dense(4, 2)], seed=0)
    opt = densa.SGD(0.1, momentum=0.9)
    opt.prepare(net.layers)
    guard = _guard.LastFinite(net.layers, opt, native._copy_if_finite, native._aligned_zeros_like)
    assert guard.capture((0, 0))
    before = [a.copy() for a in guard._live]
    for a in guard._live:
        a[...] = 7
    assert guard.restore() == (0, 0)
    for a, b in zip(guard._live, before):
        np.testing.assert_array_equal(a, b)


# ----- the helpers change nothing a fit computes -----------------------------------------
CASES = [
    # (sizes, activations, loss, dtype, optimizer, batch, epochs): W4's and W5's shapes,
    # Adam, and float64.
    ([2, 16, 16, 1], ["tanh", "tanh", "identity"], "mse", "float32", ("sgd", 0.9), 8, 3),
    ([64, 64, 10], ["relu", "identity"], "softmax_cross_entropy", "float32", ("sgd", 0.9), 32, 3),
    ([5, 9, 3], ["sigmoid", "identity"], "softmax_cross_entropy", "float64", ("adam", 0), 7, 4),
    ([4, 6, 2], ["relu", "identity"], "mse", "float64", ("sgd", 0.0), 16, 2),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c[0])) + "-" + c[3])
def test_fit_with_and_without_the_helpers_is_bitwise_equal(case, monkeypatch):
    sizes, acts, loss, dtype, (kind, momentum), batch, epochs = case
    rng = np.random.default_rng(1)
    X = rng.standard_normal((203, sizes[0])).astype(dtype)
    if loss == "mse":
        y = np.sin(X.sum(axis=1, keepdims=True)).repeat(sizes[-1], axis=1).astype(dtype)
    else:
        y = rng.integers(0, sizes[-1], 203)

    def train():
        net = densa.Network(
            [densa.Dense(a, b, f) for a, b, f in zip(sizes[:-1], sizes[1:], acts)],
            loss=loss,
            dtype=dtype,
            seed=3,
        )
        opt = densa.SGD(0.05, momentum=momentum) if kind == "sgd" else densa.Adam(0.01)
        hist = net.fit(X, y, epochs=epochs, batch_size=batch, optimizer=opt, progress=False)
        hist2 = net.fit(X, y, epochs=1, batch_size=batch, progress=False)  # state kept
        state = [a.copy() for s in opt.state_W + opt.state_b for a in s]
        return net, hist.loss + hist2.loss, state

    names = ("_ready_rows", "_state_ready", "_aligned_zeros_like")
    calls = dict.fromkeys(names, 0)

    def counted(name):
        real = getattr(native, name)

        def helper(*args):
            calls[name] += 1
            return real(*args)

        return helper

    for name in names:
        monkeypatch.setattr(native, name, counted(name))
    # The ordinary path, whose guard allocates through _aligned_zeros_like (a fit this
    # short is otherwise one native call: tests/test_fit_once.py).
    monkeypatch.setattr(densa.Network, "_fit_once", lambda self, *args: False)
    with_helpers = train()
    # The fits above took each helper's path (no state to check without momentum).
    assert calls["_ready_rows"], calls
    assert calls["_aligned_zeros_like"], calls
    assert bool(calls["_state_ready"]) == (kind == "adam" or momentum > 0), calls
    for name in names:
        monkeypatch.delattr(native, name)
    without = train()
    assert with_helpers[1] == without[1]
    for a, b in zip(with_helpers[0].layers, without[0].layers):
        np.testing.assert_array_equal(a.W, b.W)
        np.testing.assert_array_equal(a.b, b.b)
    for a, b in zip(with_helpers[2], without[2]):
        np.testing.assert_array_equal(a, b)
