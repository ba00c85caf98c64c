"""A plain fit short enough (``densa._pacing``: under ONE_CALL_SECONDS, nothing to do
between epochs) runs as one native call, the native trainer's ``fit`` (``Network._fit_once``).
It must train exactly as the ordinary path (LastFinite's copies, epoch groups): the same
parameters and optimizer state bit for bit, the same history, the same generator state
afterwards, the same report and restored state when training diverges; and it must lose
no work to Ctrl-C and change nothing when the extension refuses its arguments."""

from __future__ import annotations

import signal

import numpy as np
import pytest

import densa
from densa import _core, _pacing
from densa.network import Network
from network_cases import make_data, make_net, optimizer_state, params


@pytest.fixture
def once_calls(monkeypatch):
    """What each Network._fit_once call returned (True: the fit ran as one native call)."""
    calls: list[bool] = []
    original = Network._fit_once

    def spy(self, *args):
        calls.append(True)  # taken; raising (TrainingDivergedError) counts as taken
        calls[-1] = original(self, *args)
        return calls[-1]

    monkeypatch.setattr(Network, "_fit_once", spy)
    return calls


def _ordinary(monkeypatch):
    """From here on, fit takes the ordinary path (LastFinite, epoch groups)."""
    monkeypatch.setattr(Network, "_fit_once", lambda self, *args: False)


def _outcome(net, fit):
    """Run ``fit()``; then everything it leaves behind that must not depend on the path."""
    try:
        fit()
        error = None
    except densa.TrainingDivergedError as exc:
        error = (str(exc), exc.epoch, exc.batch)
    h = net.history
    return {
        "error": error,
        "arrays": params(net) + optimizer_state(net.optimizer),
        "loss": list(h.loss),
        "penalty": list(h._penalty),
        "epochs timed": len(h.seconds),
        "rng": net.rng.bit_generator.state,
    }


