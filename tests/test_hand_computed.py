"""Small cases worked out by hand, checked on both backends and in both dtypes.

One layer, N = 1 sample, m_in = m_out = 2:

    W = [[1,  2],      b = [0.5, -1]      x = [1, 2]      dy = [1, -2]
         [3, -1]]

    z = W x + b = [1·1 + 2·2 + 0.5,  3·1 − 1·2 − 1] = [5.5, 0]

identity:  y = z = [5.5, 0];  f' = 1, so dz = dy = [1, -2]
    dW = dz·xᵀ = [[ 1·1,  1·2],   = [[ 1,  2],        db = dz = [1, -2]
                  [-2·1, -2·2]]      [-2, -4]]
    dx = Wᵀ·dz = [1·1 + 3·(-2),  2·1 + (-1)·(-2)] = [-5, 4]

relu:  y = [5.5, 0]; z₂ = 0 sits on the kink, where densa takes f'(0) = 0:
    dz = [1·1, -2·0] = [1, 0];  dW = [[1, 2], [0, 0]];  db = [1, 0]
    dx = Wᵀ·dz = [1·1 + 3·0, 2·1 − 1·0] = [1, 2]

sigmoid, with b = [-5, ln 3 − 1] instead so that z = [0, ln 3]:
    y = [1/(1+1), 1/(1+1/3)] = [1/2, 3/4];  f' = y(1−y) = [1/4, 3/16]
    dz = [1·1/4, -2·3/16] = [1/4, -3/8]
    dW = [[1/4, 1/2], [-3/8, -3/4]];  db = [1/4, -3/8]
    dx = [1·1/4 + 3·(-3/8),  2·1/4 + (-1)·(-3/8)] = [-7/8, 7/8]

mse on y = [5.5, 0] against t = [5, 1] (N = 1): y − t = [0.5, -1]
    J = ½ (0.5² + 1²) / 1 = 0.625;  dy = (y − t) / N = [0.5, -1]
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from helpers import BACKENDS, DTYPES, assert_matches

W_HAND = [[1.0, 2.0], [3.0, -1.0]]
X_HAND = [[1.0, 2.0]]
DY_HAND = [[1.0, -2.0]]

CASES = {
    "identity": {
        "b": [0.5, -1.0],
        "z": [[5.5, 0.0]],
        "y": [[5.5, 0.0]],
        "dz": [[1.0, -2.0]],
        "dW": [[1.0, 2.0], [-2.0, -4.0]],
        "db": [1.0, -2.0],
        "dx": [[-5.0, 4.0]],
    },
    "relu": {
        "b": [0.5, -1.0],
        "z": [[5.5, 0.0]],
        "y": [[5.5, 0.0]],
        "dz": [[1.0, 0.0]],
        "dW": [[1.0, 2.0], [0.0, 0.0]],
        "db": [1.0, 0.0],
        "dx": [[1.0, 2.0]],
    },
    "sigmoid": {
        "b": [-5.0, math.log(3.0) - 1.0],
        "z": [[0.0, math.log(3.0)]],
        "y": [[0.5, 0.75]],
        "dz": [[0.25, -0.375]],
        "dW": [[0.25, 0.5], [-0.375, -0.75]],
        "db": [0.25, -0.375],
        "dx": [[-0.875, 0.875]],
    },
}

backends = pytest.mark.parametrize("backend", list(BACKENDS.values()), ids=list(BACKENDS))


@pytest.mark.parametrize("activation", list(CASES))
@pytest.mark.parametrize("dtype", DTYPES)
@backends
def test_one_layer_by_hand(backend, dtype, activation):
    case = {k: np.array(v, dtype=dtype) for k, v in CASES[activation].items()}
    W, x, dy = (np.array(a, dtype=dtype) for a in (W_HAND, X_HAND, DY_HAND))
    z, y = backend.dense_forward(W, case["b"], x, activation)
    # Tolerances: the inputs are exact in binary except ln 3, so each result is within
    # a few roundings of the hand value; reduction=2 for the two-term sums.
    assert_matches(z, case["z"], "z", reduction=2)
    assert_matches(y, case["y"], "y", reduction=2)
    dx, dW, db, dz = backend.dense_backward(W, x, z, dy, activation, return_dz=True)
    assert_matches(dz, case["dz"], "dz", reduction=2)
    assert_matches(dW, case["dW"], "dW", reduction=2)
    assert_matches(db, case["db"], "db", reduction=2)
    assert_matches(dx, case["dx"], "dx", reduction=2)


@pytest.mark.parametrize("dtype", DTYPES)
@backends
def test_mse_by_hand(backend, dtype):
    y = np.array([[5.5, 0.0]], dtype=dtype)
    t = np.array([[5.0, 1.0]], dtype=dtype)
    value, dy = backend.loss_backward("mse", y, t)
    assert value == 0.625  # every step is exact in binary
    assert backend.loss_forward("mse", y, t) == 0.625
    assert_matches(dy, np.array([[0.5, -1.0]], dtype=dtype), "dy")


@pytest.mark.parametrize("dtype", DTYPES)
@backends
def test_sgd_momentum_by_hand(backend, dtype):
    # θ = [1, -2], dθ = [0.5, 0.25], lr = 0.1, momentum = 0.9, twice with the same dθ:
    #   step 1: v = 0.9·0 + dθ = [0.5, 0.25];     θ = θ − 0.1 v = [0.95, -2.025]
    #   step 2: v = 0.9·v + dθ = [0.95, 0.475];   θ = θ − 0.1 v = [0.855, -2.0725]
    theta = np.array([1.0, -2.0], dtype=dtype)
    grad = np.array([0.5, 0.25], dtype=dtype)
    velocity = np.zeros_like(theta)
    backend.sgd_step(theta, grad, velocity, 0.1, 0.9, False, 0.0)
    assert_matches(velocity, np.array([0.5, 0.25], dtype=dtype), "velocity")
    assert_matches(theta, np.array([0.95, -2.025], dtype=dtype), "theta")
    backend.sgd_step(theta, grad, velocity, 0.1, 0.9, False, 0.0)
    assert_matches(velocity, np.array([0.95, 0.475], dtype=dtype), "velocity")
    assert_matches(theta, np.array([0.855, -2.0725], dtype=dtype), "theta")


@pytest.mark.parametrize("dtype", DTYPES)
@backends
def test_adam_first_step_by_hand(backend, dtype):
    # t = 1: m = 0.1 dθ, v = 0.001 dθ²; the bias corrections give m̂ = dθ, v̂ = dθ², so
    # θ moves by lr · dθ / (|dθ| + ε) = lr · sign(dθ), up to ε: θ = [1 − 0.01, -2 + 0.01].
    theta = np.array([1.0, -2.0], dtype=dtype)
    grad = np.array([0.5, -0.25], dtype=dtype)
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    backend.adam_step(theta, grad, m, v, 1, 0.01, 0.9, 0.999, 1e-8, 0.0)
    assert_matches(m, np.array([0.05, -0.025], dtype=dtype), "m")
    assert_matches(v, np.array([0.00025, 0.0000625], dtype=dtype), "v")
    # ε/|dθ| ≤ 4e-8 shifts θ by at most 4e-10: below float32's rounding, within 1e-9 in float64.
    assert_matches(theta, np.array([0.99, -1.99], dtype=dtype), "theta", atol=1e-9)


@pytest.mark.parametrize("dtype", DTYPES)
@backends
def test_softmax_cross_entropy_with_rows_not_summing_to_one_by_hand(backend, dtype):
    """Guards the Σ_k t_k factor of softmax cross-entropy (value and dy) for soft targets.

    z = [0, ln 3] for both rows: softmax(z) = [1/4, 3/4], lse(z) = ln 4.
    Row 1, t = [1, 1] (Σt = 2):   J₁ = 2 ln 4 − ln 3,  dy₁ = [2/4 − 1, 6/4 − 1] = [-1/2, 1/2]
    Row 2, t = [1/2, 0] (Σt = ½): J₂ = ½ ln 4,         dy₂ = [1/8 − 1/2, 3/8] = [-3/8, 3/8]
    N = 2: J = (J₁ + J₂) / 2 = (2.5 ln 4 − ln 3) / 2, dy = [dy₁, dy₂] / 2.
    """
    z = np.array([[0.0, math.log(3.0)], [0.0, math.log(3.0)]], dtype=dtype)
    t = np.array([[1.0, 1.0], [0.5, 0.0]], dtype=dtype)
    expected_j = (2.5 * math.log(4.0) - math.log(3.0)) / 2
    value, dy = backend.loss_backward("softmax_cross_entropy", z, t)
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    assert value == pytest.approx(expected_j, rel=rtol)
    forward = backend.loss_forward("softmax_cross_entropy", z, t)
    assert forward == pytest.approx(expected_j, rel=rtol)
    expected_dy = np.array([[-0.25, 0.25], [-0.1875, 0.1875]], dtype=dtype)
    assert_matches(dy, expected_dy, "dy", reduction=2)
