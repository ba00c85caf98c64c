"""densa's forward-product kernel (cpp/densa/gemm_tn.hpp) against OpenBLAS on the same shapes.

z = W x for one layer, float32, one thread, through ``densa.native.dense_forward`` with
the kernel switched on and off (``densa._core._set_gemm_tn``), interleaved round by
round after a warm-up; medians. Each time includes the call from Python, the bias and
the identity activation, which are the same in both columns, so the ratio understates
the product's own gain. Shapes are (outputs M, samples N, inputs K); the last column
says whether densa uses its kernel there by default (``_gemm_tn_applies``).

    python benchmarks/bench_gemm_tn.py [--rounds 21]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import densa
from densa import _core, native

SHAPES = [
    (64, 32, 64),  # the digits network's hidden layer, K2
    (16, 8, 16),  # W4
    (128, 64, 784),  # one slab of W3's first layer
    (128, 64, 256),  # W3's second layer
    (32, 32, 32),
    (64, 128, 64),  # a wide batch
    (128, 8, 784),  # few samples, long rows
    (10, 32, 64),  # the digits network's output layer
]


def time_forward(W, b, x, calls):
    t0 = time.perf_counter()
    for _ in range(calls):
        native.dense_forward(W, b, x, "identity")
    return (time.perf_counter() - t0) / calls


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=21)
    args = p.parse_args(argv)
    if not _core._gemm_tn_applies(64, 32, 64):
        print(f"this module ({_core.isa}) has no densa forward kernel (needs AVX2 + FMA)")
        return
    rng = np.random.default_rng(0)
    print(f"module {_core.isa}, 1 thread, medians of {args.rounds} interleaved rounds")
    print(f"{'M x N x K':>14} {'OpenBLAS':>11} {'densa':>11} {'ratio':>7}  densa's kernel used")
    with densa.threads(1):
        for M, N, K in SHAPES:
            W = rng.standard_normal((M, K), dtype=np.float32)
            b = np.zeros(M, dtype=np.float32)
            x = rng.standard_normal((N, K), dtype=np.float32)
            calls = max(20, int(2e7 / (2 * M * N * K)))
            times = {True: [], False: []}
            try:
                for on in (True, False):  # warm-up
                    _core._set_gemm_tn(on)
                    time_forward(W, b, x, calls)
                for _ in range(args.rounds):
                    for on in (True, False):
                        _core._set_gemm_tn(on)
                        times[on].append(time_forward(W, b, x, calls))
            finally:
                _core._set_gemm_tn(True)
            blas, own = statistics.median(times[False]), statistics.median(times[True])
            used = "yes" if _core._gemm_tn_applies(M, N, K) else "no (both are OpenBLAS)"
            print(
                f"{f'{M}x{N}x{K}':>14} {blas * 1e6:9.2f}us {own * 1e6:9.2f}us "
                f"{blas / own:6.2f}x  {used}"
            )


if __name__ == "__main__":
    main()