def _same_state(a, b) -> bool:
    """Whether two bit generator states (dicts, possibly holding arrays) are equal."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_state(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    return a == b


def _assert_same(a, b):
    assert a["error"] == b["error"]
    assert len(a["arrays"]) == len(b["arrays"])
    for p, q in zip(a["arrays"], b["arrays"]):
        assert p.dtype == q.dtype
        np.testing.assert_array_equal(p, q)  # bit for bit (NaN where NaN)
    assert a["loss"] == b["loss"]
    assert a["penalty"] == b["penalty"]
    assert a["epochs timed"] == b["epochs timed"]
    assert _same_state(a["rng"], b["rng"])


# (sizes, activations, loss, targets, dtype, optimizer, batch, epochs, shuffle, samples)
CASES = {
    "W5's shape": (
        [64, 64, 10],
        ["relu", "identity"],
        "softmax_cross_entropy",
        "labels",
        "float32",
        lambda: densa.SGD(0.1, momentum=0.9),
        32,
        4,
        True,
        203,
    ),
    "W4's shape": (
        [2, 16, 16, 1],
        ["tanh", "tanh", "identity"],
        "mse",
        "real",
        "float32",
        lambda: densa.SGD(0.05, momentum=0.9),
        8,
        5,
        True,
        250,
    ),
    "adam, one-hot, float64": (
        [5, 9, 3],
        ["sigmoid", "identity"],
        "softmax_cross_entropy",
        "onehot",
        "float64",
        lambda: densa.Adam(0.01),
        7,
        3,
        True,
        101,
    ),
    "nesterov, weight decay, l2, binary": (
        [6, 12, 4],
        ["relu", "identity"],
        "binary_cross_entropy",
        "binary",
        "float64",
        lambda: densa.SGD(0.05, momentum=0.8, nesterov=True, weight_decay=1e-3, l2=1e-2),
        16,
        3,
        True,
        77,
    ),
    "adam with l2, float32": (
        [3, 8, 8, 2],
        ["tanh", "relu", "identity"],
        "mse",
        "real",
        "float32",
        lambda: densa.Adam(0.005, weight_decay=1e-4, l2=1e-3),
        10,
        2,
        True,
        64,
    ),
    "plain sgd, unshuffled": (
        [4, 7, 3],
        ["tanh", "identity"],
        "mse",
        "real",
        "float64",
        lambda: densa.SGD(0.02),
        16,
        3,
        False,
        90,
    ),
    "one epoch": (
        [4, 7, 3],
        ["relu", "identity"],
        "softmax_cross_entropy",
        "labels",
        "float32",
        lambda: densa.SGD(0.05, momentum=0.9),
        16,
        1,
        True,
        90,
    ),
    "batch larger than the data": (
        [4, 5, 2],
        ["tanh", "identity"],
        "mse",
        "real",
        "float64",
        lambda: densa.SGD(0.05, momentum=0.5),
        500,
        4,
        True,
        33,
    ),
    "a hidden layer split between threads": (
        [32, 512, 10],
        ["relu", "identity"],
        "softmax_cross_entropy",
        "labels",
        "float32",
        lambda: densa.SGD(0.05, momentum=0.9),
        64,
        2,
        True,
        300,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_fit_once_trains_exactly_as_the_ordinary_path(case, monkeypatch, once_calls):
    sizes, acts, loss, kind, dtype, make_opt, batch, epochs, shuffle, n = CASES[case]
    monkeypatch.setattr(_pacing, "CHUNK_SECONDS", 10.0)  # one call, whatever the machine
    monkeypatch.setattr(_pacing, "ONE_CALL_SECONDS", 10.0)
    X, y = make_data(kind, n, sizes[0], sizes[-1], seed=2)
    runs = {}
    for path in ("once", "ordinary"):
        if path == "ordinary":
            _ordinary(monkeypatch)
        net = make_net(loss, sizes=sizes, activations=acts, dtype=dtype, seed=4)
        opt = make_opt()

        def fit(net=net, opt=opt):
            net.fit(
                X,
                y,
                epochs=epochs,
                batch_size=batch,
                optimizer=opt,
                shuffle=shuffle,
                progress=False,
            )
            # A second fit continues from the optimizer state the first one left.
            net.fit(X, y, epochs=epochs, batch_size=batch, shuffle=shuffle, progress=False)

        runs[path] = _outcome(net, fit)
        assert net.optimizer is opt
        if path == "once":
            assert once_calls == [True, True]  # both fits were one native call
    _assert_same(runs["once"], runs["ordinary"])
    assert runs["once"]["error"] is None
    assert runs["once"]["epochs timed"] == epochs  # the second fit's history


@pytest.mark.parametrize("bit_generator", [np.random.PCG64, np.random.MT19937, np.random.Philox])
def test_fit_once_draws_from_any_generator_as_the_ordinary_path(bit_generator, monkeypatch):
    X, y = make_data("labels", 60, 4, 3, seed=1)
    runs = {}
    for path in ("once", "ordinary"):
        if path == "ordinary":
            _ordinary(monkeypatch)
        net = make_net("softmax_cross_entropy", seed=3)
        net.rng = np.random.Generator(bit_generator(17))
        net.rng.integers(0, 10, size=3, dtype=np.uint32)  # a 32-bit draw may stay buffered
        runs[path] = _outcome(
            net, lambda net=net: net.fit(X, y, epochs=3, batch_size=8, progress=False)
        )
        runs[path]["next draws"] = net.rng.integers(0, 2**63, size=3).tolist()
    _assert_same(runs["once"], runs["ordinary"])
    assert runs["once"]["next draws"] == runs["ordinary"]["next draws"]


def _diverging_fit(monkeypatch, path, epochs, lr, y_scale=1.0, setup=None):
    if path == "ordinary":
        _ordinary(monkeypatch)
    X, y = make_data("real", 40, 3, 2, seed=5)
    net = make_net(
        "mse", sizes=(3, 6, 2), activations=("tanh", "identity"), dtype="float32", seed=1
    )
    opt = densa.SGD(lr, momentum=0.9)
    if setup is not None:
        setup(net, opt, X, y)
    return _outcome(
        net,
        lambda: net.fit(
            X, y * y_scale, epochs=epochs, batch_size=40, optimizer=opt, progress=False
        ),
    )


def test_a_loss_that_becomes_nan_is_reported_as_by_the_ordinary_path(monkeypatch, once_calls):
    """A learning rate too large diverges a few epochs in: the same epoch and batch, the
    same parameters and history, and the generator rewound to the epochs that ran."""
    monkeypatch.setattr(_pacing, "CHUNK_SECONDS", 10.0)
    monkeypatch.setattr(_pacing, "ONE_CALL_SECONDS", 10.0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((90, 4))
    y = rng.integers(0, 3, 90)
    runs = {}
    for path in ("once", "ordinary"):
        if path == "ordinary":
            _ordinary(monkeypatch)
        net = make_net("softmax_cross_entropy", dtype="float32", seed=3)
        runs[path] = _outcome(
            net,
            lambda net=net: net.fit(
                X,
                y,
                epochs=400,
                batch_size=16,
                optimizer=densa.SGD(50.0, momentum=0.9),
                progress=False,
            ),
        )
    assert once_calls == [True]
    assert runs["once"]["error"] is not None, "expected this learning rate to diverge"
    assert "the loss became NaN or inf" in runs["once"]["error"][0]
    assert runs["once"]["error"][1] > 2  # some epochs completed first
    _assert_same(runs["once"], runs["ordinary"])


@pytest.mark.parametrize(
    ("epochs", "message"),
    [
        # The only batch's update overflows: the end's check finds it.
        (
            1,
            "the parameters became NaN or inf (an update overflowed); they and the optimizer "
            "state were restored to their initial values",
        ),
        # The next batch's loss is then NaN: reported as such, and restored too.
        (
            2,
            "the loss became NaN or inf; the parameters were NaN or inf (an update "
            "overflowed); they and the optimizer state were restored to their initial values",
        ),
    ],
)
def test_an_update_that_overflows_restores_the_initial_state(
    monkeypatch, once_calls, epochs, message
):
    monkeypatch.setattr(_pacing, "CHUNK_SECONDS", 10.0)
    monkeypatch.setattr(_pacing, "ONE_CALL_SECONDS", 10.0)
    once = _diverging_fit(monkeypatch, "once", epochs, lr=3e38, y_scale=1e4)
    assert once_calls == [True]
    assert once["error"] is not None
    assert message in once["error"][0]
    ordinary = _diverging_fit(monkeypatch, "ordinary", epochs, lr=3e38, y_scale=1e4)
    _assert_same(once, ordinary)
    # Put back: what the network and a fresh optimizer held before the fit.
    fresh = make_net(
        "mse", sizes=(3, 6, 2), activations=("tanh", "identity"), dtype="float32", seed=1
    )
    for p, q in zip(once["arrays"], params(fresh)):
        np.testing.assert_array_equal(p, q)
    assert all(np.all(v == 0) for v in once["arrays"][len(params(fresh)) :])


def test_no_copy_is_taken_of_a_state_that_is_not_finite(monkeypatch, once_calls):
    """A NaN in the optimizer's velocity: nothing finite to keep (LastFinite copies only
    an all-finite state), so the NaN parameters stay and the report says so."""
    monkeypatch.setattr(_pacing, "CHUNK_SECONDS", 10.0)
    monkeypatch.setattr(_pacing, "ONE_CALL_SECONDS", 10.0)

    def poison(net, opt, X, y):
        net.fit(X, y, epochs=1, batch_size=40, optimizer=opt, progress=False)
        opt.state_W[0][0][0, 0] = np.nan

    runs = {
        path: _diverging_fit(monkeypatch, path, 2, lr=0.01, setup=poison)
        for path in ("once", "ordinary")
    }
    assert once_calls[:2] == [True, True]  # the priming fit and the poisoned one
    assert "no finite ones were seen to restore" in runs["once"]["error"][0]
    _assert_same(runs["once"], runs["ordinary"])


class _Wrapped:
    """A native trainer whose ``fit`` is ``fit(inner, *args)``; all else passes through."""

    def __init__(self, inner, fit):
        self._inner = inner
        self.fit = lambda *args: fit(inner, *args)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def _wrap_trainers(net, monkeypatch, fit):
    make = net._backend.Trainer
    monkeypatch.setattr(net._backend, "Trainer", lambda *args: _Wrapped(make(*args), fit))


def test_ctrl_c_during_the_call_keeps_every_epoch_it_trained(monkeypatch):
    """SIGINT arriving while the native call runs (raised here as it returns) is held back
    until the epochs are in the history: KeyboardInterrupt then leaves a network exactly
    as a completed fit leaves it."""
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    X, y = make_data("labels", 80, 4, 3, seed=1)
    done = make_net("softmax_cross_entropy", seed=3)
    expected = _outcome(done, lambda: done.fit(X, y, epochs=3, batch_size=8, progress=False))

    def interrupted(inner, *args):
        result = inner.fit(*args)
        signal.raise_signal(signal.SIGINT)
        return result

    net = make_net("softmax_cross_entropy", seed=3)
    _wrap_trainers(net, monkeypatch, interrupted)
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, epochs=3, batch_size=8, progress=False)
    got = _outcome(net, lambda: None)
    _assert_same(got, expected)
    assert got["epochs timed"] == 3


def test_a_refused_call_changes_nothing_and_the_ordinary_path_trains(monkeypatch):
    X, y = make_data("labels", 80, 4, 3, seed=1)
    done = make_net("softmax_cross_entropy", seed=3)
    expected = _outcome(done, lambda: done.fit(X, y, epochs=3, batch_size=8, progress=False))
    calls = []

    def refusing(inner, *args):
        calls.append(args)
        raise TypeError("refused")

    net = make_net("softmax_cross_entropy", seed=3)
    _wrap_trainers(net, monkeypatch, refusing)
    got = _outcome(net, lambda: net.fit(X, y, epochs=3, batch_size=8, progress=False))
    assert len(calls) == 1
    _assert_same(got, expected)  # the generator was rewound before the ordinary path drew


def test_a_call_out_of_memory_changes_nothing_but_raises(monkeypatch):
    """MemoryError from the call (its buffers come before any training) propagates, with
    the parameters, the history's epochs and the generator as they were."""
    X, y = make_data("labels", 80, 4, 3, seed=1)
    net = make_net("softmax_cross_entropy", seed=3)
    before = params(net)
    rng_state = net.rng.bit_generator.state

    def out_of_memory(inner, *args):
        raise MemoryError("simulated")

    _wrap_trainers(net, monkeypatch, out_of_memory)
    with pytest.raises(MemoryError, match="simulated"):
        net.fit(X, y, epochs=3, batch_size=8, progress=False)
    for p, q in zip(params(net), before):
        np.testing.assert_array_equal(p, q)
    assert net.history.loss == []
    assert _same_state(net.rng.bit_generator.state, rng_state)


