"""predict / predict_classes / evaluate, summary, and pickle / deepcopy round trips."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import densa
from densa.reference import loss_forward
from network_cases import BACKENDS, make_data, make_net, optimizer_state, params


def _trained(
    loss="softmax_cross_entropy",
    kind="labels",
    n_out=3,
    dtype="float64",
    backend="native",
    opt=None,
):
    net = make_net(loss, sizes=(4, 7, 6, n_out), dtype=dtype, backend=backend, seed=1)
    X, y = make_data(kind, 96, 4, n_out, seed=2)
    net.fit(
        X,
        y,
        epochs=3,
        batch_size=16,
        optimizer=opt or densa.SGD(0.05, momentum=0.9),
        progress=False,
    )
    return net, X, y


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


# ----- predictions ------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_predictions_are_probabilities(backend, dtype):
    net, X, _y = _trained(dtype=dtype, backend=backend)
    proba, logits = net.predict(X), net.predict_raw(X)
    assert proba.shape == logits.shape == (96, 3)
    assert proba.dtype == np.dtype(dtype)
    assert np.all(proba >= 0)
    assert np.all(proba <= 1)
    np.testing.assert_allclose(
        proba.sum(axis=1), 1.0, rtol=0, atol=1e-6 if dtype == "float32" else 1e-14
    )
    z = logits.astype(np.float64)
    expected = np.exp(z - z.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(proba, expected, rtol=1e-5 if dtype == "float32" else 1e-13)
    labels = net.predict_classes(X)
    assert labels.shape == (96,)
    assert labels.dtype.kind == "i"
    np.testing.assert_array_equal(labels, np.argmax(proba, axis=1))


@pytest.mark.parametrize("backend", BACKENDS)
def test_binary_predictions_are_probabilities(backend):
    net, X, _y = _trained("binary_cross_entropy", "binary", n_out=3, backend=backend)
    proba, logits = net.predict(X), net.predict_raw(X)
    assert np.all((proba >= 0) & (proba <= 1))
    np.testing.assert_allclose(proba, _sigmoid(logits), rtol=1e-13)
    labels = net.predict_classes(X)
    assert labels.shape == (96, 3)
    np.testing.assert_array_equal(labels, (proba > 0.5).astype(int))
    # One output: labels come back as a vector.
    single, X1, _y1 = _trained("binary_cross_entropy", "binary", n_out=1, backend=backend)
    assert single.predict_classes(X1).shape == (96,)
    assert set(np.unique(single.predict_classes(X1))) <= {0, 1}


def test_mse_predictions_are_raw_outputs():
    net, X, _y = _trained("mse", "real")
    np.testing.assert_array_equal(net.predict(X), net.predict_raw(X))
    with pytest.raises(ValueError, match="predict_classes needs a classification loss"):
        net.predict_classes(X)


def test_predict_in_chunks_equals_predict_in_one_piece():
    net, _, _ = _trained()
    X = np.random.default_rng(0).standard_normal((20000, 4))  # more than one 8192-row chunk
    whole = net.predict(X)
    parts = np.concatenate([net.predict(X[i : i + 1000]) for i in range(0, 20000, 1000)])
    np.testing.assert_allclose(whole, parts, rtol=1e-14, atol=1e-16)
    assert whole.shape == (20000, 3)


# ----- evaluate ---------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("loss", "kind", "n_out"),
    [("softmax_cross_entropy", "labels", 3), ("binary_cross_entropy", "binary", 2)],
)
def test_evaluate_classification(backend, loss, kind, n_out):
    net, X, y = _trained(loss, kind, n_out=n_out, backend=backend)
    scores = net.evaluate(X, y)
    assert set(scores) == {"loss", "accuracy"}
    Xa, T = net._prepare_xy(X, y)
    value, _ = densa.inspection.gradients(net, Xa, T)
    assert scores["loss"] == pytest.approx(value, rel=1e-13)
    assert scores["loss"] == pytest.approx(loss_forward(loss, net.predict_raw(X), T), rel=1e-12)
    assert scores["accuracy"] == pytest.approx(np.mean(net.predict_classes(X) == y))
    assert 0.0 < scores["accuracy"] <= 1.0


def test_evaluate_accepts_labels_and_one_hot_alike():
    net, X, y = _trained()
    assert net.evaluate(X, y) == net.evaluate(X, np.eye(3)[y])


@pytest.mark.parametrize("backend", BACKENDS)
def test_binary_accuracy_of_a_soft_target_of_one_half_counts_it_as_zero(backend):
    """The documented rule (densa.losses.accuracy): a target of exactly ½ is class 0."""
    net = densa.Network(
        [densa.Dense(2, 1, "identity")], loss="binary_cross_entropy", backend=backend, seed=0
    )
    net.layers[0].W[...] = 0.0
    X, y = np.ones((4, 2)), np.array([0.5, 0.5, 1.0, 0.0])
    for bias, want in ((1.0, 0.25), (-1.0, 0.75)):  # every output predicts 1, then 0
        net.layers[0].b[...] = bias
        assert net.evaluate(X, y)["accuracy"] == want


def test_evaluate_regression_has_no_accuracy():
    net, X, y = _trained("mse", "real")
    scores = net.evaluate(X, y)
    assert set(scores) == {"loss"}
    # J = 1/(2N) Σ ||y_K − y||²
    expected = 0.5 * np.sum((net.predict(X) - y) ** 2) / len(X)
    assert scores["loss"] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("X", "error", "match"),
    [
        (np.zeros((5, 3)), ValueError, "X has 3 features but the network's first layer expects 4"),
        (np.zeros(4), ValueError, r"X must be 2-D .*reshape"),
        (np.zeros((0, 4)), ValueError, "X has no samples"),
        (np.full((2, 4), np.nan), ValueError, "X contains NaN or inf"),
        (np.zeros((2, 4), dtype=complex), TypeError, "X has dtype complex128"),
    ],
)
def test_predict_refuses_bad_inputs(X, error, match):
    net = make_net("softmax_cross_entropy")
    with pytest.raises(error, match=match):
        net.predict(X)


def test_evaluate_refuses_bad_labels():
    net, X, _ = _trained()
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        net.evaluate(X, np.full(len(X), 3))
    with pytest.raises(ValueError, match="y has 5 rows but X has 96 samples"):
        net.evaluate(X, np.zeros(5, dtype=int))


# ----- summary ----------------------------------------------------------------------------
def test_summary_lists_every_layer_and_the_parameter_counts():
    net = densa.Network(
        [
            densa.Dense(784, 256, activation="relu"),
            densa.Dense(256, 64, activation="tanh"),
            densa.Dense(64, 10, activation="identity"),
        ],
        loss="softmax_cross_entropy",
        seed=0,
    )
    text = net.summary()
    counts = [784 * 256 + 256, 256 * 64 + 64, 64 * 10 + 10]
    rows = [line for line in text.splitlines() if line.startswith(("0 ", "1 ", "2 "))]
    assert len(rows) == 3
    for row, layer, count in zip(rows, net.layers, counts):
        assert f"Dense {layer.n_in}->{layer.n_out}" in row
        assert str((layer.n_out, layer.n_in)) in row
        assert str((layer.n_out,)) in row
        assert layer.activation in row
        assert row.rstrip().endswith(f"{count:,}")
    assert f"total parameters: {sum(counts):,}" in text
    assert net.n_params == sum(counts) == 218_058
    for word in ("softmax_cross_entropy", "float32", "native"):
        assert word in text


# ----- pickle and deepcopy ----------------------------------------------------------------
ROUND_TRIPS = {
    "pickle": lambda net: pickle.loads(pickle.dumps(net)),
    "deepcopy": copy.deepcopy,
}


@pytest.mark.parametrize("how", list(ROUND_TRIPS))
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_reproduces_predictions_and_optimizer_state(how, backend, dtype):
    net, X, _y = _trained(dtype=dtype, backend=backend, opt=densa.Adam(lr=0.01))
    clone = ROUND_TRIPS[how](net)
    assert clone is not net
    assert (clone.backend, clone.dtype, clone.loss) == (net.backend, net.dtype, net.loss)
    assert [repr(layer) for layer in clone.layers] == [repr(layer) for layer in net.layers]
    np.testing.assert_array_equal(clone.predict(X), net.predict(X))
    for a, b in zip(params(clone), params(net)):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert isinstance(clone.optimizer, densa.Adam)
    assert clone.optimizer is not net.optimizer
    assert clone.optimizer.hyper() == net.optimizer.hyper()
    for a, b in zip(optimizer_state(clone.optimizer), optimizer_state(net.optimizer)):
        np.testing.assert_array_equal(a, b)
    assert int(clone.optimizer.step[0]) == 3 * 6
    assert clone.history.loss == net.history.loss


@pytest.mark.parametrize("how", list(ROUND_TRIPS))
def test_copy_continues_training_like_the_original(how):
    """Parameters, optimizer state and the shuffling generator all travel with the copy."""
    net, X, y = _trained(opt=densa.SGD(lr=0.05, momentum=0.9))
    clone = ROUND_TRIPS[how](net)
    net.fit(X, y, epochs=2, batch_size=16, progress=False)
    clone.fit(X, y, epochs=2, batch_size=16, progress=False)
    for a, b in zip(params(clone), params(net)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("how", list(ROUND_TRIPS))
def test_copy_is_independent(how):
    net, X, y = _trained(opt=densa.Adam(lr=0.01))
    before, state_before = params(net), optimizer_state(net.optimizer)
    clone = ROUND_TRIPS[how](net)
    for a, b in zip(clone.layers, net.layers):
        assert not np.shares_memory(a.W, b.W)
        assert not np.shares_memory(a.b, b.b)
    clone.fit(X, y, epochs=2, batch_size=16, progress=False)
    clone.layers[0].W[...] = 0.0
    for a, b in zip(params(net), before):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(optimizer_state(net.optimizer), state_before):
        np.testing.assert_array_equal(a, b)
    assert len(net.history) == 3
    # The copy can train while the original trains (each has its own lock).
    net.fit(X, y, epochs=1, progress=False)
    assert len(net.history) == 1
