"""The two-thread loop for networks whose first layer is wide (cpp/densa/first_layer_split.hpp).

Networks of three or more dense layers whose first layer is large and whose upper layers
are small beside it (W3's 784-256-128-10) train with the first layer's units split
between two threads. These tests check which networks take that path, that it trains as
the reference does (every optimizer path, both dtypes, losses, activations, depths,
uneven splits, short batches), that its bits do not depend on the thread count or on
whether a second thread was free, and that runs, parts of runs, divergences, refused
orders and orders changed during a run behave as in the general loop.
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

# Each optimizer path: momentum formed in the products (and, in float32, W1's rows on the
# momentum kernel), plain SGD, Nesterov with weight decay, AdamW, and scikit-learn's l2
# (each team adds it to its slices, the upper network to its layers).
CONFIGS = {
    "momentum": ("sgd", MOMENTUM),
    "sgd": ("sgd", SGD),
    "nesterov-wd": ("sgd", NESTEROV),
    "adamw": ("adam", ADAMW),
    "momentum-l2": ("sgd", L2_MOMENTUM),
    "adam-l2": ("adam", L2_ADAM),
}

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

# Native against reference after 3 epochs (~10 updates): TRAIN_TOL, and ADAM_F32_TOL for
# Adam in float32 (tests/helpers.py says why; test_matches_reference holds float32 Adam to
# a float64 run instead).


def train_tol(config, dtype):
    if CONFIGS[config][0] == "adam" and np.dtype(dtype) == np.float32:
        return ADAM_F32_TOL
    return TRAIN_TOL[np.dtype(dtype)]


def orders(n_epochs, seed=1, n=N_SAMPLES):
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n) for _ in range(n_epochs)]).astype(np.int64)


class Run(TrainerOnCopies):
    """One trainer over its own copies of the parameters and velocities."""

    def __init__(self, backend, shape, config="momentum", dtype=np.float32, seed=0):
        self.shape, self.config = shape, config
        sizes, activations, loss, self.batch = SHAPES[shape]
        optimizer, hyper = CONFIGS[config]
        Ws, bs, self.X, self.T = training_problem(sizes, N_SAMPLES, loss, dtype, seed)
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


# Momentum SGD splits only where W1's rows take the momentum kernel, which the baseline
# module (CPUs without AVX2) does not have: there, tests of the split skip it.
MOMENTUM_SPLITS = _core._momentum_kernel_applies(128, 784, 64)


def needs_split(config):
    if config == "momentum" and not MOMENTUM_SPLITS:
        pytest.skip("momentum SGD splits only on the momentum kernel, not in this module")


@pytest.fixture
def split_disabled():
    _core._set_first_layer_split(False)
    try:
        yield
    finally:
        _core._set_first_layer_split(True)


def _trainer(sizes, batch, dtype=np.float32, config="momentum"):
    optimizer, hyper = CONFIGS[config]
    Ws = [np.zeros((o, i), dtype) for i, o in zip(sizes, sizes[1:])]
    bs = [np.zeros(o, dtype) for o in sizes[1:]]
    acts = ["relu"] * (len(sizes) - 2) + ["identity"]
    n_state = 1 if optimizer == "sgd" else 2
    state_W = [[np.zeros_like(W) for _ in range(n_state)] for W in Ws]
    state_b = [[np.zeros_like(b) for _ in range(n_state)] for b in bs]
    step = np.zeros(1, np.int64) if optimizer == "adam" else None
    return native.Trainer(Ws, bs, acts, "mse", optimizer, hyper, state_W, state_b, step, batch)


def _splits(*args, **kwargs):
    return _trainer(*args, **kwargs).splits_first_layer


def test_which_networks_split_the_first_layer(split_disabled):
    _core._set_first_layer_split(True)
    w3 = (784, 256, 128, 10)
    for config in CONFIGS:
        # Momentum SGD only where W1's rows take the float32 momentum kernel (at most 128
        # samples a batch) and no other layer would have: else the general loop, which
        # keeps μ v between batches to spare OpenBLAS a pass (float64 W3: 1.23x slower).
        momentum = config == "momentum"
        assert _splits(w3, 64, config=config) == (MOMENTUM_SPLITS or not momentum), config
        assert _splits(w3, 64, np.float64, config) != momentum, config
        assert _splits(w3, 256, config=config) != momentum, config
        assert _splits((300, 250, 270, 5), 16, config=config) != momentum, config
    # The shapes (plain SGD, which splits in every module):
    assert _splits((300, 448, 64, 32, 5), 32, config="sgd")
    assert not _splits((784, 256, 10), 64, config="sgd")  # two layers
    assert not _splits((64, 64, 64, 10), 32, config="sgd")  # a first layer too small to cut
    assert not _splits((784, 16, 128, 10), 64, config="sgd")  # too few units to halve
    assert not _splits((300, 256, 512, 400), 64, config="sgd")  # upper layers too large
    _core._set_first_layer_split(False)
    assert not _splits(w3, 64, config="sgd")  # the hook the comparisons below use


def test_the_first_layers_rows_step_on_the_momentum_kernel_where_the_general_loop_would():
    needs_split("momentum")
    w3 = (784, 256, 128, 10)
    t = _trainer(w3, 64)
    assert t.splits_first_layer
    assert not t.splits_hidden_layer
    assert t.momentum_kernel_layers == [True, False, False]
    assert _trainer(w3, 64, config="adamw").momentum_kernel_layers == [False] * 3
    assert _trainer(w3, 64, np.float64).momentum_kernel_layers == [False] * 3
    assert _trainer((1024, 256, 128, 10), 64).momentum_kernel_layers == [False] * 3


def _float64_twin(run):
    """A float64 reference Run from ``run``'s float32 initial values and data."""
    twin = Run(reference, run.shape, run.config, np.float64)
    for mine, theirs in zip(twin.Ws + twin.bs, run.Ws + run.bs):
        mine[...] = theirs
    twin.X[...], twin.T[...] = run.X, run.T
    return twin


