"""Activations f and f' of the reference (the exercise's ``activation.f`` / ``activation.df``).

Activations (``f`` and its derivative ``df``), element-wise on ``z``:

=============  ==============================================  ==========================================
name           f(z)                                            f'(z)
=============  ==============================================  ==========================================
identity       z   (alias ``"linear"``)                         1
sigmoid        1 / (1 + exp(-z))                                f(z) (1 - f(z))
tanh           tanh(z)                                          1 - tanh(z)^2
relu           max(z, 0)                                        1 if z > 0 else 0
leaky_relu     z if z > 0 else 0.01 z                           1 if z > 0 else 0.01
elu            z if z > 0 else exp(z) - 1   (alpha = 1)         1 if z > 0 else exp(z)
softplus       log(1 + exp(z))                                  sigmoid(z)
gelu           0.5 z (1 + tanh(u)),                             0.5 (1 + tanh u) + 0.5 z (1 - tanh^2 u) u'
               u = sqrt(2/pi) (z + 0.044715 z^3)                u' = sqrt(2/pi) (1 + 3 * 0.044715 z^2)
=============  ==============================================  ==========================================

Each is evaluated in a form that cannot overflow for ``|z|`` up to 1e4 (``exp`` only
ever sees a non-positive argument: sigmoid from ``exp(-|z|)``, softplus as
``max(z, 0) + log1p(exp(-|z|))``, elu from ``expm1(min(z, 0))``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _checks

_LEAKY_SLOPE = 0.01
_ELU_ALPHA = 1.0
_GELU_C = 0.044715
_SQRT_2_OVER_PI = 0.7978845608028654


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # 1 / (1 + exp(-z)) from e = exp(-|z|) <= 1, so that exp never overflows.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def _gelu_u(z: np.ndarray) -> np.ndarray:
    return _SQRT_2_OVER_PI * (z + _GELU_C * z**3)


@dataclass(frozen=True)
class Activation:
    """An activation ``f`` with its derivative ``df`` (the exercise's ``activation.df``)."""

    name: str

    def f(self, z: np.ndarray) -> np.ndarray:
        """y = f(z), element-wise, in z's dtype."""
        n = self.name
        if n == "identity":
            return z.copy()
        if n == "sigmoid":
            return _sigmoid(z)
        if n == "tanh":
            return np.tanh(z)
        if n == "relu":
            return np.maximum(z, 0)
        if n == "leaky_relu":
            return np.where(z > 0, z, _LEAKY_SLOPE * z)
        if n == "elu":
            return np.where(z > 0, z, _ELU_ALPHA * np.expm1(np.minimum(z, 0)))
        if n == "softplus":
            return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))
        if n == "gelu":
            return 0.5 * z * (1 + np.tanh(_gelu_u(z)))
        raise AssertionError(n)  # names are checked on construction

    def df(self, z: np.ndarray) -> np.ndarray:
        """f'(z), element-wise, in z's dtype."""
        n = self.name
        one = np.ones_like(z)
        if n == "identity":
            return one
        if n == "sigmoid":
            s = _sigmoid(z)
            return s * (1 - s)
        if n == "tanh":
            return 1 - np.tanh(z) ** 2
        if n == "relu":
            return np.where(z > 0, one, 0 * one)
        if n == "leaky_relu":
            return np.where(z > 0, one, _LEAKY_SLOPE * one)
        if n == "elu":
            return np.where(z > 0, one, _ELU_ALPHA * np.exp(np.minimum(z, 0)))
        if n == "softplus":
            return _sigmoid(z)
        if n == "gelu":
            t = np.tanh(_gelu_u(z))
            du = _SQRT_2_OVER_PI * (1 + 3 * _GELU_C * z**2)
            return 0.5 * (1 + t) + 0.5 * z * (1 - t**2) * du
        raise AssertionError(n)


def activation(name: str) -> Activation:
    """The activation called ``name`` (see the table in this module's docstring)."""
    return Activation(_checks.activation_name(name))
