"""The loss that ``fit`` reports under an optimizer's ``l2``: each minibatch's data loss
plus its penalty ``l2/(2·n_b)·Σ‖W‖²`` with the weights that batch saw, as scikit-learn's
``loss_curve_`` counts it, on both backends, the hidden split included."""

from __future__ import annotations

import numpy as np
import pytest

import densa
from helpers import assert_matches
from network_cases import BACKENDS, make_data, make_net

L2 = 0.7


def _squares(net: densa.Network) -> float:
    """Σ‖W‖² over every layer, in float64."""
    return sum(float(np.sum(layer.W.astype(np.float64) ** 2)) for layer in net.layers)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "optimizer",
    [lambda: densa.SGD(lr=0.1, momentum=0.9, l2=L2), lambda: densa.Adam(lr=0.01, l2=L2)],
    ids=["sgd", "adam"],
)
def test_one_full_batch_reports_the_data_loss_plus_the_penalty(backend, optimizer):
    # One batch of all n samples: J before the update plus l2/(2n)·Σ‖W‖².
    X, y = make_data("labels", 40, 4, 3)
    net = make_net("softmax_cross_entropy", backend=backend)
    data, penalty = net.loss_value(X, y), L2 / (2 * len(X)) * _squares(net)
    history = net.fit(X, y, epochs=1, batch_size=len(X), optimizer=optimizer(), progress=False)
    assert history.loss[0] == pytest.approx(data + penalty, rel=1e-12)
    assert history._penalty[0] == pytest.approx(penalty, rel=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_batch_counts_the_weights_it_saw(backend):
    # Three batches of 10, in order: each batch's data loss and penalty with the weights
    # before its own update, weighted by its size (the penalty l2/(2·10)·Σ‖W‖² times 10).
    # Weights taken at the epoch's end instead would miss by ~1e-3 relative here.
    X, y = make_data("real", 30, 4, 3)
    step_by_step = make_net("mse", backend=backend)
    data = penalty = 0.0
    for k in range(3):
        batch = slice(10 * k, 10 * (k + 1))
        data += 10 * step_by_step.loss_value(X[batch], y[batch])
        penalty += L2 / 2 * _squares(step_by_step)
        # Plain SGD carries no state between batches: one fit per batch is the epoch.
        step_by_step.fit(
            X[batch], y[batch], epochs=1, batch_size=10, optimizer=densa.SGD(lr=0.2, l2=L2),
            progress=False,
        )  # fmt: skip
    whole = make_net("mse", backend=backend)
    history = whole.fit(
        X, y, epochs=1, batch_size=10, shuffle=False, optimizer=densa.SGD(lr=0.2, l2=L2),
        progress=False,
    )  # fmt: skip
    assert history.loss[0] == pytest.approx((data + penalty) / 30, rel=1e-12)
    assert history._penalty[0] == pytest.approx(penalty / 30, rel=1e-12)
    epoch_end = L2 / 2 * 3 * _squares(whole) / 30
    assert abs(epoch_end - history._penalty[0]) > 1e-4 * history._penalty[0]


# The general loop (three layers) and the hidden split (64-64-10 at 32 samples a batch,
# densa's two-team path), each in both dtypes.
NETWORKS = {
    "general": dict(sizes=(6, 9, 7, 3), activations=("tanh", "relu", "identity"), n_in=6),
    "split": dict(sizes=(64, 64, 10), activations=("relu", "identity"), n_in=64),
}


def _fit(kind, dtype, backend, optimizer, epochs=3):
    case = NETWORKS[kind]
    X, y = make_data("labels", 300, case["n_in"], case["sizes"][-1], seed=4)
    net = make_net(
        "softmax_cross_entropy",
        sizes=case["sizes"],
        activations=case["activations"],
        dtype=dtype,
        backend=backend,
    )
    history = net.fit(X, y, epochs=epochs, batch_size=32, optimizer=optimizer, progress=False)
    return net, history


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind", list(NETWORKS))
def test_native_reports_the_references_penalty(kind, dtype):
    opt = lambda: densa.SGD(lr=0.05, momentum=0.9, l2=L2)  # noqa: E731
    (_, native), (_, reference) = (_fit(kind, dtype, b, opt()) for b in BACKENDS)
    rtol = 1e-10 if dtype == "float64" else 2e-4
    for name in ("loss", "_penalty"):
        got, want = np.array(getattr(native, name)), np.array(getattr(reference, name))
        assert_matches(got, want, f"history.{name}", rtol=rtol, atol=0)
    assert all(p > 0 for p in native._penalty)
    # Without l2 nothing is added.
    (_, plain) = _fit(kind, dtype, "native", densa.SGD(lr=0.05, momentum=0.9))
    assert plain._penalty == [0.0] * 3


@pytest.mark.parametrize("kind", list(NETWORKS))
def test_the_penalty_is_the_same_bits_on_one_or_two_threads(kind):
    histories = []
    for n in (1, 2):
        with densa.threads(n):
            histories.append(_fit(kind, "float32", "native", densa.Adam(lr=0.01, l2=L2))[1])
    assert histories[0].loss == histories[1].loss
    assert histories[0]._penalty == histories[1]._penalty


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_split_network_trains_on_the_split(dtype):
    # What the tests above call "split" takes densa's two-team path (hidden_split.hpp),
    # with l2 as with plain SGD.
    from densa import native

    net = make_net("softmax_cross_entropy", sizes=(64, 64, 10), activations=("relu", "identity"))
    Ws = [layer.W.astype(dtype) for layer in net.layers]
    bs = [layer.b.astype(dtype) for layer in net.layers]
    hyper = dict(lr=0.05, momentum=0.9, nesterov=False, weight_decay=0.0, l2=L2)
    trainer = native.Trainer(
        Ws, bs, ["relu", "identity"], "softmax_cross_entropy", "sgd", hyper,
        [[np.zeros_like(W)] for W in Ws], [[np.zeros_like(b)] for b in bs], None, 32,
    )  # fmt: skip
    assert trainer.splits_hidden_layer
