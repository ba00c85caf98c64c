"""The two-thread loop for one-hidden-layer networks (cpp/densa/hidden_split.hpp).

Networks of two dense layers whose products are too small to cut into slabs train with
their hidden units split between two threads. These tests check which networks take
that path, that it trains as the reference does (every loss, activation and optimizer),
that its bits do not depend on the thread count or on whether a second thread was free,
and that runs, parts of runs, divergences and refused calls behave as in the general
loop (tests/test_trainer_kernels.py).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import densa
from densa import _core, native, reference
from helpers import (
    ADAM_F32_TOL,
    ADAMW,
    L2_ADAM,
    L2_MOMENTUM,
    MOMENTUM,
    NESTEROV,
    SGD,
    TRAIN_TOL,
    TrainerOnCopies,
    assert_identical,
    assert_matches,
    train_with_threads,
    training_problem,
)

# (loss, activations, optimizer, hyper): every loss, exact and non-exact activations on
# both layers, and each optimizer path (plain SGD, momentum folded into the product,
# Nesterov with weight decay, AdamW).
CONFIGS = {
    "softmax-momentum": ("softmax_cross_entropy", ("relu", "identity"), "sgd", MOMENTUM),
    "mse-sgd": ("mse", ("tanh", "leaky_relu"), "sgd", SGD),
    "bce-nesterov": ("binary_cross_entropy", ("gelu", "sigmoid"), "sgd", NESTEROV),
    "softmax-adamw": ("softmax_cross_entropy", ("elu", "softplus"), "adam", ADAMW),
    # scikit-learn's alpha: each team adds (l2/n_b)·W to its slices' gradients.
    "softmax-momentum-l2": ("softmax_cross_entropy", ("relu", "identity"), "sgd", L2_MOMENTUM),
    "mse-adam-l2": ("mse", ("tanh", "identity"), "adam", L2_ADAM),
}

# (n_in, hidden, n_out, batch): the digits network; uneven splits (100 = 48 + 52,
# 33 = 16 + 17); one output; a batch that does not divide the samples (N below).
SHAPES = {
    "digits": (64, 64, 10, 32),
    "uneven": (100, 100, 7, 16),
    "odd-hidden": (200, 33, 2, 16),
    "one-output": (20, 200, 1, 16),
}
N_SAMPLES = 150  # not a multiple of any batch above: every epoch ends on a short batch
EPOCHS = 3

# Native against reference after 3 epochs (~30 updates): TRAIN_TOL, and ADAM_F32_TOL for
# AdamW in float32 (tests/helpers.py says why).


def train_tol(config, dtype):
    if CONFIGS[config][2] == "adam" and np.dtype(dtype) == np.float32:
        return ADAM_F32_TOL
    return TRAIN_TOL[np.dtype(dtype)]


def make_problem(shape, loss, dtype, seed=0):
    n_in, hidden, n_out, _ = shape
    return training_problem((n_in, hidden, n_out), N_SAMPLES, loss, dtype, seed)


def orders(n_epochs, seed=1):
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(N_SAMPLES) for _ in range(n_epochs)]).astype(np.int64)


class Run(TrainerOnCopies):
    """One trainer over its own copies of the parameters and optimizer state."""

    def __init__(self, backend, config, shape, dtype, seed=0):
        loss, activations, optimizer, hyper = CONFIGS[config]
        Ws, bs, self.X, self.T = make_problem(shape, loss, dtype, seed)
        self.batch = shape[3]
        super().__init__(backend, Ws, bs, activations, loss, optimizer, hyper, self.batch)

    def run(self, order, first_batch=0, n_batches=10**6):
        return self.trainer.run(self.X, self.T, order, self.batch, first_batch, n_batches)

    def epochs(self, orders_):
        return self.trainer.run_epochs(self.X, self.T, orders_, self.batch)

    def arrays(self):
        """Copies of every trained array, Adam's step count included."""
        named = super().arrays()
        if self.step is not None:
            named["step"] = self.step
        return {k: v.copy() for k, v in named.items()}


def assert_trained_alike(got, expected, dtype, when, tol=None):
    assert got.keys() == expected.keys()
    tol = tol or TRAIN_TOL[np.dtype(dtype)]
    for name, a in got.items():
        if name == "step":  # Adam's update count
            np.testing.assert_array_equal(a, expected[name], err_msg=f"{name} {when}")
        else:
            assert_matches(a, expected[name], f"{name} {when}", **tol)


@pytest.fixture
def split_disabled():
    _core._set_hidden_split(False)
    try:
        yield
    finally:
        _core._set_hidden_split(True)


