"""Arrays whose data starts on a 64-byte boundary.

Eigen's vectorised loops peel scalar iterations until the destination is aligned, and
its scalar and vector code paths round differently (exp, log, tanh). So the same update
on the same values could differ in the last bit depending on where NumPy happened to
place the array. Parameters and optimizer state are therefore allocated aligned to 64
bytes (an AVX-512 register), making results independent of allocation luck.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

ALIGNMENT = 64


def address(arr: np.ndarray) -> int:
    """The address of ``arr``'s first element. Read from the array interface rather than
    ``arr.ctypes.data``, which builds a ctypes helper object: fit allocates its optimizer
    state here, and right after an idle pause four such allocations took 7.0 ms with
    ctypes against 3.2 ms without (the ctypes module's code is cold by then)."""
    data: int = arr.__array_interface__["data"][0]
    return data


def _aligned(shape: int | Sequence[int], dtype: DTypeLike, alloc: Any) -> np.ndarray:
    dtype = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    nbytes = math.prod(shape) * dtype.itemsize
    raw = alloc(nbytes + ALIGNMENT, dtype=np.uint8)
    offset = (-address(raw)) % ALIGNMENT
    arr: np.ndarray = raw[offset : offset + nbytes].view(dtype).reshape(shape)
    return arr


def aligned_empty(shape: int | Sequence[int], dtype: DTypeLike) -> np.ndarray:
    """An uninitialised C-contiguous array whose first element is 64-byte aligned."""
    return _aligned(shape, dtype, np.empty)


def aligned_zeros(shape: int | Sequence[int], dtype: DTypeLike) -> np.ndarray:
    """Zeros, aligned like ``aligned_empty``: allocated zeroed (np.zeros) rather than
    filled afterwards, which cost more than the allocation (fit creates the optimizer
    state here: 7 against 3 us per array)."""
    return _aligned(shape, dtype, np.zeros)


def aligned_copy(values: ArrayLike, dtype: DTypeLike) -> np.ndarray:
    """``values`` converted to ``dtype`` in a fresh aligned array."""
    values = np.asarray(values)
    arr = aligned_empty(values.shape, dtype)
    arr[...] = values
    return arr


def is_aligned(arr: np.ndarray) -> bool:
    return arr.flags.c_contiguous and address(arr) % ALIGNMENT == 0


def aligned(arr: np.ndarray, dtype: DTypeLike) -> np.ndarray:
    """``arr`` itself when already aligned, C-contiguous and of ``dtype``; else a copy."""
    if arr.dtype == np.dtype(dtype) and is_aligned(arr) and arr.flags.writeable:
        return arr
    return aligned_copy(arr, dtype)
