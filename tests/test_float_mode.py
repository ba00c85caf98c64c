"""The floating-point mode native training computes in (cpp/densa/float_mode.hpp).

Subnormal numbers are flushed to zero, and floating-point traps are off.

A weight whose gradient is exactly zero (here: inputs whose first columns are all 0, as
the border pixels of scikit-learn's digits are) keeps an optimizer state that only
decays, v <- μ·v, and in IEEE arithmetic it stops a few ulp above zero, subnormal for
good, where every later step pays the CPU's slow path for subnormals. The native trainer
flushes them to zero instead. These tests seed such states and check, on every path a
trainer can take (a small network on one thread, the general loop at W3's size, the
hidden-layer split, the first-layer split and its momentum kernel):

- that the native trainer leaves them exactly 0 while the reference keeps them subnormal
  (so the flush happened, and happened in every thread);
- that everything else still matches the reference, and the weights of the zero columns
  are the reference's bit for bit (a subnormal step is below their last bit);
- that the bits do not depend on the thread count: the pool's workers compute in the
  caller's mode (without that, the two splits' second thread kept its subnormals);
- that the caller's own mode comes back afterwards, also after a refused call;
- that a process which enabled floating-point traps (feenableexcept) gets a
  TrainingDivergedError from a diverging fit, not a SIGFPE that kills it, on one thread
  and on two, with its traps back afterwards.
"""

from __future__ import annotations

import contextlib
import platform
import subprocess
import sys

import numpy as np
import pytest

import densa
from densa import _core, native, reference
from helpers import (
    ADAM_F32_TOL,
    ADAMW,
    MOMENTUM,
    NESTEROV,
    TRAIN_TOL,
    TrainerOnCopies,
    assert_identical,
    assert_matches,
    training_problem,
)

FLUSHES = bool(_core.flushes_subnormals)
# Inputs that are 0 in every sample, whose weights' gradients are therefore exactly 0:
# the first two and the last two, so that a product cut into slabs (along the inputs, or
# along the units) has some in every slab, whichever thread computes it.
ZERO_COLUMNS = [0, 1, -2, -1]
N_SAMPLES = 150
EPOCHS = 3  # 5 batches per epoch at batch 32, 15 steps: state seeded at 1.5 x the smallest
# normal number falls under it within 4 steps at μ = 0.9 (1.5 · 0.9^4 < 1)

# (sizes, activations, loss, batch, which path the trainer must take)
SHAPES = {
    "small": ((8, 6, 3), ("relu", "identity"), "softmax_cross_entropy", 32, "general"),
    "digits": ((64, 64, 10), ("relu", "identity"), "softmax_cross_entropy", 32, "hidden"),
    "w3": ((784, 256, 128, 10), ("relu", "relu", "identity"), "softmax_cross_entropy", 64, "first"),
    "w3-general": (
        (784, 256, 128, 10),
        ("relu", "relu", "identity"),
        "softmax_cross_entropy",
        64,
        "general",
    ),
}
# Without weight decay, which would give the zero columns' weights a gradient.
CONFIGS = {
    "momentum": ("sgd", MOMENTUM),
    "nesterov": ("sgd", {**NESTEROV, "weight_decay": 0.0}),
    "adam": ("adam", {**ADAMW, "weight_decay": 0.0}),
}


@contextlib.contextmanager
def path_of(shape):
    """Builds trainers that take the shape's path: "w3-general" is W3 with the first-layer
    split turned off, so that its products are cut into slabs instead."""
    _core._set_first_layer_split(shape != "w3-general")
    try:
        yield
    finally:
        _core._set_first_layer_split(True)


class Run(TrainerOnCopies):
    """A trainer on the shape's problem, with the zero input columns' optimizer state
    seeded with subnormal and barely normal values."""

    def __init__(self, backend, shape, config, dtype):
        sizes, activations, loss, self.batch, _ = SHAPES[shape]
        optimizer, hyper = CONFIGS[config]
        Ws, bs, self.X, self.T = training_problem(sizes, N_SAMPLES, loss, dtype, seed=3)
        self.X[:, ZERO_COLUMNS] = 0
        super().__init__(backend, Ws, bs, activations, loss, optimizer, hyper, self.batch)
        self.W0_start = self.Ws[0].copy()
        info = np.finfo(dtype)
        sign = np.where(np.arange(sizes[1]) % 2 == 0, 1, -1).astype(dtype)
        for k, state in enumerate(self.state_W[0]):
            # Inputs 0 and -2: three subnormal ulp, where μ·v rounds back to itself.
            # Inputs 1 and -1: 1.5x the smallest normal number, which decays into the
            # subnormals during the run; Adam's second moment (k = 1, β2 = 0.99, which
            # needs 41 steps for that) starts subnormal there too.
            # (Adam's second moment is never negative.)
            signs = np.abs(sign) if k == 1 else sign
            state[:, ZERO_COLUMNS[0::2]] = (signs * 3 * info.smallest_subnormal)[:, None]
            barely = info.smallest_subnormal if k == 1 else 1.5 * info.tiny
            state[:, ZERO_COLUMNS[1::2]] = (np.abs(sign) * barely)[:, None]

    def train(self, orders):
        return self.trainer.run_epochs(self.X, self.T, orders, self.batch)

    def copies(self):
        return {k: v.copy() for k, v in self.arrays().items()}


