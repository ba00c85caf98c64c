"""Threads: predict, evaluate and gradients on one network from several threads at once
give the serial results (the kernels release the GIL, so the calls really overlap);
a second ``fit`` while one runs, in C++ or in Python, is refused and corrupts nothing.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import densa

BACKENDS = ("native", "reference")
THREADS, ROUNDS = 4, 6


def _net(backend, sizes=(32, 128, 64, 10)):
    layers = [
        densa.Dense(a, b, "tanh" if i < len(sizes) - 2 else "identity")
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))
    ]
    return densa.Network(
        layers, loss="softmax_cross_entropy", dtype="float32", backend=backend, seed=0
    )


def _data(n, n_in=32, n_out=10, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n_in)).astype(np.float32), rng.integers(0, n_out, n)


def _run_together(target, n_threads=THREADS):
    """Run target(i) in n_threads threads released at once; return their results."""
    barrier = threading.Barrier(n_threads)
    results, errors = [None] * n_threads, []

    def work(i):
        try:
            barrier.wait(timeout=30)
            results[i] = target(i)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    return results


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_predict_evaluate_and_gradients_equal_serial_results(backend):
    net = _net(backend)
    n = 3000 if backend == "native" else 800
    inputs = [_data(n, seed=s) for s in range(THREADS)]  # each thread its own data
    serial = [
        (net.predict(X), net.predict_classes(X), net.evaluate(X, y), net.gradients(X[:50], y[:50]))
        for X, y in inputs
    ]

    def work(i):
        X, y = inputs[i]
        out = []
        for _ in range(ROUNDS):
            out.append(
                (
                    net.predict(X),
                    net.predict_classes(X),
                    net.evaluate(X, y),
                    net.gradients(X[:50], y[:50]),
                )
            )
        return out

    for i, rounds in enumerate(_run_together(work)):
        proba, classes, scores, grads = serial[i]
        for r_proba, r_classes, r_scores, r_grads in rounds:
            # A shared workspace or a race would give other numbers, not other ulps;
            # 1e-6 allows for the last-bit effects of where an output was allocated.
            np.testing.assert_allclose(r_proba, proba, rtol=1e-6, atol=1e-7)
            np.testing.assert_array_equal(r_classes, classes)
            assert r_scores["accuracy"] == scores["accuracy"]
            assert r_scores["loss"] == pytest.approx(scores["loss"], rel=1e-6)
            for g, h in zip(r_grads, grads):
                for name in ("dW", "db", "dx"):
                    np.testing.assert_allclose(g[name], h[name], rtol=1e-5, atol=1e-7)


def test_concurrent_layer_kernels_equal_serial_results():
    # A backward without return_dz keeps dz in its thread's own scratch, and layers of
    # 256 Ki multiply-adds and more run without the GIL (three of these four), so these
    # calls overlap. Another thread's dz in the scratch would change the gradients.
    from densa import native

    rng = np.random.default_rng(5)
    shapes = [(64, 64, 64), (100, 70, 48), (64, 64, 32), (33, 130, 80)]
    layers = []
    for m_in, m_out, n in shapes:
        W = rng.standard_normal((m_out, m_in)).astype(np.float32) * 0.2
        b = rng.standard_normal(m_out).astype(np.float32)
        x = rng.standard_normal((n, m_in)).astype(np.float32)
        dy = rng.standard_normal((n, m_out)).astype(np.float32)
        layers.append((W, b, x, dy))

    def one(i):
        W, b, x, dy = layers[i]
        z, y = native.dense_forward(W, b, x, "relu")
        return (z, y, *native.dense_backward(W, x, z, dy, "relu"))

    serial = [one(i) for i in range(THREADS)]
    for i, rounds in enumerate(_run_together(lambda i: [one(i) for _ in range(200)])):
        for got in rounds:
            for a, e in zip(got, serial[i]):
                np.testing.assert_array_equal(a, e)


def test_native_predict_runs_in_parallel_threads():
    # The GIL is released inside the kernels: two threads each doing N predictions must
    # take clearly less than the 2·N predictions run one after another would (on two
    # cores), or at least not more (on a busy machine): measured as the overlap of the
    # calls' time spans, which only happens without the GIL.
    net = _net("native", sizes=(256, 512, 512, 10))
    X, _ = _data(4096, n_in=256)
    spans = [[] for _ in range(2)]

    def work(i):
        for _ in range(8):
            t0 = time.perf_counter()
            net.predict_raw(X)
            spans[i].append((t0, time.perf_counter()))

    _run_together(work, n_threads=2)
    overlap = sum(max(0.0, min(a1, b1) - max(a0, b0)) for a0, a1 in spans[0] for b0, b1 in spans[1])
    busy = sum(b - a for a, b in spans[0])
    # With the GIL held, C++ work could never overlap: only the Python glue around it.
    assert overlap > 0.2 * busy, f"calls overlapped {overlap:.3f} s of {busy:.3f} s"


@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_while_fitting_in_another_thread_is_refused(backend):
    # The first fit is long enough that the second is tried while it trains (in C++ for
    # the native backend: the lock is held while the GIL is released).
    n = 60_000 if backend == "native" else 12_000
    X, y = _data(n, n_in=32)
    net = _net(backend)
    result = {}

    def background():
        result["history"] = net.fit(
            X, y, epochs=2, batch_size=32, shuffle=False, optimizer="adam", progress=False
        )

    worker = threading.Thread(target=background)
    worker.start()
    refused = 0
    try:
        deadline = time.perf_counter() + 30
        while not net._fit_lock.locked() and time.perf_counter() < deadline:
            time.sleep(0.001)
        while worker.is_alive() and refused < 20:
            with pytest.raises(RuntimeError, match="fit is already running on this network"):
                net.fit(X[:100], y[:100], epochs=1, optimizer="sgd", progress=False)
            refused += 1
            time.sleep(0.01)
    finally:
        worker.join(timeout=120)
    assert refused >= 1, "the first fit ended before a second could be tried"
    assert result["history"].epochs == 2
    # The refused calls changed nothing: the parameters are those of an undisturbed fit.
    twin = _net(backend)
    twin.fit(X, y, epochs=2, batch_size=32, shuffle=False, optimizer="adam", progress=False)
    assert net.optimizer.kind == "adam"
    assert int(net.optimizer.step[0]) == int(twin.optimizer.step[0])
    for a, b in zip(net.layers, twin.layers):
        np.testing.assert_allclose(a.W, b.W, rtol=0, atol=1e-5)