def _splits(sizes, batch, dtype=np.float32):
    Ws = [np.zeros((o, i), dtype) for i, o in zip(sizes, sizes[1:])]
    bs = [np.zeros(o, dtype) for o in sizes[1:]]
    acts = ["relu"] * (len(sizes) - 2) + ["identity"]
    state = [[np.zeros_like(W)] for W in Ws], [[np.zeros_like(b)] for b in bs]
    t = native.Trainer(Ws, bs, acts, "mse", "sgd", MOMENTUM, *state, None, batch)
    return t.splits_hidden_layer


def test_which_networks_split(split_disabled):
    _core._set_hidden_split(True)
    assert _splits((64, 64, 10), 32)  # the digits network
    assert _splits((64, 64, 10), 32, np.float64)
    assert _splits((200, 33, 2), 16)
    assert not _splits((64, 64, 64, 10), 32)  # three layers
    assert not _splits((64, 16, 10), 32)  # too few hidden units to halve
    assert not _splits((2, 32, 1), 8)  # too little work per batch to repay the exchange
    assert not _splits((784, 1024, 10), 512)  # products large enough for slabs
    _core._set_hidden_split(False)
    assert not _splits((64, 64, 10), 32)  # the hook the comparisons below use


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
@pytest.mark.parametrize("config", list(CONFIGS))
def test_matches_reference(config, shape, dtype):
    runs = {
        name: Run(be, config, shape, dtype)
        for name, be in (("native", native), ("reference", reference))
    }
    assert runs["native"].trainer.splits_hidden_layer
    tol = train_tol(config, dtype)
    for epoch, order in enumerate(orders(EPOCHS)):
        got = runs["native"].run(order)
        want = runs["reference"].run(order)
        assert got[1:5] == want[1:5], f"epoch {epoch}: samples, batches, divergence"
        assert_matches(got[0], want[0], f"loss sum, epoch {epoch}", tol_dtype=dtype, **tol)
        # l2's penalty, summed by the teams over their own slices of W1 and W2.
        assert_matches(got[5], want[5], f"penalty sum, epoch {epoch}", tol_dtype=dtype, **tol)
        assert_trained_alike(
            runs["native"].arrays(),
            runs["reference"].arrays(),
            dtype,
            f"after epoch {epoch}",
            tol,
        )


@pytest.mark.parametrize("config", list(CONFIGS))
def test_matches_the_general_loop(config, split_disabled):
    shape, dtype = SHAPES["digits"], np.float64
    general = Run(native, config, shape, dtype)
    assert not general.trainer.splits_hidden_layer
    _core._set_hidden_split(True)
    split = Run(native, config, shape, dtype)
    assert split.trainer.splits_hidden_layer
    o = orders(EPOCHS)
    means_general = general.epochs(o)[0]
    means_split = split.epochs(o)[0]
    assert_matches(
        np.array(means_split), np.array(means_general), "epoch losses", **TRAIN_TOL[np.dtype(dtype)]
    )
    assert_trained_alike(split.arrays(), general.arrays(), dtype, "split against general")


def _train_with_threads(config, shape, dtype, threads, epochs_at_once):
    def make_run():
        return Run(native, config, shape, dtype)

    return train_with_threads(make_run, threads, orders(EPOCHS), epochs_at_once)