def orders(n_epochs=EPOCHS):
    rng = np.random.default_rng(7)
    return np.stack([rng.permutation(N_SAMPLES) for _ in range(n_epochs)]).astype(np.int64)


def check_path(run, shape, config, dtype):
    path = SHAPES[shape][4]
    if path == "first" and config == "momentum" and not run.trainer.momentum_kernel_layers[0]:
        # Momentum SGD splits only where W1 takes the momentum kernel (float32, and not
        # in the baseline module): elsewhere W3 runs the general loop.
        path = "general"
    assert run.trainer.splits_hidden_layer is (path == "hidden"), shape
    assert run.trainer.splits_first_layer is (path == "first"), shape


def zero_column_states(arrays):
    """The optimizer states of the zero input columns' weights, by name."""
    return {
        k: v[:, ZERO_COLUMNS] for k, v in arrays.items() if k.startswith("state") and k[-2:] == "W0"
    }


def trained(shape, config, dtype, threads):
    with densa.threads(threads), path_of(shape):
        run = Run(native, shape, config, dtype)
        if threads > 1:  # on one thread nothing splits
            check_path(run, shape, config, dtype)
        losses = run.train(orders())[0]
    return np.array(losses), run


CASES = [
    pytest.param(shape, config, dtype, id=f"{shape}-{config}-{np.dtype(dtype).name}")
    for shape in SHAPES
    for config in CONFIGS
    for dtype in (np.float32, np.float64)
]


@pytest.mark.parametrize(("shape", "config", "dtype"), CASES)
def test_trainer_flushes_decaying_states_and_still_matches_the_reference(shape, config, dtype):
    losses, run = trained(shape, config, dtype, threads=2)
    ref = Run(reference, shape, config, dtype)
    ref_losses = np.array(ref.train(orders())[0])
    got, want = run.copies(), ref.copies()

    ref_states = zero_column_states(want)
    for name, state in ref_states.items():
        # The reference (IEEE arithmetic) keeps the seeded subnormals: what is flushed.
        tiny = np.finfo(dtype).tiny
        assert np.any((state != 0) & (np.abs(state) < tiny)), f"reference {name}"
    for name, state in zero_column_states(got).items():
        if FLUSHES:
            assert np.count_nonzero(state) == 0, f"{name}: {np.count_nonzero(state)} not flushed"
        else:
            np.testing.assert_array_equal(state, ref_states[name], err_msg=name)

    # The zero columns' weights moved by subnormal steps at most: the same bits as at the
    # start and as the reference's.
    start = run.W0_start[:, ZERO_COLUMNS]
    np.testing.assert_array_equal(got["W0"][:, ZERO_COLUMNS], start, err_msg="native W0")
    np.testing.assert_array_equal(want["W0"][:, ZERO_COLUMNS], start, err_msg="reference W0")

    # Everything else as the reference has it (float32 Adam on W3's split: see
    # tests/test_first_layer_split.py, which holds it to a float64 run instead).
    if CONFIGS[config][0] == "adam" and np.dtype(dtype) == np.float32:
        if shape.startswith("w3"):
            return
        tol = ADAM_F32_TOL
    else:
        tol = TRAIN_TOL[np.dtype(dtype)]
    assert_matches(losses, ref_losses, "epoch losses", **tol)
    for name in want:
        assert_matches(got[name], want[name], name, **tol)


