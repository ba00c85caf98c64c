"""The reference's backward against central finite differences, in float64.

The scalar objective is L = Σ y ⊙ R for a fixed random R, so that dL/dy = R is the dy
fed to dense_backward, and each gradient entry is checked against
(L(θ + h) − L(θ − h)) / 2h. Native is compared with the reference elsewhere; this file
is what makes the reference itself trustworthy.
"""

from __future__ import annotations

import numpy as np
import pytest

from densa import reference
from helpers import ACTIVATIONS, draw_layer

H = 1e-6
# Central differences err by h²·f'''/6 ≈ 1e-12 (truncation) plus eps·|L|/h ≈ 1e-9
# (rounding of L, |L| ≲ 10): 1e-6 relative with 1e-7 absolute leaves a 100x margin.
RTOL, ATOL = 1e-6, 1e-7
# relu and leaky_relu have a kink at 0 (elu's f'' has a jump there): a step of h moves
# z by at most h·max(|x|, |W|, 1) < 1e-5, so no z within this margin crosses zero.
KINK_MARGIN = 1e-3


def _layer_away_from_kinks(seed: int, m_in: int, m_out: int, n: int):
    rng = np.random.default_rng(seed)
    while True:
        W, b, x, R = draw_layer(rng, m_in, m_out, n, np.float64)
        z, _ = reference.dense_forward(W, b, x, "identity")
        if np.min(np.abs(z)) > KINK_MARGIN:
            return W, b, x, R


def _numeric_gradient(objective, theta: np.ndarray) -> np.ndarray:
    """Central differences of objective() with respect to each entry of theta, in place."""
    grad = np.empty_like(theta)
    flat, g = theta.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + H
        up = objective()
        flat[i] = saved - H
        down = objective()
        flat[i] = saved
        g[i] = (up - down) / (2 * H)
    return grad


@pytest.mark.parametrize("shape", [(4, 3, 5), (1, 2, 1), (6, 1, 3)], ids=str)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_backward_matches_finite_differences(activation, shape):
    W, b, x, R = _layer_away_from_kinks(sum(shape) + ACTIVATIONS.index(activation), *shape)

    def objective() -> float:
        return float(np.sum(reference.dense_forward(W, b, x, activation)[1] * R))

    z, _ = reference.dense_forward(W, b, x, activation)
    dx, dW, db = reference.dense_backward(W, x, z, R, activation)  # dy = dL/dy = R
    for name, analytic, theta in (("dW", dW, W), ("db", db, b), ("dx", dx, x)):
        numeric = _numeric_gradient(objective, theta)
        assert analytic.shape == theta.shape, name
        np.testing.assert_allclose(analytic, numeric, rtol=RTOL, atol=ATOL, err_msg=name)
    # The check has teeth: the gradients are not all (near) zero.
    assert np.max(np.abs(dW)) > 1e-3


def test_two_layer_recursion_matches_finite_differences():
    # docs/backprop.md's recursion: the dx of layer 2 is the dy of layer 1, with the mse cost
    # gradient dy_K = (y_K − t) / N at the top.
    rng = np.random.default_rng(3)
    W1, b1, x, _ = draw_layer(rng, 3, 5, 4, np.float64)
    W2, b2, _, t = draw_layer(rng, 5, 2, 4, np.float64)

    def forward():
        z1, y1 = reference.dense_forward(W1, b1, x, "tanh")
        z2, y2 = reference.dense_forward(W2, b2, y1, "softplus")
        return z1, y1, z2, y2

    def objective() -> float:
        return reference.loss_forward("mse", forward()[3], t)

    z1, y1, z2, y2 = forward()
    _, dy2 = reference.loss_backward("mse", y2, t)
    dy1, dW2, db2 = reference.dense_backward(W2, y1, z2, dy2, "softplus")
    dx, dW1, db1 = reference.dense_backward(W1, x, z1, dy1, "tanh")
    for name, analytic, theta in (
        ("dW2", dW2, W2),
        ("db2", db2, b2),
        ("dW1", dW1, W1),
        ("db1", db1, b1),
        ("dx", dx, x),
    ):
        numeric = _numeric_gradient(objective, theta)
        np.testing.assert_allclose(analytic, numeric, rtol=RTOL, atol=ATOL, err_msg=name)
