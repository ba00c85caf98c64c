"""densa's own kernel for a layer's momentum step (cpp/densa/momentum_update.hpp).

Float32 trainers with plain momentum SGD form v = μ v + dz xᵀ and W −= lr v in one pass
of densa's kernel on layers of 64 Ki weights and more (at most 128 samples per batch).
These tests check which layers take that path, that it trains as the reference does and
as the BLAS path does, that its bits do not depend on the thread count or on how an
epoch is cut into calls, and that a divergence leaves every layer's velocity as v on
networks that mix kernel and BLAS layers (the BLAS layers keep μ v between batches).
"""

from __future__ import annotations

import importlib

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

MOMENTUM = {"lr": 0.02, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0}
N_SAMPLES = 150  # not a multiple of any batch below but 1: epochs end on a short batch
EPOCHS = 3

# (sizes, batch, which layers take the kernel). Inputs that are not a multiple of 16
# (masked lanes at the end of each row); rows that leave every block width (6, and the
# 4 + 3, 4 + 4 of the last 7 or 8 rows) in one slab or the other; one slab and two;
# slabs in several chunks of rows (mom_chunk_rows); kernel and BLAS layers in one
# network.
SHAPES = {
    "w3-like": ((784, 96, 10), 64, [True, False]),
    "tails": ((690, 101, 3), 48, [True, False]),
    "four-three": ((700, 103, 3), 64, [True, False]),  # a 55-row slab: 48 + 4 + 3 rows
    "narrow-inputs": ((9, 7300, 2), 32, [True, False]),  # 9 inputs: masked lanes only
    "output-layer": ((40, 300, 250), 16, [False, True]),  # dx from W before its update
    "batch-of-one": ((784, 96, 8, 10), 1, [True, False, False]),
    "eight-left": ((700, 98, 4), 32, [True, False]),
    "one-slab": ((1000, 70, 6, 2), 8, [True, False, False]),  # three layers: no hidden split
    "chunks": ((600, 120, 3), 128, [True, False]),  # 24-row chunks: 64 = 24 + 24 + 16 rows
    "two-kernel-layers": ((300, 250, 270, 5), 16, [True, True, False]),
    # 640 inputs: x's columns 2560 bytes apart, a multiple of 512, so x is copied into
    # slivers (x_direct); every other shape reads x where it is.
    "x-copied": ((640, 103, 3), 64, [True, False]),
}

# Native against reference after 3 epochs (~10 updates each): the same operations in a
# different summation order (784-term forward sums in float32), carried through later
# steps.
TRAIN_TOL = {"rtol": 2e-4, "atol": 2e-5}
# Kernel against the BLAS path: the same sums, each a multiply-add chain over the
# samples; OpenBLAS's chains may be ordered otherwise, so only rounding may differ.
BLAS_TOL = {"rtol": 1e-5, "atol": 1e-6}

pytestmark = pytest.mark.skipif(
    not _core._momentum_kernel_applies(256, 784, 64),
    reason="this module has no AVX2 + FMA momentum kernel",
)


@pytest.fixture
def kernel_off():
    """Builds its trainers without the kernel; restores it afterwards."""
    _core._set_momentum_kernel(False)
    try:
        yield
    finally:
        _core._set_momentum_kernel(True)


def orders(n_epochs, seed=1):
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(N_SAMPLES) for _ in range(n_epochs)]).astype(np.int64)


class Run(TrainerOnCopies):
    """One momentum-SGD trainer over its own copies of a softmax network's parameters."""

    def __init__(self, backend, shape, dtype=np.float32, seed=0, X=None):
        sizes, self.batch, _ = SHAPES[shape]
        loss = "softmax_cross_entropy"
        Ws, bs, self.X, self.T = training_problem(sizes, N_SAMPLES, loss, dtype, seed)
        if X is not None:
            self.X = X
        acts = ["relu"] * (len(sizes) - 2) + ["identity"]
        super().__init__(backend, Ws, bs, acts, loss, "sgd", MOMENTUM, self.batch)

    def run(self, order, first_batch=0, n_batches=10**6):
        return self.trainer.run(self.X, self.T, order, self.batch, first_batch, n_batches)

    def epochs(self, orders_):
        return self.trainer.run_epochs(self.X, self.T, orders_, self.batch)

    def arrays(self):
        return {k: v.copy() for k, v in super().arrays().items()}


