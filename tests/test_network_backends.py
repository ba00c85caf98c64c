"""The two backends train the same network to the same parameters and optimizer state,
and a network can move between them at any time."""

from __future__ import annotations

import numpy as np
import pytest

import densa
from network_cases import max_rel_diff, optimizer_state, params

OPTIMIZERS = {
    "sgd-momentum": lambda: densa.SGD(lr=0.05, momentum=0.9),
    "sgd-nesterov-wd": lambda: densa.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": lambda: densa.Adam(lr=0.01),
    "adamw": lambda: densa.Adam(lr=0.01, weight_decay=1e-2),
}

# Relative agreement after 5 epochs (65 updates) between native and reference.
# float64: both follow the same steps in the same order, differing only in summation order
# and exp/tanh code, ~1e-16 per operation; measured ≤ 3e-15 (parameters and state).
# float32: the same differences at u32 ≈ 6e-8 per operation, carried through 65 updates
# (momentum and Adam's moments accumulate them; Adam's m/sqrt(v) amplifies them where v
# is small); measured ≤ 1e-6, so 1e-4 gives a 100x margin while a wrong update rule
# (a missing bias correction, momentum or decay term) moves parameters by 1e-3 or more.
TOLERANCE = {"float64": 1e-10, "float32": 1e-4}


def _train(backend, dtype, make_opt, loss="softmax_cross_entropy", epochs=5):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((200, 5))
    y = rng.integers(0, 3, 200) if loss != "mse" else rng.standard_normal((200, 3))
    net = densa.Network(
        [
            densa.Dense(5, 12, activation="tanh"),
            densa.Dense(12, 8, activation="relu"),
            densa.Dense(8, 3, activation="identity"),
        ],
        loss=loss,
        dtype=dtype,
        backend=backend,
        seed=11,
    )
    opt = make_opt()
    history = net.fit(X, y, epochs=epochs, batch_size=16, optimizer=opt, progress=False)
    return net, history


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_native_and_reference_train_to_the_same_parameters(dtype, opt_name):
    nat, h_nat = _train("native", dtype, OPTIMIZERS[opt_name])
    ref, h_ref = _train("reference", dtype, OPTIMIZERS[opt_name])
    tol = TOLERANCE[dtype]
    # Training really moved the parameters (by far more than the tolerance).
    fresh = densa.Network(
        [densa.Dense(5, 12, "tanh"), densa.Dense(12, 8, "relu"), densa.Dense(8, 3, "identity")],
        loss="softmax_cross_entropy",
        dtype=dtype,
        seed=11,
    )
    assert max_rel_diff(params(ref), params(fresh)) > 1e-2
    assert max_rel_diff(params(nat), params(ref)) < tol
    np.testing.assert_allclose(h_nat.loss, h_ref.loss, rtol=tol)
    state_nat, state_ref = optimizer_state(nat.optimizer), optimizer_state(ref.optimizer)
    assert len(state_nat) == len(state_ref)
    # SGD with momentum: one velocity per tensor; Adam: m and v per tensor, and the step.
    n_tensors = 2 * len(nat.layers)
    assert len(state_nat) - 1 == n_tensors * nat.optimizer.n_state
    assert max_rel_diff(state_nat[:-1], state_ref[:-1]) < tol
    expected_steps = 5 * 13 if nat.optimizer.kind == "adam" else 0  # 200 / 16 → 13 batches
    assert int(state_nat[-1][0]) == int(state_ref[-1][0]) == expected_steps


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_native_and_reference_agree_on_mse(dtype):
    nat, _ = _train("native", dtype, OPTIMIZERS["sgd-momentum"], loss="mse")
    ref, _ = _train("reference", dtype, OPTIMIZERS["sgd-momentum"], loss="mse")
    assert max_rel_diff(params(nat), params(ref)) < TOLERANCE[dtype]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_switching_backend_keeps_parameters_and_predictions(dtype):
    net, _ = _train("native", dtype, OPTIMIZERS["adam"])
    X = np.random.default_rng(3).standard_normal((50, 5))
    before, pred_native = params(net), net.predict(X)
    arrays = [layer.W for layer in net.layers]
    net.backend = "reference"
    assert net.backend == "reference"
    for a, b in zip(params(net), before):
        np.testing.assert_array_equal(a, b)
    # Same arrays, not copies: both backends work on the parameters in place.
    assert all(layer.W is W for layer, W in zip(net.layers, arrays))
    pred_ref = net.predict(X)
    # Forward only: float64 within 1e-13, float32 within a few ulp of the probabilities.
    np.testing.assert_allclose(
        pred_ref, pred_native, rtol=0, atol=1e-13 if dtype == "float64" else 1e-5
    )
    np.testing.assert_allclose(pred_ref.sum(axis=1), 1.0, rtol=1e-5)
    net.backend = "native"
    np.testing.assert_array_equal(net.predict(X), pred_native)


def test_training_continues_across_a_backend_switch():
    """3 epochs native then 2 reference (same optimizer, state kept) equal 5 reference."""
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((96, 5)), rng.integers(0, 3, 96)

    def net_(backend):
        return densa.Network(
            [densa.Dense(5, 9, "tanh"), densa.Dense(9, 7, "relu"), densa.Dense(7, 3, "identity")],
            loss="softmax_cross_entropy",
            dtype="float64",
            backend=backend,
            seed=2,
        )

    mixed, opt = net_("native"), densa.Adam(lr=0.01)
    mixed.fit(X, y, epochs=3, batch_size=16, optimizer=opt, shuffle=False, progress=False)
    mixed.backend = "reference"
    mixed.fit(X, y, epochs=2, batch_size=16, shuffle=False, progress=False)
    assert mixed.optimizer is opt
    assert int(opt.step[0]) == 5 * 6
    ref = net_("reference")
    ref.fit(
        X, y, epochs=5, batch_size=16, optimizer=densa.Adam(lr=0.01), shuffle=False, progress=False
    )
    assert max_rel_diff(params(mixed), params(ref)) < TOLERANCE["float64"]
    assert max_rel_diff(optimizer_state(opt), optimizer_state(ref.optimizer)) < TOLERANCE["float64"]


def test_backend_setter_refuses_unknown_names():
    net = densa.Network([densa.Dense(2, 2, "identity")], seed=0)
    with pytest.raises(ValueError, match="backend: unknown name 'cuda'"):
        net.backend = "cuda"
    with pytest.raises(TypeError, match="backend must be a string"):
        net.backend = 1
    assert net.backend == "native"