@pytest.mark.parametrize("epochs_at_once", [False, True], ids=["run", "run_epochs"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_bitwise_identical_across_thread_counts(config, dtype, epochs_at_once):
    # One thread runs both halves in turn; two and three threads run them at once.
    shape = SHAPES["uneven"]
    base_losses, base = _train_with_threads(config, shape, dtype, 1, epochs_at_once)
    for threads in (2, 3):
        losses, arrays = _train_with_threads(config, shape, dtype, threads, epochs_at_once)
        np.testing.assert_array_equal(losses, base_losses, err_msg=f"{threads} threads")
        assert_identical(arrays, base, f"with {threads} threads")


def test_a_busy_pool_gives_the_same_bits():
    # Trainers on several Python threads at once: one gets the second thread, the others
    # find the pool busy and run both halves in turn. All must end alike.
    config, shape, dtype = "softmax-momentum", SHAPES["digits"], np.float32
    _, alone = _train_with_threads(config, shape, dtype, 2, True)
    results, errors = [None] * 4, []

    def train(i):
        try:
            results[i] = _train_with_threads(config, shape, dtype, 2, i % 2 == 0)[1]
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


@pytest.mark.parametrize("config", list(CONFIGS))
def test_epochs_at_once_one_by_one_and_in_parts_agree(config):
    shape, dtype = SHAPES["digits"], np.float32
    o = orders(EPOCHS)
    at_once = Run(native, config, shape, dtype)
    means = at_once.epochs(o)[0]
    one_by_one = Run(native, config, shape, dtype)
    sums = [one_by_one.run(order)[0] for order in o]
    in_parts = Run(native, config, shape, dtype)
    per_epoch = -(-N_SAMPLES // shape[3])
    for order in o:
        first = 0
        for size in (1, 2, per_epoch):  # uneven parts, the last one past the end
            in_parts.run(order, first, size)
            first += size
    # run_epochs reports each epoch's sum / samples, divided in float64 as here.
    np.testing.assert_array_equal(np.array(means), np.array(sums) / N_SAMPLES)
    assert_identical(at_once.arrays(), one_by_one.arrays(), "run_epochs against run")
    assert_identical(in_parts.arrays(), one_by_one.arrays(), "an epoch in parts")


@pytest.mark.parametrize("config", ["softmax-momentum", "softmax-adamw", "mse-sgd"])
def test_divergence_stops_before_the_bad_batch(config):
    shape, dtype = SHAPES["digits"], np.float64
    o = orders(3)
    batch = shape[3]
    bad_sample = o[1][2 * batch + 5]  # epoch 1, batch 2
    r = Run(native, config, shape, dtype)
    r.X[bad_sample, 0] = np.nan
    # Epoch 0 must not meet the bad sample: it visits another one in its place.
    o[0][o[0] == bad_sample] = (bad_sample + 1) % N_SAMPLES
    means, seconds, diverged, bad_batch, penalties = r.epochs(o)
    assert (len(means), len(seconds), len(penalties), diverged, bad_batch) == (1, 1, 1, True, 2)
    ref = Run(native, config, shape, dtype)
    ref.run(o[0])
    ref.run(o[1], 0, 2)
    expected = ref.arrays()
    for name, a in r.arrays().items():
        if name.startswith("state0_W") and config == "softmax-momentum":
            # μ v held between batches is divided back after a divergence (trainer.hpp):
            # within one rounding of v.
            assert_matches(a, expected[name], name, rtol=1e-15, atol=0)
        else:
            np.testing.assert_array_equal(a, expected[name], err_msg=name)
    if r.step is not None:
        assert r.step[0] == per_epoch_batches(shape) + 2  # updates that happened


def per_epoch_batches(shape):
    return -(-N_SAMPLES // shape[3])


def test_adam_counts_its_steps():
    shape = SHAPES["digits"]
    r = Run(native, "softmax-adamw", shape, np.float32)
    r.run(orders(1)[0], 0, 3)
    assert r.step[0] == 3
    r.epochs(orders(2))
    assert r.step[0] == 3 + 2 * per_epoch_batches(shape)


def test_refused_orders_train_nothing():
    shape = SHAPES["digits"]
    r = Run(native, "softmax-momentum", shape, np.float32)
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
    # Another thread puts an index out of range while the run trains. The team that
    # gathers the next minibatch ahead meets it first; the run must still raise only
    # where that batch starts, leaving every array as after the whole batches before it
    # (it had stopped that team before its half of the batch in hand, while the other
    # team applied its own).
    shape = SHAPES["digits"]
    batch = shape[3]
    order = np.tile(orders(1)[0], 6400)  # 30 000 batches
    bad_pos = order.size - 5  # in the last batch
    # The teams train on private copies of their slices, so the caller's arrays do not
    # show when training has started: the index changes a quarter of the way through a
    # whole run's time, measured here (the order's check before training takes ~1% of it).
    started = time.perf_counter()
    Run(native, "softmax-momentum", shape, np.float32).run(order)
    delay = (time.perf_counter() - started) / 4
    r = Run(native, "softmax-momentum", shape, np.float32)

    def scribble():
        time.sleep(delay)
        order[bad_pos] = 10**12

    writer = threading.Thread(target=scribble, daemon=True)
    writer.start()
    with pytest.raises(ValueError, match="order changed during training"):
        r.run(order) if call == "run" else r.epochs(order.reshape(1, -1))
    writer.join(10)
    order[bad_pos] = order[bad_pos - N_SAMPLES]
    k = bad_pos // batch  # every batch before the one that holds the bad index
    want = Run(native, "softmax-momentum", shape, np.float32)
    want.run(order, 0, k)
    assert_identical(r.arrays(), want.arrays(), f"after {k} whole batches")