def test_which_layers_take_the_kernel(kernel_off):
    _core._set_momentum_kernel(True)
    applies = _core._momentum_kernel_applies
    assert applies(256, 784, 64)  # W3's first layer
    assert applies(256, 784, 16)
    assert applies(256, 784, 128)
    assert not applies(128, 256, 64)  # W3's second layer: too small to repay the packing
    assert not applies(256, 784, 256)  # long minibatches: OpenBLAS's blocking
    assert not applies(512, 1024, 64)  # rows 4 KiB apart share cache sets
    assert not applies(128, 512, 64)
    # Any int64 sizes are answered, none overflows (the hook is reachable from Python).
    assert applies(2**62 + 1, 2**62 + 1, 64)
    assert not applies(-256, 784, 64)
    assert not applies(256, -784, 64)
    assert not applies(256, 784, 0)
    for shape, (sizes, batch, expected) in SHAPES.items():
        assert Run(native, shape).trainer.momentum_kernel_layers == expected, shape
        assert all(applies(o, i, batch) == e for i, o, e in zip(sizes, sizes[1:], expected))
    # Only float32 momentum SGD without Nesterov or weight decay.
    sizes, batch, _ = SHAPES["w3-like"]
    Ws, bs, _, _ = training_problem(sizes, 4, "mse", np.float32)
    for hyper in (
        {**MOMENTUM, "momentum": 0.0},
        {**MOMENTUM, "nesterov": True},
        {**MOMENTUM, "weight_decay": 1e-4},
    ):
        t = TrainerOnCopies(native, Ws, bs, ["relu", "identity"], "mse", "sgd", hyper, batch)
        assert t.trainer.momentum_kernel_layers == [False, False], hyper
    adam = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}
    t = TrainerOnCopies(native, Ws, bs, ["relu", "identity"], "mse", "adam", adam, batch)
    assert t.trainer.momentum_kernel_layers == [False, False]
    Ws64 = [W.astype(np.float64) for W in Ws]
    bs64 = [b.astype(np.float64) for b in bs]
    t = TrainerOnCopies(native, Ws64, bs64, ["relu", "identity"], "mse", "sgd", MOMENTUM, batch)
    assert t.trainer.momentum_kernel_layers == [False, False]
    _core._set_momentum_kernel(False)  # the hook the comparisons below use
    assert Run(native, "w3-like").trainer.momentum_kernel_layers == [False, False]
    assert not applies(256, 784, 64)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_matches_reference(shape):
    runs = {"native": Run(native, shape), "reference": Run(reference, shape)}
    assert runs["native"].trainer.momentum_kernel_layers == SHAPES[shape][2]
    for epoch, order in enumerate(orders(EPOCHS)):
        got = runs["native"].run(order)
        want = runs["reference"].run(order)
        assert got[1:] == want[1:], f"epoch {epoch}: samples, batches, divergence"
        assert_matches(got[0], want[0], f"loss sum, epoch {epoch}", **TRAIN_TOL)
        want_arrays = runs["reference"].arrays()
        for name, a in runs["native"].arrays().items():
            assert_matches(a, want_arrays[name], f"{name} after epoch {epoch}", **TRAIN_TOL)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_matches_the_blas_path(shape, kernel_off):
    blas = Run(native, shape)
    assert not any(blas.trainer.momentum_kernel_layers)
    _core._set_momentum_kernel(True)
    kernel = Run(native, shape)
    assert any(kernel.trainer.momentum_kernel_layers)
    o = orders(EPOCHS)
    means_kernel = np.array(kernel.epochs(o)[0])
    means_blas = np.array(blas.epochs(o)[0])
    assert_matches(means_kernel, means_blas, "epoch losses", **BLAS_TOL)
    want = blas.arrays()
    for name, a in kernel.arrays().items():
        assert_matches(a, want[name], f"{name}, kernel against BLAS", **BLAS_TOL)


def _train_with_threads(shape, threads, epochs_at_once):
    def make_run():
        return Run(native, shape)

    return train_with_threads(make_run, threads, orders(EPOCHS), epochs_at_once)


@pytest.mark.parametrize("epochs_at_once", [False, True], ids=["run", "run_epochs"])
@pytest.mark.parametrize("shape", ["w3-like", "tails", "two-kernel-layers", "output-layer"])
def test_bitwise_identical_across_thread_counts(shape, epochs_at_once):
    base_losses, base = _train_with_threads(shape, 1, epochs_at_once)
    for threads in (2, 3):
        losses, arrays = _train_with_threads(shape, threads, epochs_at_once)
        np.testing.assert_array_equal(losses, base_losses, err_msg=f"{threads} threads")
        assert_identical(arrays, base, f"with {threads} threads")


