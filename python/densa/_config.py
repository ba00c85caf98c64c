"""Threads and build configuration of densa's native core.

densa runs its products on its own pool of threads (the caller's thread plus
``get_num_threads() - 1`` workers) and tells OpenBLAS to use one thread per call: each
product is cut into slabs whose bounds depend on its shape only, one single-threaded
BLAS call per slab. Results are therefore bitwise identical whatever the thread count.
The default count is ``DENSA_NUM_THREADS``, else ``OMP_NUM_THREADS``, else the CPUs this
process may run on. The setting is process-wide (not per Python thread).

The extension is imported on first use, so that ``import densa`` stays fast.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterator
from typing import Any, TextIO

# Each thread past the first is an OS thread started up front. A product has at most as
# many slabs as the machine has CPUs, so threads beyond that only wait; the limit keeps
# a typo (10**9) from failing later, inside some computation, as an out-of-memory error.
MAX_THREADS = 1024


def _core() -> Any:  # densa._core, imported on first use
    return importlib.import_module("densa._core")


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (1 <= n <= 1024) for densa's products, from now on, process-wide.

    More threads than CPUs gain nothing: a product is cut into at most as many slabs as
    the machine has CPUs (at least 2).
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}")
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"set_num_threads: n must be from 1 to {MAX_THREADS}, got {n}")
    _core().set_num_threads(n)


def get_num_threads() -> int:
    """The number of threads densa's products use (the calling thread included)."""
    return int(_core().get_num_threads())


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """``with densa.threads(n): ...`` runs the block with ``n`` threads, then restores."""
    previous = get_num_threads()
    set_num_threads(n)
    try:
        yield
    finally:
        set_num_threads(previous)


def config() -> dict[str, Any]:
    """What ``show_config`` prints, as a dict."""
    from . import __version__

    core = _core()
    return {
        "densa": __version__,
        "isa": core.picked,
        "isa_built": list(core.built_levels()),
        "isa_supported": list(core.supported_levels()),
        "module": core.module.__name__,
        "threads": get_num_threads(),
        "eigen": core.eigen_version,
        "eigen_simd": core.simd,
        "blas": core.blas() if core.uses_blas else None,
        # densa's own forward kernel (cpp/densa/gemm_tn.hpp): in modules built with AVX2 + FMA.
        "forward_kernel": bool(core._gemm_tn_applies(64, 32, 64)),
        # Its vectors: AVX-512 in the x86-64-v4 module (the same bits as AVX2's).
        "forward_kernel_simd": core.forward_kernel_simd or None,
        # densa's own momentum-SGD step (cpp/densa/momentum_update.hpp): same modules.
        "momentum_kernel": bool(core._momentum_kernel_applies(256, 784, 64)),
        # Its vectors, as the forward kernel's.
        "momentum_kernel_simd": core.momentum_kernel_simd or None,
        # Training flushes subnormal numbers to zero (cpp/densa/float_mode.hpp): on x86-64.
        "flushes_subnormals": bool(core.flushes_subnormals),
    }


def show_config(file: TextIO | None = None) -> None:
    """Print the ISA build picked, thread count, Eigen version, the BLAS used,
    whether densa's own forward and momentum-step kernels are in use, and whether
    training flushes subnormal numbers to zero.

    ``file``: a text stream to print to (default standard output)."""
    c = config()
    out = file or sys.stdout
    print(f"densa {c['densa']}", file=out)
    print(
        f"  isa:     {c['isa']} (module {c['module']}; built: {', '.join(c['isa_built'])}; "
        f"CPU supports: {', '.join(c['isa_supported'])})",
        file=out,
    )
    print(f"  threads: {c['threads']}", file=out)
    print(f"  eigen:   {c['eigen']} ({c['eigen_simd']})", file=out)
    print(f"  blas:    {c['blas'] or 'none (Eigen computes the products)'}", file=out)
    kernel = (
        f"densa's own ({c['forward_kernel_simd']}) for float32 minibatches of 8 to 64 "
        "samples, else the above"
        if c["forward_kernel"]
        else "as the other products (this module has no AVX2 + FMA kernel)"
    )
    print(f"  forward: {kernel}", file=out)
    momentum = (
        f"densa's own ({c['momentum_kernel_simd']}) for float32 momentum-SGD steps on layers "
        "of 64 Ki weights "
        "and more at up to 128 samples (inputs not a multiple of 512), else the BLAS and a "
        "pass"
        if c["momentum_kernel"]
        else "the BLAS and a pass (this module has no AVX2 + FMA kernel)"
    )
    print(f"  momentum: {momentum}", file=out)
    subnormals = (
        "flushed to zero while the native trainer runs (FTZ + DAZ), kept elsewhere"
        if c["flushes_subnormals"]
        else "kept (this CPU's mode is not changed)"
    )
    print(f"  subnormals: {subnormals}", file=out)
