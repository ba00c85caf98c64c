"""Networks and data the ``test_network_*`` files share, all under fixed seeds."""

from __future__ import annotations

import numpy as np

import densa

BACKENDS = ("native", "reference")

# (loss, target kind): every loss, and softmax cross-entropy with both target encodings.
LOSS_CASES = (
    ("mse", "real"),
    ("softmax_cross_entropy", "labels"),
    ("softmax_cross_entropy", "onehot"),
    ("binary_cross_entropy", "binary"),
)


def make_net(
    loss: str = "mse",
    *,
    sizes=(4, 7, 6, 3),
    activations=("tanh", "relu", "identity"),
    dtype: str = "float64",
    backend: str = "native",
    seed: int | None = 0,
) -> densa.Network:
    """A network of ``len(sizes) - 1`` dense layers (≥ 3 by default, mixed activations)."""
    layers = [
        densa.Dense(n_in, n_out, activation=act)
        for n_in, n_out, act in zip(sizes[:-1], sizes[1:], activations)
    ]
    return densa.Network(layers, loss=loss, dtype=dtype, backend=backend, seed=seed)


def make_data(kind: str, n: int, n_in: int, n_out: int, seed: int = 0):
    """``(X, y)`` with targets of ``kind``: real, labels, onehot or binary."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_in))
    if kind == "real":
        y = rng.standard_normal((n, n_out))
    elif kind == "labels":
        y = rng.integers(0, n_out, n)
    elif kind == "onehot":
        y = np.eye(n_out)[rng.integers(0, n_out, n)]
    elif kind == "binary":
        y = rng.integers(0, 2, (n, n_out)).astype(np.float64)
    else:
        raise AssertionError(kind)
    return X, y


def spirals(n_per_class: int = 200, turns: float = 1.5, seed: int = 0):
    """Two interleaved spirals in the plane: ``X`` (2n, 2) within the unit disc, ``y`` (2n,).

    Class c at angle t + c·π and radius t / (2π·turns); sqrt of a uniform spreads the
    points evenly along the arms rather than bunching them at the centre.
    """
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.uniform(0.0, 1.0, n_per_class)) * 2 * np.pi * turns
    r = t / (2 * np.pi * turns)
    X = np.vstack([np.c_[r * np.cos(t + c * np.pi), r * np.sin(t + c * np.pi)] for c in (0, 1)])
    y = np.repeat([0, 1], n_per_class)
    return X, y


def params(net: densa.Network) -> list[np.ndarray]:
    """Copies of every W and b, input side first."""
    return [p.copy() for layer in net.layers for p in (layer.W, layer.b)]


def optimizer_state(opt) -> list[np.ndarray]:
    """Copies of the optimizer's state arrays (velocity, or m and v) and its step."""
    arrays = [a.copy() for per_layer in opt.state_W + opt.state_b for a in per_layer]
    return [*arrays, opt.step.copy()]


def max_rel_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """The largest |a − b| / max|b| over paired arrays (norm-wise relative difference)."""
    assert len(a) == len(b)
    worst = 0.0
    for x, y in zip(a, b):
        assert x.shape == y.shape
        scale = float(np.max(np.abs(y))) if y.size else 0.0
        diff = float(np.max(np.abs(x.astype(np.float64) - y))) if y.size else 0.0
        worst = max(worst, diff / scale if scale > 0 else diff)
    return worst