@pytest.mark.parametrize(
    "extra",
    [
        {"on_epoch_end": lambda epoch, logs: None},
        {"validation_split": 0.25},
        {"early_stopping": 2},
        {"backend": "reference"},
        {"long": True},
    ],
    ids=["callback", "validation", "early stopping", "reference backend", "predicted long"],
)
def test_only_a_plain_short_native_fit_is_one_call(extra, monkeypatch, once_calls):
    extra = dict(extra)
    if extra.pop("long", False):
        monkeypatch.setattr(_pacing, "one_call", lambda *args: False)
    net = make_net("softmax_cross_entropy", backend=extra.pop("backend", "native"), seed=3)
    X, y = make_data("labels", 80, 4, 3, seed=1)
    net.fit(X, y, epochs=3, batch_size=8, progress=False, **extra)
    assert once_calls in ([], [False])  # not taken, or (reference) declined
    assert len(net.history.loss) == 3


def test_digits_fit_is_one_call_under_the_assumed_costs(once_calls):
    """The benchmark's W5 fit, as densa's own costs predict it (nothing patched): the
    pacing assumes ~7.7 ms per epoch (NATIVE_COSTS, pessimistic on purpose; one takes
    ~0.2 ms), 0.23 s for the 30, under ONE_CALL_SECONDS: one native call. Three times as
    many epochs are not."""
    net = make_net(
        "softmax_cross_entropy",
        sizes=(64, 64, 10),
        activations=("relu", "identity"),
        dtype="float32",
        seed=0,
    )
    X, y = make_data("labels", 1347, 64, 10, seed=1)
    sizes, n_batches = [64, 64, 10], -(-1347 // 32)
    costs = _pacing.NATIVE_COSTS
    assert _pacing.one_call(sizes, 32, n_batches, 30, 1347, costs)
    assert not _pacing.one_call(sizes, 32, n_batches, 90, 1347, costs)
    net.fit(X, y, epochs=30, batch_size=32, optimizer=densa.SGD(0.1, momentum=0.9), progress=False)
    assert once_calls == [True]
    assert len(net.history.loss) == len(net.history.seconds) == 30
    net.fit(X, y, epochs=90, batch_size=32, optimizer=densa.SGD(0.1, momentum=0.9), progress=False)
    assert once_calls == [True]  # the second fit took the ordinary path
    assert len(net.history.loss) == len(net.history.seconds) == 90


# ----- the extension's own checks --------------------------------------------------------
def _trainer():
    rng = np.random.default_rng(0)
    Ws = [rng.standard_normal((5, 3)), rng.standard_normal((2, 5))]
    bs = [np.zeros(5), np.zeros(2)]
    state_W = [[np.zeros_like(W)] for W in Ws]
    state_b = [[np.zeros_like(b)] for b in bs]
    trainer = _core.Trainer_float64(
        Ws,
        bs,
        ["tanh", "identity"],
        "mse",
        "sgd",
        {"lr": 0.1, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0},
        state_W,
        state_b,
        None,
        8,
    )
    arrays = Ws + bs + [a for s in state_W + state_b for a in s]
    X = rng.standard_normal((20, 3))
    T = rng.standard_normal((20, 2))
    return trainer, arrays, X, T


BAD_CALLS = {
    "seeds of another dtype": (TypeError, lambda X, T: (X, T, np.arange(2), 2, 8)),
    "seeds of a list": (TypeError, lambda X, T: (X, T, [1, 2], 2, 8)),
    "one seed for two epochs": (ValueError, lambda X, T: (X, T, np.ones(1, np.uint64), 2, 8)),
    "X in float32": (TypeError, lambda X, T: (X.astype(np.float32), T, None, 2, 8)),
    "X with a feature too many": (ValueError, lambda X, T: (np.c_[X, X[:, :1]], T, None, 2, 8)),
    "targets of other rows": (ValueError, lambda X, T: (X, T[:-1], None, 2, 8)),
    "batch size 0": (ValueError, lambda X, T: (X, T, None, 2, 0)),
    "batch size beyond max_batch": (ValueError, lambda X, T: (X, T, None, 2, 9)),
    "epochs < 0": (ValueError, lambda X, T: (X, T, None, -1, 8)),
    "epochs a float": (TypeError, lambda X, T: (X, T, None, 2.0, 8)),
    "no samples": (ValueError, lambda X, T: (X[:0], T[:0], None, 2, 8)),
}


@pytest.mark.parametrize("bad", list(BAD_CALLS))
def test_the_extension_refuses_bad_arguments_before_training(bad):
    error, make_args = BAD_CALLS[bad]
    trainer, arrays, X, T = _trainer()
    before = [a.copy() for a in arrays]
    outs = ([], [], [])
    with pytest.raises(error, match=r"Trainer\.fit|trainer"):
        trainer.fit(*make_args(X, T), *outs)
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b)
    assert outs == ([], [], [])


