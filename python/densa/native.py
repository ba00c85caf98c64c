"""densa's native backend: the reference's functions, computed by the C++ extension.

Same names, signatures and results as ``densa.reference``. Arguments are checked and
converted here, once and on purpose (``densa._checks`` states the policy); the
extension ``densa._core`` then refuses anything that would need a copy, so a
C-contiguous array of the right dtype is always read in place.
"""

from __future__ import annotations

import numpy as np

from . import _checks
from . import _core as core


def dense_forward(W, b, x, activation):
    """``(z, y)`` of one dense layer; see ``densa.reference.dense_forward``."""
    W, b, x, act = _checks.dense_args(W, b, x, activation)
    return core.dense_forward(W, b, x, act)


def dense_backward(W, x, z, dy, activation, return_dz=False):
    """``(dx, dW, db[, dz])`` of one dense layer; see ``densa.reference.dense_backward``."""
    W, x, z, dy, act = _checks.dense_backward_args(W, x, z, dy, activation)
    return core.dense_backward(W, x, z, dy, act, bool(return_dz))


def _loss_args(name, output, target):
    name = _checks.loss_name(name)
    output = _checks.float_array(output, "output", 2)
    target = _checks.float_array(target, "target", 2)
    _checks.same_dtype(output=output, target=target)
    _checks.non_empty(output, "output")
    if target.shape != output.shape:
        raise ValueError(f"target has shape {target.shape} but the output has shape {output.shape}")
    return name, output, target


def loss_forward(name, output, target):
    """The batch cost J; see ``densa.reference.loss_forward``."""
    return core.loss_forward(*_loss_args(name, output, target))


def loss_backward(name, output, target):
    """``(J, dy)``; see ``densa.reference.loss_backward``."""
    return core.loss_backward(*_loss_args(name, output, target))


def sgd_step(theta, grad, velocity, lr, momentum, nesterov, weight_decay):
    """One SGD update in place; see ``densa.reference.sgd_step``."""
    if velocity is None:
        velocity = np.empty(0, dtype=theta.dtype)
    core.sgd_step(theta, grad, velocity, lr, momentum, nesterov, weight_decay)


def adam_step(theta, grad, m, v, step, lr, beta1, beta2, eps, weight_decay):
    """One AdamW update in place; see ``densa.reference.adam_step``."""
    core.adam_step(theta, grad, m, v, int(step), lr, beta1, beta2, eps, weight_decay)


def Trainer(Ws, bs, activations, loss, optimizer, hyper, state_W, state_b, step, max_batch):
    """The fused C++ training loop over the caller's arrays; see ``densa.reference.Trainer``."""
    dtype = np.dtype(Ws[0].dtype)
    cls = core.Trainer_float32 if dtype == np.float32 else core.Trainer_float64
    return cls(Ws, bs, activations, loss, optimizer, hyper, state_W, state_b, step, max_batch)
