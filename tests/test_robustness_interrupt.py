"""Ctrl-C during ``fit``: control returns within a second, ``fit`` re-raises
KeyboardInterrupt, the parameters are those of a completed step and ``net.history``
holds the completed epochs.

"A completed step" is checked by replaying it: the data is not shuffled, so k Adam
steps are the first k batches in order, and a fresh network of the same seed trained
on those k batches (and on the completed epochs before them) must hold the same
parameters. Adam's step count says how many updates were applied. Adam moves every
weight by about lr = 1e-3 a step, while two native runs of the same steps differ by
~1e-7 in float32 (Eigen's products round differently with the buffers' alignment),
so an absolute tolerance of 1e-5 tells step k from step k ± 1. Over hundreds of steps
Adam amplifies that float32 noise (m / sqrt(v) of a near-zero gradient), so the tests
that run many epochs do so in float64.
"""

from __future__ import annotations

import _thread
import signal
import threading
import time

import numpy as np
import pytest

import densa

BACKENDS = ("native", "reference")
W3 = (784, 256, 128, 10)
N_W3, BATCH = 60_000, 64


def _net(sizes, backend, dtype="float32"):
    layers = [
        densa.Dense(a, b, activation="relu" if i < len(sizes) - 2 else "identity")
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))
    ]
    return densa.Network(layers, loss="softmax_cross_entropy", dtype=dtype, backend=backend, seed=0)


def _params(net):
    return [p.copy() for layer in net.layers for p in (layer.W, layer.b)]


