"""benchmarks/bench_cold.py splits densa's timed calls into parts by wrapping the native
trainer: the wrapper must not change what a fit computes, and the parts must be those of
the call they describe."""

from __future__ import annotations

import statistics
import sys

import numpy as np
import pytest

import densa
from densa import native
from helpers import load_script

# bench_cold imports bench_suite as a sibling script (benchmarks/ is sys.path[0] when run).
sys.modules.setdefault("bench_suite", load_script("benchmarks/bench_suite.py", "bench_suite"))
cold = load_script("benchmarks/bench_cold.py", "bench_cold")


def _net():
    layers = [densa.Dense(3, 16, "tanh"), densa.Dense(16, 2, "identity")]
    return densa.Network(layers, loss="mse", dtype="float32", seed=0)


def _data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 3)).astype(np.float32)
    return X, np.sin(X[:, :2]).astype(np.float32)


def _fit(net, X, y):
    net.fit(X, y, epochs=4, batch_size=8, optimizer=densa.SGD(0.05, momentum=0.9), progress=False)


def test_the_timed_trainer_trains_exactly_as_the_native_one(monkeypatch):
    X, y = _data()
    plain = _net()
    _fit(plain, X, y)
    monkeypatch.setattr(native, "Trainer", cold.TimedTrainer)
    cold.RECORD.update(dict.fromkeys(cold.RECORD, 0.0))
    timed = _net()
    _fit(timed, X, y)
    for a, b in zip(plain.layers, timed.layers):
        np.testing.assert_array_equal(a.W, b.W)
        np.testing.assert_array_equal(a.b, b.b)
    assert plain.history.loss == timed.history.loss
    assert cold.RECORD["constructor"] > 0
    assert cold.RECORD["trainer calls"] > 0


def test_the_parts_are_those_of_the_call_measured(monkeypatch):
    monkeypatch.setattr(native, "Trainer", cold.TimedTrainer)
    X, y = _data()
    net = _net()
    predicted = []
    parts = cold.measured(net, lambda: _fit(net, X, y), lambda: predicted.append(net.predict(X)))
    seconds = net.history.seconds
    assert len(seconds) == 4
    assert len(predicted) == 1
    assert parts["epoch 1"] == seconds[0]
    assert parts["later epochs"] == pytest.approx(statistics.mean(seconds[1:]))
    assert parts["constructor"] > 0
    assert parts["trainer calls"] >= 0  # the calls' time beyond their epochs
    assert parts["fit's Python"] > 0
    assert parts["predict"] > 0
    assert parts["total"] >= parts["constructor"] + sum(seconds) + parts["predict"]
    assert isinstance(parts["page faults"], int)
    assert parts["page faults"] >= 0


@pytest.mark.skipif(cold.resource is None, reason="no fault counts on this system")
def test_page_faults_are_those_of_the_call(monkeypatch):
    """A call that touches fresh memory takes faults (one per page, or per huge page
    where transparent huge pages serve it); the count is the call's own."""
    monkeypatch.setattr(native, "Trainer", cold.TimedTrainer)
    X, y = _data()
    net = _net()
    fresh = []
    size = 16 << 20  # beyond what the allocator keeps for reuse: fresh pages

    def touch():
        a = np.empty(size, dtype=np.uint8)
        a[::4096] = 1
        fresh.append(a)

    _fit(net, X, y)  # the first fit's own allocations, before the counts
    quiet = cold.measured(net, lambda: _fit(net, X, y))
    touched = cold.measured(net, lambda: _fit(net, X, y), touch)
    assert touched["page faults"] >= size // (2 << 20)  # at least one per 2 MiB
    assert quiet["page faults"] < touched["page faults"]


def test_a_call_not_built_through_the_wrapper_is_refused():
    X, y = _data()
    net = _net()
    assert native.Trainer is not cold.TimedTrainer
    with pytest.raises(RuntimeError, match="TimedTrainer"):
        cold.measured(net, lambda: _fit(net, X, y))


@pytest.mark.parametrize("argv", [["--rounds", "0"], ["--only", "W9"]])
def test_bad_arguments_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cold.main(argv)
    assert info.value.code == 2
    assert argv[0] in capsys.readouterr().err