@pytest.mark.parametrize("shape", ["digits", "w3", "w3-general"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bits_do_not_depend_on_the_thread_count(shape, dtype):
    """Workers flush as the calling thread does: the slabs, halves and teams that run on
    the second thread give the bits the first thread gives on its own."""
    losses1, run1 = trained(shape, "momentum", dtype, threads=1)
    losses2, run2 = trained(shape, "momentum", dtype, threads=2)
    np.testing.assert_array_equal(losses1, losses2)
    assert_identical(run1.copies(), run2.copies(), f"{shape} on 1 and 2 threads")


def subnormals_survive(dtype) -> bool:
    """Whether this thread computes subnormal results (IEEE's default), in NumPy."""
    tiny = np.array([np.finfo(dtype).tiny], dtype=dtype)
    return bool((tiny * dtype(0.5))[0] != 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", ["small", "digits", "w3"])
def test_the_callers_mode_comes_back(shape, dtype):
    """After a run, a run_epochs and a refused run, this thread's own arithmetic
    keeps subnormals again."""
    assert subnormals_survive(dtype)  # the precondition: Python starts in IEEE mode
    run = Run(native, shape, "momentum", dtype)
    run.train(orders(1))
    assert subnormals_survive(dtype)
    run.trainer.run(run.X, run.T, orders(1)[0], run.batch, 0, 2)
    assert subnormals_survive(dtype)
    bad = orders(1)[0].copy()
    bad[-1] = N_SAMPLES  # out of range: refused, during or before the run
    with pytest.raises((IndexError, ValueError)):
        run.trainer.run(run.X, run.T, bad, run.batch, 0, 10)
    assert subnormals_survive(dtype)
    with pytest.raises((IndexError, ValueError)):
        run.train(bad[None, :])
    assert subnormals_survive(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_single_layer_kernels_keep_subnormals(dtype):
    """Only the trainer flushes: dense_forward, as the reference, keeps a subnormal
    result (here z = 0.5 · tiny), also right after a training run."""
    Run(native, "small", "momentum", dtype).train(orders(1))
    tiny = np.finfo(dtype).tiny
    W = np.full((1, 1), 0.5, dtype=dtype)
    b = np.zeros(1, dtype=dtype)
    x = np.full((1, 1), tiny, dtype=dtype)
    z, _ = native.dense_forward(W, b, x, "identity")
    assert z[0, 0] == dtype(0.5) * dtype(tiny) != 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", ["digits", "w3"])
def test_with_the_flush_off_the_trainer_keeps_subnormals_as_the_reference(shape, dtype):
    """The hook benchmarks/bench_subnormals.py measures with: off, the trainer computes in
    the caller's IEEE mode, and the zero columns' states are the reference's, bit for bit
    (what CPUs other than x86-64 always do)."""
    _core._set_flush_subnormals(False)
    try:
        _, run = trained(shape, "momentum", dtype, threads=2)
    finally:
        _core._set_flush_subnormals(True)
    ref = Run(reference, shape, "momentum", dtype)
    ref.train(orders())
    got, want = zero_column_states(run.copies()), zero_column_states(ref.copies())
    for name in want:
        assert np.count_nonzero(want[name]) > 0, name
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    assert subnormals_survive(dtype)


TRAP_CHILD = r"""
import ctypes, sys
import numpy as np
import densa

libm = ctypes.CDLL("libm.so.6")
TRAPS = 0x01 | 0x04 | 0x08  # FE_INVALID | FE_DIVBYZERO | FE_OVERFLOW on x86-64
sizes, threads = eval(sys.argv[1]), int(sys.argv[2])
densa.set_num_threads(threads)
rng = np.random.default_rng(0)
X = rng.standard_normal((256, sizes[0])).astype(np.float32)
y = rng.standard_normal((256, sizes[-1])).astype(np.float32)
acts = ["tanh"] * (len(sizes) - 2) + ["identity"]
layers = [densa.Dense(a, b, f) for a, b, f in zip(sizes[:-1], sizes[1:], acts)]
net = densa.Network(layers, loss="mse", dtype="float32", seed=0)
libm.feenableexcept(TRAPS)
try:
    net.fit(X, y, epochs=3, batch_size=32, optimizer=densa.SGD(1e30), progress=False)
    result = "trained"
except densa.TrainingDivergedError:
    result = "diverged"
traps_after = libm.fegetexcept()
libm.fedisableexcept(TRAPS)
print(result, traps_after == TRAPS)
"""


@pytest.mark.skipif(
    not (sys.platform.startswith("linux") and platform.machine() == "x86_64"),
    reason="feenableexcept from glibc's libm, with x86-64's flag values",
)
@pytest.mark.parametrize(
    ("sizes", "threads"),
    [((20, 64, 1), 1), ((64, 64, 10), 2), ((784, 256, 128, 10), 2)],
    ids=["small-1-thread", "hidden-split", "first-layer-split"],
)
def test_a_diverging_fit_with_traps_enabled_raises_instead_of_killing_the_process(sizes, threads):
    out = subprocess.run(
        [sys.executable, "-c", TRAP_CHILD, repr(sizes), str(threads)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-2000:]}"
    assert out.stdout.split()[-2:] == ["diverged", "True"]
