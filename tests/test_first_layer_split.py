"""The two-thread loop for networks whose first layer is wide (cpp/densa/first_layer_split.hpp).

Networks of three or more dense layers trained by SGD with momentum in float32, whose
first layer is large and whose upper layers are small beside it (W3's 784-256-128-10),
train with the first layer's units split between two threads. These tests check which
networks take that path, that it trains as the reference does (losses, activations,
depths, uneven splits, short batches), that its bits do not depend on the thread count
or on whether a second thread was free, and that runs, parts of runs, divergences,
refused orders and orders changed during a run behave as in the general loop.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import densa
from densa import _core, native, reference
from helpers import (
    TrainerOnCopies,
    assert_identical,
    assert_matches,
    train_with_threads,
    training_problem,
)

MOMENTUM = {"lr": 0.05, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0}

# (sizes, activations, loss, batch): W3 itself, at its batch and at one too large for
# densa's forward kernel; an uneven split (232 = 120 + 112) under binary cross-entropy;
# four layers, non-exact activations and mse.
SHAPES = {
    "w3": ((784, 256, 128, 10), ("relu", "relu", "identity"), "softmax_cross_entropy", 64),
    "w3-batch-100": (
        (784, 256, 128, 10),
        ("relu", "relu", "identity"),
        "softmax_cross_entropy",
        100,
    ),
    "uneven": ((600, 232, 40, 3), ("tanh", "gelu", "sigmoid"), "binary_cross_entropy", 48),
    "deep": ((300, 448, 64, 32, 5), ("elu", "leaky_relu", "softplus", "identity"), "mse", 32),
}
N_SAMPLES = 150  # not a multiple of any batch above: every epoch ends on a short batch
EPOCHS = 3

# Native against reference after 3 epochs (~10 updates): the same operations in a
# different summation order (products, and z2 as two partial sums); float32 differs by a
# few ulp per step, carried through the later steps (as tests/test_hidden_split.py).
TOL = {"rtol": 2e-4, "atol": 2e-5}


def orders(n_epochs, seed=1, n=N_SAMPLES):
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n) for _ in range(n_epochs)]).astype(np.int64)


class Run(TrainerOnCopies):
    """One trainer over its own copies of the parameters and velocities."""

    def __init__(self, backend, shape, seed=0, dtype=np.float32, hyper=MOMENTUM):
        sizes, activations, loss, self.batch = SHAPES[shape]
        Ws, bs, self.X, self.T = training_problem(sizes, N_SAMPLES, loss, dtype, seed)
        super().__init__(backend, Ws, bs, activations, loss, "sgd", hyper, self.batch)

    def run(self, order, first_batch=0, n_batches=10**6):
        return self.trainer.run(self.X, self.T, order, self.batch, first_batch, n_batches)

    def epochs(self, orders_):
        return self.trainer.run_epochs(self.X, self.T, orders_, self.batch)

    def arrays(self):
        return {k: v.copy() for k, v in super().arrays().items()}


@pytest.fixture
def split_disabled():
    _core._set_first_layer_split(False)
    try:
        yield
    finally:
        _core._set_first_layer_split(True)


def _splits(sizes, batch, dtype=np.float32, optimizer="sgd", hyper=MOMENTUM):
    Ws = [np.zeros((o, i), dtype) for i, o in zip(sizes, sizes[1:])]
    bs = [np.zeros(o, dtype) for o in sizes[1:]]
    acts = ["relu"] * (len(sizes) - 2) + ["identity"]
    n_state = 1 if optimizer == "sgd" else 2
    state = (
        [[np.zeros_like(W) for _ in range(n_state)] for W in Ws],
        [[np.zeros_like(b) for _ in range(n_state)] for b in bs],
    )
    step = np.zeros(1, np.int64) if optimizer == "adam" else None
    t = native.Trainer(Ws, bs, acts, "mse", optimizer, hyper, *state, step, batch)
    return t.splits_first_layer


def test_which_networks_split_the_first_layer(split_disabled):
    _core._set_first_layer_split(True)
    w3 = (784, 256, 128, 10)
    assert _splits(w3, 64)
    assert _splits(w3, 128)
    assert _splits((300, 448, 64, 32, 5), 32)
    assert not _splits(w3, 64, np.float64)  # W1's step needs the float32 momentum kernel
    assert not _splits(w3, 256)  # nor does the kernel take batches over 128
    assert not _splits((1024, 256, 128, 10), 64)  # rows 512 floats apart: no kernel either
    assert not _splits(w3, 64, hyper={**MOMENTUM, "momentum": 0.0})  # momentum only
    assert not _splits(w3, 64, hyper={**MOMENTUM, "nesterov": True})
    assert not _splits(w3, 64, hyper={**MOMENTUM, "l2": 0.1})
    adam = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}
    assert not _splits(w3, 64, optimizer="adam", hyper=adam)
    assert not _splits((784, 256, 10), 64)  # two layers
    assert not _splits((64, 64, 64, 10), 32)  # a first layer too small to halve
    assert not _splits((300, 256, 512, 400), 64)  # upper layers too large for one thread
    _core._set_first_layer_split(False)
    assert not _splits(w3, 64)  # the hook the comparisons below use


def test_the_first_layer_steps_on_the_momentum_kernel():
    t = Run(native, "w3").trainer
    assert t.splits_first_layer
    assert not t.splits_hidden_layer
    assert t.momentum_kernel_layers == [True, False, False]


@pytest.mark.parametrize("shape", list(SHAPES))
def test_matches_reference(shape):
    runs = {name: Run(be, shape) for name, be in (("native", native), ("reference", reference))}
    assert runs["native"].trainer.splits_first_layer
    for epoch, order in enumerate(orders(EPOCHS)):
        got = runs["native"].run(order)
        want = runs["reference"].run(order)
        assert got[1:6] == want[1:6], f"epoch {epoch}: samples, batches, divergence, penalty"
        assert_matches(got[0], want[0], f"loss sum, epoch {epoch}", tol_dtype=np.float32, **TOL)
        got_arrays, want_arrays = runs["native"].arrays(), runs["reference"].arrays()
        assert got_arrays.keys() == want_arrays.keys()
        for name, a in got_arrays.items():  # W, b and both velocities (v, never μ v)
            assert_matches(a, want_arrays[name], f"{name} after epoch {epoch}", **TOL)


@pytest.mark.parametrize("shape", ["w3", "deep"])
def test_matches_the_general_loop(shape, split_disabled):
    general = Run(native, shape)
    assert not general.trainer.splits_first_layer
    _core._set_first_layer_split(True)
    split = Run(native, shape)
    assert split.trainer.splits_first_layer
    o = orders(EPOCHS)
    assert_matches(np.array(split.epochs(o)[0]), np.array(general.epochs(o)[0]), "losses", **TOL)
    for name, a in split.arrays().items():
        assert_matches(a, general.arrays()[name], f"{name}, split against general", **TOL)


@pytest.mark.parametrize("epochs_at_once", [False, True], ids=["run", "run_epochs"])
@pytest.mark.parametrize("shape", ["w3", "uneven"])
def test_bitwise_identical_across_thread_counts(shape, epochs_at_once):
    # One thread runs both halves in turn; two and three threads run them at once.
    def make_run():
        return Run(native, shape)

    base_losses, base = train_with_threads(make_run, 1, orders(EPOCHS), epochs_at_once)
    for threads in (2, 3):
        losses, arrays = train_with_threads(make_run, threads, orders(EPOCHS), epochs_at_once)
        np.testing.assert_array_equal(losses, base_losses, err_msg=f"{threads} threads")
        assert_identical(arrays, base, f"with {threads} threads")


def test_a_busy_pool_gives_the_same_bits():
    # Trainers on several Python threads at once: one gets the second thread, the others
    # find the pool busy and run both halves in turn. All must end alike.
    def make_run():
        return Run(native, "w3")

    _, alone = train_with_threads(make_run, 2, orders(EPOCHS), True)
    results, errors = [None] * 4, []

    def train(i):
        try:
            results[i] = train_with_threads(make_run, 2, orders(EPOCHS), i % 2 == 0)[1]
        except Exception as exc:  # reported below, not lost in the thread
            errors.append(exc)

    with densa.threads(2):
        workers = [threading.Thread(target=train, args=(i,)) for i in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    assert not errors
    for i, arrays in enumerate(results):
        assert_identical(arrays, alone, f"on Python thread {i}")


def test_epochs_at_once_one_by_one_and_in_parts_agree():
    o = orders(EPOCHS)
    at_once = Run(native, "uneven")
    means = at_once.epochs(o)[0]
    one_by_one = Run(native, "uneven")
    sums = [one_by_one.run(order)[0] for order in o]
    in_parts = Run(native, "uneven")
    for order in o:
        first = 0
        for size in (1, 2, 10):  # uneven parts, the last one past the end
            in_parts.run(order, first, size)
            first += size
    np.testing.assert_array_equal(np.array(means), np.array(sums) / N_SAMPLES)
    assert_identical(at_once.arrays(), one_by_one.arrays(), "run_epochs against run")
    assert_identical(in_parts.arrays(), one_by_one.arrays(), "an epoch in parts")


def test_divergence_stops_before_the_bad_batch():
    o = orders(3)
    batch = SHAPES["w3"][3]
    bad_sample = o[1][batch + 5]  # epoch 1, batch 1
    r = Run(native, "w3")
    r.X[bad_sample, 0] = np.nan
    o[0][o[0] == bad_sample] = (bad_sample + 1) % N_SAMPLES  # epoch 0 never meets it
    means, seconds, diverged, bad_batch, penalties = r.epochs(o)
    assert (len(means), len(seconds), len(penalties), diverged, bad_batch) == (1, 1, 1, True, 1)
    ref = Run(native, "w3")
    ref.run(o[0])
    ref.run(o[1], 0, 1)
    # Every array as after the last good batch, velocities included (the split keeps v).
    assert_identical(r.arrays(), ref.arrays(), "after the divergence")


def test_refused_orders_train_nothing():
    r = Run(native, "w3")
    before = r.arrays()
    bad = orders(2)
    bad[1][7] = N_SAMPLES  # out of range in the second epoch
    with pytest.raises(ValueError, match="order holds an index out of range"):
        r.epochs(bad)
    assert_identical(r.arrays(), before, "after a refused run_epochs")
    with pytest.raises(ValueError, match="order holds an index out of range"):
        r.run(bad[1])
    assert_identical(r.arrays(), before, "after a refused run")


@pytest.mark.parametrize("call", ["run", "run_epochs"])
def test_an_order_changed_under_a_run_stops_after_whole_batches(call):
    # Another thread puts an index out of range while the run trains: the run raises,
    # and leaves every array as after some number k of whole batches, the same k batches
    # a run stopped there would have left (never a batch applied by one team only).
    r = Run(native, "w3")
    batch = r.batch
    order = np.tile(orders(1)[0], 400)  # 938 batches: 0.1 s or more
    bad_pos = order.size - 5  # in the last batch
    first_W = r.Ws[0].copy()

    def scribble():
        while np.array_equal(r.Ws[0], first_W):  # training has started
            time.sleep(0.0005)
        order[bad_pos] = 10**12

    writer = threading.Thread(target=scribble, daemon=True)
    writer.start()
    with pytest.raises(ValueError, match="order changed during training"):
        r.run(order) if call == "run" else r.epochs(order.reshape(1, -1))
    writer.join(10)
    order[bad_pos] = order[bad_pos - N_SAMPLES]
    got = r.arrays()
    k = bad_pos // batch  # every batch before the one that holds the bad index
    want = Run(native, "w3")
    want.run(order, 0, k)
    assert_identical(got, want.arrays(), f"after {k} whole batches")
