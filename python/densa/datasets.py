"""Small data sets generated in code (no download), for the demo, examples and tests.

Each function returns ``(X, y)`` with X of shape (N, features), float64, and y either
integer class labels of shape (N,) or real targets of shape (N, 1).
"""

from __future__ import annotations

import math

import numpy as np

from . import _checks


def _count(n: object, name: str = "n", minimum: int = 1) -> int:
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(n).__name__}: {n!r}")
    if n < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {n}")
    return int(n)


def _noise(noise: object) -> float:
    if isinstance(noise, bool) or not isinstance(noise, (int, float, np.integer, np.floating)):
        raise TypeError(f"noise must be a number, got {type(noise).__name__}: {noise!r}")
    if not math.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0, got {noise}")
    return float(noise)


def spirals(
    n: int = 1000,
    noise: float = 0.03,
    seed: int | None = 0,
    turns: float = 1.5,
    shuffle: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals, a classic problem no linear model separates.

    Class c (0 or 1) follows r = 0.1 + 0.9·t, θ = 2π·turns·t + c·π for t in (0, 1], so
    the arms wind around each other (starting at r = 0.1, where the two arms are still
    apart); Gaussian noise of standard deviation ``noise`` is added to both
    coordinates. Points lie within about the unit disc.

    Parameters
    ----------
    n : int
        Total number of points (classes get n // 2 and n - n // 2), at least 2.
    noise : float
        Standard deviation of the added Gaussian noise.
    seed : int, numpy.random.Generator or None
        Seeds the noise and the order (the points without noise are fixed); a
        Generator is drawn from.
    turns : float
        Turns of each arm.
    shuffle : bool
        Return the points in a random order (the default), so that any slice of them,
        such as the last fraction that ``fit(validation_split=...)`` holds out, has
        both classes and every part of the arms. False: class 0's points first, then
        class 1's, each arm from its centre outwards.

    Returns
    -------
    X : ndarray, shape (n, 2), float64
    y : ndarray, shape (n,), int64
        0 or 1 (n // 2 points of class 0).
    """
    n = _count(n, "n", 2)
    noise = _noise(noise)
    if isinstance(turns, bool) or not isinstance(turns, (int, float, np.integer, np.floating)):
        raise TypeError(f"turns must be a number, got {type(turns).__name__}: {turns!r}")
    if not 0 < turns < math.inf:  # NaN fails too
        raise ValueError(f"turns must be a finite number > 0, got {turns!r}")
    shuffle = _checks.flag(shuffle, "shuffle")
    rng = np.random.default_rng(_checks.seed(seed))
    counts = (n // 2, n - n // 2)
    arms: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for c, m in enumerate(counts):
        t = (np.arange(m) + 1) / m
        theta = 2 * np.pi * turns * t + c * np.pi
        r = 0.1 + 0.9 * t
        arms.append(np.column_stack([r * np.cos(theta), r * np.sin(theta)]))
        labels.append(np.full(m, c, dtype=np.int64))
    X = np.concatenate(arms)
    X += noise * rng.standard_normal(X.shape)
    y = np.concatenate(labels)
    if shuffle:
        # Drawn after the noise: shuffle=False gives the same points, in class order.
        order = rng.permutation(n)
        X, y = X[order], y[order]
    return X, y


def xor() -> tuple[np.ndarray, np.ndarray]:
    """The four points of XOR: the smallest problem a single layer cannot solve.

    Returns
    -------
    X : ndarray, shape (4, 2), float64
        (0, 0), (0, 1), (1, 0), (1, 1).
    y : ndarray, shape (4,), int64
        0, 1, 1, 0.
    """
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    return X, np.array([0, 1, 1, 0], dtype=np.int64)


def sine(n: int = 256, noise: float = 0.0, seed: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 1-D regression: y = sin(x) on x evenly spaced over [-π, π].

    Parameters
    ----------
    n : int
        Number of points, at least 2.
    noise : float
        Standard deviation of Gaussian noise added to y.
    seed : int, numpy.random.Generator or None
        Seeds the noise; a Generator is drawn from.

    Returns
    -------
    X : ndarray, shape (n, 1), float64
    y : ndarray, shape (n, 1), float64
    """
    n = _count(n, "n", 2)
    noise = _noise(noise)
    rng = np.random.default_rng(_checks.seed(seed))
    x = np.linspace(-np.pi, np.pi, n)[:, None]
    y = np.sin(x) + noise * rng.standard_normal(x.shape)
    return x, y
