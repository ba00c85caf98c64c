"""The native backend's forward pass through a whole network in one call
(``_core.network_forward``, cpp/densa/network_forward.hpp), which Network.predict,
predict_raw, predict_classes and evaluate use on the native backend: the same bits as
the layers one by one (``dense_forward`` per layer, per chunk of samples), close to the
reference, and every input it does not take refused with a Python exception, after
which Network falls back to the layer-by-layer path unchanged."""

from __future__ import annotations

import numpy as np
import pytest

import densa
from densa import _checks, _core, native, network, reference
from helpers import tolerance

DTYPES = [np.float32, np.float64]
ACTIVATIONS = list(_checks.ACTIVATIONS)


def _layers(sizes, acts, dtype, seed):
    rng = np.random.default_rng(seed)
    Ws = [
        (rng.standard_normal((m_out, m_in)) / np.sqrt(m_in)).astype(dtype)
        for m_in, m_out in zip(sizes[:-1], sizes[1:])
    ]
    bs = [rng.standard_normal(m_out).astype(dtype) for m_out in sizes[1:]]
    return Ws, bs, list(acts)


def _layer_by_layer(forward, Ws, bs, acts, X, chunk):
    """What Network._forward computed before: each chunk of rows through each layer."""
    parts = []
    for start in range(0, X.shape[0], chunk):
        y = X[start : start + chunk]
        for W, b, a in zip(Ws, bs, acts):
            _, y = forward(W, b, y, a)
        parts.append(y)
    return np.concatenate(parts)


# Layer sizes (input first), with the activations cycling through every one densa has.
NETWORKS = [
    [1, 1],
    [3, 2],
    [2, 16, 16, 1],
    [64, 64, 10],
    [5, 1, 7],
    [7, 33, 2, 9, 4],
    [100, 3],
    [16, 256, 128, 10],
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes", NETWORKS, ids=lambda s: "-".join(map(str, s)))
@pytest.mark.parametrize(("n", "chunk"), [(1, 8192), (37, 8192), (37, 5), (450, 64), (9, 1)])
def test_equals_the_layers_one_by_one_bit_for_bit(dtype, sizes, n, chunk):
    k = len(sizes) - 1
    for shift in range(0, len(ACTIVATIONS), 3):  # every activation, in some layer
        acts = [ACTIVATIONS[(shift + j) % len(ACTIVATIONS)] for j in range(k)]
        Ws, bs, acts = _layers(sizes, acts, dtype, seed=n + shift)
        X = np.random.default_rng(shift).standard_normal((n, sizes[0])).astype(dtype)
        got = _core.network_forward(Ws, bs, acts, X, chunk)
        want = _layer_by_layer(_core.dense_forward, Ws, bs, acts, X, chunk)
        assert got.dtype == np.dtype(dtype)
        assert got.shape == (n, sizes[-1])
        assert got.flags.c_contiguous
        assert got.flags.owndata
        np.testing.assert_array_equal(got, want, err_msg=f"activations {acts}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes", NETWORKS, ids=lambda s: "-".join(map(str, s)))
def test_close_to_the_reference(dtype, sizes):
    # The reference's layer chain against the fused pass. Per layer, z sums m_in terms;
    # through the layers the differences compound, so the tolerance is the per-dtype one
    # for the longest sum, times the number of layers (float64 ~1e-12, float32 ~1e-5).
    acts = [ACTIVATIONS[j % len(ACTIVATIONS)] for j in range(len(sizes) - 1)]
    Ws, bs, acts = _layers(sizes, acts, dtype, seed=7)
    X = np.random.default_rng(8).standard_normal((53, sizes[0])).astype(dtype)
    got = _core.network_forward(Ws, bs, acts, X, 8192)
    want = _layer_by_layer(reference.dense_forward, Ws, bs, acts, X, 8192)
    rtol, atol = tolerance(dtype, reduction=max(sizes[:-1]))
    layers = len(sizes) - 1
    np.testing.assert_allclose(got, want, rtol=rtol * layers, atol=atol * layers)


def test_an_exactly_known_network():
    # y = relu(W1 x + b1), then the identity layer: worked by hand.
    W1 = np.array([[1.0, -2.0], [0.5, 0.25]])
    b1 = np.array([0.5, -1.0])
    W2 = np.array([[2.0, 1.0]])
    b2 = np.array([-0.5])
    X = np.array([[1.0, 1.0], [4.0, 0.0], [0.0, -1.0]])
    # z1 rows: (-0.5, -0.25), (4.5, 1.0), (2.5, -1.25); relu: (0, 0), (4.5, 1), (2.5, 0)
    got = _core.network_forward([W1, W2], [b1, b2], ["relu", "identity"], X, 2)
    np.testing.assert_array_equal(got, [[-0.5], [9.5], [4.5]])


# ----- what it refuses ----------------------------------------------------------------------
def _small(dtype=np.float32):
    Ws, bs, acts = _layers([4, 3, 2], ["tanh", "identity"], dtype, seed=0)
    X = np.ones((5, 4), dtype)
    return Ws, bs, acts, X


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (lambda W, b, a, X: (W, b, a, np.repeat(X, 2, axis=1)[:, ::2]), TypeError, "x: expected"),
        (lambda W, b, a, X: (W, b, a, np.asfortranarray(X)), TypeError, "x: expected"),
        (lambda W, b, a, X: (W, b, a, X.astype(np.int64)), TypeError, "x: expected"),
        (lambda W, b, a, X: (W, b, a, X.astype(">f4")), TypeError, "x: expected"),
        (lambda W, b, a, X: ([W[0].astype(np.float64), W[1]], b, a, X), TypeError, "W: expected"),
        (lambda W, b, a, X: ([W[0].T, W[1]], b, a, X), TypeError, "W: expected"),
        (lambda W, b, a, X: (W, [b[0][:2], b[1]], a, X), ValueError, "b has 2 entries"),
        (lambda W, b, a, X: (W, b, a, X[:, :3].copy()), ValueError, "x has shape"),
        (lambda W, b, a, X: ([W[1], W[0]], [b[1], b[0]], a, X), ValueError, "has shape"),
        (lambda W, b, a, X: (W, b, a, X[:0]), ValueError, "x is empty"),
        (lambda W, b, a, X: (W, b, a[:1], X), ValueError, "differ in length"),
        (lambda W, b, a, X: ([], [], [], X), ValueError, "no layers"),
        (lambda W, b, a, X: (W, b, ["tanh", "swish"], X), ValueError, "swish"),
        (lambda W, b, a, X: (W, b, a, X[0]), ValueError, "2-D"),
        (lambda W, b, a, X: (W, b, a, [[1.0] * 4]), TypeError, "incompatible function arg"),
    ],
)
def test_refuses_what_it_cannot_read_in_place_with_a_python_exception(change, error, match):
    Ws, bs, acts, X = change(*_small())
    with pytest.raises(error, match=match):
        _core.network_forward(Ws, bs, acts, X, 8192)