# Every optimizer path in both dtypes, except momentum SGD in float64 (never split).
CONFIG_DTYPES = [
    (config, dtype)
    for config in CONFIGS
    for dtype in (np.float32, np.float64)
    if not (config == "momentum" and dtype == np.float64)
]


@pytest.mark.parametrize(("config", "dtype"), CONFIG_DTYPES)
@pytest.mark.parametrize("shape", list(SHAPES))
def test_matches_reference(shape, config, dtype):
    needs_split(config)
    runs = {
        name: Run(be, shape, config, dtype)
        for name, be in (("native", native), ("reference", reference))
    }
    assert runs["native"].trainer.splits_first_layer
    # Adam in float32 moves a weight by up to lr per step whatever its gradient's size, so
    # the few ulp in which two summation orders differ move weights whose gradients are
    # near zero by up to ~1e-3 here, in the float32 reference itself: against a float64
    # run from the same start, deep/adam-l2's W0 is 2.0e-3 off in the reference and in
    # the general loop, 2.9e-4 in the split, and which weights are hit is luck. So in
    # float32 Adam is held to the float64 run: per array, the split's root-mean-square
    # distance from it within 3x the float32 reference's (measured: up to 2.0x, more only
    # where both are a few ulp, under the floor of 1e-5 relative), and no weight a whole
    # step (lr) away from it. Adam's moments are not compared: their few-ulp noise in
    # near-zero gradients is relatively large (W0's m: 6e-5 relative in the baseline
    # module, against 1e-5 in the reference), and the parameters carry what it does.
    adam_f32 = CONFIGS[config][0] == "adam" and np.dtype(dtype) == np.float32
    if adam_f32:
        runs["float64"] = _float64_twin(runs["native"])
    tol = TRAIN_TOL[np.dtype(dtype)]
    for epoch, order in enumerate(orders(EPOCHS)):
        got, want = (runs[name].run(order) for name in ("native", "reference"))
        if adam_f32:
            runs["float64"].run(order)
        assert got[1:5] == want[1:5], f"epoch {epoch}: samples, batches, divergence"
        loss_tol = ADAM_F32_TOL if adam_f32 else tol
        assert_matches(got[0], want[0], f"loss sum, epoch {epoch}", tol_dtype=dtype, **loss_tol)
        # l2's penalty: the teams' slices of W1 and W2, and the upper layers'.
        assert_matches(got[5], want[5], f"penalty sum, epoch {epoch}", tol_dtype=dtype, **loss_tol)
        arrays = {name: r.arrays() for name, r in runs.items()}
        assert arrays["native"].keys() == arrays["reference"].keys()
        for name, a in arrays["native"].items():  # W, b, optimizer state (v, never μ v), step
            when = f"{name} after epoch {epoch}"
            if name == "step":
                np.testing.assert_array_equal(a, arrays["reference"][name], err_msg=when)
            elif adam_f32:
                if name.startswith("state"):
                    continue  # the moments: what they carry, the parameters show
                truth = arrays["float64"][name]

                def rms(x):
                    return float(np.sqrt(np.mean(np.square(x))))

                err, ref_err = rms(a - truth), rms(arrays["reference"][name] - truth)
                floor = 1e-5 * rms(truth) + 1e-9  # ~100 float32 ulp of the array's values
                assert err <= 3 * ref_err + floor, f"{when}: {err:.3g} off, reference {ref_err:.3g}"
                lr = CONFIGS[config][1]["lr"]
                assert np.max(np.abs(a - truth)) < lr, f"{when}: a weight a whole step away"
            else:
                assert_matches(a, arrays["reference"][name], when, **tol)


