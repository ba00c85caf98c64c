"""A run stopped by an exception leaves the caller's state as after its last completed
batch: parameters, and momentum velocities as v (the native loop keeps μ·v between
batches, trainer.hpp); both backends refuse an order changed under them alike."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from densa import native, reference

BATCH = 32
MU = 0.9


def _trainer(Ws, bs, vWs, vbs, backend=native):
    acts = ["tanh", "relu", "identity"]  # three layers: the general loop, never the split
    hyper = dict(lr=0.01, momentum=MU, nesterov=False, weight_decay=0.0)
    return backend.Trainer(
        Ws, bs, acts, "mse", "sgd", hyper, [[v] for v in vWs], [[v] for v in vbs], None, BATCH
    )


def _fresh(seed=0):
    rng = np.random.default_rng(seed)
    sizes = (16, 24, 12, 3)
    Ws = [rng.normal(size=(o, i)) * 0.3 for i, o in zip(sizes[:-1], sizes[1:])]
    bs = [rng.normal(size=o) * 0.1 for o in sizes[1:]]
    return Ws, bs, [np.zeros_like(W) for W in Ws], [np.zeros_like(b) for b in bs]


@pytest.mark.parametrize(
    ("backend", "call"),
    [(native, "run"), (native, "run_epochs"), (reference, "run")],
    ids=["native-run", "native-run_epochs", "reference-run"],
)
def test_an_order_changed_under_a_run_leaves_the_velocity_as_v(backend, call):
    rng = np.random.default_rng(1)
    n = 2000
    X, T = rng.normal(size=(n, 16)), rng.normal(size=(n, 3))
    # 12 500 batches natively (25 ms or more), 625 in NumPy (~0.2 s or more)
    order = np.tile(np.arange(n, dtype=np.int64), 200 if backend is native else 10)
    bad_pos = order.size - 5  # in the last batch: every batch before it completes
    k = bad_pos // BATCH
    Ws, bs, vWs, vbs = _fresh()
    first_W = Ws[0].copy()
    t = _trainer(Ws, bs, vWs, vbs, backend)

    def scribble():
        # Once W has moved the trainer has checked the order and is training: then the
        # last batch's index goes out of range, long before the run reaches it.
        while np.array_equal(Ws[0], first_W):
            time.sleep(0.0005)
        order[bad_pos] = 10**12

    writer = threading.Thread(target=scribble, daemon=True)
    writer.start()
    if call == "run":
        run = lambda: t.run(X, T, order, BATCH, 0, 10**9)  # noqa: E731
    else:
        run = lambda: t.run_epochs(X, T, order.reshape(1, -1), BATCH)  # noqa: E731
    with pytest.raises(ValueError, match="order changed during training"):
        run()
    writer.join(10)
    order[bad_pos] = order[bad_pos - n]  # back to what it was (the tiled arange)
    # The same k batches, run to completion: the state a caller must find.
    want = _fresh()
    _trainer(*want, backend=backend).run(X, T, order, BATCH, 0, k)
    for name, got, expected in zip(("W", "b"), (Ws, bs), want[:2]):
        for j, (a, e) in enumerate(zip(got, expected)):
            np.testing.assert_array_equal(a, e, err_msg=f"{name}{j}")
    # v, not μ v: (μ v) / μ is within one rounding of v.
    for j, (a, e) in enumerate(zip(vWs + vbs, want[2] + want[3])):
        np.testing.assert_allclose(a, e, rtol=1e-15, atol=0, err_msg=f"velocity {j}")
