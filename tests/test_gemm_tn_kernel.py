"""densa's own kernel for the float32 forward product of a minibatch (cpp/densa/gemm_tn.hpp).

It replaces OpenBLAS for z = W x when x has 8 to 64 samples. Every element of z is then
one fused multiply-add chain over the inputs in ascending order, wherever it falls in
the kernel's blocks (16 x 6 with AVX2; 32 x 8 for whole pairs of 16-row panels with
AVX-512, in the x86-64-v4 module); these tests hold it to the reference's values, to
that position independence at the edges of its blocks and panels (rows not a multiple
of 16 or 32, columns not a multiple of 6 or 8, inputs not a multiple of 8), and the
AVX-512 blocks to the AVX2 blocks' bits.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from densa import _core, native, reference
from helpers import assert_matches

# outputs: full panels, pairs of them and one left over (48 = a pair + 16), and
# 100 = 3 pairs + 4 rows
ROWS = [16, 32, 48, 64, 100, 128]
# samples: whole 6- and 8-column blocks, and every tail of both
COLS = [8, 9, 10, 11, 12, 13, 14, 15, 17, 32, 63, 64]
INPUTS = [1, 3, 8, 9, 64, 300]  # inputs: below, at and past the 8-wide transposes


def _layer(m_out, n, m_in, seed=0):
    rng = np.random.default_rng([m_out, n, m_in, seed])
    W = (rng.standard_normal((m_out, m_in)) / np.sqrt(m_in)).astype(np.float32)
    b = rng.standard_normal(m_out).astype(np.float32)
    x = rng.standard_normal((n, m_in)).astype(np.float32)
    return W, b, x


def test_the_kernel_covers_the_benchmarks_forward_products():
    if not _core._gemm_tn_applies(64, 32, 64):
        pytest.skip(f"this module ({_core.isa}) has no AVX2 + FMA kernel")
    assert _core._gemm_tn_applies(64, 32, 64)  # the digits network and K2
    assert _core._gemm_tn_applies(16, 8, 16)  # W4
    assert _core._gemm_tn_applies(128, 64, 784)  # a slab of W3's first layer
    assert not _core._gemm_tn_applies(10, 32, 64)  # padding 6 of 16 rows: OpenBLAS
    assert not _core._gemm_tn_applies(64, 128, 64)  # wide: OpenBLAS
    assert not _core._gemm_tn_applies(64, 4, 64)  # too few samples to repay packing


@pytest.mark.parametrize("m_out", ROWS)
@pytest.mark.parametrize("n", COLS)
@pytest.mark.parametrize("m_in", INPUTS)
def test_forward_matches_the_reference(m_out, n, m_in):
    W, b, x = _layer(m_out, n, m_in)
    z, y = native.dense_forward(W, b, x, "relu")
    z_ref, y_ref = reference.dense_forward(W, b, x, "relu")
    assert_matches(z, z_ref, "z", reduction=m_in + 1)
    assert_matches(y, y_ref, "y", reduction=m_in + 1)


@pytest.mark.parametrize("m_in", [9, 64, 300])
def test_each_element_is_independent_of_its_block(m_in):
    """Rows 16..48 of W, or the first 8 or 13 samples of x, give exactly those rows or
    columns of the whole product: no element depends on where its block starts."""
    ns = (8, 13) if m_in <= 256 else (16, 17)  # past 256 inputs, 8 to 15 samples: BLAS
    for m, n in [(128, 64), (32, 64), *((128, n) for n in ns)]:
        if not _core._gemm_tn_applies(m, n, m_in):
            pytest.skip(f"no densa kernel for {m}x{n}x{m_in} in this module ({_core.isa})")
    W, b, x = _layer(128, 64, m_in, seed=1)
    zero = np.zeros_like(b)
    z = native.dense_forward(W, zero, x, "identity")[0]
    part = native.dense_forward(np.ascontiguousarray(W[16:48]), zero[16:48], x, "identity")[0]
    np.testing.assert_array_equal(part, z[:, 16:48])
    for n in ns:
        cols = native.dense_forward(W, zero, np.ascontiguousarray(x[:n]), "identity")[0]
        np.testing.assert_array_equal(cols, z[:n])


def test_special_values_propagate_like_the_reference():
    W, b, x = _layer(32, 12, 9, seed=2)
    x[3, 4] = np.inf
    x[5, 0] = np.nan
    W[7, 2] = -np.inf
    with np.errstate(invalid="ignore", over="ignore"):
        z_ref = reference.dense_forward(W, b, x, "identity")[0]
    z = native.dense_forward(W, b, x, "identity")[0]
    np.testing.assert_array_equal(np.isnan(z), np.isnan(z_ref))
    np.testing.assert_array_equal(np.isinf(z), np.isinf(z_ref))
    finite = np.isfinite(z_ref)
    assert_matches(z[finite], z_ref[finite], "z", reduction=10)


def test_switched_off_the_blas_computes_the_same_values():
    """The benchmark's switch (benchmarks/bench_gemm_tn.py): off, OpenBLAS computes the
    product; the two differ only by rounding."""
    W, b, x = _layer(64, 32, 64, seed=3)
    on = native.dense_forward(W, b, x, "identity")[0]
    try:
        _core._set_gemm_tn(False)
        assert not _core._gemm_tn_applies(64, 32, 64)
        off = native.dense_forward(W, b, x, "identity")[0]
    finally:
        _core._set_gemm_tn(True)
    assert_matches(on, off, "z", reduction=65)


def _module(level):
    if level not in _core.built_levels() or level not in _core.supported_levels():
        pytest.skip(f"the {level} module is not built, or this CPU cannot run it")
    return importlib.import_module(f"densa.{_core.MODULES[level]}")


def test_the_avx512_blocks_compute_the_avx2_blocks_bits():
    """The x86-64-v4 module's 32 x 8 AVX-512 blocks and the x86-64-v3 module's 16 x 6
    AVX2 blocks run the same chain of fused multiply-adds per element: the same bits,
    over pairs of panels, a last single or partial panel, every column tail of both block
    widths, and inputs below and past the 8-wide transposes."""
    v3, v4 = _module("x86-64-v3"), _module("x86-64-v4")
    compared = 0
    for m_out in (32, 48, 64, 96, 100, 128, 160):
        for n in (8, 9, 13, 14, 15, 16, 23, 24, 31, 32, 47, 64):
            for m_in in (1, 7, 8, 9, 64, 300, 784):
                if not v4._gemm_tn_applies(m_out, n, m_in):
                    continue
                assert v3._gemm_tn_applies(m_out, n, m_in)  # one rule of the shape in both
                W, b, x = _layer(m_out, n, m_in, seed=4)
                z3 = v3.dense_forward(W, b, x, "identity")[0]
                z4 = v4.dense_forward(W, b, x, "identity")[0]
                np.testing.assert_array_equal(z4, z3, err_msg=f"{m_out}x{n}x{m_in}")
                compared += 1
    assert compared > 150  # the rule above must not have skipped the shapes