@pytest.fixture(autouse=True)
def python_handles_sigint():
    """Python's own Ctrl-C handler for each test, whatever the process inherited.

    A process started in the background by a non-interactive shell inherits SIGINT
    ignored, and Python then installs no handler: ``_thread.interrupt_main`` does nothing
    and every fit below would run its 10**6 epochs. Under Python's handler, the tests
    see what a user pressing Ctrl-C in a terminal sees.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="module")
def w3_data():
    rng = np.random.default_rng(0)
    X = rng.random((N_W3, W3[0]), dtype=np.float32)
    y = rng.integers(0, W3[-1], N_W3)
    return X, y


class Interrupter:
    """Sends Ctrl-C to the main thread from a timer thread and notes when it did."""

    def __init__(self) -> None:
        self.sent: float | None = None
        self._timer: threading.Timer | None = None

    def _fire(self) -> None:
        self.sent = time.perf_counter()
        _thread.interrupt_main()  # exactly what the SIGINT handler does

    def after(self, seconds: float) -> None:
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.start()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer.join()


def _interrupted_fit(net, X, y, delay=None, **fit_args):
    """Run fit until Ctrl-C; return the seconds from Ctrl-C to control coming back."""
    irq = Interrupter()
    if delay is not None:
        irq.after(delay)
    try:
        with pytest.raises(KeyboardInterrupt):
            net.fit(X, y, epochs=10**6, batch_size=BATCH, shuffle=False, progress=False, **fit_args)
        back = time.perf_counter()
    finally:
        irq.cancel()
    assert irq.sent is not None, "the interrupt was never sent"
    return back - irq.sent


def _assert_a_completed_step(net, X, y, backend, sizes, dtype="float32"):
    """The parameters are finite and are those of exactly ``step`` completed updates."""
    step = int(net.optimizer.step[0])
    n_batches = -(-X.shape[0] // BATCH)
    assert step > 0, "no step completed before the interrupt"
    params = _params(net)
    assert all(np.isfinite(p).all() for p in params)
    assert net.history is not None
    assert net.history.epochs == step // n_batches, "history must hold the completed epochs"
    assert all(np.isfinite(v) for v in net.history.loss)
    # Replay those updates on a fresh network of the same seed.
    twin = _net(sizes, backend, dtype)
    assert any(not np.array_equal(a, b) for a, b in zip(params, _params(twin))), "nothing moved"
    opt = densa.Adam(lr=1e-3)
    epochs, rest = divmod(step, n_batches)
    if epochs:
        twin.fit(
            X, y, epochs=epochs, batch_size=BATCH, optimizer=opt, shuffle=False, progress=False
        )
    if rest:
        m = rest * BATCH
        twin.fit(
            X[:m], y[:m], epochs=1, batch_size=BATCH, optimizer=opt, shuffle=False, progress=False
        )
    assert int(opt.step[0]) == step
    for i, (a, b) in enumerate(zip(params, _params(twin))):
        np.testing.assert_allclose(
            a, b, rtol=0, atol=1e-5, err_msg=f"parameter {i} is not that of step {step}"
        )


@pytest.mark.parametrize("backend", BACKENDS)
def test_ctrl_c_on_w3_returns_within_a_second(backend, w3_data):
    X, y = w3_data
    net = _net(W3, backend)
    latency = _interrupted_fit(net, X, y, delay=0.5, optimizer=densa.Adam(lr=1e-3))
    assert latency < 1.0, f"control came back {latency:.2f} s after Ctrl-C"
    _assert_a_completed_step(net, X, y, backend, W3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ctrl_c_keeps_the_completed_epochs(backend):
    # A small problem (10 batches an epoch) in float64 (see the module docstring);
    # Ctrl-C comes 0.05 s after epoch 3 ends.
    sizes = (20, 64, 32, 3)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((10 * BATCH, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], X.shape[0])
    net = _net(sizes, backend, "float64")
    irq = Interrupter()
    seen = []

    def on_epoch_end(epoch, logs):
        seen.append(epoch)
        if epoch == 2:
            irq.after(0.05)

    try:
        with pytest.raises(KeyboardInterrupt):
            net.fit(
                X,
                y,
                epochs=10**6,
                batch_size=BATCH,
                shuffle=False,
                progress=False,
                optimizer=densa.Adam(lr=1e-3),
                on_epoch_end=on_epoch_end,
            )
    finally:
        irq.cancel()
    assert len(seen) >= 3
    # Ctrl-C may come after an epoch's last batch but before its on_epoch_end call: that
    # epoch was completed and is in the history all the same.
    assert net.history.epochs in (len(seen), len(seen) + 1)
    _assert_a_completed_step(net, X, y, backend, sizes, "float64")


def test_ctrl_c_in_the_middle_of_a_reference_update_restores_a_completed_step(monkeypatch):
    # The reference loop can be interrupted between two tensors' updates (here: after
    # the first tensor of the 13th step, the third of epoch 2). fit then puts back its
    # last copy, taken between chunks (here at the end of epoch 1: these ten batches
    # are one chunk), with the optimizer state (Adam's step included) that goes with it.
    from densa import _pacing
    from densa.reference import training

    # Epoch 1 alone, then the rest as one group (else the fit's first call is already a
    # group of epochs, and the copy to go back to is the initial one).
    monkeypatch.setattr(_pacing, "first_group", lambda *args: 1)
    sizes = (20, 64, 32, 3)
    rng = np.random.default_rng(2)
    X = rng.standard_normal((10 * BATCH, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], X.shape[0])
    net = _net(sizes, "reference")
    real_step, calls = training.adam_step, []
    tensors = 2 * (len(sizes) - 1)

    def adam_step(*args):
        calls.append(1)
        if len(calls) == 12 * tensors + 2:
            raise KeyboardInterrupt  # after updating one tensor of the 13th step
        real_step(*args)

    monkeypatch.setattr(training, "adam_step", adam_step)
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, epochs=5, batch_size=BATCH, shuffle=False, progress=False, optimizer="adam")
    monkeypatch.setattr(training, "adam_step", real_step)
    # The copy at the end of epoch 1 (step 10), or a later chunk boundary of epoch 2 if
    # the machine is slow enough to cut that epoch into chunks; never the initial one.
    assert 10 <= int(net.optimizer.step[0]) < 13
    _assert_a_completed_step(net, X, y, "reference", sizes)
