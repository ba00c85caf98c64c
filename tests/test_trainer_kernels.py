"""The fused native training loop against the reference loop, batch for batch.

Copies of one small 3-layer network are trained by ``densa.native.Trainer`` and
``densa.reference.Trainer`` for a few epochs, each with its own shuffled order and a
batch size that does not divide N (so every epoch ends on a short batch); parameters,
optimizer state and what ``run`` reports must agree.
"""

from __future__ import annotations

import numpy as np
import pytest

from densa import native
from helpers import BACKENDS, DTYPES, TrainerOnCopies, assert_matches, training_problem

N_SAMPLES, BATCH, EPOCHS = 50, 8, 3  # 50 = 6·8 + 2
N_BATCHES = -(-N_SAMPLES // BATCH)
SIZES = (5, 16, 12, 3)

SGD = {"lr": 0.1, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0}
SGD_NESTEROV = {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}
# Plain momentum: the native loop folds v = μ v + dW into the dW product (its fast path).
SGD_MOMENTUM = {"lr": 0.05, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0}
ADAM = {"lr": 1e-2, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}
ADAMW = {"lr": 1e-2, "beta1": 0.8, "beta2": 0.99, "eps": 1e-7, "weight_decay": 1e-2}
# scikit-learn's alpha (densa.SGD(l2=...)): W's gradient gains (l2/n_b)·W, b's nothing;
# momentum then leaves the folded fast path for the general one.
SGD_MOMENTUM_L2 = {**SGD_MOMENTUM, "l2": 0.3}
ADAM_L2 = {**ADAM, "l2": 0.3}

CONFIGS = {
    "mse-sgd": ("mse", ("tanh", "relu", "identity"), "sgd", SGD),
    "softmax-nesterov": (
        "softmax_cross_entropy",
        ("gelu", "leaky_relu", "linear"),
        "sgd",
        SGD_NESTEROV,
    ),
    "softmax-momentum": (
        "softmax_cross_entropy",
        ("relu", "tanh", "identity"),
        "sgd",
        SGD_MOMENTUM,
    ),
    "bce-adamw": ("binary_cross_entropy", ("elu", "softplus", "identity"), "adam", ADAMW),
    "mse-adam": ("mse", ("sigmoid", "tanh", "sigmoid"), "adam", ADAM),
}
# The same networks and optimizers with an L2 penalty.
CONFIGS["softmax-momentum-l2"] = (*CONFIGS["softmax-momentum"][:3], SGD_MOMENTUM_L2)
CONFIGS["mse-adam-l2"] = (*CONFIGS["mse-adam"][:3], ADAM_L2)

# float64: both loops do the same operations in the same order, so only summation order
# inside the products differs: ~1e-16 per step, measured ≤ 4e-16 after 21 steps.
# float32: the same few ulp (~1e-7) per step, carried through the later steps without
# shrinking; measured ≤ 3e-7 on these O(1) parameters after 35 steps, so 1e-5 / 1e-4
# leave a margin of ~30x.
TRAIN_TOL = {
    np.dtype(np.float64): {"rtol": 1e-10, "atol": 1e-12},
    np.dtype(np.float32): {"rtol": 1e-4, "atol": 1e-5},
}


def make_problem(dtype, loss, seed=0):
    return training_problem(SIZES, N_SAMPLES, loss, dtype, seed)


class Run(TrainerOnCopies):
    """One backend's trainer over its own copies of the parameters and state."""

    def __init__(self, backend, Ws, bs, activations, loss, optimizer, hyper, max_batch=BATCH):
        super().__init__(backend, Ws, bs, activations, loss, optimizer, hyper, max_batch)

    def run(self, X, T, order, first_batch=0, n_batches=10**6):
        return self.trainer.run(X, T, order, BATCH, first_batch, n_batches)


def pair(dtype, config, seed=0):
    loss, activations, optimizer, hyper = CONFIGS[config]
    Ws, bs, X, T = make_problem(dtype, loss, seed)
    runs = {k: Run(be, Ws, bs, activations, loss, optimizer, hyper) for k, be in BACKENDS.items()}
    return runs, Ws, X, T


def assert_runs_agree(runs, dtype, when):
    tol = TRAIN_TOL[np.dtype(dtype)]
    got, expected = runs["native"].arrays(), runs["reference"].arrays()
    assert got.keys() == expected.keys()
    for name in got:
        assert_matches(got[name], expected[name], f"{name} {when}", **tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", list(CONFIGS))
def test_native_trainer_matches_reference(config, dtype):
    runs, Ws, X, T = pair(dtype, config)
    rng = np.random.default_rng(42)
    for epoch in range(EPOCHS):
        order = rng.permutation(N_SAMPLES).astype(np.int64)
        out = {k: r.run(X, T, order) for k, r in runs.items()}
        for k, (loss_sum, samples, batches, diverged, diverged_batch, penalty) in out.items():
            assert (samples, batches, diverged, diverged_batch) == (
                N_SAMPLES,
                N_BATCHES,
                False,
                -1,
            ), k
            assert np.isfinite(loss_sum), k
            # l2's penalty is reported apart from the data term, and only with l2.
            assert (penalty > 0) == ("l2" in CONFIGS[config][3]), k
        tol = TRAIN_TOL[np.dtype(dtype)]
        # loss_sum is a Python float either way; it was computed in dtype
        assert_matches(out["native"][0], out["reference"][0], f"loss_sum, epoch {epoch}", **tol)
        assert_matches(out["native"][5], out["reference"][5], f"penalty_sum, epoch {epoch}", **tol)
        assert_runs_agree(runs, dtype, f"after epoch {epoch}")
    if runs["native"].step is not None:
        assert runs["native"].step[0] == runs["reference"].step[0] == EPOCHS * N_BATCHES
    # Training moved the parameters, in the caller's arrays.
    assert not np.allclose(runs["native"].Ws[0], Ws[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", list(BACKENDS.values()), ids=list(BACKENDS))
def test_an_epoch_split_in_parts_equals_the_whole(backend, dtype):
    loss, activations, optimizer, hyper = CONFIGS["softmax-nesterov"]
    Ws, bs, X, T = make_problem(dtype, loss)
    order = np.random.default_rng(1).permutation(N_SAMPLES).astype(np.int64)
    whole = Run(backend, Ws, bs, activations, loss, optimizer, hyper)
    parts = Run(backend, Ws, bs, activations, loss, optimizer, hyper)
    loss_whole = whole.run(X, T, order)[0]
    first = parts.run(X, T, order, 0, 3)
    second = parts.run(X, T, order, 3, 100)
    assert first[1:5] == (3 * BATCH, 3, False, -1)
    assert second[1:5] == (N_SAMPLES - 3 * BATCH, N_BATCHES - 3, False, -1)
    assert_matches(first[0] + second[0], loss_whole, "loss_sum", reduction=2)
    # Within tolerance rather than bit for bit (see NONDETERMINISM in helpers.py); a
    # batch skipped or run twice would move the parameters by far more.
    for name, a in parts.arrays().items():
        assert_matches(a, whole.arrays()[name], name, **TRAIN_TOL[np.dtype(dtype)])


@pytest.mark.parametrize("dtype", DTYPES)
def test_divergence_from_a_huge_learning_rate(dtype):
    # The first update multiplies W by ~lr; the second batch's squared error overflows
    # to inf (float32 above ~3e38, float64 above ~1e308): batch 1 is reported, and
    # stopped before its update.
    lr = 1e30 if dtype == np.float32 else 1e100
    Ws, bs, X, T = make_problem(dtype, "mse")
    hyper = dict(SGD, lr=lr)
    order = np.random.default_rng(2).permutation(N_SAMPLES).astype(np.int64)
    out, runs = {}, {}
    for key, backend in BACKENDS.items():
        run = Run(backend, Ws, bs, ("tanh", "relu", "identity"), "mse", "sgd", hyper)
        with np.errstate(over="ignore", invalid="ignore"):  # the reference's overflow
            out[key] = run.run(X, T, order)
        once = Run(backend, Ws, bs, ("tanh", "relu", "identity"), "mse", "sgd", hyper)
        once.run(X, T, order, 0, 1)
        for name, a in run.arrays().items():  # stopped before batch 1's update
            assert_matches(a, once.arrays()[name], f"{key} {name}", **TRAIN_TOL[np.dtype(dtype)])
        runs[key] = run
    for key, (_, samples, batches, diverged, diverged_batch, _) in out.items():
        assert (diverged, diverged_batch, batches, samples) == (True, 1, 1, BATCH), key
    assert_matches(out["native"][0], out["reference"][0], "loss_sum", **TRAIN_TOL[np.dtype(dtype)])
    assert_runs_agree(runs, dtype, "after the last finite batch")


@pytest.mark.parametrize("dtype", DTYPES)
def test_divergence_from_a_nan_sample(dtype):
    loss, activations, optimizer, hyper = CONFIGS["bce-adamw"]
    Ws, bs, X, T = make_problem(dtype, loss)
    order = np.random.default_rng(3).permutation(N_SAMPLES).astype(np.int64)
    X = X.copy()
    X[order[4 * BATCH + 5], 2] = np.nan  # in batch 4 of this epoch
    out = {}
    runs = {}
    for key, backend in BACKENDS.items():
        runs[key] = Run(backend, Ws, bs, activations, loss, optimizer, hyper)
        out[key] = runs[key].run(X, T, order, 1, 100)  # batches 1.. of the epoch
    for key, (loss_sum, samples, batches, diverged, diverged_batch, _) in out.items():
        assert (diverged, diverged_batch, batches, samples) == (True, 4, 3, 3 * BATCH), key
        assert np.isfinite(loss_sum), key
        assert runs[key].step[0] == 3  # Adam counted only the completed updates
    assert_matches(out["native"][0], out["reference"][0], "loss_sum", **TRAIN_TOL[np.dtype(dtype)])
    assert_runs_agree(runs, dtype, "after the last finite batch")


def _native_trainer(**changes):
    Ws, bs, _, _ = make_problem(np.float64, "mse")
    args = {
        "Ws": Ws,
        "bs": bs,
        "activations": ["tanh", "relu", "identity"],
        "loss": "mse",
        "optimizer": "sgd",
        "hyper": SGD,
        "state_W": [[] for _ in Ws],
        "state_b": [[] for _ in bs],
        "step": None,
        "max_batch": BATCH,
    }
    args.update(changes)
    return native.Trainer(**args)


def test_native_trainer_refuses_bad_configuration():
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        _native_trainer(optimizer="rmsprop")
    with pytest.raises(ValueError, match="activation: unknown name 'swish'"):
        _native_trainer(activations=["tanh", "swish", "identity"])
    with pytest.raises(ValueError, match="loss: unknown name 'hinge'"):
        _native_trainer(loss="hinge")
    with pytest.raises(ValueError, match="one entry per layer"):
        _native_trainer(activations=["tanh", "relu"])
    Ws, bs, _, _ = make_problem(np.float64, "mse")
    with pytest.raises(ValueError, match="layer sizes do not chain"):
        _native_trainer(Ws=[Ws[0], Ws[2], Ws[2]], bs=[bs[0], bs[2], bs[2]])
    with pytest.raises(ValueError, match="missing optimizer state"):
        _native_trainer(hyper=SGD_NESTEROV)


def test_native_trainer_refuses_bad_runs():
    trainer = _native_trainer()
    _, _, X, T = make_problem(np.float64, "mse")
    order = np.arange(N_SAMPLES, dtype=np.int64)
    with pytest.raises(ValueError, match="X has the wrong number of features"):
        trainer.run(X[:, :4].copy(), T, order, BATCH, 0, 1)
    with pytest.raises(ValueError, match="targets do not match"):
        trainer.run(X, T[:10].copy(), order, BATCH, 0, 1)
    # The visited part of the order is checked before any batch runs (order + 1 is bad
    # only in its last entry, which a one-batch run never reads).
    with pytest.raises(ValueError, match="order holds an index out of range"):
        trainer.run(X, T, order + 1, BATCH, 0, N_BATCHES)
    with pytest.raises(ValueError, match="order holds an index out of range"):
        trainer.run(X, T, order - 1, BATCH, 0, 1)
    with pytest.raises(ValueError, match="batch size out of range"):
        trainer.run(X, T, order, BATCH + 1, 0, 1)
    # Refused runs did nothing: a valid run still reports a full, finite epoch.
    assert trainer.run(X, T, order, BATCH, 0, 100)[1:] == (N_SAMPLES, N_BATCHES, False, -1, 0.0)


def _orders(seed, epochs):
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(N_SAMPLES) for _ in range(epochs)]).astype(np.int64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", list(CONFIGS))
def test_run_epochs_equals_one_run_per_epoch(config, dtype):
    """run_epochs (several epochs in one call) trains exactly as one run() per epoch, on
    both backends; and the backends agree with each other."""
    loss, activations, optimizer, hyper = CONFIGS[config]
    Ws, bs, X, T = make_problem(dtype, loss)
    orders = _orders(5, EPOCHS)
    grouped = {}
    for key, backend in BACKENDS.items():
        one_by_one = Run(backend, Ws, bs, activations, loss, optimizer, hyper)
        sums = [one_by_one.run(X, T, order) for order in orders]
        group = Run(backend, Ws, bs, activations, loss, optimizer, hyper)
        got_means, seconds, diverged, bad, got_penalties = group.trainer.run_epochs(
            X, T, orders, BATCH
        )
        assert (diverged, bad) == (False, -1)
        assert len(seconds) == len(got_penalties) == EPOCHS
        assert all(s >= 0 for s in seconds)
        # The same operations in the same order: bit for bit.
        np.testing.assert_array_equal(got_means, [r[0] / N_SAMPLES for r in sums])
        np.testing.assert_array_equal(got_penalties, [r[5] / N_SAMPLES for r in sums])
        for name, a in group.arrays().items():
            np.testing.assert_array_equal(a, one_by_one.arrays()[name], err_msg=f"{key} {name}")
        grouped[key] = group
    assert_runs_agree(grouped, dtype, "after run_epochs")


@pytest.mark.parametrize("backend", list(BACKENDS.values()), ids=list(BACKENDS))
def test_run_epochs_stops_inside_the_epoch_that_diverges(backend):
    loss, activations, optimizer, hyper = CONFIGS["softmax-momentum"]
    Ws, bs, X, T = make_problem(np.float64, loss)
    orders = _orders(6, 4)
    bad_sample = orders[2][3 * BATCH + 1]  # epoch 2, batch 3
    X = X.copy()
    X[bad_sample, 0] = np.inf
    # Orders need not be permutations: epochs 0 and 1 visit another sample instead.
    orders[:2][orders[:2] == bad_sample] = (bad_sample + 1) % N_SAMPLES
    run = Run(backend, Ws, bs, activations, loss, optimizer, hyper)
    with np.errstate(over="ignore", invalid="ignore"):
        means, seconds, diverged, bad, penalties = run.trainer.run_epochs(X, T, orders, BATCH)
    assert (len(means), len(seconds), len(penalties), diverged, bad) == (2, 2, 2, True, 3)
    # The parameters are those before that batch: as two epochs and three batches.
    ref = Run(backend, Ws, bs, activations, loss, optimizer, hyper)
    for order in orders[:2]:
        ref.run(X, T, order)
    ref.run(X, T, orders[2], 0, 3)
    for name, a in run.arrays().items():
        if name.startswith("state"):
            # The native loop keeps μ·v between the batches of a run and divides it back
            # after a divergence: within one rounding of v.
            assert_matches(a, ref.arrays()[name], name, rtol=1e-15, atol=0)
        else:
            np.testing.assert_array_equal(a, ref.arrays()[name], err_msg=name)


@pytest.mark.parametrize("backend", list(BACKENDS.values()), ids=list(BACKENDS))
def test_run_epochs_refuses_bad_orders(backend):
    loss, activations, optimizer, hyper = CONFIGS["mse-sgd"]
    Ws, bs, X, T = make_problem(np.float64, loss)
    run = Run(backend, Ws, bs, activations, loss, optimizer, hyper)
    with pytest.raises(ValueError, match="orders must be 2-D"):
        run.trainer.run_epochs(X, T, np.arange(N_SAMPLES, dtype=np.int64), BATCH)
    with pytest.raises(ValueError, match="orders must be 2-D"):
        run.trainer.run_epochs(X, T, np.zeros((2, 0), dtype=np.int64), BATCH)
    with pytest.raises(ValueError, match="order holds an index out of range"):
        run.trainer.run_epochs(X, T, _orders(1, 2) + N_SAMPLES, BATCH)
    with pytest.raises(ValueError, match="batch size out of range"):
        run.trainer.run_epochs(X, T, _orders(1, 2), 0)
    # Nothing was trained by the refused calls.
    for name, a in run.arrays().items():
        fresh = Run(backend, Ws, bs, activations, loss, optimizer, hyper).arrays()[name]
        np.testing.assert_array_equal(a, fresh, err_msg=name)