def test_the_extension_refuses_history_outputs_that_are_not_lists():
    trainer, arrays, X, T = _trainer()
    before = [a.copy() for a in arrays]
    with pytest.raises(TypeError, match="history outputs must be lists"):
        trainer.fit(X, T, None, 2, 8, [], (), [])
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b)


def test_the_extension_trains_as_run_epochs():
    """fit's epochs are run_epochs' on the orders its seeds give (sample_orders), and
    its history lists hold run_epochs' means (plus the penalty) and times."""
    seeds = np.array([3, 99, 2**63 + 5], dtype=np.uint64)
    a, arrays_a, X, T = _trainer()
    b, arrays_b, _, _ = _trainer()
    outs = ([], [], [])
    assert a.fit(X, T, seeds, 3, 8, *outs) == (False, -1, True, False)
    losses, _seconds, diverged, _bad, penalties = b.run_epochs(
        X, T, _core.sample_orders(seeds, 20), 8
    )
    assert not diverged
    for p, q in zip(arrays_a, arrays_b):
        np.testing.assert_array_equal(p, q)
    assert outs[0] == [x + p for x, p in zip(losses, penalties)]
    assert outs[1] == penalties
    assert len(outs[2]) == 3
    assert all(s > 0 for s in outs[2])


def test_the_extension_with_no_epochs_trains_nothing():
    trainer, arrays, X, T = _trainer()
    before = [a.copy() for a in arrays]
    outs = ([], [], [])
    assert trainer.fit(X, T, None, 0, 8, *outs) == (False, -1, True, False)
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b)
    assert outs == ([], [], [])
