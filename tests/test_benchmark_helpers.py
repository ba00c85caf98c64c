"""The benchmark's hand-over of densa's initial weights to scikit-learn.

benchmarks/bench_suite.py compares accuracies "from the same initial weights where the
library allows". scikit-learn has no argument for initial weights, so the benchmark
installs them through warm_start / partial_fit (``sklearn_from_densa``). These tests
check that scikit-learn then really computes from densa's weights: same outputs before
training, and the same first SGD step as densa's.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest

import densa
from helpers import load_script

pytest.importorskip("sklearn")
from sklearn.neural_network import MLPClassifier, MLPRegressor

bench = load_script("benchmarks/bench_suite.py", "bench_suite")


def _classification(n=120, n_in=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_in)).astype(np.float32)
    y = rng.integers(0, classes, n)
    return X, y


def _net(sizes, acts, loss, seed=3):
    return bench.make_densa(sizes, acts, loss, "native", seed=seed)


def test_classifier_starts_from_densa_weights_and_takes_densas_first_step():
    X, y = _classification()
    net = _net([6, 8, 3], ["relu", "identity"], "softmax_cross_entropy")
    W0 = [layer.W.copy() for layer in net.layers]
    est = MLPClassifier(
        hidden_layer_sizes=(8,),
        solver="sgd",
        learning_rate_init=0.1,
        momentum=0.9,
        nesterovs_momentum=False,
        batch_size=len(X),  # one full batch: one step, no sample order involved
        shuffle=False,
        max_iter=1,
        alpha=0.0,
        random_state=0,
    )
    reset = bench.sklearn_from_densa(est, net, X, y)
    np.testing.assert_allclose(est.predict_proba(X), net.predict(X), rtol=1e-5, atol=1e-6)
    for c, W in zip(est.coefs_, W0):
        np.testing.assert_array_equal(c, W.T)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: one epoch on purpose
        est.fit(X, y)
    assert reset.still_ours(), "scikit-learn drew its own weights"
    net.fit(
        X,
        y,
        epochs=1,
        batch_size=len(X),
        optimizer=densa.SGD(0.1, momentum=0.9),
        shuffle=False,
        progress=False,
    )
    for c, i, layer, W in zip(est.coefs_, est.intercepts_, net.layers, W0):
        assert not np.array_equal(layer.W, W)  # a step was taken ...
        np.testing.assert_allclose(c, layer.W.T, rtol=1e-4, atol=1e-6)  # ... the same one
        np.testing.assert_allclose(i, layer.b, rtol=1e-4, atol=1e-6)

    reset()
    for c, W in zip(est.coefs_, W0):
        np.testing.assert_array_equal(c, W.T)


def test_regressor_partial_fit_starts_from_densa_weights():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((64, 2)).astype(np.float32)
    y = np.sin(X.sum(axis=1)).astype(np.float32)
    net = _net([2, 16, 16, 1], ["tanh", "tanh", "identity"], "mse")
    est = MLPRegressor(
        hidden_layer_sizes=(16, 16),
        activation="tanh",
        solver="sgd",
        learning_rate_init=0.05,
        momentum=0.9,
        nesterovs_momentum=False,
        batch_size=8,
        alpha=0.0,
        random_state=0,
    )
    reset = bench.sklearn_from_densa(est, net, X, y, partial=True)
    np.testing.assert_allclose(est.predict(X), net.predict(X).ravel(), rtol=1e-5, atol=1e-6)
    est.partial_fit(X, y)
    assert reset.still_ours()
    assert not np.allclose(est.predict(X), net.predict(X).ravel(), rtol=1e-5, atol=1e-6)


def test_a_mismatch_between_the_two_networks_is_refused():
    X, y = _classification()
    net = _net([6, 8, 3], ["relu", "identity"], "softmax_cross_entropy")
    est = MLPClassifier(
        hidden_layer_sizes=(8,), activation="tanh", solver="sgd", max_iter=1, random_state=0
    )  # tanh where densa has relu: other outputs
    with pytest.raises(RuntimeError, match="does not reproduce densa's initial outputs"):
        bench.sklearn_from_densa(est, net, X, y)


def test_w5_reset_check_passes_a_full_reset_and_catches_a_partial_one():
    # W5's timed calls reuse one network, reset before each call (bench_digits); the check
    # must see a reset that forgets anything, here the biases.
    X, y = _classification(n=96, n_in=8, classes=4)

    def build(init):
        return _net([8, 16, 4], ["relu", "identity"], "softmax_cross_entropy", seed=init)

    def train(net, shuffle):
        net.rng = np.random.default_rng(1000 + shuffle)
        net.fit(
            X, y, epochs=3, batch_size=16, optimizer=densa.SGD(0.1, momentum=0.9), progress=False
        )

    timed = build(0)
    init = [(layer.W.copy(), layer.b.copy()) for layer in timed.layers]

    def timed_fit(keep_biases):
        for layer, (W, b) in zip(timed.layers, init):
            layer.W[...] = W
            if not keep_biases:
                layer.b[...] = b
        train(timed, 0)

    bench.check_timed_resets(lambda: timed_fit(False), build, train, timed, None)
    with pytest.raises(RuntimeError, match="does not start from initialisation 0"):
        bench.check_timed_resets(lambda: timed_fit(True), build, train, timed, None)

    # The suite's timed call puts one generator back to its first state instead of
    # building a new one; one that is not put back draws other orders the second time.
    rng = np.random.default_rng(1000)
    first_state = rng.bit_generator.state

    def timed_fit_reusing_rng(reset_rng):
        for layer, (W, b) in zip(timed.layers, init):
            layer.W[...] = W
            layer.b[...] = b
        if reset_rng:
            rng.bit_generator.state = first_state
        timed.rng = rng
        timed.fit(
            X, y, epochs=3, batch_size=16, optimizer=densa.SGD(0.1, momentum=0.9), progress=False
        )

    bench.check_timed_resets(lambda: timed_fit_reusing_rng(True), build, train, timed, None)
    with pytest.raises(RuntimeError, match="does not start from initialisation 0"):
        bench.check_timed_resets(lambda: timed_fit_reusing_rng(False), build, train, timed, None)


def test_lower_quartiles_compare_each_sides_fast_rounds():
    # densa's rounds: three fast (1.0-1.2), two slow; PyTorch's: the reverse pattern.
    times = {
        "densa native": [1.0, 5.0, 1.2, 1.1, 4.0],
        "PyTorch": [9.0, 2.5, 2.6, 8.0, 2.4],
    }
    got = bench.lower_quartiles(times)
    assert got["densa native"] == (pytest.approx(1.1), pytest.approx(1.0))
    assert got["PyTorch"][0] == pytest.approx(2.5)
    assert got["PyTorch"][1] == pytest.approx(2.5 / 1.1)
    # The medians would say 2.6 / 1.2: not the same comparison.
    assert got["PyTorch"][1] != pytest.approx(2.6 / 1.2)


def test_each_target_is_judged_on_its_own_side_of_its_bound():
    lines = bench.target_lines(
        {"W3": 2.44, "W4": 180.0, "MEM": 13.0, "IMPORT": 0.31, "W5 accuracy": -1.9, "K1": 0.95}
    )
    verdict = {line[2:14].strip(): line for line in lines}  # "  {key:12s} ..."
    assert verdict["W3"].endswith("MISSED")  # below 2.5x
    assert verdict["W4"].endswith("met")
    assert verdict["MEM"].endswith("met")  # an upper bound: 13 <= 60
    assert verdict["IMPORT"].endswith("MISSED")  # 0.31 s > 0.3 s
    assert verdict["W5 accuracy"].endswith("met")  # within two standard errors
    assert verdict["K1"].endswith("met")  # the bound itself meets it
    assert len(lines) == 6  # targets not measured in the run are not listed


def test_the_summary_counts_the_runs_that_met_each_target():
    runs = [{"W3": 2.44, "K2": 2.5}, {"W3": 2.5, "K2": 1.9}, {"W3": 2.6}]
    lines = bench.runs_summary(runs)
    assert lines[0] == "SUMMARY of 3 runs (value per run; runs that met the target)"
    w3 = next(line for line in lines if line.split()[0] == "W3")
    k2 = next(line for line in lines if line.split()[0] == "K2")
    assert "2/3 met" in w3
    assert "2.440" in w3
    assert "2.600" in w3
    assert "1/2 met" in k2  # K2 was measured in two runs only
    assert not any(line.split()[0] == "W4" for line in lines[1:])


def test_each_timed_call_has_its_setup_first_and_off_the_clock(monkeypatch):
    # W5's resets run as setups: before every call (warm-up included), before the pause,
    # and not in the time. A setup that takes 30 ms and a call that takes none: the
    # medians must show the call's time, not the setup's.
    events = []
    monkeypatch.setattr(bench, "PAUSE", lambda: events.append("pause") or 0.0)
    monkeypatch.setattr(bench, "SAMPLES", [])
    monkeypatch.setattr(bench, "WAITS", [])

    def setup():
        events.append("setup")
        time.sleep(0.03)

    med = bench._median_times(
        {"a": lambda: events.append("a"), "b": lambda: events.append("b")},
        repeats=3,
        setups={"a": setup},
    )
    assert med["a"] < 0.01
    assert med["b"] < 0.01
    # Warm-up: a's setup, a, then b; each round: a's setup, the pause, a, the pause, b.
    assert events[:3] == ["setup", "a", "b"]
    assert events[3:] == ["setup", "pause", "a", "pause", "b"] * 3
