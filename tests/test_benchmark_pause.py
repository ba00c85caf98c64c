"""The benchmark's pause before each timed call (benchmarks/bench_suite.py, ``Pause``):
it must outlast another thread's spinning, as OpenBLAS's workers spin after a call, and
end soon once nothing else runs. Bounds are loose: they check the mechanism, not speed."""

from __future__ import annotations

import threading
import time

import pytest

from helpers import load_script

bench = load_script("benchmarks/bench_suite.py", "bench_suite")

pytestmark = pytest.mark.skipif(
    bench._other_threads_cpu_ns() is None, reason="no per-thread CPU times on this system"
)


def _spin_in_thread(seconds):
    def spin():
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    t = threading.Thread(target=spin)
    t.start()
    return t


def test_auto_pause_waits_while_another_thread_spins():
    pause = bench.Pause()
    assert pause.fixed is None
    t = _spin_in_thread(0.3)
    try:
        t0 = time.perf_counter()
        pause()
        waited = time.perf_counter() - t0
    finally:
        t.join()
    # The spinner ran for 0.3 s from before the pause began; with the GIL shared, the
    # pause could end early only if the spinner got no CPU for the whole idle window.
    assert waited >= 0.2
    assert pause.waited == [pytest.approx(waited, abs=0.01)]


def test_auto_pause_ends_soon_when_nothing_else_runs():
    pause = bench.Pause()
    for _ in range(5):
        pause()
    # The idle window is 10 ms; a noisy machine may stretch a few polls, not to 1 s.
    assert min(pause.waited) < 0.5
    assert all(w >= pause.idle for w in pause.waited)


def test_auto_pause_gives_up_at_its_timeout():
    pause = bench.Pause(timeout=0.1)
    t = _spin_in_thread(0.6)
    try:
        pause()
    finally:
        t.join()
    assert 0.1 <= pause.waited[0] < 0.5


def test_fixed_pause_sleeps_its_seconds():
    pause = bench.Pause(0.05)
    pause()
    assert pause.waited[0] >= 0.05
    assert "0.05 s" in pause.describe()


def test_the_command_line_takes_auto_or_seconds_and_refuses_the_rest(capsys):
    for bad in ("soon", "-1", "61"):
        with pytest.raises(SystemExit):
            bench.main(["--only", "IMPORT", "--pause", bad])
        assert "--pause" in capsys.readouterr().err
