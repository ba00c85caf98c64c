"""densa._memory: parameters and optimizer state start on 64-byte boundaries, whatever the
allocator returns, and its address reader agrees with ctypes (which it replaces)."""

from __future__ import annotations

import numpy as np
import pytest

import densa
from densa import _memory


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5), (64, 64), (10, 1), 13])
@pytest.mark.parametrize("make", [_memory.aligned_zeros, _memory.aligned_empty])
def test_fresh_arrays_are_aligned_c_contiguous_and_sized(make, shape, dtype):
    for _ in range(8):  # several allocations: the allocator's offsets vary between them
        a = make(shape, dtype)
        assert a.ctypes.data % _memory.ALIGNMENT == 0
        assert a.flags.c_contiguous
        assert a.flags.writeable
        assert a.shape == ((shape,) if isinstance(shape, int) else shape)
        assert a.dtype == np.dtype(dtype)
        if make is _memory.aligned_zeros:
            assert not a.any()


def test_address_is_ctypes_address_for_views_at_every_offset():
    buf = np.zeros(256, dtype=np.uint8)
    for start in range(70):
        view = buf[start:]
        assert _memory.address(view) == view.ctypes.data
        assert _memory.is_aligned(view) == (view.ctypes.data % 64 == 0)
    strided = np.zeros((8, 8), np.float32)[:, ::2]
    assert not _memory.is_aligned(strided)  # not C-contiguous, whatever its address


def test_aligned_keeps_aligned_arrays_and_copies_others():
    a = _memory.aligned_zeros((4, 4), np.float32)
    assert _memory.aligned(a, np.float32) is a
    buf = np.arange(40, dtype=np.float32)
    off = buf[1:17]  # 4 bytes past some boundary: never 64-byte aligned with its base
    if off.ctypes.data % 64 == 0:
        off = buf[2:18]
    copy = _memory.aligned(off, np.float32)
    assert copy is not off
    assert copy.ctypes.data % 64 == 0
    np.testing.assert_array_equal(copy, off)
    converted = _memory.aligned(a, np.float64)
    assert converted.dtype == np.float64
    assert converted.ctypes.data % 64 == 0


def test_fit_allocates_the_optimizer_state_aligned():
    net = densa.Network([densa.Dense(5, 7, "relu"), densa.Dense(7, 3)], seed=0)
    X = np.random.default_rng(0).standard_normal((20, 5))
    opt = densa.Adam(lr=0.01)
    net.fit(X, np.zeros((20, 3)), epochs=1, batch_size=4, optimizer=opt, progress=False)
    for per_layer in opt.state_W + opt.state_b:
        assert len(per_layer) == 2
        for s in per_layer:
            assert s.ctypes.data % 64 == 0
