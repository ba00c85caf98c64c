"""Weight initializers. Every draw comes from the network's ``numpy.random.Generator``,
so the same seed gives the same network.

* ``glorot_uniform``: U(-a, a), a = sqrt(6 / (n_in + n_out))   (Glorot & Bengio, 2010)
* ``glorot_normal``:  N(0, 2 / (n_in + n_out))
* ``he_uniform``:     U(-a, a), a = sqrt(6 / n_in)              (He et al., 2015)
* ``he_normal``:      N(0, 2 / n_in)

Biases start at zero. The default follows the activation: He for the relu family
(relu, leaky_relu, elu, gelu), Glorot for the rest.
"""

from __future__ import annotations

import numpy as np

INITIALIZERS = ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal")
_RELU_LIKE = ("relu", "leaky_relu", "elu", "gelu")


def default_for(activation: str) -> str:
    """The initializer densa uses for ``activation`` when none is given."""
    return "he_uniform" if activation in _RELU_LIKE else "glorot_uniform"


def check_name(init: object) -> str:
    if not isinstance(init, str):
        raise TypeError(f"init must be a string, got {type(init).__name__}: {init!r}")
    if init not in INITIALIZERS:
        raise ValueError(f"init: unknown name {init!r}; expected one of {', '.join(INITIALIZERS)}")
    return init


def draw(init: str, n_in: int, n_out: int, rng: np.random.Generator, dtype) -> np.ndarray:
    """A fresh (n_out, n_in) weight matrix in ``dtype``, drawn in float64 then rounded."""
    shape = (n_out, n_in)
    if init == "glorot_uniform":
        a = np.sqrt(6.0 / (n_in + n_out))
        w = rng.uniform(-a, a, size=shape)
    elif init == "glorot_normal":
        w = rng.normal(0.0, np.sqrt(2.0 / (n_in + n_out)), size=shape)
    elif init == "he_uniform":
        a = np.sqrt(6.0 / n_in)
        w = rng.uniform(-a, a, size=shape)
    elif init == "he_normal":
        w = rng.normal(0.0, np.sqrt(2.0 / n_in), size=shape)
    else:
        raise AssertionError(init)
    return np.ascontiguousarray(w, dtype=dtype)
