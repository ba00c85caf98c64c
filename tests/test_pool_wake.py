"""Building a Trainer that splits its hidden layer between two threads wakes the pool's
worker without waiting for it (ThreadPool::post, hidden_split.hpp's wake_partner), so
that the first run finds it awake. What that must not change: results, and the pool's
other uses right after, however they interleave with the woken worker.

Each scenario runs in a subprocess with a timeout, so that a run waiting forever for a
posted task fails the test instead of hanging the suite."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

HANG_SECONDS = 120  # each subprocess takes ~1 s

PRELUDE = textwrap.dedent(
    """
    import threading
    import numpy as np
    import densa
    from densa import native

    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 64)).astype(np.float32)
    y = rng.integers(0, 10, 300)

    def net(seed=0):
        return densa.Network(
            [densa.Dense(64, 64, "relu"), densa.Dense(64, 10, "identity")],
            loss="softmax_cross_entropy", seed=seed)

    def trained(seed=0, epochs=3):
        n = net(seed)
        n.fit(X, y, epochs=epochs, batch_size=32, optimizer=densa.SGD(0.1, momentum=0.9),
              progress=False)
        return [a.copy() for layer in n.layers for a in (layer.W, layer.b)]

    def trainer(n):
        return native.Trainer([l.W for l in n.layers], [l.b for l in n.layers],
                              ["relu", "identity"], "softmax_cross_entropy", "sgd",
                              dict(lr=0.1, momentum=0.9, nesterov=False, weight_decay=0.0),
                              [[np.zeros_like(l.W)] for l in n.layers],
                              [[np.zeros_like(l.b)] for l in n.layers], None, 32)

    def same(a, b):
        assert all(np.array_equal(p, q) for p, q in zip(a, b)), "results differ"

    assert trainer(net()).splits_hidden_layer  # the case that posts
    want = trained()
    """
)

SCENARIOS = {
    # Trainers built back to back: each post waits for the one before.
    "many trainers built, none run": """
        keep = [trainer(net(s)) for s in range(200)]
        same(trained(), want)
    """,
    # The pool is rebuilt while the woken worker may still be moving CPUs.
    "thread count changed right after building": """
        for n_threads in (1, 2, 1, 2):
            t = trainer(net())
            densa.set_num_threads(n_threads)
            same(trained(), want)
    """,
    # Other users of the pool (a split product) right after a post.
    "a parallel product right after building": """
        big = densa.Network([densa.Dense(1024, 1024, "relu")], loss="mse", seed=1)
        x = rng.standard_normal((512, 1024)).astype(np.float32)
        ref = big.predict(x)
        for _ in range(20):
            trainer(net())
            assert np.array_equal(big.predict(x), ref)
        same(trained(), want)
    """,
    # Two threads building and training at once: one of them finds the pool busy.
    "two threads building and training": """
        out, errors = {}, []
        def work(k):
            try:
                for _ in range(5):
                    trainer(net())
                out[k] = trained()
            except Exception as exc:
                errors.append(exc)
        threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
        for t in threads: t.start()
        for t in threads: t.join()
        assert not errors, errors
        same(out[0], want)
        same(out[1], want)
    """,
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_waking_the_partner_changes_nothing_else(scenario):
    code = PRELUDE + textwrap.dedent(SCENARIOS[scenario]) + "\nprint('ok')\n"
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=HANG_SECONDS
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"hung for {HANG_SECONDS} s: a run waited forever for the posted task")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")
