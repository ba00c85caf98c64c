"""The native finite checks: fit's copy of the last finite training state
(densa._guard.LastFinite) runs in one native call on the native backend
(``_core.copy_if_finite``), and a native network checks its inputs in one native pass
(``_core.all_finite``; cpp/densa/finite.hpp for both). They must say what the NumPy
paths say, copy what those copy, and refuse what they cannot read without crashing."""

from __future__ import annotations

import numpy as np
import pytest

import densa
from densa import _core, _guard

NON_FINITE = [np.nan, np.inf, -np.inf]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 31, 33, 64, 129])
def test_every_position_of_a_non_finite_value_is_found(dtype, n):
    a = np.linspace(-1, 1, n).astype(dtype)
    info = np.finfo(dtype)
    if n >= 3:  # the extremes of the finite range are finite
        a[:3] = [info.max, -info.max, info.smallest_subnormal]
    assert _core.copy_if_finite([a], [np.empty_like(a)], 1, 1, False) == 2
    for i in range(n):
        for bad in NON_FINITE:
            b = a.copy()
            b[i] = bad
            assert _core.copy_if_finite([b], [np.empty_like(b)], 1, 1, False) == 0, (i, bad)


def _arrays(rng, dtype):
    """Parameters (2), optimizer state (2) and an int64 step, as LastFinite lists them."""
    params = [rng.standard_normal((5, 3)).astype(dtype), rng.standard_normal(5).astype(dtype)]
    state = [rng.standard_normal((5, 3)).astype(dtype), rng.standard_normal(5).astype(dtype)]
    return params + state + [np.array([7], dtype=np.int64)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("poisoned", "status"),
    [(None, 2), (0, 0), (1, 0), (2, 1), (3, 1)],
)
def test_statuses_and_copies(dtype, poisoned, status):
    rng = np.random.default_rng(0)
    live = _arrays(rng, dtype)
    if poisoned is not None:
        live[poisoned].flat[1] = np.nan
    for copy in (True, False):
        spare = [np.full_like(a, 3) for a in live]
        assert _core.copy_if_finite(live, spare, 2, 4, copy) == status
        copied = status == 2 and copy
        for a, s in zip(live, spare):
            np.testing.assert_array_equal(s, a if copied else np.full_like(a, 3))


def _read_only(a):
    a.setflags(write=False)
    return a


@pytest.mark.parametrize(
    "spare_of",
    [
        lambda a: np.empty(a.size + 1, a.dtype),  # another size
        lambda a: np.empty(a.shape, np.float64),  # another dtype
        lambda a: np.empty((a.size, 2), a.dtype)[:, 0],  # not contiguous
        lambda a: _read_only(np.empty_like(a)),
    ],
    ids=["size", "dtype", "strided", "read-only"],
)
def test_arrays_that_do_not_pair_up_are_refused(spare_of):
    live = [np.zeros(4, np.float32)]
    with pytest.raises(ValueError, match="arrays 0 do not pair up"):
        _core.copy_if_finite(live, [spare_of(live[0])], 1, 1, True)


@pytest.mark.parametrize(
    "dtype", [object, np.dtype([("a", object)]), np.dtype([("a", np.float32)]), "U3", "S3"]
)
def test_arrays_of_anything_but_numbers_are_refused(dtype):
    """A byte copy of object arrays would duplicate references without counting them
    (it crashed the interpreter before this check): refused, checked or not."""
    a = np.zeros(3, np.float32)
    other = np.empty(2, dtype)
    for live, spare in (([a, other], [a.copy(), np.empty(2, dtype)]), ([other], [other.copy()])):
        with pytest.raises(TypeError, match="bool, integer or float"):
            _core.copy_if_finite(live, spare, 1, 1, True)


def test_spares_sharing_memory_are_refused_when_copying():
    a, b = np.zeros(8, np.float32), np.zeros(8, np.float32)
    buf = np.zeros(16, np.float32)
    cases = [
        ([a], [a]),  # the spare is the live array
        ([a], [a[::1]]),  # a view of it
        ([a, b], [buf[:8], buf[4:12]]),  # two spares overlapping each other
    ]
    for live, spare in cases:
        with pytest.raises(ValueError, match="must not share memory"):
            _core.copy_if_finite(live, spare, 1, len(live), True)
        # Without a copy nothing is written: checking alone is allowed.
        assert _core.copy_if_finite(live, spare, 1, len(live), False) == 2
    # Separate arrays side by side in one buffer do not overlap.
    assert _core.copy_if_finite([a, b], [buf[:8], buf[8:]], 1, 2, True) == 2


