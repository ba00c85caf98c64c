"""Divergence during ``fit``: TrainingDivergedError names the epoch and batch, the
network keeps finite parameters (restoring the last finite copy when an update itself
overflowed), and ``net.history`` keeps the completed epochs. Both backends, float32.
"""

from __future__ import annotations

import numpy as np
import pytest

import densa

BACKENDS = ("native", "reference")
SIZES = (4, 16, 3)
N, BATCH = 256, 16
N_BATCHES = N // BATCH


def _net(backend):
    layers = [densa.Dense(4, 16, "relu"), densa.Dense(16, 3, "identity")]
    return densa.Network(layers, loss="mse", dtype="float32", backend=backend, seed=0)


def _data(x_scale=1.0):
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((N, SIZES[0])) * x_scale).astype(np.float32)
    Y = rng.standard_normal((N, SIZES[-1])).astype(np.float32)
    return X, Y


def _state(net):
    """Copies of every parameter and optimizer state array."""
    arrays = [p for layer in net.layers for p in (layer.W, layer.b)]
    if net.optimizer is not None:
        arrays += [a for per in net.optimizer.state_W + net.optimizer.state_b for a in per]
    return [a.copy() for a in arrays]


def _all_finite(net):
    return all(np.isfinite(a).all() for a in _state(net))


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_overflowing_update_restores_the_initial_parameters(backend):
    # Inputs of ~1e4 give gradients of ~1e4; times lr = 1e36 that is beyond float32's
    # 3.4e38: the very first update makes W inf while its batch's loss was finite. The
    # trainer stops at the next batch, whose loss is NaN (the first chunk of this small
    # network is a whole epoch, so no finite copy was taken in between).
    X, Y = _data(x_scale=1e4)
    net = _net(backend)
    initial = _state(net)
    with pytest.raises(densa.TrainingDivergedError) as info:
        net.fit(X, Y, epochs=3, batch_size=BATCH, optimizer=densa.SGD(lr=1e36), progress=False)
    err = info.value
    assert (err.epoch, err.batch) == (1, 2)
    assert f"epoch 1, batch 2 of {N_BATCHES}: the loss became NaN or inf" in str(err)
    assert "the parameters were NaN or inf (an update overflowed)" in str(err)
    assert "restored to their initial values" in str(err)
    assert _all_finite(net)
    for a, b in zip(_state(net), initial):
        np.testing.assert_array_equal(a, b)
    assert net.history.epochs == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_overflowing_loss_keeps_the_parameters_before_its_batch(backend):
    # lr = 1e30: the first update gives finite W ~1e30, the second batch's loss
    # overflows; the trainer stops before that batch's update.
    X, Y = _data()
    net = _net(backend)
    with pytest.raises(densa.TrainingDivergedError) as info:
        net.fit(
            X,
            Y,
            epochs=3,
            batch_size=BATCH,
            shuffle=False,
            optimizer=densa.SGD(lr=1e30),
            progress=False,
        )
    assert (info.value.epoch, info.value.batch) == (1, 2)
    assert f"epoch 1, batch 2 of {N_BATCHES}: the loss became NaN or inf" in str(info.value)
    assert "the parameters are those before that batch" in str(info.value)
    assert _all_finite(net)
    # The state is that of one step on the first batch: replay it. Sums in another
    # order (the buffers' alignment) give ~10 ulp; a second step would be ~1e30 away.
    twin = _net(backend)
    twin.fit(X[:BATCH], Y[:BATCH], epochs=1, batch_size=BATCH, optimizer=densa.SGD(lr=1e30))
    for a, b in zip(_state(net), _state(twin)):
        np.testing.assert_allclose(a, b, rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_divergence_in_a_later_epoch_keeps_history_and_the_last_finite_state(backend):
    # Two sane epochs, then the data turns hostile under fit's feet (it trains on the
    # caller's float32 arrays without copying them): feature 0, zero so far and with
    # zero weights, becomes 3e38, and the targets -1e18. The loss stays finite (W[:, 0]
    # = 0 hides the feature from the forward pass, and (1e18)² fits in float32), but
    # dW[:, 0] = Σ dz · 3e38 overflows: the update makes W inf.
    X, Y = _data()
    X[:, 0] = 0.0
    net = _net(backend)
    net.layers[0].W[:, 0] = 0.0
    at_epoch_end = {}

    def turn_hostile(epoch, logs):
        if epoch == 1:
            at_epoch_end["state"] = _state(net)
            X[:, 0] = 3e38
            Y[...] = -1e18

    with pytest.raises(densa.TrainingDivergedError) as info:
        net.fit(
            X,
            Y,
            epochs=10,
            batch_size=BATCH,
            optimizer=densa.SGD(lr=0.01, momentum=0.5),
            on_epoch_end=turn_hostile,
            progress=False,
        )
    err = info.value
    assert err.epoch == 3
    assert f"epoch 3, batch {err.batch} of {N_BATCHES}" in str(err)
    assert "restored to those at the end of epoch 2" in str(err)
    assert net.history.epochs == 2
    assert all(np.isfinite(net.history.loss))
    assert _all_finite(net)
    saved = at_epoch_end["state"]
    assert len(saved) == 2 * 2 + 2 * 2  # W, b and their velocities
    for a, b in zip(_state(net), saved):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_inputs_let_through_are_reported_as_divergence(backend):
    # check_finite=False lets a NaN reach the trainer: the loss of its batch is NaN.
    X, Y = _data()
    X[5 * BATCH + 3, 1] = np.nan
    layers = [densa.Dense(4, 16, "relu"), densa.Dense(16, 3, "identity")]
    net = densa.Network(layers, dtype="float32", backend=backend, seed=0, check_finite=False)
    with pytest.raises(densa.TrainingDivergedError, match=f"epoch 1, batch 6 of {N_BATCHES}"):
        net.fit(X, Y, epochs=2, batch_size=BATCH, shuffle=False, progress=False)
    assert _all_finite(net)


def _capture_spy(monkeypatch):
    """The keep flags of every LastFinite.capture call, in order."""
    from densa import _guard

    calls: list[bool] = []
    original = _guard.LastFinite.capture

    def capture(self, label, keep=True):
        calls.append(keep)
        return original(self, label, keep)

    monkeypatch.setattr(_guard.LastFinite, "capture", capture)
    return calls


@pytest.mark.parametrize("grouped", [True, False])
@pytest.mark.parametrize("backend", BACKENDS)
def test_the_last_chunk_of_a_fit_is_checked_but_not_copied(backend, grouped, monkeypatch):
    """After the last chunk nothing trains, so no copy is taken there; every earlier
    chunk is copied (the initial state too)."""
    calls = _capture_spy(monkeypatch)
    # The ordinary path's captures (a fit this short is otherwise one native call, which
    # makes them in C++: tests/test_fit_once.py).
    monkeypatch.setattr(densa.Network, "_fit_once", lambda self, *args: False)
    X, Y = _data()
    net = _net(backend)
    callback = None if grouped else (lambda epoch, logs: None)  # a callback: no groups
    net.fit(X, Y, epochs=4, batch_size=BATCH, on_epoch_end=callback, progress=False)
    assert calls[-1] is False
    assert len(calls) >= 2
    assert all(calls[:-1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_overflow_in_the_last_group_restores_the_copy_before_it(backend, monkeypatch):
    """The last group's check still finds parameters an update made inf (simulated
    here: the trainer's last call leaves W[0, 0] = inf) and puts back the copy taken
    before that group, at the end of epoch 1."""
    from densa import _pacing

    monkeypatch.setattr(_pacing, "CHUNK_SECONDS", 10.0)  # groups whatever the machine's load
    monkeypatch.setattr(_pacing, "first_group", lambda *args: 1)  # epoch 1 alone, then groups
    X, Y = _data()
    net = _net(backend)
    make = net._backend.Trainer
    seen = {}

    class Overflowing:
        def __init__(self, *args):
            self._trainer = make(*args)

        def run(self, *args):
            result = self._trainer.run(*args)
            seen["after epoch 1"] = _state(net)
            return result

        def run_epochs(self, *args):
            result = self._trainer.run_epochs(*args)
            net.layers[0].W[0, 0] = np.inf
            return result

    monkeypatch.setattr(net._backend, "Trainer", Overflowing)
    with pytest.raises(densa.TrainingDivergedError) as info:
        net.fit(X, Y, epochs=4, batch_size=BATCH, optimizer=densa.SGD(0.01), progress=False)
    assert "the parameters became NaN or inf (an update overflowed)" in str(info.value)
    assert "restored to those at the end of epoch 1" in str(info.value)
    assert info.value.epoch == 4
    for a, b in zip(_state(net), seen["after epoch 1"]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_overflow_in_a_fit_run_as_one_group_restores_the_initial_values(backend, monkeypatch):
    """A small fit's first call is already a group of all its epochs (densa._pacing):
    an update that overflows in it is caught by the check after it, and the copy taken
    before training is put back."""
    from densa import _pacing

    monkeypatch.setattr(_pacing, "CHUNK_SECONDS", 10.0)  # groups whatever the machine's load
    X, Y = _data()
    net = _net(backend)
    initial = [a.copy() for a in _state(net)]
    make = net._backend.Trainer
    calls = []

    class Overflowing:
        def __init__(self, *args):
            self._trainer = make(*args)

        def run_epochs(self, X, T, orders, batch_size):
            calls.append(orders.shape[0])
            result = self._trainer.run_epochs(X, T, orders, batch_size)
            net.layers[0].W[0, 0] = np.inf
            return result

    monkeypatch.setattr(net._backend, "Trainer", Overflowing)
    with pytest.raises(densa.TrainingDivergedError) as info:
        net.fit(X, Y, epochs=4, batch_size=BATCH, optimizer=densa.SGD(0.01), progress=False)
    assert calls == [4]
    assert "restored to their initial values" in str(info.value)
    for a, b in zip(_state(net), initial):
        np.testing.assert_array_equal(a, b)