@pytest.mark.parametrize("chunk", [0, -1])
def test_refuses_a_chunk_that_is_not_positive(chunk):
    Ws, bs, acts, X = _small()
    with pytest.raises(ValueError, match="chunk must be positive"):
        _core.network_forward(Ws, bs, acts, X, chunk)


# ----- through Network ----------------------------------------------------------------------
def _net(sizes, acts, loss, dtype=np.float32, seed=0):
    layers = [densa.Dense(m_in, m_out, a) for m_in, m_out, a in zip(sizes[:-1], sizes[1:], acts)]
    return densa.Network(layers, loss=loss, dtype=dtype, seed=seed, backend="native")


def _without_fused(monkeypatch):
    monkeypatch.setattr(native, "_network_forward", None)


@pytest.mark.parametrize("dtype", DTYPES)
def test_predictions_equal_the_layer_by_layer_path(dtype, monkeypatch):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((2 * network._PREDICT_CHUNK + 5, 6)).astype(dtype)  # 3 chunks
    y = rng.integers(0, 3, X.shape[0])
    net = _net([6, 9, 3], ["gelu", "identity"], "softmax_cross_entropy", dtype)
    calls = []
    fused = native._network_forward
    monkeypatch.setattr(native, "_network_forward", lambda *a: calls.append(1) or fused(*a))
    got = (net.predict_raw(X), net.predict(X), net.predict_classes(X), net.evaluate(X, y))
    assert len(calls) == 4  # each went through the one call
    _without_fused(monkeypatch)
    want = (net.predict_raw(X), net.predict(X), net.predict_classes(X), net.evaluate(X, y))
    for g, w in zip(got[:3], want[:3]):
        np.testing.assert_array_equal(g, w)
    assert got[3] == want[3]


def test_fit_with_validation_is_unchanged(monkeypatch):
    # Validation scores each epoch through the same forward pass.
    rng = np.random.default_rng(4)
    X = rng.standard_normal((200, 5)).astype(np.float32)
    y = np.sin(X.sum(axis=1, keepdims=True)).astype(np.float32)
    runs = []
    for fused in (True, False):
        if not fused:
            _without_fused(monkeypatch)
        net = _net([5, 8, 1], ["tanh", "identity"], "mse")
        h = net.fit(X, y, epochs=3, batch_size=16, validation_split=0.25, progress=False)
        runs.append((h.val_loss, [layer.W.copy() for layer in net.layers]))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)


def test_a_layer_it_does_not_take_goes_the_layer_by_layer_way(monkeypatch):
    # A float64 W put into a float32 network: the fused call refuses it (TypeError), and
    # predict answers exactly as the layer-by-layer path does on its own.
    net = _net([4, 3, 2], ["tanh", "identity"], "mse")
    X = np.random.default_rng(5).standard_normal((6, 4)).astype(np.float32)
    net.layers[1].W = net.layers[1].W.astype(np.float64)
    calls = []
    fused = native._network_forward

    def spy(*a):
        calls.append(1)
        return fused(*a)

    monkeypatch.setattr(native, "_network_forward", spy)
    try:
        got = ("value", net.predict(X))
    except (TypeError, ValueError) as exc:
        got = ("error", f"{type(exc).__name__}: {exc}")
    assert calls == [1]  # tried, refused
    _without_fused(monkeypatch)
    try:
        want = ("value", net.predict(X))
    except (TypeError, ValueError) as exc:
        want = ("error", f"{type(exc).__name__}: {exc}")
    assert got[0] == want[0]
    if got[0] == "value":
        np.testing.assert_array_equal(got[1], want[1])
    else:
        assert got[1] == want[1]


def test_a_bytes_activation_is_not_taken(monkeypatch):
    # pybind11 would read b"tanh" as "tanh"; the layer-by-layer path refuses it, so the
    # fused call must not be tried.
    net = _net([4, 3, 1], ["tanh", "identity"], "mse")
    net.layers[0].activation = b"tanh"
    called = []
    monkeypatch.setattr(native, "_network_forward", lambda *a: called.append(1))
    with pytest.raises((TypeError, ValueError)):
        net.predict(np.ones((2, 4), np.float32))
    assert not called
