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

The host also moves the two vCPUs between cores that share a last-level cache and cores
that do not (on this AMD EPYC machine: a cache line bounced between two threads pinned
one per vCPU took ~105 ns round trip for seconds at a time, then ~500 ns). densa's
split exchanges partial results between its two threads several times per batch; in the
suite's rounds a W5 fit took a third to a half longer when its threads were apart,
while independent work (the factor above) does not notice. ``RoundTrip`` measures that
round trip without densa: two processes (no shared GIL) bounce a counter through shared
memory, ~330-480 ns from Python when the C measurement read ~105 ns and ~670-870 ns
when it read ~500 ns.
"""

from __future__ import annotations

import multiprocessing as mp
import statistics
import threading
import time
import warnings
from collections.abc import Sequence
from multiprocessing import shared_memory

import numpy as np

STACK = 400  # products per call: ~2 ms of one core here (64 x 64 x 64 each)
TWO_CORES_BELOW = 1.4  # factor below this: the two threads got two cores
ONE_CORE_ABOVE = 1.7  # above this: about one core's worth between them
APART_ABOVE = 600e-9  # RoundTrip seconds above this: the vCPUs share no cache (see above)
# What the machine gave two threads in a round (state): two cores sharing a last-level
# cache, two cores apart, something between two cores and one, one core's worth.
STATES = ("together", "apart", "in between", "one core")


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


def state(factor: float, trip: float) -> str:
    """What a round's readings say the machine gave two threads (one of STATES): the
    CoreProbe factor, then the RoundTrip seconds."""
    if not factor > 0:  # NaN too
        raise ValueError(f"a factor is a positive time ratio, got {factor!r}")
    if not trip > 0:
        raise ValueError(f"a round trip is a positive number of seconds, got {trip!r}")
    if factor > ONE_CORE_ABOVE:
        return "one core"
    if factor >= TWO_CORES_BELOW:
        return "in between"
    return "apart" if trip > APART_ABOVE else "together"


def by_state(
    factors: Sequence[float], trips: Sequence[float], **times: Sequence[float]
) -> dict[str, dict]:
    """Rounds grouped by the machine's state: per state present, ``rounds`` (their count)
    and, per keyword's sequence of seconds (one per round, aligned with ``factors`` and
    ``trips``), the median over those rounds."""
    for name, seq in {"trips": trips, **times}.items():
        if len(seq) != len(factors):
            raise ValueError(
                f"{name}: {len(seq)} values for {len(factors)} factors (one per round each)"
            )
    states = [state(f, t) for f, t in zip(factors, trips)]
    groups: dict[str, dict] = {}
    for s in STATES:
        idx = [i for i, got in enumerate(states) if got == s]
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


def _echo(name: str, go) -> None:
    """RoundTrip's other process: on each message, answer the counter until told -1 in
    slot 0 (then wait for the next message without using the CPU); None ends it."""
    shm = shared_memory.SharedMemory(name=name)
    a = np.ndarray((16,), np.int64, shm.buf)
    try:
        while go.recv() is not None:
            last = -2
            while True:
                v = a[0]
                if v != last:
                    if v < 0:
                        break
                    last = v
                    a[8] = v  # its own cache line: slot 8 is 64 bytes on
    finally:
        del a
        shm.close()


class RoundTrip:
    """``measure()`` -> seconds for a counter to go to another process and back (median
    of batches), through one shared cache line. Use as a context manager (it owns a
    process, idle between measurements)."""

    def __init__(self):
        self._shm = shared_memory.SharedMemory(create=True, size=128)
        self._a = np.ndarray((16,), np.int64, self._shm.buf)
        self._a[:] = 0
        self._k = 0
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp
        self._go, theirs = ctx.Pipe()
        self._proc = ctx.Process(target=_echo, args=(self._shm.name, theirs), daemon=True)
        with warnings.catch_warnings():
            # Python 3.12+ warns that fork() in a multi-threaded process may deadlock in
            # the child; the child here only reads and writes the shared array.
            warnings.simplefilter("ignore", DeprecationWarning)
            self._proc.start()

    def measure(self, trips: int = 2000, batches: int = 5) -> float:
        if not (
            isinstance(trips, int) and trips >= 1 and isinstance(batches, int) and batches >= 1
        ):
            raise ValueError(
                f"trips and batches must be positive integers, got {trips!r}, {batches!r}"
            )
        if not self._proc.is_alive():
            raise RuntimeError("the echo process has ended")
        a, k = self._a, self._k
        a[0] = k
        self._go.send(True)
        times = []
        deadline = time.perf_counter() + 5.0
        try:
            for i in range(batches + 1):  # the first batch only brings the line in
                t0 = time.perf_counter()
                for _ in range(trips):
                    k += 1
                    a[0] = k
                    spins = 0
                    while a[8] != k:
                        spins += 1
                        # A clock read per spin would be most of a trip: one in 2**16.
                        if not spins & 0xFFFF and time.perf_counter() > deadline:
                            raise RuntimeError("the echo process stopped answering")
                if i:
                    times.append((time.perf_counter() - t0) / trips)
        finally:
            a[0] = -1  # back to waiting, off the CPU
            self._k = k
        return statistics.median(times)

    def close(self) -> None:
        if self._proc.is_alive():
            self._go.send(None)
            self._proc.join(5)
        del self._a
        self._shm.close()
        self._shm.unlink()

    def __enter__(self) -> RoundTrip:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
