"""What flushing subnormal numbers to zero saves the native trainer (cpp/densa/float_mode.hpp).

W5's network (scikit-learn's digits, 64-64-10 relu, softmax cross-entropy, SGD lr 0.1
momentum 0.9, batch 32, the 75/25 split of benchmarks/bench_suite.py) trained with the
trainer's flush on (densa's default) and off (IEEE arithmetic, as the reference
computes), alternating in one process, from the same initial weights and sample orders:

* per-epoch seconds of an 80-epoch fit, as medians over rounds per block of ten epochs,
  and the share of the first layer's velocities left subnormal at the end;
* whole W5 fits (30 epochs), each after a 0.2 s pause, medians over rounds.

The digits' border pixels are 0 in every sample, so their weights' velocities only decay;
in IEEE arithmetic they stop a few ulp above zero, subnormal, and every later step pays
for it. Needs scikit-learn (for the digits). Run with OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE unset, as the other benchmarks:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_subnormals.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

import densa
from densa import _core

MODES = {"flushed": True, "IEEE": False}
BLOCK = 10


def digits():
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        sys.exit("bench_subnormals.py needs scikit-learn (pip install '.[bench]')")
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    Xtr, _, ytr, _ = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    return Xtr, ytr


def fit(Xtr, ytr, epochs: int, flush: bool) -> densa.Network:
    """One fit of W5's network from initialisation 0 and order seed 1000."""
    layers = [densa.Dense(64, 64, "relu"), densa.Dense(64, 10, "identity")]
    net = densa.Network(layers, loss="softmax_cross_entropy", dtype="float32", seed=0)
    net.rng = np.random.default_rng(1000)
    _core._set_flush_subnormals(flush)
    try:
        net.fit(
            Xtr,
            ytr,
            epochs=epochs,
            batch_size=32,
            optimizer=densa.SGD(0.1, momentum=0.9),
            progress=False,
        )
    finally:
        _core._set_flush_subnormals(True)
    return net


def subnormal_share(net: densa.Network) -> float:
    v = np.asarray(net.optimizer.state_W[0][0])
    return float(np.mean((v != 0) & (np.abs(v) < np.finfo(v.dtype).tiny)))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=9, help="rounds per measurement (default 9)")
    p.add_argument("--epochs", type=int, default=80, help="epochs of the long fit (default 80)")
    args = p.parse_args(argv)
    Xtr, ytr = digits()
    for flush in MODES.values():  # warm-up
        fit(Xtr, ytr, 2, flush)

    per_epoch = {k: [] for k in MODES}
    share = {}
    for _ in range(args.rounds):
        for name, flush in MODES.items():
            time.sleep(0.2)
            net = fit(Xtr, ytr, args.epochs, flush)
            per_epoch[name].append(net.history.seconds)
            share[name] = subnormal_share(net)
    print(
        f"W5's network, {args.epochs} epochs: ms per epoch, median over {args.rounds} rounds "
        "and the epochs of each block"
    )
    print(f"  {'epochs':>9s}" + "".join(f"{k:>10s}" for k in MODES) + "   IEEE / flushed")
    for start in range(0, args.epochs, BLOCK):
        stop = min(start + BLOCK, args.epochs)
        med = {
            k: statistics.median(s for run in runs for s in run[start:stop])
            for k, runs in per_epoch.items()
        }
        cells = "".join(f"{med[k] * 1e3:10.3f}" for k in MODES)
        print(f"  {start + 1:>4d}-{stop:<4d}{cells}   {med['IEEE'] / med['flushed']:.2f}x")
    print(
        "  first layer's velocities subnormal at the end: "
        + ", ".join(f"{k} {share[k]:.1%}" for k in MODES)
    )

    fits = {k: [] for k in MODES}
    for _ in range(2 * args.rounds + 3):
        for name, flush in MODES.items():
            time.sleep(0.2)
            t0 = time.perf_counter()
            fit(Xtr, ytr, 30, flush)
            fits[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in fits.items()}
    print(f"W5 fit (30 epochs, network built inside), median of {2 * args.rounds + 3} rounds:")
    for k in MODES:
        print(f"  {k:8s} {med[k] * 1e3:8.2f} ms")
    print(f"  flushed is {med['IEEE'] / med['flushed']:.2f}x faster")


if __name__ == "__main__":
    main()
