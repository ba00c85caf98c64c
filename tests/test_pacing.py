"""How much training ``fit`` hands a trainer per call (densa._pacing): the first call,
sized before anything has been timed, stays within an epoch and is one batch for
networks whose batches could take long; a small network's first epoch is one call."""

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
    assert first_batches == _pacing.first_chunk(sizes, batch_size, 40)
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


@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_runs_a_small_networks_first_epoch_in_one_call(backend, monkeypatch):
    """The first epoch is one trainer call, then the rest of the epochs one group."""
    monkeypatch.setattr(_pacing, "CHUNK_SECONDS", 10.0)  # groups whatever the machine's load
    calls: list[tuple[str, int]] = []
    net = densa.Network(
        [densa.Dense(8, 16, "relu"), densa.Dense(16, 3, "identity")],
        loss="softmax_cross_entropy",
        backend=backend,
        seed=0,
    )
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
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 8)).astype(np.float32)
    y = rng.integers(0, 3, 200)
    net.fit(X, y, epochs=5, batch_size=16, optimizer=densa.SGD(0.05), progress=False)
    assert calls[0] == ("run", 13)  # all 13 batches of epoch 1
    assert calls[1:] == [("run_epochs", 4)]
    assert len(net.history.loss) == 5


def _nothing(epoch, logs):
    """An on_epoch_end that does nothing: fit then runs epoch by epoch."""
