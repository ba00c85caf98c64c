"""densa's own kernels in the x86-64-v3 module (AVX2 blocks) against the x86-64-v4 module
(AVX-512 blocks), in one process.

Both modules are imported side by side (``densa._core_x86_64_v3`` and
``densa._core_x86_64_v4``), and each kernel is timed through the same call in each,
interleaved round by round after a warm-up, one thread; medians. The two compute the
same bits (tests/test_gemm_tn_kernel.py and tests/test_momentum_kernel.py check it), so
only the time differs:

- forward: ``dense_forward(W, b, x, "identity")``, z = W x through ``gemm_tn.hpp``
  (shapes M x N x K: outputs, samples, inputs), plus the call and the bias, which are
  the same in both columns;
- momentum: ``_momentum_kernel_step(W, V, x, dz, lr, mu)``, one momentum-SGD step of a
  layer through ``momentum_update.hpp`` (shapes n_out x n_in at K samples), on one slab
  or two as the trainer cuts it.

What the AVX-512 blocks gain depends on the CPU: on one with two 512-bit FMA units per
core they do twice the multiply-adds per instruction; on one that splits a 512-bit
instruction in two (AMD's Zen 4) they cannot gain as much.

    python benchmarks/bench_isa_kernels.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import statistics
import time

import numpy as np

from densa import _core

FORWARD = [
    (32, 32, 64),  # a digits team's hidden units (the hidden split)
    (64, 32, 64),  # the digits network's hidden layer, K2
    (32, 10, 32),  # a digits team's share of the output layer
    (128, 64, 784),  # one slab of W3's first layer
    (128, 64, 256),  # W3's second layer
    (16, 8, 16),  # W4 (one panel: the AVX2 block in both)
]
MOMENTUM = [
    (256, 784, 64),  # W3's first layer (two slabs)
    (128, 784, 64),  # one slab of it, or a team's rows in the first-layer split
    (300, 392, 64),
    (784, 128, 32),
]


def _modules():
    levels = ("x86-64-v3", "x86-64-v4")
    missing = [lv for lv in levels if lv not in _core.built_levels()]
    missing += [lv for lv in levels if lv not in _core.supported_levels()]
    if missing:
        return None, f"needs the x86-64-v3 and v4 modules built and runnable here ({missing})"
    return [importlib.import_module(f"densa.{_core.MODULES[lv]}") for lv in levels], None


@contextlib.contextmanager
def _threads(mods, n):
    """n threads in every module: each has its own pool (densa.threads sets the
    picked module's only)."""
    before = [m.get_num_threads() for m in mods]
    try:
        for m in mods:
            m.set_num_threads(n)
        yield
    finally:
        for m, k in zip(mods, before):
            m.set_num_threads(k)


def _time(fn, calls):
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def _compare(name, fns, calls, rounds):
    """Median seconds per call of fns (v3's, v4's), interleaved; prints one row."""
    for fn in fns:  # warm-up
        _time(fn, calls)
    times = [[], []]
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            times[i].append(_time(fn, calls))
    v3, v4 = (statistics.median(t) for t in times)
    print(f"{name:>22} {v3 * 1e6:10.2f}us {v4 * 1e6:10.2f}us {v3 / v4:7.2f}x")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args(argv)
    mods, why = _modules()
    if mods is None:
        print(f"skipped: {why}")
        return
    rng = np.random.default_rng(0)
    print(f"1 thread, medians of {args.rounds} interleaved rounds; ratio = v3 time / v4 time")
    print(f"{'forward M x N x K':>22} {'v3 (AVX2)':>12} {'v4 (AVX-512)':>12} {'ratio':>8}")
    with _threads(mods, 1):
        for M, N, K in FORWARD:
            W = rng.standard_normal((M, K), dtype=np.float32)
            b = np.zeros(M, dtype=np.float32)
            x = rng.standard_normal((N, K), dtype=np.float32)
            fns = [functools.partial(m.dense_forward, W, b, x, "identity") for m in mods]
            _compare(f"{M}x{N}x{K}", fns, max(20, int(2e7 / (2 * M * N * K))), args.rounds)
    print(f"{'momentum n_out x n_in @K':>22} {'v3 (AVX2)':>12} {'v4 (AVX-512)':>12} {'ratio':>8}")
    for threads in (1, 2):
        with _threads(mods, threads):
            for n_out, n_in, K in MOMENTUM:
                W, V = rng.standard_normal((2, n_out, n_in), dtype=np.float32) * 0.01
                x = rng.standard_normal((K, n_in), dtype=np.float32)
                dz = rng.standard_normal((K, n_out), dtype=np.float32) * 1e-3
                fns = [
                    functools.partial(m._momentum_kernel_step, W, V, x, dz, 1e-3, 0.9) for m in mods
                ]
                calls = max(5, int(2e7 / (2 * n_out * n_in * K)))
                _compare(f"{n_out}x{n_in}@{K}, {threads} thr", fns, calls, args.rounds)


if __name__ == "__main__":
    main()
