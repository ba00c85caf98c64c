"""The sample orders of training epochs, step for step as ``cpp/densa/orders.hpp``.

An epoch's order is a Fisher-Yates shuffle of 0 .. n-1 driven by SplitMix64 from one
64-bit seed (``Network.fit`` draws one per epoch from the network's generator)::

    order = [0, 1, ..., n-1];  state = seed
    for i = n-1 down to 1:
        state = state + 0x9E3779B97F4A7C15            (mod 2**64)
        z = state
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9      (mod 2**64)
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB      (mod 2**64)
        z = z ^ (z >> 31)                             (SplitMix64's output)
        j = (z * (i + 1)) >> 64                       (in 0 .. i)
        swap order[i] and order[j]

The draws are computed for all i at once in NumPy; the swaps, which depend on each
other, one by one.
"""

from __future__ import annotations

import numpy as np

from .._checks import order_args

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_LOW32 = np.uint64(0xFFFFFFFF)


def _mulhi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The high 64 bits of the 128-bit products a * b (uint64 arrays), from 32-bit halves."""
    s32 = np.uint64(32)
    a_hi, a_lo = a >> s32, a & _LOW32
    b_hi, b_lo = b >> s32, b & _LOW32
    lo_lo, lo_hi, hi_lo = a_lo * b_lo, a_lo * b_hi, a_hi * b_lo
    carry = ((lo_lo >> s32) + (lo_hi & _LOW32) + (hi_lo & _LOW32)) >> s32
    high: np.ndarray = a_hi * b_hi + (lo_hi >> s32) + (hi_lo >> s32) + carry
    return high


def _draws(seed: np.uint64, n: int) -> np.ndarray:
    """j for i = n-1, n-2, ..., 1 (the k-th draw uses SplitMix64's state seed + k·gamma)."""
    k = np.arange(1, n, dtype=np.uint64)
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps mod 2**64, as in C++
        z = seed + k * _GAMMA
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
    z ^= z >> np.uint64(31)
    i_plus_1 = np.arange(n, 1, -1, dtype=np.uint64)  # i + 1 for i = n-1 .. 1
    return _mulhi(z, i_plus_1)


def sample_orders(seeds: object, n: object) -> np.ndarray:
    """Epoch orders: row e is 0 .. n-1 shuffled from ``seeds[e]`` (see the module).

    Parameters
    ----------
    seeds : 1-D array_like of integers in [0, 2**64)
    n : int
        Samples per epoch.

    Returns
    -------
    ndarray of int64, shape (len(seeds), n)
    """
    seeds_a, n_i = order_args(seeds, n)
    out = np.empty((seeds_a.shape[0], n_i), dtype=np.int64)
    for row, seed in zip(out, seeds_a):
        order = list(range(n_i))
        for i, j in zip(range(n_i - 1, 0, -1), _draws(seed, n_i).tolist()):
            order[i], order[j] = order[j], order[i]
        row[:] = order
    return out
