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
    ("factor", "trip", "want"),
    [
        (1.0, 400e-9, "together"),
        (1.39, 600e-9, "together"),
        (1.39, 601e-9, "apart"),
        (0.8, 900e-9, "apart"),
        (1.4, 400e-9, "in between"),
        (1.7, 900e-9, "in between"),
        (1.71, 400e-9, "one core"),
        (2.3, 900e-9, "one core"),
    ],
)
def test_the_readings_name_the_state_by_their_thresholds(factor, trip, want):
    assert two_cores.state(factor, trip) == want


@pytest.mark.parametrize("factor", [0.0, -1.0, float("nan")])
def test_a_factor_that_is_no_time_ratio_is_refused(factor):
    with pytest.raises(ValueError, match="positive time ratio"):
        two_cores.state(factor, 1e-7)


@pytest.mark.parametrize("trip", [0.0, -1e-7, float("nan")])
def test_a_round_trip_that_is_no_time_is_refused(trip):
    with pytest.raises(ValueError, match="round trip"):
        two_cores.state(1.1, trip)


def test_rounds_are_grouped_by_state_with_each_sides_median():
    factors = [1.1, 2.0, 1.2, 1.5, 1.9, 1.0, 1.1]
    trips = [4e-7, 4e-7, 4e-7, 4e-7, 9e-7, 4e-7, 8e-7]
    groups = two_cores.by_state(
        factors,
        trips,
        densa=[7, 11, 8, 9, 12, 6, 10],
        other=[200, 210, 190, 205, 220, 180, 230],
    )
    assert list(groups) == ["together", "apart", "in between", "one core"]
    assert groups["together"] == {"rounds": 3, "densa": 7, "other": 190}
    assert groups["apart"] == {"rounds": 1, "densa": 10, "other": 230}
    assert groups["in between"] == {"rounds": 1, "densa": 9, "other": 205}
    assert groups["one core"] == {"rounds": 2, "densa": 11.5, "other": 215}
    only = two_cores.by_state([1.1, 1.2], [4e-7, 5e-7], x=[1.0, 3.0])
    assert list(only) == ["together"]  # states without rounds are left out


def test_readings_not_one_per_round_are_refused():
    with pytest.raises(ValueError, match="densa: 2 values for 3 factors"):
        two_cores.by_state([1.1, 1.2, 1.3], [4e-7] * 3, densa=[1.0, 2.0])
    with pytest.raises(ValueError, match="trips: 1 values for 2 factors"):
        two_cores.by_state([1.1, 1.2], [4e-7], densa=[1.0, 2.0])


def test_the_round_trip_goes_through_the_other_process_and_back():
    with two_cores.RoundTrip() as trip:
        first = trip.measure(trips=200, batches=2)
        counter = trip._k
        again = trip.measure(trips=100, batches=1)
        # Every trip raised the counter once and waited for the other process's answer.
        assert trip._k == counter + 200
        assert trip._a[8] == trip._k  # the last answer is the last count sent
        proc = trip._proc
    for t in (first, again):
        assert math.isfinite(t)
        assert 0 < t < 1e-3
    proc.join(5)
    assert proc.exitcode == 0  # closed: the other process ended by itself


def test_the_round_trip_refuses_bad_counts_and_a_missing_partner():
    with two_cores.RoundTrip() as trip:
        with pytest.raises(ValueError, match="positive integers"):
            trip.measure(trips=0)
        with pytest.raises(ValueError, match="positive integers"):
            trip.measure(batches=1.5)
        trip._proc.kill()
        trip._proc.join(5)
        with pytest.raises(RuntimeError, match="ended"):
            trip.measure(trips=10)


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
    factors, trips = [1.1, 1.9, 1.2, 1.1], [4e-7, 4e-7, 4.5e-7, 7e-7]
    times = {
        "densa native": [0.007, 0.011, 0.008, 0.01],
        "scikit-learn": [0.2, 0.21, 0.22, 0.2],
    }
    lines = bench.core_lines(factors, trips, times, samples=True)
    assert lines[1] == "    factors 1.10 1.90 1.20 1.10"
    assert lines[2] == "    trip ns  400  400  450  700"
    rows = {line.split()[0]: line for line in lines[3:]}
    assert list(rows) == ["together", "apart", "one"]
    assert " 2 rounds: densa native 0.0075 s, scikit-learn 0.2100 s (28.00x)" in rows["together"]
    assert " 1 rounds: densa native 0.0100 s, scikit-learn 0.2000 s (20.00x)" in rows["apart"]
    assert " 1 rounds: densa native 0.0110 s, scikit-learn 0.2100 s (19.09x)" in rows["one"]
    quiet = bench.core_lines(factors, trips, times, False)
    assert not any(line.startswith(("    factors", "    trip")) for line in quiet)


def test_the_summary_prints_the_w5_split_beside_the_targets_not_as_one():
    lines = bench.runs_summary(
        [{"W5": 24.0, "W5 together": 28.1, "W5 rounds": 6.0}, {"W5": 29.0, "W5 rounds": 21.0}]
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
    cycles = [
        (1.1, 4e-7, 0.007, 0.011),
        (1.2, 4e-7, 0.006, 0.010),
        (2.0, 4e-7, 0.011, 0.012),
    ]
    lines = cores.report(cycles, probe, 0.2, 1347)
    assert lines[0].startswith("3 cycles")
    assert lines[2].split() == ["together", "2", "6.50", "10.50"]
    assert lines[3].split() == ["one", "core", "1", "11.00", "12.00"]
    rate = 2.0 * 64**3 * 10 / 2.0e-3 / 1e9
    floor = two_cores.product_flops([64, 64, 10], 30 * 1347) / (rate * 1e9)
    assert f"at {rate:.1f} GFLOP/s" in lines[4]
    assert f"at least {floor * 1e3:.2f} ms" in lines[4]
    assert f"at best {0.2 / floor:.1f}x" in lines[5]
    assert f"here {0.2 / 0.011:.1f}x" in lines[5]  # the one-thread fits' median
    assert len(cores.report(cycles, probe, None, 1347)) == 5  # no scikit-learn: no ratio
