"""How much training ``fit`` hands a trainer per call (densa._pacing): the first call,
sized before anything has been timed from each backend's assumed costs, stays within the
chunk time and is one batch for networks whose batches could take long; a small
network's first epoch is one call, and with nothing to do between epochs its first
call is already a group of whole epochs."""

from __future__ import annotations

import time

import numpy as np
import pytest

import densa
from densa import _pacing
from network_cases import BACKENDS


@pytest.mark.parametrize(
    ("sizes", "batch_size", "n_batches", "expected"),
    [
        # W3 (784-256-128-10, batch 64): 90 MFLOP a batch, 0.09 s at the assumed rate.
        ((784, 256, 128, 10), 64, 938, 1),
        # digits (64-64-10, batch 32): ~2.2 ms assumed, so its 43 batches in one call.
        ((64, 64, 10), 32, 43, 43),
        ((2, 16, 16, 1), 8, 250, 113),  # W4: the fixed costs dominate
        ((1,) * 101, 1, 1000, 9),  # 100 layers: 0.1 ms each
        ((1, 2000, 1), 2000, 100, 1),  # 4 million values a batch: ~1 s assumed
        ((4, 3), 1, 1, 1),
    ],
)
def test_first_chunk_follows_the_assumed_costs(sizes, batch_size, n_batches, expected):
    assert _pacing.first_chunk(sizes, batch_size, n_batches) == expected


@pytest.mark.parametrize("width", [1, 10, 100, 1000, 10_000])
@pytest.mark.parametrize("n_batches", [1, 7, 10**6])
def test_first_chunk_stays_within_the_epoch_and_the_chunk_time(width, n_batches):
    sizes, batch_size = (width, width, 2), 32
    chunk = _pacing.first_chunk(sizes, batch_size, n_batches)
    assert 1 <= chunk <= n_batches
    assumed = _pacing.assumed_batch_seconds(sizes, batch_size)
    # More than one batch only when they fit in the chunk time at the assumed costs.
    assert chunk == 1 or chunk * assumed <= _pacing.CHUNK_SECONDS


# Marked slow: it compares the cost model with this build's real speed, which a sanitizer
# build (.ci/sanitizers.sh deselects slow tests) does not have: there gelu's batches ran
# 3-5 times longer than the model assumes for the optimised build.
@pytest.mark.slow
@pytest.mark.parametrize(
    ("backend", "sizes", "activation", "batch_size", "dtype"),
    [
        ("reference", (1,) * 101, "tanh", 1, "float32"),  # Python per layer
        ("reference", (4,) * 41 + (1,), "tanh", 8, "float32"),
        ("reference", (1, 100, 1), "gelu", 100, "float64"),  # slow activations
        ("native", (1, 100, 1), "gelu", 100, "float64"),
        ("native", (64, 64, 10), "relu", 32, "float32"),
    ],
)
def test_the_first_call_is_no_longer_than_the_chunk_time(
    backend, sizes, activation, batch_size, dtype, monkeypatch
):
    """The assumed costs against real ones: the first call's batches, at the fastest
    per-batch time of the later calls of the same fit (both measured under the same
    load), fit in the chunk time with room to spare. A cost model that ignored layers or
    activations gave first calls of 0.5-2 s on such networks."""
    calls: list[tuple[int, float]] = []
    layers = [
        densa.Dense(a, b, activation if i < len(sizes) - 2 else "identity")
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))
    ]
    net = densa.Network(layers, loss="mse", dtype=dtype, backend=backend, seed=0)
    make_trainer = net._backend.Trainer

    class Timed:
        def __init__(self, *args):
            self._trainer = make_trainer(*args)

        def run(self, X, T, order, bs, first_batch, n_batches):
            t0 = time.perf_counter()
            result = self._trainer.run(X, T, order, bs, first_batch, n_batches)
            calls.append((result[2], time.perf_counter() - t0))
            return result

    monkeypatch.setattr(net._backend, "Trainer", Timed)
    # A callback: epoch by epoch, so every call is a run() of part of an epoch.
    n = 40 * batch_size
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    y = rng.standard_normal((n, sizes[-1])).astype(dtype)
    net.fit(X, y, epochs=2, batch_size=batch_size, progress=False, on_epoch_end=_nothing)
    first_batches = calls[0][0]
    per_batch = min(seconds / batches for batches, seconds in calls[1:] if batches)
    costs = _pacing.costs_for(backend)
    assert first_batches == _pacing.first_chunk(sizes, batch_size, 40, costs)
    assert first_batches * per_batch <= 1.5 * _pacing.CHUNK_SECONDS, (first_batches, per_batch)


def test_batch_flops_counts_three_products_per_layer():
    # 2 flops per multiply-add; forward, dW and dx: 6 * batch * sum(n_in * n_out).
    assert _pacing.batch_flops((3, 5, 2), 4) == 6 * 4 * (3 * 5 + 5 * 2)


def test_next_chunk_and_epoch_group_follow_the_measured_times():
    assert _pacing.next_chunk(0.01, 1000) == 10
    assert _pacing.next_chunk(1.0, 1000) == 1  # slow batches: one per call
    assert _pacing.next_chunk(0.0, 1000) == 1000  # never beyond the epoch
    assert _pacing.epoch_group(0.01, 50, 100) == 10
    assert _pacing.epoch_group(0.01, 3, 100) == 3  # never beyond the epochs left
    assert _pacing.epoch_group(1e-6, 10**6, 10**6) == _pacing.GROUP_ORDER_ENTRIES // 10**6


