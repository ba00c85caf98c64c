"""The derivation made visible: per-layer dy, dz, dW, db, dx of one forward/backward pass."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .network import Network


class LayerGradients(Mapping[str, np.ndarray]):
    """One layer's quantities from docs/backprop.md, under the exercise's names.

    Mapping (``g["dW"]``) and attributes (``g.dW``) give the same arrays, with
    a row per sample for batch quantities, as NumPy users lay out data. The
    equations (docs/backprop.md) hold a column per sample; in the arrays' row
    layout they read as in the last column:

    ========== ============= ============================== =========================
    name       shape         meaning (a column per sample)  with these arrays
    ========== ============= ============================== =========================
    last_input (N, m_in)     y_{j-1}, the layer's input
    z          (N, m_out)    z_j = W y_{j-1} + b            last_input @ W.T + b
    dy         (N, m_out)    dJ/dy_j (cost gradient, or
                             dx of the layer above)
    dz         (N, m_out)    dz_j = dy_j ⊙ f'(z_j)          dy * f'(z)
    dW         (m_out, m_in) dW = dz·y_{j-1}ᵀ               dz.T @ last_input
    db         (m_out,)      db = sum(dz, axis=1)           dz.sum(axis=0)
    dx         (N, m_in)     dx = Wᵀ·dz, the dy of the      dz @ W
                             layer below
    ========== ============= ============================== =========================
    """

    _names = ("last_input", "z", "dy", "dz", "dW", "db", "dx")

    def __init__(self, **arrays: np.ndarray) -> None:
        self._arrays = {k: arrays[k] for k in self._names}

    def __getitem__(self, key: str) -> np.ndarray:
        return self._arrays[key]

    def __getattr__(self, key: str) -> np.ndarray:
        try:
            arrays: dict[str, np.ndarray] = self.__dict__["_arrays"]
            return arrays[key]
        except KeyError:
            raise AttributeError(key) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={v.shape}" for k, v in self._arrays.items())
        return f"LayerGradients({shapes})"


def gradients(net: Network, X: np.ndarray, T: np.ndarray) -> tuple[float, list[LayerGradients]]:
    """Loss and per-layer gradients of ``net`` on prepared (X, T), by its active backend."""
    be = net._backend
    inputs, zs = [], []
    y = X
    for layer in net.layers:
        inputs.append(y)
        z, y = be.dense_forward(layer.W, layer.b, y, layer.activation)
        zs.append(z)
    value, dy = be.loss_backward(net.loss, y, T)  # dy_K = dJ/dy_K
    out: list[LayerGradients | None] = [None] * len(net.layers)
    for j in reversed(range(len(net.layers))):
        layer = net.layers[j]
        dx, dW, db, dz = be.dense_backward(
            layer.W, inputs[j], zs[j], dy, layer.activation, return_dz=True
        )
        out[j] = LayerGradients(last_input=inputs[j], z=zs[j], dy=dy, dz=dz, dW=dW, db=db, dx=dx)
        dy = dx  # dy_{j-1} = dx_{j-1}
    return float(value), [g for g in out if g is not None]  # every layer is filled