@pytest.mark.parametrize("config", ["momentum", "adamw", "adam-l2"])
@pytest.mark.parametrize("shape", ["w3", "deep"])
def test_matches_the_general_loop(shape, config, split_disabled):
    needs_split(config)
    dtype = np.float32 if config == "momentum" else np.float64  # momentum splits in float32
    general = Run(native, shape, config, dtype)
    assert not general.trainer.splits_first_layer
    _core._set_first_layer_split(True)
    split = Run(native, shape, config, dtype)
    assert split.trainer.splits_first_layer
    o = orders(EPOCHS)
    tol = train_tol(config, dtype)
    assert_matches(np.array(split.epochs(o)[0]), np.array(general.epochs(o)[0]), "losses", **tol)
    general_arrays = general.arrays()
    for name, a in split.arrays().items():
        if name == "step":  # Adam's update count
            np.testing.assert_array_equal(a, general_arrays[name], err_msg=name)
        else:
            assert_matches(a, general_arrays[name], f"{name}, split against general", **tol)


@pytest.mark.parametrize("epochs_at_once", [False, True], ids=["run", "run_epochs"])
@pytest.mark.parametrize(
    ("shape", "config", "dtype"),
    [
        ("w3", "momentum", np.float32),  # W1's rows on the momentum kernel
        ("uneven", "momentum", np.float32),
        ("uneven", "adam-l2", np.float32),  # the penalty summed per team and in U
        ("deep", "nesterov-wd", np.float64),
    ],
)
def test_bitwise_identical_across_thread_counts(shape, config, dtype, epochs_at_once):
    needs_split(config)

    # One thread runs both halves in turn; two and three threads run them at once.
    def make_run():
        return Run(native, shape, config, dtype)

    base_losses, base = train_with_threads(make_run, 1, orders(EPOCHS), epochs_at_once)
    for threads in (2, 3):
        losses, arrays = train_with_threads(make_run, threads, orders(EPOCHS), epochs_at_once)
        np.testing.assert_array_equal(losses, base_losses, err_msg=f"{threads} threads")
        assert_identical(arrays, base, f"with {threads} threads")


def test_a_busy_pool_gives_the_same_bits():
    needs_split("momentum")

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


@pytest.mark.parametrize("config", ["momentum", "adamw"])
def test_epochs_at_once_one_by_one_and_in_parts_agree(config):
    needs_split(config)
    o = orders(EPOCHS)
    at_once = Run(native, "uneven", config)
    means = at_once.epochs(o)[0]
    one_by_one = Run(native, "uneven", config)
    sums = [one_by_one.run(order)[0] for order in o]
    in_parts = Run(native, "uneven", config)
    for order in o:
        first = 0
        for size in (1, 2, 10):  # uneven parts, the last one past the end
            in_parts.run(order, first, size)
            first += size
    np.testing.assert_array_equal(np.array(means), np.array(sums) / N_SAMPLES)
    assert_identical(at_once.arrays(), one_by_one.arrays(), "run_epochs against run")
    assert_identical(in_parts.arrays(), one_by_one.arrays(), "an epoch in parts")


@pytest.mark.parametrize("config", ["momentum", "adamw"])
def test_divergence_stops_before_the_bad_batch(config):
    needs_split(config)
    o = orders(3)
    batch = SHAPES["w3"][3]
    bad_sample = o[1][batch + 5]  # epoch 1, batch 1
    r = Run(native, "w3", config)
    r.X[bad_sample, 0] = np.nan
    o[0][o[0] == bad_sample] = (bad_sample + 1) % N_SAMPLES  # epoch 0 never meets it
    means, seconds, diverged, bad_batch, penalties = r.epochs(o)
    assert (len(means), len(seconds), len(penalties), diverged, bad_batch) == (1, 1, 1, True, 1)
    ref = Run(native, "w3", config)
    ref.run(o[0])
    ref.run(o[1], 0, 1)
    # Every array as after the last good batch, velocities and Adam's step count
    # included (the split keeps v, never μ v).
    assert_identical(r.arrays(), ref.arrays(), "after the divergence")


def test_refused_orders_train_nothing():
    needs_split("momentum")
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
    needs_split("momentum")
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
