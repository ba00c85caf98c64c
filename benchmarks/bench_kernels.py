"""Native vs reference: one dense layer, forward + backward, side by side.

For each (m_in, m_out, N) it times ``dense_forward`` followed by ``dense_backward`` on
both backends, interleaved (native then reference, then reference then native, ...) so
that a change in machine load hits both alike, and reports medians: µs per call,
GFLOP/s and the speed ratio. The flop count is that of the three products, z = W·x,
dW = dz·xᵀ and dx = Wᵀ·dz, each 2·m_in·m_out·N: 6·m_in·m_out·N in all; the
element-wise work (bias, activation, f', db) is not counted.

    python benchmarks/bench_kernels.py [--repeats 50] [--dtype float32] [--activation relu]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

import densa
from densa import _core, native, reference

SHAPES = ((1024, 1024, 512), (64, 64, 32))
BACKENDS = (("native", native), ("reference", reference))


def forward_backward(backend, W, b, x, dy, activation):
    z, _ = backend.dense_forward(W, b, x, activation)
    return backend.dense_backward(W, x, z, dy, activation)


def _check_agreement(args, dtype):
    """Refuse to time two backends that disagree (loose: this is not the test suite)."""
    got = forward_backward(native, *args)
    expected = forward_backward(reference, *args)
    rtol = 1e-3 if dtype == np.float32 else 1e-9
    for name, g, e in zip(("dx", "dW", "db"), got, expected):
        scale = float(np.max(np.abs(e))) or 1.0
        if not np.allclose(g, e, rtol=rtol, atol=rtol * scale):
            raise SystemExit(f"native and reference disagree on {name}: not benchmarking")


def time_shape(shape, dtype, activation, repeats, warmup, min_sample_s):
    m_in, m_out, n = shape
    rng = np.random.default_rng(0)
    W = (rng.standard_normal((m_out, m_in)) / np.sqrt(m_in)).astype(dtype)
    b = rng.standard_normal(m_out).astype(dtype)
    x = rng.standard_normal((n, m_in)).astype(dtype)
    dy = rng.standard_normal((n, m_out)).astype(dtype)
    args = (W, b, x, dy, activation)
    _check_agreement(args, dtype)

    # Calls per sample: enough that one sample lasts min_sample_s, so that the timer's
    # resolution and one-off hiccups do not dominate the small shapes.
    inner = {}
    for name, backend in BACKENDS:
        for _ in range(warmup):
            forward_backward(backend, *args)
        t0 = time.perf_counter()
        forward_backward(backend, *args)
        inner[name] = max(1, int(min_sample_s / max(time.perf_counter() - t0, 1e-9)))

    samples = {name: [] for name, _ in BACKENDS}
    for r in range(repeats):
        for name, backend in BACKENDS if r % 2 == 0 else BACKENDS[::-1]:
            k = inner[name]
            t0 = time.perf_counter_ns()
            for _ in range(k):
                forward_backward(backend, *args)
            samples[name].append((time.perf_counter_ns() - t0) / k / 1e3)  # µs per call
    flops = 6.0 * m_in * m_out * n
    return {
        name: {"us": statistics.median(s), "gflops": flops / (statistics.median(s) * 1e3)}
        for name, s in samples.items()
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=50, help="timed samples per backend")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls first")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--activation", default="relu")
    parser.add_argument(
        "--min-sample-ms", type=float, default=2.0, help="repeat a call inside one sample"
    )
    args = parser.parse_args(argv)
    dtype = np.dtype(args.dtype)

    print(
        f"densa {densa.__version__} | Eigen {_core.eigen_version} | SIMD: {_core.simd}\n"
        f"numpy {np.__version__} | Python {platform.python_version()} | "
        f"{os.cpu_count()} CPUs | OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')} | "
        f"load average {os.getloadavg()[0]:.2f} (anything else running skews both columns)\n"
        f"dense_forward + dense_backward, {args.dtype}, {args.activation}; "
        f"median of {args.repeats} interleaved samples; flops = 6·m_in·m_out·N"
    )
    header = (
        f"{'m_in':>6} {'m_out':>6} {'N':>5}  {'native µs':>10} {'GFLOP/s':>8}  "
        f"{'reference µs':>12} {'GFLOP/s':>8}  {'native speed / reference':>24}"
    )
    print(header)
    print("-" * len(header))
    for shape in SHAPES:
        res = time_shape(
            shape, dtype, args.activation, args.repeats, args.warmup, args.min_sample_ms / 1e3
        )
        nat, ref = res["native"], res["reference"]
        print(
            f"{shape[0]:>6} {shape[1]:>6} {shape[2]:>5}  {nat['us']:>10.1f} {nat['gflops']:>8.1f}  "
            f"{ref['us']:>12.1f} {ref['gflops']:>8.1f}  {ref['us'] / nat['us']:>23.2f}x"
        )


if __name__ == "__main__":
    main()
