"""benchmarks/two_cores.py says whether the machine gave two threads two cores (the
suite prints it per W5 round); benchmarks/bench_cores.py groups densa's W5 fits by it.
Their arithmetic and the probe's work are checked here; what they time is not."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from helpers import load_script

two_cores = load_script("benchmarks/two_cores.py", "two_cores")
bench = load_script("benchmarks/bench_suite.py", "bench_suite")
cores = load_script("benchmarks/bench_cores.py", "bench_cores")


def test_the_probe_has_both_threads_compute_the_products():
    probe = two_cores.CoreProbe(stack=8)
    for out in probe.out:
        out.fill(np.nan)
    factor = probe.sample(pairs=2)
    want = probe.A.astype(np.float64) @ probe.A.astype(np.float64)
    for out in probe.out:  # the caller's output and the second thread's
        assert out.shape == (8, 64, 64)
        for k in (0, 7):
            np.testing.assert_allclose(out[k], want, rtol=1e-4, atol=1e-4)
    assert math.isfinite(factor)
    assert factor > 0
    assert len(probe.one_seconds) == 2  # one per pair, the untimed warm-up call not counted
    assert probe.one_core_gflops() == pytest.approx(
        probe.flops / statistics.median(probe.one_seconds) / 1e9
    )
    assert probe.flops == 2.0 * 64**3 * 8


def test_the_probe_refuses_what_it_cannot_measure():
    with pytest.raises(ValueError, match="stack"):
        two_cores.CoreProbe(stack=0)
    with pytest.raises(ValueError, match="stack"):
        two_cores.CoreProbe(stack=2.5)
    probe = two_cores.CoreProbe(stack=1)
    with pytest.raises(ValueError, match="pairs"):
        probe.sample(pairs=0)
    with pytest.raises(RuntimeError, match="no sample"):
        probe.one_core_gflops()


@pytest.mark.parametrize(
    ("factor", "want"),
    [
        (1.0, "two cores"),
        (1.39, "two cores"),
        (1.4, "in between"),
        (1.7, "in between"),
        (1.71, "one core"),
        (2.3, "one core"),
        (0.8, "two cores"),
    ],
)
def test_a_factor_names_the_state_by_its_thresholds(factor, want):
    assert two_cores.state(factor) == want


@pytest.mark.parametrize("factor", [0.0, -1.0, float("nan")])
def test_a_factor_that_is_no_time_ratio_is_refused(factor):
    with pytest.raises(ValueError, match="positive time ratio"):
        two_cores.state(factor)


def test_rounds_are_grouped_by_state_with_each_sides_median():
    factors = [1.1, 2.0, 1.2, 1.5, 1.9, 1.0]
    groups = two_cores.by_state(
        factors, densa=[7, 11, 8, 9, 12, 6], other=[200, 210, 190, 205, 220, 180]
    )
    assert list(groups) == ["two cores", "in between", "one core"]
    assert groups["two cores"] == {"rounds": 3, "densa": 7, "other": 190}
    assert groups["in between"] == {"rounds": 1, "densa": 9, "other": 205}
    assert groups["one core"] == {"rounds": 2, "densa": 11.5, "other": 215}
    only_two = two_cores.by_state([1.1, 1.2], x=[1.0, 3.0])
    assert list(only_two) == ["two cores"]  # states without rounds are left out


def test_times_not_one_per_round_are_refused():
    with pytest.raises(ValueError, match="densa: 2 times for 3 factors"):
        two_cores.by_state([1.1, 1.2, 1.3], densa=[1.0, 2.0])


def test_w5_product_flops_by_hand():
    # Per sample of 64-64-10: forward 64*64 + 64*10 multiply-adds, as many for dW, and
    # 64*10 for the second layer's dx (the first layer's is never formed): 10 112.
    assert two_cores.product_flops([64, 64, 10], 1) == 2 * 10_112
    assert two_cores.product_flops([64, 64, 10], 30 * 1347) == pytest.approx(817.25e6, rel=1e-4)
    # One layer: no dx at all.
    assert two_cores.product_flops([3, 5], 2) == 2 * 2 * (2 * 15)
    for bad in ([64], [64, 0, 10], []):
        with pytest.raises(ValueError, match="sizes"):
            two_cores.product_flops(bad, 1)


def test_the_suites_w5_lines_split_the_rounds_by_state():
    factors = [1.1, 1.9, 1.2]
    times = {"densa native": [0.007, 0.011, 0.008], "scikit-learn": [0.2, 0.21, 0.22]}
    lines = bench.core_lines(factors, times, samples=True)
    assert lines[1] == "    factors 1.10 1.90 1.20"
    two = next(line for line in lines if "two cores " in line and "rounds" in line)
    one = next(line for line in lines if "one core " in line and "rounds" in line)
    assert " 2 rounds: densa native 0.0075 s, scikit-learn 0.2100 s (28.00x)" in two
    assert " 1 rounds: densa native 0.0110 s, scikit-learn 0.2100 s (19.09x)" in one
    assert not any(
        line.startswith("    factors") for line in bench.core_lines(factors, times, False)
    )


def test_the_summary_prints_the_w5_split_beside_the_targets_not_as_one():
    lines = bench.runs_summary(
        [{"W5": 24.0, "W5 2 cores": 28.1, "W5 rounds": 6.0}, {"W5": 29.0, "W5 rounds": 21.0}]
    )
    w5 = next(line for line in lines if line.split()[:1] == ["W5"])
    assert "1/2 met" in w5
    info = [line for line in lines if "not a target" in line]
    assert len(info) == 2
    assert "28.100" in info[0]
    assert "met" not in info[0].split("(")[0]
    assert "6.000   21.000" in info[1]


def test_bench_cores_reports_each_state_and_the_one_core_bound():
    probe = two_cores.CoreProbe(stack=10)
    probe.one_seconds[:] = [2.0e-3, 1.0e-3, 3.0e-3]  # median 2 ms of 5.24 MFLOP
    cycles = [(1.1, 0.007, 0.011), (1.2, 0.006, 0.010), (2.0, 0.011, 0.012)]
    lines = cores.report(cycles, probe, 0.2, 1347)
    assert lines[0].startswith("3 cycles")
    assert lines[2].split() == ["two", "cores", "2", "6.50", "10.50"]
    assert lines[3].split() == ["one", "core", "1", "11.00", "12.00"]
    rate = 2.0 * 64**3 * 10 / 2.0e-3 / 1e9
    floor = two_cores.product_flops([64, 64, 10], 30 * 1347) / (rate * 1e9)
    assert f"at {rate:.1f} GFLOP/s" in lines[4]
    assert f"at least {floor * 1e3:.2f} ms" in lines[4]
    assert f"at best {0.2 / floor:.1f}x" in lines[5]
    assert f"here {0.2 / 0.011:.1f}x" in lines[5]  # the one-thread fits' median
    assert len(cores.report(cycles, probe, None, 1347)) == 5  # no scikit-learn: no ratio
