"""What W5's densa fit does when the shared machine gives two threads one core's worth.

Cycles, back to back in one process: densa's W5 fit (the suite's, without predict) on
two threads, the same fit on one thread, and the densa-free two_cores probes (the same
64 x 64 product work by one thread, then by two at once; a counter's round trip to
another process). Cycles are grouped by what the probes say the machine gave two
threads (two_cores.state), and each group's medians printed: on two cores sharing a
cache the two-thread fit was ~1.5x faster than the one-thread fit on the twenty-third
session's machine, on cores apart ~1.15x, on one core's worth not at all.

The bound printed last is what one core can do at best: W5's 30 epochs are
``two_cores.product_flops`` of products (forward, dW, and dx above the first layer),
which at the probe's one-thread rate on 64 x 64 products take at least that long,
before any element-wise work; against scikit-learn's fit (timed here too, on one
thread's worth of work, single-threaded at these sizes) that is the best ratio a
one-core stretch allows.

    python benchmarks/bench_cores.py                # 60 s of cycles
    python benchmarks/bench_cores.py --seconds 120

scikit-learn is needed for its digits data.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings

import numpy as np

import bench_suite as bs
import densa
import two_cores

EPOCHS, BATCH = 30, 32  # W5's, as in bench_suite.bench_digits


def w5_fit(Xtr, ytr):
    """densa's W5 fit from initialisation 0 and order 0 each call: ``fit(threads)`` ->
    seconds."""
    net = bs.make_densa(bs.W5_SIZES, bs.W5_ACTS, bs.W5_LOSS, "native", seed=0)
    init = [(layer.W.copy(), layer.b.copy()) for layer in net.layers]

    def fit(threads: int) -> float:
        for layer, (W, b) in zip(net.layers, init):
            layer.W[...] = W
            layer.b[...] = b
        net.rng = np.random.default_rng(1000)
        with densa.threads(threads):
            t0 = time.perf_counter()
            net.fit(
                Xtr,
                ytr,
                epochs=EPOCHS,
                batch_size=BATCH,
                optimizer=densa.SGD(0.1, momentum=0.9),
                progress=False,
            )
            return time.perf_counter() - t0

    return fit


def sklearn_seconds(Xtr, ytr, repeats: int = 5) -> float:
    """Median seconds of scikit-learn's W5 fit (the suite's settings)."""
    from sklearn.neural_network import MLPClassifier

    times = []
    for _ in range(repeats):
        est = MLPClassifier(**bs.W5_SKLEARN, random_state=1000)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: 30 epochs is the workload
            est.fit(Xtr, ytr)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def report(cycles, probe, sk_seconds, n_train) -> list[str]:
    """The table of cycles by state, and the one-core bound. ``cycles``: (factor, round
    trip seconds, two threads' fit seconds, one thread's) per cycle."""
    groups = two_cores.by_state(
        [c[0] for c in cycles],
        [c[1] for c in cycles],
        two=[c[2] for c in cycles],
        one=[c[3] for c in cycles],
    )
    lines = [
        f"{len(cycles)} cycles; W5's densa fit (30 epochs, no predict), ms (medians)",
        f"  {'machine state':14s} {'cycles':>6s} {'2 threads':>10s} {'1 thread':>10s}",
    ]
    for state, g in groups.items():
        lines.append(
            f"  {state:14s} {g['rounds']:6d} {g['two'] * 1e3:10.2f} {g['one'] * 1e3:10.2f}"
        )
    flops = two_cores.product_flops(bs.W5_SIZES, EPOCHS * n_train)
    rate = probe.one_core_gflops()
    floor = flops / (rate * 1e9)
    lines.append(
        f"one core: 64 x 64 products at {rate:.1f} GFLOP/s (the probe's one thread); W5's "
        f"products {flops / 1e6:.0f} MFLOP -> at least {floor * 1e3:.2f} ms on one core"
    )
    if sk_seconds is not None:
        lines.append(
            f"scikit-learn's fit {sk_seconds * 1e3:.1f} ms: on one core densa's fit could be "
            f"at best {sk_seconds / floor:.1f}x faster (products alone), the one-thread fit "
            f"here {sk_seconds / statistics.median(c[3] for c in cycles):.1f}x"
        )
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="seconds of cycles (default 60)")
    args = p.parse_args(argv)
    if not (args.seconds > 0):
        p.error(f"--seconds must be positive, got {args.seconds}")
    sk = bs._try_import("sklearn")
    if sk is None:
        sys.exit("bench_cores.py needs scikit-learn (its digits are W5's data)")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    Xtr, _, ytr, _ = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    fit, probe = w5_fit(Xtr, ytr), two_cores.CoreProbe()
    with two_cores.RoundTrip() as round_trip:
        for _ in range(10):  # warm-up
            fit(2), fit(1), probe.sample(), round_trip.measure()
        probe.one_seconds.clear()
        sk_seconds = sklearn_seconds(Xtr, ytr)
        print(bs.machine_state_line())
        cycles = []
        start = time.perf_counter()
        while time.perf_counter() - start < args.seconds:
            two, one = fit(2), fit(1)
            cycles.append((probe.sample(), round_trip.measure(), two, one))
    print("\n".join(report(cycles, probe, sk_seconds, len(Xtr))))
    print(bs.machine_state_line())


if __name__ == "__main__":
    main()
