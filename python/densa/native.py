"""densa's native backend: the reference's functions, computed by the C++ extension.

Same names, signatures and results as ``densa.reference``. Arguments are checked and
converted here, once and on purpose (``densa._checks`` states the policy); the
extension ``densa._core`` then refuses anything that would need a copy, so a
C-contiguous array of the right dtype is always read in place.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from . import _checks, _trainer_checks
from . import _core as core

# The fast path hands the caller's arguments to the extension unchecked. The extension
# takes only what needs no conversion (C-contiguous, aligned float32/float64 arrays of one
# dtype, a non-empty batch, shapes it checks itself) and raises TypeError or ValueError
# for anything else; the Python checks then run, convert what the policy converts, and
# raise the documented message. This saves the ~2-3 us of Python checks on every
# well-formed call, a fifth of a 64x64 layer's forward + backward; the wrapper itself is
# kept to one try (a helper call and a cast() cost ~0.5 us per forward + backward).
_forward_unchecked: Callable[..., tuple[np.ndarray, np.ndarray]] = core.dense_forward
_backward_unchecked: Callable[..., tuple[np.ndarray, ...]] = core.dense_backward
_sgd_unchecked: Callable[..., None] = core.sgd_step
_adam_unchecked: Callable[..., None] = core.adam_step
# fit's finite copy in one call (densa._guard.LastFinite); not part of the functions the
# two backends share, like _all_finite below.
_copy_if_finite: Callable[..., int] = core.copy_if_finite
# The check of a network's inputs for NaN and inf (Network._all_finite), in one pass.
_all_finite: Callable[[np.ndarray], bool] = core.all_finite
# What the network wraps this backend's trainer calls and forward passes in
# (network._backend_quiet): the extension raises no NumPy warnings, so nothing to
# silence; a no-op that can be entered again and again, from any thread.
_no_numpy_warnings = contextlib.nullcontext()
# Whether a network's input or targets need no conversion and hold no NaN or inf
# (Network._ready_rows), in one call.
_ready_rows: Callable[[np.ndarray, np.dtype[Any], int, int, bool], bool] = core.ready_rows
# Whether an optimizer's state already fits the parameters (Optimizer.prepare), in one call.
_state_ready: Callable[..., bool] = core.state_ready
# An optimizer's new state, zeros aligned as densa._memory.aligned_zeros makes them, in one
# call (Optimizer.prepare).
_aligned_zeros_like: Callable[[list[np.ndarray], int], list[np.ndarray]] = core.aligned_zeros_like
# Class labels as one-hot rows (losses.encode_targets), in one pass.
_one_hot: Callable[[np.ndarray, int, np.dtype[Any]], np.ndarray | None] = core.one_hot
# The forward pass through every layer in one call (Network._forward): predictions
# without a crossing and two new arrays per layer.
_network_forward: Callable[..., np.ndarray] = core.network_forward


def dense_forward(
    W: ArrayLike, b: ArrayLike, x: ArrayLike, activation: str
) -> tuple[np.ndarray, np.ndarray]:
    """``(z, y)`` of one dense layer; see ``densa.reference.dense_forward``."""
    # Only a str goes straight in: pybind11 would also take bytes, which the reference
    # (and so the checked path) refuses.
    if activation.__class__ is str:
        try:
            return _forward_unchecked(W, b, x, activation)
        except (TypeError, ValueError):
            pass  # the checked path below converts, or raises the documented error
    W, b, x, act = _checks.dense_args(W, b, x, activation)
    return core.dense_forward(W, b, x, act)


def dense_backward(
    W: ArrayLike,
    x: ArrayLike,
    z: ArrayLike,
    dy: ArrayLike,
    activation: str,
    return_dz: bool = False,
) -> tuple[np.ndarray, ...]:
    """``(dx, dW, db[, dz])`` of one dense layer; see ``densa.reference.dense_backward``."""
    if activation.__class__ is str:  # as in dense_forward
        try:
            return _backward_unchecked(W, x, z, dy, activation, return_dz)
        except (TypeError, ValueError):
            pass  # the checked path below converts, or raises the documented error
    W, x, z, dy, act = _checks.dense_backward_args(W, x, z, dy, activation)
    return core.dense_backward(W, x, z, dy, act, bool(return_dz))


def loss_forward(name: str, output: ArrayLike, target: ArrayLike) -> float:
    """The batch cost J; see ``densa.reference.loss_forward``."""
    return core.loss_forward(*_checks.loss_args(name, output, target))


def loss_backward(name: str, output: ArrayLike, target: ArrayLike) -> tuple[float, np.ndarray]:
    """``(J, dy)``; see ``densa.reference.loss_backward``."""
    return core.loss_backward(*_checks.loss_args(name, output, target))


# SGD without momentum reads no velocity, but the extension takes an array of theta's
# dtype: one shared empty array per dtype (nothing is ever written to it) saves an
# np.empty per call. Any other dtype finds None, which the extension refuses.
_NO_VELOCITY: dict[Any, np.ndarray] = {dt: np.empty(0, dt) for dt in _checks.FLOAT_DTYPES}
# Adam's step count t goes to C++ as a 64-bit integer. Clamping changes nothing: beta**t
# is 0 for every |beta| < 1 long before t = 2**62, and both backends compute beta**t in
# double, where every such t is even.
_MAX_STEP = 2**62


# The optimizer steps' fast path may call the extension unchecked only with what the
# checked path would accept: the extension judges neither the coefficients (it would
# write NaN or inf in place) nor overlapping arrays (it would compute another update
# than the reference's). So, before the call, the coefficients must be floats or ints
# (not bools, not arrays) in their ranges (plain comparisons, which NaN fails; an int
# beyond float's range passes them, but pybind11 then refuses it before any write),
# and the arrays must be apart. They are when their roots (the array itself, or the
# array it is a view of) are distinct arrays that own their data: distinct
# allocations. That takes attribute reads, no call (np.shares_memory costs ~0.2 us a
# pair, six pairs for Adam); views of one buffer take the exact test
# (_checks.overlap). Anything else (a float32 or 0-d array coefficient, an array that
# is not an ndarray's view) takes the checked path, ~10 us.
_PLAIN = frozenset({float, int, np.float64})
_INF = math.inf


def sgd_step(
    theta: np.ndarray,
    grad: np.ndarray,
    velocity: np.ndarray | None,
    lr: float,
    momentum: float,
    nesterov: bool,
    weight_decay: float,
) -> None:
    """One SGD update in place; see ``densa.reference.sgd_step``."""
    try:
        if (
            lr.__class__ in _PLAIN
            and momentum.__class__ in _PLAIN
            and weight_decay.__class__ in _PLAIN
            and 0.0 < lr < _INF
            and 0.0 <= weight_decay < _INF
        ):
            rt, rg = theta.base, grad.base  # the roots (see above, and adam_step)
            if rt is None:
                rt = theta
            if rg is None:
                rg = grad
            if momentum == 0.0:  # no velocity: read by neither backend
                if (rt is not rg and rt.flags.owndata and rg.flags.owndata) or _checks.overlap(
                    theta=theta, grad=grad
                ) is None:
                    return _sgd_unchecked(
                        theta, grad, _NO_VELOCITY.get(theta.dtype), lr, 0.0, nesterov, weight_decay
                    )
            elif 0.0 < momentum < 1.0:
                vel: Any = velocity  # None fails .base: the checked path names it
                rv = vel.base
                if rv is None:
                    rv = vel
                if (
                    rt is not rg
                    and rt is not rv
                    and rg is not rv
                    and rt.flags.owndata
                    and rg.flags.owndata
                    and rv.flags.owndata
                ) or _checks.overlap(theta=theta, grad=grad, velocity=vel) is None:
                    return _sgd_unchecked(theta, grad, vel, lr, momentum, nesterov, weight_decay)
    except (AttributeError, TypeError, ValueError):
        pass  # the checked path below converts, or raises the documented error
    velocity, lr, momentum, weight_decay = _checks.sgd_args(
        theta, grad, velocity, lr, momentum, weight_decay
    )
    core.sgd_step(
        theta,
        _checks.in_place(grad, theta.dtype),
        _NO_VELOCITY[theta.dtype] if velocity is None else velocity,
        lr,
        momentum,
        bool(nesterov) if momentum > 0.0 else False,  # the reference reads it only then
        weight_decay,
    )


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
    """One AdamW update in place; see ``densa.reference.adam_step``."""
    try:
        if (
            lr.__class__ in _PLAIN
            and beta1.__class__ in _PLAIN
            and beta2.__class__ in _PLAIN
            and eps.__class__ in _PLAIN
            and weight_decay.__class__ in _PLAIN
            and 0.0 < lr < _INF
            and 0.0 <= beta1 < 1.0
            and 0.0 <= beta2 < 1.0
            and 0.0 < eps < _INF
            and 0.0 <= weight_decay < _INF
        ):
            # Each array's root: itself, or the array it views (NumPy collapses chains of
            # views to the array that owns the data, unless a subclass or a non-array
            # buffer intervenes: then .flags fails or owndata is False).
            rt, rg, rm, rv = theta.base, grad.base, m.base, v.base
            if rt is None:
                rt = theta
            if rg is None:
                rg = grad
            if rm is None:
                rm = m
            if rv is None:
                rv = v
            if (
                rt is not rg
                and rt is not rm
                and rt is not rv
                and rg is not rm
                and rg is not rv
                and rm is not rv
                and rt.flags.owndata
                and rg.flags.owndata
                and rm.flags.owndata
                and rv.flags.owndata
            ) or _checks.overlap(theta=theta, grad=grad, m=m, v=v) is None:
                # A step count that is not a plain int (a bool, which pybind11 would take
                # as 0 or 1, a float, a NumPy integer) goes to the checked path as None.
                return _adam_unchecked(
                    theta,
                    grad,
                    m,
                    v,
                    step if step.__class__ is int else None,
                    lr,
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                )
    except (AttributeError, TypeError, ValueError):
        pass  # the checked path below converts, or raises the documented error
    step, lr, beta1, beta2, eps, weight_decay = _checks.adam_args(
        theta, grad, m, v, step, lr, beta1, beta2, eps, weight_decay
    )
    core.adam_step(
        theta,
        _checks.in_place(grad, theta.dtype),
        m,
        v,
        min(step, _MAX_STEP),
        lr,
        beta1,
        beta2,
        eps,
        weight_decay,
    )


# The native trainer of each parameter dtype, by the exact dtype of layer 0's W: any
# other (float16, a byte-swapped float64, ...) goes straight to the checked path.
_TRAINERS: dict[np.dtype[Any], type[Any]] = {
    np.dtype(np.float32): core.Trainer_float32,
    np.dtype(np.float64): core.Trainer_float64,
}


def sample_orders(seeds: ArrayLike, n: int) -> np.ndarray:
    """Epoch orders: row e is 0 .. n-1 shuffled from ``seeds[e]``; the same arrays as
    ``densa.reference.sample_orders``, which documents the shuffle."""
    if seeds.__class__ is np.ndarray and n.__class__ is int and 0 <= n < _checks.MAX_ORDER:
        # What fit passes (a fresh uint64 array, a sample count) goes straight to the
        # extension, which refuses any other array with TypeError; the checks cost fit
        # ~0.6 ms right after an idle pause. The same function computes either way.
        try:
            return core.sample_orders(seeds, n)
        except TypeError:
            pass  # not an array the extension reads in place: the checks convert or say
    seeds_a, n_i = _checks.order_args(seeds, n)
    return core.sample_orders(seeds_a, n_i)


def Trainer(
    Ws: list[np.ndarray],
    bs: list[np.ndarray],
    activations: list[str],
    loss: str,
    optimizer: str,
    hyper: dict[str, float],
    state_W: list[list[np.ndarray]],
    state_b: list[list[np.ndarray]],
    step: np.ndarray | None,
    max_batch: int,
) -> Any:
    """The fused C++ training loop over the caller's arrays; see ``densa.reference.Trainer``.

    The fast path hands the arguments to the extension as they are: it takes only arrays
    it can update in place, none sharing memory with another, and refuses anything else
    with a TypeError or ValueError that names no argument (pybind11's, or the
    extension's own). Then (only then) the checks both backends share run
    (``_trainer_checks.trainer_settings`` and ``trainer_arrays``) and raise the named
    message; should they find nothing, the extension's own error is raised.
    """
    args = (Ws, bs, activations, loss, optimizer, hyper, state_W, state_b, step, max_batch)
    try:
        cls = _TRAINERS[Ws[0].dtype]
    except (AttributeError, IndexError, KeyError, TypeError):
        cls = None  # not a list of float32 / float64 arrays: the checked path names it
    if cls is not None and (
        max_batch.__class__ is bool or any(a.__class__ is not str for a in activations)
    ):
        cls = None  # pybind11 would also take these (bytes, True), which are refused
    if cls is not None:
        try:
            return cls(*args)
        except (TypeError, ValueError) as exc:
            error: BaseException = exc
    settings = _trainer_checks.trainer_settings(optimizer, hyper, step)
    _trainer_checks.trainer_loss_and_batch(loss, max_batch)
    _trainer_checks.trainer_arrays(
        Ws,
        bs,
        activations,
        state_W,
        state_b,
        _trainer_checks.trainer_state_count(optimizer, settings),
    )
    if cls is None:  # the checks found nothing: whatever the extension says
        cls = _TRAINERS[np.dtype(np.float32 if Ws[0].dtype == np.float32 else np.float64)]
        return cls(*args)
    raise error