def test_bad_counts_and_dtypes_are_refused():
    a = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="pair up"):
        _core.copy_if_finite([a], [], 1, 1, True)
    with pytest.raises(ValueError, match="n_params <= n_checked"):
        _core.copy_if_finite([a], [a.copy()], 1, 2, True)
    with pytest.raises(ValueError, match="n_params <= n_checked"):
        _core.copy_if_finite([a], [a.copy()], 1, 0, True)
    i = np.zeros(4, np.int64)
    with pytest.raises(TypeError, match="float32 or float64"):
        _core.copy_if_finite([i], [i.copy()], 1, 1, True)
    with pytest.raises(TypeError, match="NumPy arrays"):
        _core.copy_if_finite([[1.0, 2.0]], [[1.0, 2.0]], 1, 1, True)
    with pytest.raises(TypeError, match="NumPy arrays"):
        _core.copy_if_finite([a], [None], 1, 1, True)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_native_and_numpy_captures_agree(dtype):
    """The same sequence of captures on both paths: the same answers and saved copies."""
    rng = np.random.default_rng(1)
    guards = {}
    nets = {}
    for path in ("native", "numpy"):
        net = densa.Network([densa.Dense(3, 5, "relu"), densa.Dense(5, 2)], dtype=dtype, seed=0)
        opt = densa.SGD(0.1, momentum=0.9)
        opt.prepare(net.layers)
        net.optimizer = opt
        fast = _core.copy_if_finite if path == "native" else None
        guards[path], nets[path] = _guard.LastFinite(net.layers, opt, fast), net
    for step in range(12):
        what = rng.integers(0, 4)  # 0-1: finite; 2: NaN in the state; 3: NaN in W
        values = rng.standard_normal(5 * 3)
        answers = {}
        for path, net in nets.items():
            net.layers[0].W.flat[:] = values
            net.optimizer.state_W[0][0].flat[:] = values
            if what == 2:
                net.optimizer.state_W[0][0].flat[step % 15] = np.inf
            if what == 3:
                net.layers[0].W.flat[step % 15] = np.nan
            answers[path] = guards[path].capture((0, step), keep=bool(step % 3))
        assert answers["native"] == answers["numpy"] == (what != 3)
        a, b = guards["native"].saved, guards["numpy"].saved
        assert (a is None) == (b is None)
        if a is not None:
            assert a[0] == b[0]
            for x, y in zip(a[1], b[1]):
                np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize(("backend", "expected"), [("native", True), ("reference", False)])
def test_fit_uses_the_native_copy_on_the_native_backend_only(backend, expected, monkeypatch):
    seen = []
    real = _guard.LastFinite.__init__

    def spy(self, layers, optimizer, copy_if_finite=None, zeros_like=None):
        seen.append((copy_if_finite is not None, zeros_like is not None))
        real(self, layers, optimizer, copy_if_finite, zeros_like)

    monkeypatch.setattr(_guard.LastFinite, "__init__", spy)
    # The ordinary path's guard (a fit this short is otherwise one native call, whose
    # copy is the extension's own: tests/test_fit_once.py).
    monkeypatch.setattr(densa.Network, "_fit_once", lambda self, *args: False)
    net = densa.Network([densa.Dense(2, 2)], backend=backend, seed=0)
    net.fit(np.zeros((4, 2)), np.zeros((4, 2)), epochs=1, progress=False)
    assert seen == [(expected, expected)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtypes_are_compared_by_value(dtype):
    """An unpickled array has a dtype object of its own; a byte-swapped one is no
    float32 or float64 the kernel can read."""
    import pickle

    a = pickle.loads(pickle.dumps(np.arange(6, dtype=dtype)))
    assert a.dtype is not np.dtype(dtype)  # the premise: a dtype object of its own
    spare = pickle.loads(pickle.dumps(np.empty(6, dtype=dtype)))
    assert _core.copy_if_finite([a], [spare], 1, 1, True) == 2
    np.testing.assert_array_equal(spare, a)
    swapped = a.astype(a.dtype.newbyteorder(">"))
    with pytest.raises(TypeError, match="float32 or float64"):
        _core.copy_if_finite([swapped], [swapped.copy()], 1, 1, True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(0,), (1,), (3, 5), (7, 9), (2, 3, 17)])
def test_all_finite_finds_every_position(dtype, shape):
    a = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    assert _core.all_finite(a) is True
    for i in range(a.size):
        for bad in NON_FINITE:
            b = a.copy()
            b.flat[i] = bad
            assert _core.all_finite(b) is False, (i, bad)


def test_all_finite_on_a_large_array_agrees_with_numpy():
    """Above 2**20 elements the check runs without the GIL; same answers."""
    a = np.ones(2**20 + 3, np.float32)
    assert _core.all_finite(a) is True
    a[-1] = np.inf
    assert _core.all_finite(a) is False
    a[-1] = 0
    a[2**19] = np.nan
    assert _core.all_finite(a) is False


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (np.zeros(4, np.int64), "float32 or float64"),
        (np.zeros(4, np.float16), "float32 or float64"),
        (np.zeros(4, ">f4"), "float32 or float64"),
        (np.zeros((4, 2), np.float32)[:, 0], "C-contiguous"),
        (np.zeros((4, 2), np.float32, order="F"), "C-contiguous"),
        ([1.0, 2.0], None),
    ],
)
def test_all_finite_refuses_what_it_cannot_read(value, match):
    with pytest.raises(TypeError, match=match):
        _core.all_finite(value)


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_networks_check_inputs_with_their_backends_check(backend, monkeypatch):
    """The native backend checks inputs in one native pass, the reference with NumPy;
    both refuse NaN with the same message."""
    from densa import _checks

    calls = []
    real = _checks.all_finite
    monkeypatch.setattr(_checks, "all_finite", lambda a, *r: calls.append(1) or real(a, *r))
    net = densa.Network([densa.Dense(3, 2)], backend=backend, seed=0)
    X = np.ones((4, 3), np.float32)
    net.predict(X)
    assert bool(calls) == (backend == "reference")
    X[2, 1] = np.nan
    with pytest.raises(ValueError, match="X contains NaN or inf"):
        net.predict(X)
