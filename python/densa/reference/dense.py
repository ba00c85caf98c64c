"""One dense layer, forward and backward: docs/backprop.md's equations, line by line.

Batches arrive as NumPy users hold them, ``(N, m)`` with a row per sample. The
equations use one column per sample (``m x N``), so each function transposes on the
way in (``Y = x.T``) and back on the way out; the transposes are views, not copies.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .. import _checks
from ._quiet import quiet
from .activations import Activation


@quiet
def dense_forward(
    W: ArrayLike, b: ArrayLike, x: ArrayLike, activation: str
) -> tuple[np.ndarray, np.ndarray]:
    """Forward through one dense layer.

    Parameters
    ----------
    W : ndarray, shape (m_out, m_in)
        Weights ``W_{j-1}``.
    b : ndarray, shape (m_out,)
        Bias ``b_{j-1}``.
    x : ndarray, shape (N, m_in)
        The layer's input ``y_{j-1}``, a row per sample.
    activation : str
        Name of ``f_j``.

    Returns
    -------
    z, y : ndarray, shape (N, m_out)
        Pre-activation ``z_j`` and output ``y_j``, in the inputs' dtype.
    """
    W, b, x, name = _checks.dense_args(W, b, x, activation)
    f = Activation(name)
    Y = x.T  # y_{j-1}, one column per sample (m_in x N)
    Z = W @ Y + b[:, None]  # z_j = W_{j-1} y_{j-1} + b_{j-1}
    Yj = f.f(Z)  # y_j = f_j(z_j)
    return np.ascontiguousarray(Z.T), np.ascontiguousarray(Yj.T)


@quiet
def dense_backward(
    W: ArrayLike,
    x: ArrayLike,
    z: ArrayLike,
    dy: ArrayLike,
    activation: str,
    return_dz: bool = False,
) -> tuple[np.ndarray, ...]:
    """Backward through one dense layer (docs/backprop.md's recursion, one step).

    Parameters
    ----------
    W : ndarray, shape (m_out, m_in)
    x : ndarray, shape (N, m_in)
        The layer's last input ``y_{j-1}`` (``last_input``).
    z : ndarray, shape (N, m_out)
        Its pre-activation ``z_j`` from the forward pass.
    dy : ndarray, shape (N, m_out)
        ``dJ/dy_j``: the cost gradient for the last layer, else the ``dx`` of the layer above.
    activation : str
    return_dz : bool
        Also return ``dz`` for inspection.

    Returns
    -------
    dx : ndarray, shape (N, m_in)
    dW : ndarray, shape (m_out, m_in)
    db : ndarray, shape (m_out,)
    dz : ndarray, shape (N, m_out), only when ``return_dz``
    """
    W, x, z, dy, name = _checks.dense_backward_args(W, x, z, dy, activation)
    f = Activation(name)
    Y, Z, dY = x.T, z.T, dy.T  # column per sample
    dZ = dY * f.df(Z)  # dz_j = dy_j ⊙ f_j'(z_j)
    dW = dZ @ Y.T  # dW_{j-1} = dz_j · y_{j-1}ᵀ
    db = np.sum(dZ, axis=1)  # db_{j-1} = sum(dz_j, axis=1)
    dX = W.T @ dZ  # dx_{j-1} = W_{j-1}ᵀ · dz_j
    out = (np.ascontiguousarray(dX.T), np.ascontiguousarray(dW), db)
    return (*out, np.ascontiguousarray(dZ.T)) if return_dz else out
