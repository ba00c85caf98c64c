"""Costs on the output batch, each with its gradient dy_K = dJ/dy_K (the exercise's
"dy (cost gradient)"). Summed over outputs, averaged over the N samples.

* ``mse``: the exercise's J = 1/(2N) Σ_n ||y_K - t||², so dy_K = (y_K - t) / N.
* ``softmax_cross_entropy`` over logits z (identity output layer), targets t as rows of
  class probabilities (one-hot for labels): J = 1/N Σ_n [lse(z_n) Σ_k t_nk - Σ_k t_nk z_nk]
  with lse the log-sum-exp, computed stably after subtracting max(z_n);
  dy = (softmax(z) Σ_k t_k - t) / N, which is (softmax(z) - t) / N for one-hot t.
* ``binary_cross_entropy`` over logits z, t in [0, 1] per output:
  J = 1/N Σ [max(z, 0) - z t + log1p(exp(-|z|))], dy = (sigmoid(z) - t) / N.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .. import _checks
from ._quiet import quiet
from .activations import _sigmoid


def _value_and_grad(name: str, y: np.ndarray, t: np.ndarray) -> tuple[float, np.ndarray]:
    n = y.shape[0]
    if name == "mse":
        diff = y - t
        return 0.5 * np.sum(diff**2) / n, diff / n  # J = 1/(2N) Σ||y_K - t||², dy = (y_K - t)/N
    if name == "softmax_cross_entropy":
        z_max = y.max(axis=1, keepdims=True)
        e = np.exp(y - z_max)
        sum_e = e.sum(axis=1, keepdims=True)
        lse = z_max + np.log(sum_e)  # log Σ exp(z), stable
        t_sum = t.sum(axis=1, keepdims=True)
        value = np.sum(lse * t_sum - np.sum(t * y, axis=1, keepdims=True)) / n
        return value, (e / sum_e * t_sum - t) / n  # dy = (softmax(z) Σt - t) / N
    if name == "binary_cross_entropy":
        value = np.sum(np.maximum(y, 0) - y * t + np.log1p(np.exp(-np.abs(y)))) / n
        return value, (_sigmoid(y) - t) / n  # dy = (sigmoid(z) - t) / N
    raise AssertionError(name)


@quiet
def loss_forward(name: str, output: ArrayLike, target: ArrayLike) -> float:
    """The batch cost J (a Python float).

    Parameters
    ----------
    name : str
        ``"mse"``, ``"softmax_cross_entropy"`` or ``"binary_cross_entropy"``.
    output : ndarray, shape (N, m_K)
        The network's output y_K (logits for the cross-entropy losses).
    target : ndarray, shape (N, m_K)
        Targets; class-probability (one-hot) rows for softmax cross-entropy.
    """
    name, output, target = _checks.loss_args(name, output, target)
    return float(_value_and_grad(name, output, target)[0])


@quiet
def loss_backward(name: str, output: ArrayLike, target: ArrayLike) -> tuple[float, np.ndarray]:
    """``(J, dy)`` with dy = dJ/dy_K of shape (N, m_K), in the output's dtype."""
    name, output, target = _checks.loss_args(name, output, target)
    value, dy = _value_and_grad(name, output, target)
    return float(value), np.ascontiguousarray(dy, dtype=output.dtype)
