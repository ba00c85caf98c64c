"""Parameter updates, in place (the same rules as ``cpp/densa/optimizer.hpp``).

SGD (PyTorch's convention, no dampening)::

    g = dθ + weight_decay · θ
    v = momentum · v + g                      (only when momentum > 0)
    step = g + momentum · v if nesterov else v   (g when momentum == 0)
    θ ← θ − lr · step

Adam with decoupled weight decay (AdamW), t counted from 1::

    θ ← θ · (1 − lr · weight_decay)
    m = β1 m + (1 − β1) dθ ;  v = β2 v + (1 − β2) dθ²
    θ ← θ − (lr / (1 − β1ᵗ)) · m / (sqrt(v) / sqrt(1 − β2ᵗ) + ε)

Scalar coefficients are Python floats, so NumPy rounds them once to the parameter's
dtype: a float32 update runs entirely in float32, as the native one does.

Each function first makes every check of its arguments (``densa._checks.sgd_args`` /
``adam_args``, which the native backend calls too): the arrays, that no two of them
overlap, and the coefficients, refused as ``densa.SGD`` / ``densa.Adam`` refuse them
(lr a finite number > 0; momentum, β1, β2 in [0, 1); ε a finite number > 0;
weight_decay a finite number >= 0). Nothing is written before they pass.
"""

from __future__ import annotations

import math

import numpy as np

from .._checks import adam_args, sgd_args
from ._quiet import quiet


@quiet
def sgd_step(
    theta: np.ndarray,
    grad: np.ndarray,
    velocity: np.ndarray | None,
    lr: float,
    momentum: float,
    nesterov: bool,
    weight_decay: float,
) -> None:
    """One SGD update of ``theta`` in place (``velocity`` too, when momentum > 0)."""
    velocity, lr, momentum, weight_decay = sgd_args(
        theta, grad, velocity, lr, momentum, weight_decay
    )
    p = theta.reshape(-1)
    g = grad.reshape(-1)
    if weight_decay != 0.0:
        g = g + weight_decay * p  # g = dθ + weight_decay · θ
    if momentum > 0.0:
        assert velocity is not None  # sgd_args refuses a missing velocity
        v = velocity.reshape(-1)
        v *= momentum  # v = momentum · v + g
        v += g
        step = g + momentum * v if nesterov else v
    else:
        step = g
    p -= lr * step  # θ ← θ − lr · step


@quiet
def adam_step(
    theta: np.ndarray,
    grad: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    step: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
) -> None:
    """One AdamW update of ``theta``, ``m`` and ``v`` in place; ``step`` is t after increment."""
    step, lr, beta1, beta2, eps, weight_decay = adam_args(
        theta, grad, m, v, step, lr, beta1, beta2, eps, weight_decay
    )
    p, g = theta.reshape(-1), grad.reshape(-1)
    mm, vv = m.reshape(-1), v.reshape(-1)
    step_size = lr / (1.0 - beta1**step)
    sqrt_bc2 = math.sqrt(1.0 - beta2**step)
    if weight_decay != 0.0:
        p *= 1.0 - lr * weight_decay  # θ ← θ · (1 − lr · weight_decay)
    mm[...] = beta1 * mm + (1.0 - beta1) * g  # m = β1 m + (1 − β1) dθ
    vv[...] = beta2 * vv + (1.0 - beta2) * np.square(g)  # v = β2 v + (1 − β2) dθ²
    p -= step_size * mm / (np.sqrt(vv) / sqrt_bc2 + eps)
