"""densa's threads: the setting, and results bitwise identical whatever the thread count.

densa cuts each product into slabs whose bounds depend on the shape only and runs each
slab as one single-threaded BLAS call (cpp/densa/gemm.hpp), so 1, 2 or 3 threads must
give the very same bits: forward, backward, and whole training runs of the fused loop.
The 1024 sizes are the ones where a product is cut into several slabs and where
OpenBLAS's own threading would change the sums.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import densa
from densa import _core, native

THREAD_COUNTS = (1, 2, 3)
# (m_out, m_in, N): one slab, a few slabs, and K1's 1024 x 1024 at batch 512 (8 slabs).
SHAPES = ((64, 64, 32), (300, 17, 1000), (1000, 333, 77), (1024, 1024, 512))


@pytest.fixture(autouse=True)
def _restore_threads():
    before = densa.get_num_threads()
    yield
    densa.set_num_threads(before)


def test_set_and_get():
    densa.set_num_threads(3)
    assert densa.get_num_threads() == 3
    densa.set_num_threads(1)
    assert densa.get_num_threads() == 1


def test_context_manager_restores_even_on_error():
    densa.set_num_threads(2)
    with densa.threads(1):
        assert densa.get_num_threads() == 1
    assert densa.get_num_threads() == 2
    seen = []

    def fail_inside():
        with densa.threads(3):
            seen.append(densa.get_num_threads())
            raise RuntimeError("inside")

    with pytest.raises(RuntimeError, match="inside"):
        fail_inside()
    assert seen == [3]
    assert densa.get_num_threads() == 2


@pytest.mark.parametrize("bad", [0, -1, 1025, 10**9])
def test_refuses_counts_out_of_range(bad):
    before = densa.get_num_threads()
    with pytest.raises(ValueError, match="n must be from 1 to 1024, got"):
        densa.set_num_threads(bad)
    assert densa.get_num_threads() == before


@pytest.mark.parametrize("bad", [1.5, "2", None, True])
def test_refuses_non_int(bad):
    with pytest.raises(TypeError, match="must be an int"):
        densa.set_num_threads(bad)


def _env_without(*names):
    return {k: v for k, v in os.environ.items() if k not in names}


@pytest.mark.parametrize(
    ("var", "value", "want"),
    [("OMP_NUM_THREADS", "3", 3), ("OMP_NUM_THREADS", "2,1", 2), ("DENSA_NUM_THREADS", "1", 1)],
)
def test_environment_sets_the_default(var, value, want):
    env = _env_without("OMP_NUM_THREADS", "DENSA_NUM_THREADS")
    env[var] = value
    out = subprocess.run(
        [sys.executable, "-c", "import densa; print(densa.get_num_threads())"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split()[-1] == str(want)


@pytest.mark.parametrize(
    ("var", "value"),
    [("DENSA_NUM_THREADS", "0"), ("DENSA_NUM_THREADS", "abc"), ("OMP_NUM_THREADS", "99999")],
)
def test_an_unusable_environment_value_is_ignored_with_a_warning(var, value):
    env = _env_without("OMP_NUM_THREADS", "DENSA_NUM_THREADS")
    env[var] = value
    code = "import densa, os; print(densa.get_num_threads(), len(os.sched_getaffinity(0)))"
    out = subprocess.run(
        [sys.executable, "-W", "always", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    threads, cpus = out.stdout.split()[-2:]
    assert threads == cpus  # the default without the variable
    assert f"densa: ignoring {var}={value!r}" in out.stderr
    assert "RuntimeWarning" in out.stderr


def _layer(shape, dtype, seed):
    m_out, m_in, n = shape
    rng = np.random.default_rng(seed)
    W = (rng.standard_normal((m_out, m_in)) / np.sqrt(m_in)).astype(dtype)
    b = rng.standard_normal(m_out).astype(dtype)
    x = rng.standard_normal((n, m_in)).astype(dtype)
    dy = rng.standard_normal((n, m_out)).astype(dtype)
    return W, b, x, dy


def _assert_all_identical(results):
    first = results[THREAD_COUNTS[0]]
    for t in THREAD_COUNTS[1:]:
        for name, a, b in zip(first[0], first[1], results[t][1]):
            assert np.array_equal(a, b), f"{name} differs between 1 and {t} threads"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_dense_bitwise_identical_across_thread_counts(shape, dtype, activation):
    W, b, x, dy = _layer(shape, dtype, seed=sum(shape))
    results = {}
    for t in THREAD_COUNTS:
        with densa.threads(t):
            z, y = native.dense_forward(W, b, x, activation)
            dx, dW, db, dz = native.dense_backward(W, x, z, dy, activation, return_dz=True)
        results[t] = (("z", "y", "dx", "dW", "db", "dz"), (z, y, dx, dW, db, dz))
    _assert_all_identical(results)


SGD = {"lr": 0.01, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0}
ADAM = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 1e-4}


def _train(sizes, dtype, optimizer, hyper, n, batch, epochs, threads):
    rng = np.random.default_rng(7)
    Ws = [
        (rng.standard_normal((o, i)) / np.sqrt(i)).astype(dtype)
        for i, o in zip(sizes[:-1], sizes[1:])
    ]
    bs = [np.zeros(o, dtype) for o in sizes[1:]]
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    T = np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], n)]
    n_state = 1 if optimizer == "sgd" else 2
    state_W = [[np.zeros_like(W) for _ in range(n_state)] for W in Ws]
    state_b = [[np.zeros_like(b) for _ in range(n_state)] for b in bs]
    step = np.zeros(1, np.int64)
    acts = ["relu"] * (len(sizes) - 2) + ["identity"]
    losses = []
    with densa.threads(threads):
        trainer = native.Trainer(
            Ws, bs, acts, "softmax_cross_entropy", optimizer, hyper, state_W, state_b, step, batch
        )
        for epoch in range(epochs):
            order = np.random.default_rng(epoch).permutation(n).astype(np.int64)
            losses.append(trainer.run(X, T, order, batch, 0, -(-n // batch))[0])
    return (
        "losses",
        *(f"W{j}" for j in range(len(Ws))),
        *(f"b{j}" for j in range(len(bs))),
        "state",
    ), (np.array(losses), *Ws, *bs, np.concatenate([s.ravel() for st in state_W for s in st]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("sizes", "optimizer", "hyper", "n", "batch", "epochs"),
    [
        ((20, 300, 200, 5), "sgd", SGD, 500, 128, 3),
        ((30, 256, 10), "adam", ADAM, 300, 100, 3),
        ((1024, 1024, 10), "sgd", SGD, 1100, 512, 2),
        # W3's shape: densa's own forward kernel and momentum step, cut into fine slabs.
        ((784, 256, 128, 10), "sgd", SGD, 640, 64, 2),
    ],
    ids=["mlp-sgd", "mlp-adam", "1024-sgd", "w3-sgd"],
)
def test_trainer_bitwise_identical_across_thread_counts(
    sizes, dtype, optimizer, hyper, n, batch, epochs
):
    results = {
        t: _train(sizes, dtype, optimizer, hyper, n, batch, epochs, t) for t in THREAD_COUNTS
    }
    _assert_all_identical(results)


def test_products_are_split_at_1024():
    """The 1024 case above does exercise the pool: its products are cut into slabs."""
    min_flops, max_slabs, _ = _core._slab_policy()
    assert 2 * min_flops <= 2 * 1024 * 1024 * 512
    assert max_slabs >= 2


@pytest.fixture
def _restore_slab_policy():
    before = _core._slab_policy()
    yield
    _core._set_slab_policy(*before)


@pytest.mark.usefixtures("_restore_slab_policy")
@pytest.mark.parametrize("shape", [(256, 784, 64), (250, 784, 64), (128, 256, 64), (72, 900, 30)])
def test_the_forward_kernel_gives_the_same_bits_however_cut(shape):
    """densa's forward kernel (gemm_tn) computes every slab of a product it takes, the
    short last slab included (250 rows in 15 slabs leave 10), so no cut changes a bit.
    Deciding per slab handed a 10-row slab to OpenBLAS, which rounds otherwise."""
    if _core.picked == "baseline":  # no AVX2: OpenBLAS computes every slab
        # The slab count is then part of the rounding, as the slab policy says; it is a
        # property of the machine, never of the thread count (tested above).
        pytest.skip("the baseline module has no forward kernel of densa's own")
    assert _core._gemm_tn_applies(shape[0], shape[2], shape[1])
    W, b, x, _ = _layer(shape, np.float32, seed=sum(shape))
    min_flops, _, align = _core._slab_policy()
    got = {}
    for slabs in (1, 2, 5, 8, 16):
        _core._set_slab_policy(min_flops, slabs, align)
        with densa.threads(2):
            got[slabs] = native.dense_forward(W, b, x, "relu")
    for slabs, (z, y) in got.items():
        assert np.array_equal(z, got[1][0]), f"z differs with {slabs} slabs"
        assert np.array_equal(y, got[1][1]), f"y differs with {slabs} slabs"
    want = x.astype(np.float64) @ W.T.astype(np.float64) + b
    np.testing.assert_allclose(got[16][0], want, rtol=1e-4, atol=1e-4)