def test_one_call_holds_a_plain_fit_to_its_assumed_time_and_its_orders_memory():
    costs = _pacing.NATIVE_COSTS
    sizes, batch_size, n_batches, n = (64, 64, 10), 32, 43, 1347
    per_epoch = _pacing.assumed_epoch_seconds(sizes, batch_size, n_batches, costs)
    fits = int(_pacing.ONE_CALL_SECONDS / per_epoch)  # epochs assumed within the time
    assert fits >= 30  # the digits fit of the benchmark (W5)
    assert _pacing.one_call(sizes, batch_size, n_batches, fits, n, costs)
    assert not _pacing.one_call(sizes, batch_size, n_batches, fits + 1, n, costs)
    # The orders of every epoch are held at once: GROUP_ORDER_ENTRIES at most.
    tiny = (1, 1)
    many = _pacing.GROUP_ORDER_ENTRIES // 1000
    assert _pacing.one_call(tiny, 1000, 1, many, 1000, costs)
    assert not _pacing.one_call(tiny, 1000, 1, many + 1, 1000, costs)
    # The reference backend's costs make the same fit far longer.
    assert not _pacing.one_call(sizes, batch_size, n_batches, 30, n, _pacing.REFERENCE_COSTS)


def _spy_calls(net, monkeypatch):
    """The trainer calls fit makes: ("run", batches) or ("run_epochs", epochs)."""
    calls: list[tuple[str, int]] = []
    make_trainer = net._backend.Trainer

    class Spy:
        def __init__(self, *args):
            self._trainer = make_trainer(*args)

        def run(self, X, T, order, batch_size, first_batch, n_batches):
            calls.append(("run", n_batches))
            return self._trainer.run(X, T, order, batch_size, first_batch, n_batches)

        def run_epochs(self, X, T, orders, batch_size):
            calls.append(("run_epochs", orders.shape[0]))
            return self._trainer.run_epochs(X, T, orders, batch_size)

    monkeypatch.setattr(net._backend, "Trainer", Spy)
    return calls


@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_runs_a_small_networks_epochs_in_one_call(backend, monkeypatch):
    """Nothing between epochs: the first call is already a group of whole epochs, sized
    by the assumed costs; with a callback, each epoch is one call of all its batches."""
    monkeypatch.setattr(_pacing, "CHUNK_SECONDS", 10.0)  # whatever the machine's load
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 8)).astype(np.float32)
    y = rng.integers(0, 3, 200)
    for callback, expected in ((None, [("run_epochs", 5)]), (_nothing, [("run", 13)] * 5)):
        net = densa.Network(
            [densa.Dense(8, 16, "relu"), densa.Dense(16, 3, "identity")],
            loss="softmax_cross_entropy",
            backend=backend,
            seed=0,
        )
        calls = _spy_calls(net, monkeypatch)
        net.fit(
            X,
            y,
            epochs=5,
            batch_size=16,
            optimizer=densa.SGD(0.05),
            progress=False,
            on_epoch_end=callback,
        )
        assert calls == expected
        assert len(net.history.loss) == len(net.history.seconds) == 5


def test_first_group_follows_each_backends_assumed_costs():
    native, reference = _pacing.NATIVE_COSTS, _pacing.REFERENCE_COSTS
    assert _pacing.costs_for("native") == native
    assert _pacing.costs_for("reference") == reference
    # W4 (2-16-16-1, batch 8, 250 batches): ~11 ms an epoch assumed native, so its five
    # epochs in one call; ~0.22 s reference, so no group before an epoch is timed.
    assert _pacing.first_group((2, 16, 16, 1), 8, 250, 5, 2000, native) == 5
    assert _pacing.first_group((2, 16, 16, 1), 8, 250, 5, 2000, reference) == 0
    # digits (64-64-10, batch 32, 43 batches): ~7.7 ms an epoch assumed native.
    assert _pacing.first_group((64, 64, 10), 32, 43, 30, 1347, native) == 12
    # W3: one batch is assumed to cost more than a chunk's time even natively.
    assert _pacing.first_group((784, 256, 128, 10), 64, 938, 10, 60_000, native) == 0
    # Every native cost is below the reference's: the native backend has no Python per
    # batch or layer.
    assert native.batch_seconds < reference.batch_seconds
    assert native.layer_seconds < reference.layer_seconds
    assert native.value_seconds < reference.value_seconds
    assert native.flops > reference.flops


@pytest.mark.parametrize("backend", BACKENDS)
def test_w4s_fit_is_one_call_on_the_native_backend(backend, monkeypatch):
    """W4 (issue 4): five epochs of 250 batches. Native: one call for the whole fit (each
    call returns to Python for a finite copy and bookkeeping, which right after an idle
    pause cost milliseconds); reference: its first epoch in chunks, as before."""
    net = densa.Network(
        [densa.Dense(2, 16, "tanh"), densa.Dense(16, 16, "tanh"), densa.Dense(16, 1)],
        loss="mse",
        dtype="float32",
        backend=backend,
        seed=0,
    )
    calls = _spy_calls(net, monkeypatch)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2000, 2)).astype(np.float32)
    y = np.sin(X.sum(axis=1, keepdims=True)).astype(np.float32)
    net.fit(X, y, epochs=5, batch_size=8, optimizer=densa.SGD(0.05, momentum=0.9), progress=False)
    if backend == "native":
        assert calls == [("run_epochs", 5)]
    else:
        assert calls[0] == ("run", _pacing.first_chunk((2, 16, 16, 1), 8, 250))
    assert len(net.history.seconds) == 5


def _nothing(epoch, logs):
    """An on_epoch_end that does nothing: fit then runs epoch by epoch."""
