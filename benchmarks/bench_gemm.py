"""K1 / K2: one dense layer, forward + backward, densa native vs NumPy.

Workloads (float32, relu): K1 = 1024 -> 1024 at batch 512, K2 = 64 -> 64 at batch 32.
For each, in one process, implementations interleaved (one call of each per round,
after a warm-up), medians over the rounds:

* ``densa``         densa.native.dense_forward + dense_backward (the public kernels,
                    argument checks included);
* ``densa _core``   the extension's functions called directly (no Python checks);
* ``numpy``         the same math in NumPy: z = x Wᵀ + b, y = relu(z), dz = dy ⊙ [z > 0],
                    dW = dzᵀ x, db = Σ dz, dx = dz W (three matmuls + element-wise work);
* ``numpy gemm``    the three matmuls alone, into preallocated outputs (NumPy's OpenBLAS
                    at its best: the reference for "GFLOP/s of the same three products").

GFLOP/s counts the three products only (3 · 2·m_out·m_in·N flops), for every line.

Each sample is preceded by a pause (``--pause``, 0.2 s): NumPy's OpenBLAS workers
busy-wait for ~0.1 s after every call, and would take a core from whatever runs next
(densa's pool sleeps instead, so it does not do the same to NumPy). ``--pause 0``
measures that tight alternation. The share of CPU time used by other processes during
the run is printed: on a shared 2-core machine, numbers taken under load are not the
machine's.

Run it with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (they may be set on this
machine and slow NumPy's OpenBLAS):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_gemm.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

import densa
from densa import _core, native


def _workload(m_out, m_in, n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    W = (rng.standard_normal((m_out, m_in)) / np.sqrt(m_in)).astype(dtype)
    b = rng.standard_normal(m_out).astype(dtype)
    x = rng.standard_normal((n, m_in)).astype(dtype)
    dy = rng.standard_normal((n, m_out)).astype(dtype)
    return W, b, x, dy


def _impls(W, b, x, dy):
    z0 = x @ W.T
    out_z, out_dW, out_dx = np.empty_like(z0), np.empty_like(W), np.empty_like(x)

    def densa_native():
        z, _ = native.dense_forward(W, b, x, "relu")
        native.dense_backward(W, x, z, dy, "relu")

    def densa_core():
        z, _ = _core.dense_forward(W, b, x, "relu")
        _core.dense_backward(W, x, z, dy, "relu", False)

    def numpy_full():
        z = x @ W.T + b  # z = W x + b (rows are samples)
        np.maximum(z, 0)  # y = relu(z)
        dz = dy * (z > 0)  # dz = dy ⊙ f'(z)
        dz.T @ x  # dW = dz xᵀ
        dz.sum(axis=0)  # db = Σ dz
        dz @ W  # dx = Wᵀ dz

    def numpy_gemm():
        np.matmul(x, W.T, out=out_z)
        np.matmul(dy.T, x, out=out_dW)
        np.matmul(dy, W, out=out_dx)

    return {
        "densa": densa_native,
        "densa _core": densa_core,
        "numpy": numpy_full,
        "numpy gemm": numpy_gemm,
    }


def _check(W, b, x, dy):
    """The benchmarked densa call computes what NumPy computes."""
    z, _ = native.dense_forward(W, b, x, "relu")
    dx, dW, db = native.dense_backward(W, x, z, dy, "relu")
    zr = x.astype(np.float64) @ W.T.astype(np.float64) + b
    dz = dy * (zr > 0)
    for got, want in ((z, zr), (dW, dz.T @ x), (dx, dz @ W), (db, dz.sum(0))):
        scale = np.abs(want).max() or 1.0
        assert np.abs(got - want).max() / scale < 1e-4


def _cpu_times():
    """(busy jiffies of the whole machine, this process's CPU time in jiffies)."""
    try:
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:]]
    except OSError:
        return None
    t = os.times()
    return sum(v) - v[3] - v[4], (t.user + t.system) * os.sysconf("SC_CLK_TCK")


def bench(m_out, m_in, n, rounds, min_time, pause, dtype=np.float32):
    W, b, x, dy = _workload(m_out, m_in, n, dtype)
    _check(W, b, x, dy)
    impls = _impls(W, b, x, dy)
    # Calls per timing sample, so that one sample lasts at least min_time seconds.
    reps = {}
    for name, f in impls.items():
        for _ in range(3):
            f()  # warm-up
        t0 = time.perf_counter()
        f()
        reps[name] = max(1, int(min_time / max(time.perf_counter() - t0, 1e-9)))
    samples = {name: [] for name in impls}
    for _ in range(rounds):
        for name, f in impls.items():  # interleaved: one sample of each per round
            r = reps[name]
            time.sleep(pause)
            t0 = time.perf_counter()
            for _ in range(r):
                f()
            samples[name].append((time.perf_counter() - t0) / r)
    flops = 3 * 2.0 * m_out * m_in * n
    return samples, flops


def _blas_info():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return ["(threadpoolctl not installed)"]
    return [
        f"{i.get('internal_api')} {i.get('version')} {os.path.basename(i.get('filepath', ''))}: "
        f"kernel {i.get('architecture')}, {i.get('num_threads')} threads"
        for i in threadpool_info()
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--min-time", type=float, default=0.05, help="seconds per sample")
    parser.add_argument("--threads", type=int, default=None, help="densa threads")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--pause", type=float, default=0.2, help="seconds before each sample")
    args = parser.parse_args(argv)
    if args.threads:
        densa.set_num_threads(args.threads)
    densa.show_config()
    for env in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS"):
        print(f"{env}={os.environ.get(env, '(unset)')}")
    for line in _blas_info():
        print("threadpoolctl:", line)
    print()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    before = _cpu_times()
    for label, shape in (("K1", (1024, 1024, 512)), ("K2", (64, 64, 32))):
        samples, flops = bench(*shape, args.rounds, args.min_time, args.pause, np.dtype(args.dtype))
        med = {name: statistics.median(s) for name, s in samples.items()}
        print(
            f"{label}: {shape[1]} -> {shape[0]}, batch {shape[2]}, {args.dtype}, relu; "
            f"forward + backward; {args.rounds} interleaved rounds, pause {args.pause} s"
        )
        print(
            f"  {'':12s} {'median':>10s} {'GFLOP/s':>8s} {'vs numpy':>9s} {'vs np gemm':>10s}"
            f" {'best':>10s}"
        )
        for name, t in med.items():
            print(
                f"  {name:12s} {t * 1e6:8.1f}µs {flops / t / 1e9:8.1f} "
                f"{med['numpy'] / t:8.2f}x {med['numpy gemm'] / t:9.2f}x"
                f" {min(samples[name]) * 1e6:8.1f}µs"
            )
        print()
    after = _cpu_times()
    if before and after and after[0] > before[0]:
        others = (after[0] - before[0]) - (after[1] - before[1])
        print(
            f"other processes used {100 * others / (after[0] - before[0]):.0f}% of the busy "
            f"CPU time during the run"
        )


if __name__ == "__main__":
    main()
