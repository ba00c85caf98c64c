"""Whether the shared machine gives two busy threads two cores' worth of compute,
measured without densa.

The machine's host at times runs its two vCPUs on one physical core's resources (as
SMT siblings, or time-sliced): a single busy thread then runs at full speed, but two
busy threads each run at about half. densa's W5 fit splits its hidden layer between
two threads, so in those stretches it runs at one thread's speed, while scikit-learn's
fit, single-threaded at W5's sizes, does not notice (docs/performance.md, the
twenty-third session).

The probe times the same product work, a stack of 64 x 64 float32 products (W5's hidden
layer's size) in one NumPy call that releases the GIL, run by one thread alone and
then by two threads at once, each on its own output. ``factor`` is the two threads'
time over the one thread's: ~1.1-1.2 with two cores (the second thread's start), ~2
with one core's worth. Each product, 64 x 64 x 64, is below OpenBLAS's threading
threshold, so each thread's call runs on that thread alone.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Sequence

import numpy as np

STACK = 400  # products per call: ~2 ms of one core here (64 x 64 x 64 each)
TWO_CORES_BELOW = 1.4  # factor below this: the two threads got two cores
ONE_CORE_ABOVE = 1.7  # above this: about one core's worth between them
STATES = ("two cores", "in between", "one core")


class CoreProbe:
    """``sample()`` -> the factor: two threads' time over one thread's, for the same work."""

    def __init__(self, stack: int = STACK):
        if not (isinstance(stack, int) and stack >= 1):
            raise ValueError(f"stack must be a positive integer, got {stack!r}")
        self.A = np.random.default_rng(0).standard_normal((64, 64), dtype=np.float32)
        # The same matrix stack-many times without copies: the work stays in L1/L2,
        # so the probe measures compute, not memory bandwidth.
        self._stack = np.broadcast_to(self.A, (stack, 64, 64))
        self.out = [np.empty((stack, 64, 64), np.float32) for _ in range(2)]
        self.flops = 2.0 * 64**3 * stack
        self.one_seconds: list[float] = []  # each sample's one-thread time

    def _work(self, i: int) -> None:
        np.matmul(self._stack, self.A, out=self.out[i])

    def sample(self, pairs: int = 3) -> float:
        """The median factor of ``pairs`` measurements (one thread, then two), after an
        untimed call that brings the work's code and data back into cache."""
        if not (isinstance(pairs, int) and pairs >= 1):
            raise ValueError(f"pairs must be a positive integer, got {pairs!r}")
        self._work(0)
        factors = []
        for _ in range(pairs):
            t0 = time.perf_counter()
            self._work(0)
            one = time.perf_counter() - t0
            other = threading.Thread(target=self._work, args=(1,))
            t0 = time.perf_counter()
            other.start()
            self._work(0)
            other.join()
            two = time.perf_counter() - t0
            self.one_seconds.append(one)
            factors.append(two / one)
        return statistics.median(factors)

    def one_core_gflops(self) -> float:
        """One thread's rate on these products (median of the samples so far)."""
        if not self.one_seconds:
            raise RuntimeError("no sample taken yet")
        return self.flops / statistics.median(self.one_seconds) / 1e9


def state(factor: float) -> str:
    """What a factor says the machine gave the two threads (one of STATES)."""
    if not factor > 0:  # NaN too
        raise ValueError(f"a factor is a positive time ratio, got {factor!r}")
    if factor < TWO_CORES_BELOW:
        return STATES[0]
    return STATES[2] if factor > ONE_CORE_ABOVE else STATES[1]


def by_state(factors: Sequence[float], **times: Sequence[float]) -> dict[str, dict]:
    """Rounds grouped by the machine's state: per state present, ``rounds`` (their count)
    and, per keyword's sequence of seconds (one per round, aligned with ``factors``),
    the median over those rounds."""
    for name, seq in times.items():
        if len(seq) != len(factors):
            raise ValueError(
                f"{name}: {len(seq)} times for {len(factors)} factors (one per round each)"
            )
    groups: dict[str, dict] = {}
    for s in STATES:
        idx = [i for i, f in enumerate(factors) if state(f) == s]
        if idx:
            groups[s] = {"rounds": len(idx)}
            for name, seq in times.items():
                groups[s][name] = statistics.median(seq[i] for i in idx)
    return groups


def product_flops(sizes: Sequence[int], samples: int) -> float:
    """Flops of the products of training steps over ``samples`` samples of a network with
    these layer widths (input first): per layer, the forward product and dW, and dx for
    every layer but the first (densa never forms the first layer's dx)."""
    pairs = list(zip(sizes[:-1], sizes[1:]))
    if not pairs or any(a < 1 or b < 1 for a, b in pairs):
        raise ValueError(f"sizes must be two or more positive widths, got {list(sizes)}")
    macs = sum(2 * a * b for a, b in pairs) + sum(a * b for a, b in pairs[1:])
    return 2.0 * samples * macs