@pytest.mark.parametrize("shape", ["tails", "two-kernel-layers"])
def test_an_epoch_in_parts_gives_the_bits_of_one_run(shape):
    # Each part's last batch leaves v in the BLAS layers' velocities, and μ v between;
    # the kernel layers hold v throughout. Either way, the bits of the parameters must
    # not depend on where the calls end.
    order = orders(1)[0]
    whole = Run(native, shape)
    whole.run(order)
    parts = Run(native, shape)
    n_batches = -(-N_SAMPLES // parts.batch)
    first = 0
    for size in (1, 2, n_batches):
        parts.run(order, first, size)
        first += size
    assert_identical(parts.arrays(), whole.arrays(), "in parts against whole")


def test_a_divergence_leaves_v_in_every_layer():
    # A NaN in batch 3: the run stops before that batch's update. The kernel layers'
    # velocities must equal those of a run of batches 0-2 bit for bit; the BLAS layers'
    # are divided back from μ v, within one rounding of v (tests/test_trainer_kernels.py).
    shape = "two-kernel-layers"
    order = orders(1)[0]
    clean = Run(native, shape)
    X = clean.X.copy()
    batch = clean.batch
    X[order[3 * batch + 2], 7] = np.nan
    bad = Run(native, shape, X=X)
    kernel_layers = bad.trainer.momentum_kernel_layers
    with np.errstate(invalid="ignore"):
        _, samples, batches, diverged, diverged_batch, _ = bad.run(order)
    assert (diverged, diverged_batch, batches, samples) == (True, 3, 3, 3 * batch)
    clean.run(order, 0, 3)
    want = clean.arrays()
    for name, a in bad.arrays().items():
        layer = int(name.rsplit("W", 1)[1]) if name.startswith("state0_W") else None
        if layer is not None and not kernel_layers[layer]:
            assert_matches(a, want[name], name, rtol=2e-7, atol=0)
        else:
            np.testing.assert_array_equal(a, want[name], err_msg=name)


def test_more_slabs_than_at_construction():
    # The kernel's buffers are sized when the trainer is built, for the slabs a product
    # could then be cut into. The tuning hook may allow more slabs afterwards; the
    # buffers must grow before any row is touched. (The other layers' OpenBLAS products
    # may round differently when cut otherwise: the runs are compared with a tolerance.)
    default = _core._slab_policy()
    order = orders(1)[0]
    runs = {}
    for slabs in (2, 6):
        run = Run(native, "w3-like")
        assert run.trainer.momentum_kernel_layers == [True, False]
        _core._set_slab_policy(1.0, slabs, 16)  # every product cut into up to 6 slabs
        try:
            with densa.threads(3):
                run.run(order)
        finally:
            _core._set_slab_policy(*default)
        runs[slabs] = run.arrays()
    for name, a in runs[6].items():
        assert_matches(a, runs[2][name], f"{name}, 6 slabs against 2", **BLAS_TOL)
    want = Run(reference, "w3-like")
    want.run(order)
    for name, a in runs[6].items():
        assert_matches(a, want.arrays()[name], name, **TRAIN_TOL)


@pytest.mark.parametrize("max_slabs", [1, 3, 5])
def test_other_cuts_of_the_rows(max_slabs):
    # How a layer's rows are cut into slabs follows the machine's CPU count (the slab
    # policy), and with it the widths of the kernel's blocks at the end of each slab
    # (1 to 6 rows, 4 + 3, 4 + 4). Whatever the cut, training must match the reference.
    default = _core._slab_policy()
    _core._set_slab_policy(default[0], max_slabs, 16)
    try:
        run = Run(native, "four-three")
        want = Run(reference, "four-three")
        for order in orders(2):
            run.run(order)
            want.run(order)
    finally:
        _core._set_slab_policy(*default)
    expected = want.arrays()
    for name, a in run.arrays().items():
        assert_matches(a, expected[name], f"{name}, up to {max_slabs} slabs", **TRAIN_TOL)


def test_never_in_the_hidden_split():
    # A two-layer network with one-slab products trains through the hidden split, whose
    # loop has its own momentum step: no layer takes the kernel there.
    sizes, batch = (1000, 70, 4), 8
    Ws, bs, _, _ = training_problem(sizes, 4, "mse", np.float32)
    t = TrainerOnCopies(native, Ws, bs, ["relu", "identity"], "mse", "sgd", MOMENTUM, batch)
    assert t.trainer.splits_hidden_layer
    assert _core._momentum_kernel_applies(70, 1000, batch)
    assert t.trainer.momentum_kernel_layers == [False, False]


def _module(level):
    if level not in _core.built_levels() or level not in _core.supported_levels():
        pytest.skip(f"the {level} module is not built, or this CPU cannot run it")
    return importlib.import_module(f"densa.{_core.MODULES[level]}")


# (n_out, n_in, K): inputs at and around both block widths (16 and 32 columns) and their
# masked tails; 640 inputs, whose rows are copied into slivers (x_direct); rows that
# leave 6-row blocks and the 4 + 3 / 4 + 4 ends; one sample, and chunks of rows
# (mom_chunk_rows) at 128.
KERNEL_STEPS = [
    (n_out, n_in, K)
    for n_out, n_in in (
        *[(13, 9), (8, 16), (7, 17), (55, 31), (6, 32), (30, 33), (101, 100)],
        *[(70, 784), (20, 640), (130, 48)],
    )
    for K in (1, 5, 64, 128)
]


def test_the_kernel_hook_computes_a_momentum_step():
    """The hook the next test compares the modules through runs the kernel: a step close
    to NumPy's in float64 (in the module picked; refused where there is no kernel)."""
    mod = _core
    rng = np.random.default_rng(7)
    W, V = rng.standard_normal((2, 55, 100), dtype=np.float32)
    x, dz = (
        rng.standard_normal((40, 100), dtype=np.float32),
        rng.standard_normal((40, 55), dtype=np.float32),
    )
    V_want = 0.9 * V.astype(np.float64) + dz.T.astype(np.float64) @ x
    W_want = W - 0.05 * V_want
    if not _core._momentum_kernel_applies(256, 784, 64):
        with pytest.raises(ValueError, match="no momentum kernel"):
            mod._momentum_kernel_step(W, V, x, dz, 0.05, 0.9)
        return
    mod._momentum_kernel_step(W, V, x, dz, 0.05, 0.9)
    assert_matches(V, V_want.astype(np.float32), "V", reduction=41)
    assert_matches(W, W_want.astype(np.float32), "W", reduction=41)


def test_the_avx512_blocks_compute_the_avx2_blocks_bits():
    """The x86-64-v4 module's 32-column AVX-512 blocks and the x86-64-v3 module's
    16-column AVX2 blocks run the same operations per element: the same W and v, bit for
    bit, over every tail of both block widths (whole fits cannot show it: other parts of
    a fit round differently with wider vectors)."""
    v3, v4 = _module("x86-64-v3"), _module("x86-64-v4")
    for n_out, n_in, K in KERNEL_STEPS:
        rng = np.random.default_rng([n_out, n_in, K])
        W, V = rng.standard_normal((2, n_out, n_in), dtype=np.float32)
        x = rng.standard_normal((K, n_in), dtype=np.float32)
        dz = rng.standard_normal((K, n_out), dtype=np.float32)
        W3, V3, W4, V4 = W.copy(), V.copy(), W.copy(), V.copy()
        v3._momentum_kernel_step(W3, V3, x, dz, 0.05, 0.9)
        v4._momentum_kernel_step(W4, V4, x, dz, 0.05, 0.9)
        shape = f"{n_out}x{n_in} at {K} samples"
        np.testing.assert_array_equal(V4, V3, err_msg=shape)
        np.testing.assert_array_equal(W4, W3, err_msg=shape)
        assert not np.array_equal(W3, W)  # the step was taken


def test_the_kernel_hook_refuses_bad_arrays():
    if not _core._momentum_kernel_applies(256, 784, 64):
        pytest.skip(f"this module ({_core.isa}) has no momentum kernel")
    W, V = np.zeros((2, 6, 9), dtype=np.float32)
    x, dz = np.zeros((4, 9), np.float32), np.zeros((4, 6), np.float32)
    with pytest.raises(TypeError, match="float32"):
        _core._momentum_kernel_step(W.astype(np.float64), V, x, dz, 0.1, 0.9)
    with pytest.raises(ValueError, match="V must have W's shape"):
        _core._momentum_kernel_step(W, V[:, :8].copy(), x, dz, 0.1, 0.9)
    with pytest.raises(ValueError, match=r"x must be \(K, n_in\)"):
        _core._momentum_kernel_step(W, V, x[:, :8].copy(), dz, 0.1, 0.9)
    with pytest.raises(ValueError, match=r"K > 0"):
        _core._momentum_kernel_step(W, V, x[:0], dz[:0], 0.1, 0.9)
    W.flags.writeable = False
    with pytest.raises(ValueError, match="in place"):
        _core._momentum_kernel_step(W, V, x, dz, 0.1, 0.9)
