"""Memory: repeated calls do not grow the process's resident memory.

Resident memory (VmRSS in /proc/self/status) is read after a warm-up, which lets the
allocators (Python's, NumPy's, glibc's arenas) reach their steady state, then after
1 000 more calls. Measured growth is 0 MiB; the 8 MiB bound catches a leak of 8 KiB a
call (a trainer's workspaces here are ~40 KiB, the copy of the parameters and Adam
state that fit keeps ~7 KiB).
"""

from __future__ import annotations

import gc
import os

import numpy as np
import pytest

import densa
from densa import native

pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/self/status"), reason="reads VmRSS from /proc (Linux)"
)

BOUND_MIB = 8
CALLS = 1000


def _rss_mib() -> float:
    gc.collect()
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS line")  # pragma: no cover


def _growth(step, warmup=200, calls=CALLS) -> float:
    for i in range(warmup):
        step(i)
    before = _rss_mib()
    for i in range(calls):
        step(i)
    return _rss_mib() - before


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_repeated_fit_and_predict_do_not_grow_memory(backend):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 16)).astype(np.float32)
    y = rng.integers(0, 4, 256)
    net = densa.Network(
        [densa.Dense(16, 32, "relu"), densa.Dense(32, 4, "identity")],
        loss="softmax_cross_entropy",
        backend=backend,
        seed=0,
    )
    calls = CALLS if backend == "native" else CALLS // 4  # the reference is slower

    def step(i):
        net.fit(X, y, epochs=1, batch_size=64, optimizer="adam" if i % 2 else "sgd", progress=False)
        net.predict(X)
        net.evaluate(X, y)

    grown = _growth(step, calls=calls)
    assert grown < BOUND_MIB, f"resident memory grew {grown:.1f} MiB over {calls} fit/predict"
    assert np.isfinite(net.predict(X)).all()


def test_refused_and_failed_native_calls_do_not_leak():
    # The error paths: C++ exceptions (std::invalid_argument, std::bad_alloc after
    # some workspaces were allocated) must free what was allocated before the throw.
    hyper = {"lr": 0.1, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0}
    # x_ and t_ (10**6 floats each, 8 MB together) are allocated, then the first layer's
    # activations (10**13 elements) are not: a leak would be 8 MB a call.
    Ws = [np.ones((10**7, 1), np.float32), np.ones((1, 10**7), np.float32)]
    bs = [np.zeros(10**7, np.float32), np.zeros(1, np.float32)]
    W, b = np.ones((3, 4)), np.zeros(3)
    x_bad = np.ones((5, 7))

    def step(i):
        with pytest.raises(MemoryError):
            native.Trainer(
                Ws, bs, ["relu", "identity"], "mse", "sgd", hyper, [[]] * 2, [[]] * 2, None, 10**6
            )
        with pytest.raises(ValueError, match="x has shape"):
            native.dense_forward(W, b, x_bad, "relu")

    grown = _growth(step, warmup=20, calls=200)
    assert grown < BOUND_MIB, f"resident memory grew {grown:.1f} MiB over 200 failed calls"
