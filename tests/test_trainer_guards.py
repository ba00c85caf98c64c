"""The native Trainer's guards: one run at a time per trainer, Adam's step count updated
in the caller's own array, hyperparameters and run arguments refused with an exception
naming them.

Two threads running one trainer at once used to deadlock (the hidden split: each reset
the signals the other waited on). Every test that overlaps two calls runs in a
subprocess with a timeout, so that a missing guard fails the test instead of hanging it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import threading
import types

import numpy as np
import pytest

import densa
from densa import _core, native, reference

HANG_SECONDS = 120  # a run of a subprocess below takes 1-3 s; more means it hung

SGD = {"lr": 1e-3, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0}
ADAM = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}
BUSY = "this trainer is already running in another thread"


def _raises(exc, *fragments):
    """pytest.raises whose message must contain every fragment, literally."""
    return pytest.raises(exc, match="(?s)" + "".join(f"(?=.*{re.escape(f)})" for f in fragments))


# ----- concurrent calls, in a subprocess -------------------------------------------------

# What every subprocess below starts with: trainers over their own arrays, and the
# overlap of a long call in a thread with probing calls from the main thread.
PRELUDE = textwrap.dedent(
    """
    import json, threading, time
    import numpy as np
    from densa import native

    HYPER = {
        "sgd": dict(lr=1e-3, momentum=0.9, nesterov=False, weight_decay=0.0),
        "adam": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-4),
    }
    N, BATCH = 2000, 32

    def make(sizes, optimizer="sgd", seed=0):
        rng = np.random.default_rng(seed)
        Ws = [rng.normal(size=(o, i)) * 0.1 for i, o in zip(sizes[:-1], sizes[1:])]
        bs = [np.zeros(o) for o in sizes[1:]]
        acts = ["tanh"] * (len(Ws) - 1) + ["identity"]
        sW = [[np.zeros_like(W) for _ in range(2)] for W in Ws]
        sb = [[np.zeros_like(b) for _ in range(2)] for b in bs]
        step = np.zeros(1, np.int64)
        t = native.Trainer(Ws, bs, acts, "mse", optimizer, HYPER[optimizer], sW, sb, step, 64)
        return t, [*Ws, *bs, *[s for ss in sW + sb for s in ss], step]

    def data(n_in, n_out, seed=1):
        rng = np.random.default_rng(seed)
        return rng.normal(size=(N, n_in)), rng.normal(size=(N, n_out))

    # A long order (indices may repeat): 200 000 samples, a few hundred milliseconds.
    LONG = np.tile(np.arange(N, dtype=np.int64), 100)

    def overlap(long_call, probe, attempts=5):
        '''long_call() in a thread, retried if refused (the probe held the trainer);
        probe() from here until it is refused while long_call runs. Should long_call end
        first, all again, up to `attempts` times. Returns the refusal, what each
        completed long_call returned, and whether its thread is still alive.'''
        results = []
        for _ in range(attempts):
            started, out = threading.Event(), {}

            def work():
                started.set()
                while "result" not in out:
                    try:
                        out["result"] = long_call()
                    except RuntimeError as exc:
                        out.setdefault("refused", []).append(str(exc))

            th = threading.Thread(target=work, daemon=True)
            th.start()
            started.wait(30)
            refusal, deadline = None, time.monotonic() + 60
            while refusal is None and th.is_alive() and time.monotonic() < deadline:
                try:
                    probe()
                except RuntimeError as exc:
                    refusal = str(exc)
            th.join(60)
            if th.is_alive():
                return refusal, results, True
            results.append(out["result"])
            if refusal is not None:
                return refusal, results, False
        return None, results, False

    def same_bits(a, b):
        return all(x.dtype == y.dtype and x.tobytes() == y.tobytes() for x, y in zip(a, b))
    """
)


def _isolated(body: str) -> dict:
    """Run PRELUDE + body in a fresh interpreter; body prints one JSON line last."""
    code = PRELUDE + textwrap.dedent(body)
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=HANG_SECONDS
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the subprocess hung for {HANG_SECONDS} s: two runs deadlocked")
    assert done.returncode == 0, done.stderr
    result: dict = json.loads(done.stdout.strip().splitlines()[-1])
    return result


SPLIT, GENERAL = (64, 64, 1), (64, 64, 64, 1)  # hidden split; the general loop (3 layers)


@pytest.mark.parametrize("sizes", [SPLIT, GENERAL], ids=["split", "general"])
def test_a_second_concurrent_run_is_refused_and_the_first_completes(sizes):
    out = _isolated(
        f"""
        sizes = {sizes!r}
        t, _ = make(sizes)
        X, T = data(sizes[0], sizes[-1])
        one = np.arange(N, dtype=np.int64)
        # The probe is a real one-batch run: refused while the long run holds the trainer.
        refusal, results, alive = overlap(
            lambda: t.run(X, T, LONG, BATCH, 0, 10**9), lambda: t.run(X, T, one, BATCH, 0, 1)
        )
        print(json.dumps(dict(split=t.splits_hidden_layer, refusal=refusal, results=results,
                              alive=alive)))
        """
    )
    assert out["split"] == (sizes == SPLIT)
    assert not out["alive"]
    assert out["refusal"] == f"Trainer.run: {BUSY}"
    for loss_sum, samples, batches, diverged, bad, _ in out["results"]:
        assert (samples, batches, diverged, bad) == (200_000, 6250, False, -1)
        assert np.isfinite(loss_sum)


@pytest.mark.parametrize("sizes", [SPLIT, GENERAL], ids=["split", "general"])
def test_run_and_run_epochs_refuse_each_other(sizes):
    out = _isolated(
        f"""
        sizes = {sizes!r}
        t, _ = make(sizes)
        X, T = data(sizes[0], sizes[-1])
        orders = np.tile(np.arange(N, dtype=np.int64), (60, 1))
        nothing = np.arange(N, dtype=np.int64)
        # Probes that train nothing: batches past the end of the order; no epochs.
        by_run = overlap(lambda: t.run_epochs(X, T, orders, BATCH),
                         lambda: t.run(X, T, nothing, BATCH, 10**6, 1))
        by_epochs = overlap(lambda: t.run(X, T, LONG, BATCH, 0, 10**9),
                            lambda: t.run_epochs(X, T, orders[:0], BATCH))
        print(json.dumps(dict(by_run=by_run[0], epochs=[len(r[0]) for r in by_run[1]],
                              by_epochs=by_epochs[0], alive=by_run[2] or by_epochs[2])))
        """
    )
    assert not out["alive"]
    assert out["by_run"] == f"Trainer.run: {BUSY}"
    assert set(out["epochs"]) == {60}
    assert out["by_epochs"] == f"Trainer.run_epochs: {BUSY}"


def test_two_threads_hammering_one_split_trainer_never_hang():
    """The audit's repro: two threads call run on one hidden-split trainer. Each call
    either trains a whole epoch or is refused; none hangs."""
    out = _isolated(
        """
        t, arrays = make((64, 64, 1))
        X, T = data(64, 1)
        order = np.arange(N, dtype=np.int64)
        outcomes, barrier = [], threading.Barrier(2)

        def go():
            barrier.wait(30)
            for _ in range(40):
                try:
                    outcomes.append(list(t.run(X, T, order, BATCH, 0, 10**6)))
                except RuntimeError as exc:
                    outcomes.append(str(exc))

        threads = [threading.Thread(target=go, daemon=True) for _ in range(2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        print(json.dumps(dict(alive=[th.is_alive() for th in threads], outcomes=outcomes,
                              finite=all(np.isfinite(a).all() for a in arrays))))
        """
    )
    assert out["alive"] == [False, False]
    assert len(out["outcomes"]) == 80
    for outcome in out["outcomes"]:
        if isinstance(outcome, str):
            assert outcome == f"Trainer.run: {BUSY}"
        else:
            assert outcome[1:] == [2000, 63, False, -1, 0.0]  # a whole epoch, no l2
    assert out["finite"]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("sizes", [SPLIT, GENERAL], ids=["split", "general"])
def test_a_trainer_trains_the_same_bits_after_a_refused_call(sizes, optimizer):
    """Refused calls change nothing: the trainer then trains exactly as a fresh one that
    was never disturbed (momentum's velocity and Adam's step count included)."""
    out = _isolated(
        f"""
        sizes, optimizer = {sizes!r}, {optimizer!r}
        X, T = data(sizes[0], sizes[-1])
        rng = np.random.default_rng(7)
        later = rng.permutation(N).astype(np.int64)
        nothing = np.arange(N, dtype=np.int64)
        t, arrays = make(sizes, optimizer)
        # The probes train nothing (batches past the end of the order).
        refusal, firsts, alive = overlap(
            lambda: t.run(X, T, LONG, BATCH, 0, 10**9),
            lambda: t.run(X, T, nothing, BATCH, 10**6, 1),
        )
        second = t.run(X, T, later, BATCH, 0, 10**6)
        fresh, fresh_arrays = make(sizes, optimizer)
        fresh_firsts = [fresh.run(X, T, LONG, BATCH, 0, 10**9) for _ in firsts]
        fresh_second = fresh.run(X, T, later, BATCH, 0, 10**6)
        print(json.dumps(dict(
            refusal=refusal, alive=alive, runs=len(firsts), step=int(arrays[-1][0]),
            same_results=[*firsts, second] == [*fresh_firsts, fresh_second],
            same_bits=same_bits(arrays, fresh_arrays),
        )))
        """
    )
    assert not out["alive"]
    assert out["refusal"] == f"Trainer.run: {BUSY}"
    assert out["same_results"]
    assert out["same_bits"]  # parameters, optimizer state and Adam's step count
    if optimizer == "adam":
        assert out["step"] == 6250 * out["runs"] + 63


def test_different_trainers_still_train_in_parallel_threads():
    """Two split trainers, each in its own thread at once (one gets the pool's second
    thread, the other runs both halves in turn): both train, to the serial bits."""
    out = _isolated(
        """
        X, T = data(64, 1)
        orders = [np.random.default_rng(s).permutation(N).astype(np.int64) for s in range(20)]

        def train(t):
            return [list(t.run(X, T, order, BATCH, 0, 10**6)) for order in orders]

        pairs = [make((64, 64, 1), seed=s) for s in (0, 1)]
        results, barrier = [None, None], threading.Barrier(2)

        def go(i):
            barrier.wait(30)
            results[i] = train(pairs[i][0])

        threads = [threading.Thread(target=go, args=(i,), daemon=True) for i in (0, 1)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        serial = [make((64, 64, 1), seed=s) for s in (0, 1)]
        serial_results = [train(t) for t, _ in serial]
        print(json.dumps(dict(
            alive=[th.is_alive() for th in threads],
            same_results=results == serial_results,
            same_bits=all(same_bits(p[1], s[1]) for p, s in zip(pairs, serial)),
        )))
        """
    )
    assert out == {"alive": [False, False], "same_results": True, "same_bits": True}


# ----- sequential use from several threads, in process ------------------------------------

N_SAMPLES, BATCH = 300, 32
# The settings checks of both backends' Trainers: the same refusals in the same words.
impls = pytest.mark.parametrize("impl", [native, reference], ids=["native", "reference"])


def _trainer(
    sizes=(16, 64, 3), optimizer="sgd", hyper=None, step="auto", dtype=np.float64, impl=native
):
    rng = np.random.default_rng(0)
    Ws = [(rng.normal(size=(o, i)) * 0.3).astype(dtype) for i, o in zip(sizes[:-1], sizes[1:])]
    bs = [np.zeros(o, dtype) for o in sizes[1:]]
    acts = ["tanh"] * (len(Ws) - 1) + ["identity"]
    sW = [[np.zeros_like(W) for _ in range(2)] for W in Ws]
    sb = [[np.zeros_like(b) for _ in range(2)] for b in bs]
    if isinstance(step, str):
        step = np.zeros(1, np.int64) if optimizer == "adam" else None
    if hyper is None:
        hyper = SGD if optimizer == "sgd" else ADAM
    t = impl.Trainer(Ws, bs, acts, "mse", optimizer, hyper, sW, sb, step, BATCH)
    return t, [*Ws, *bs, *[s for ss in sW + sb for s in ss]]


def _data(n_in=16, n_out=3, dtype=np.float64):
    rng = np.random.default_rng(1)
    return rng.normal(size=(N_SAMPLES, n_in)).astype(dtype), rng.normal(
        size=(N_SAMPLES, n_out)
    ).astype(dtype)


def _orders(k):
    return [np.random.default_rng(s).permutation(N_SAMPLES).astype(np.int64) for s in range(k)]


def _assert_same_bits(got, expected):
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("sizes", [(16, 64, 3), (16, 8, 8, 3)], ids=["two-layer", "three-layer"])
def test_sequential_runs_from_different_threads_still_work(sizes):
    X, T = _data()
    orders = _orders(4)
    t, arrays = _trainer(sizes, "adam")
    results = []
    for order in orders:  # each call on a thread of its own, one after the other
        th = threading.Thread(
            target=lambda o: results.append(t.run(X, T, o, BATCH, 0, 99)), args=(order,)
        )
        th.start()
        th.join(60)
        assert not th.is_alive()
    same, same_arrays = _trainer(sizes, "adam")
    assert results == [same.run(X, T, order, BATCH, 0, 99) for order in orders]
    assert all(r[1:] == (N_SAMPLES, -(-N_SAMPLES // BATCH), False, -1, 0.0) for r in results)
    _assert_same_bits(arrays, same_arrays)


def test_a_refused_run_argument_leaves_the_trainer_usable():
    """A run that raises (here: an order out of range) releases the trainer."""
    X, T = _data()
    t, _ = _trainer()
    bad = np.full(N_SAMPLES, N_SAMPLES, np.int64)
    for _ in range(3):
        with _raises(ValueError, "order holds an index out of range"):
            t.run(X, T, bad, BATCH, 0, 99)
    assert t.run(X, T, _orders(1)[0], BATCH, 0, 99)[1] == N_SAMPLES


# ----- Adam's step count -------------------------------------------------------------------


@pytest.mark.parametrize("sizes", [(16, 64, 3), (16, 8, 8, 3)], ids=["two-layer", "three-layer"])
def test_adams_step_is_counted_in_the_callers_array(sizes):
    X, T = _data()
    step = np.zeros(1, np.int64)
    t, _ = _trainer(sizes, "adam", step=step)
    t.run(X, T, _orders(1)[0], BATCH, 0, 3)
    assert step[0] == 3
    t.run_epochs(X, T, np.stack(_orders(2)), BATCH)
    assert step[0] == 3 + 2 * -(-N_SAMPLES // BATCH)


def _read_only_step():
    step = np.zeros(1, np.int64)
    step.flags.writeable = False
    return step


@pytest.mark.parametrize(
    ("step", "exc", "found"),
    [
        (None, TypeError, "got NoneType: None"),
        ([0], TypeError, "got list: [0]"),
        (0, TypeError, "got int: 0"),
        (np.zeros(1, np.int32), TypeError, "dtype int32"),
        (np.zeros(1, np.uint64), TypeError, "dtype uint64"),
        (np.zeros(1, np.float64), TypeError, "dtype float64"),
        (np.zeros(1, ">i8"), TypeError, "dtype >i8"),
        (np.zeros(2, np.int64), ValueError, "shape (2,)"),
        (np.zeros(0, np.int64), ValueError, "shape (0,)"),
        (np.zeros((1, 1), np.int64), ValueError, "shape (1, 1)"),
        (np.zeros(9, np.uint8)[1:].view(np.int64), TypeError, "unaligned"),
        (_read_only_step(), ValueError, "read-only"),
    ],
    ids=[
        "None",
        "list",
        "int",
        "int32",
        "uint64",
        "float64",
        "big-endian",
        "two-entries",
        "empty",
        "2-D",
        "unaligned",
        "read-only",
    ],
)
@impls
def test_adams_step_must_be_the_callers_own_int64_array(step, exc, found, impl):
    with _raises(exc, "step must be a writable int64 array of one entry", found):
        _trainer(optimizer="adam", step=step, impl=impl)


def test_a_one_entry_view_counts_in_the_array_it_views():
    counts = np.zeros(4, np.int64)
    t, _ = _trainer(optimizer="adam", step=counts[2::4])  # one entry: C-contiguous
    X, T = _data()
    t.run(X, T, _orders(1)[0], BATCH, 0, 2)
    np.testing.assert_array_equal(counts, [0, 0, 2, 0])


@impls
def test_sgd_ignores_step(impl):
    _trainer(optimizer="sgd", step=[1, 2, 3], impl=impl)  # SGD counts no steps, like the reference


# ----- hyperparameters ----------------------------------------------------------------------

BAD_HYPER = [
    # (optimizer, key, value, exception, message) - densa.optimizers' wording
    ("sgd", "lr", float("nan"), ValueError, "lr must be a finite number > 0, got nan"),
    ("sgd", "lr", float("inf"), ValueError, "lr must be a finite number > 0, got inf"),
    ("sgd", "lr", 0.0, ValueError, "lr must be a finite number > 0, got 0.0"),
    ("sgd", "lr", -1, ValueError, "lr must be a finite number > 0, got -1"),
    ("sgd", "lr", 10**400, ValueError, "lr must be a finite number > 0, got 1000"),
    ("sgd", "momentum", np.float32(1), ValueError, "momentum must lie in [0.0, 1.0), got 1.0"),
    ("sgd", "momentum", 1.5, ValueError, "momentum must lie in [0.0, 1.0), got 1.5"),
    ("sgd", "momentum", 1.0, ValueError, "momentum must lie in [0.0, 1.0), got 1.0"),
    ("sgd", "momentum", -0.1, ValueError, "momentum must lie in [0.0, 1.0), got -0.1"),
    ("sgd", "momentum", float("nan"), ValueError, "momentum must lie in [0.0, 1.0), got nan"),
    ("sgd", "weight_decay", np.inf, ValueError, "weight_decay must be a finite number >= 0.0"),
    ("sgd", "weight_decay", -1e-3, ValueError, "weight_decay must be a finite number >= 0.0"),
    ("sgd", "weight_decay", np.nan, ValueError, "weight_decay must be a finite number >= 0.0"),
    ("sgd", "lr", "0.1", TypeError, "lr must be a number, got str: '0.1'"),
    ("sgd", "lr", None, TypeError, "lr must be a number, got NoneType"),
    ("sgd", "lr", True, TypeError, "lr must be a number, got bool"),
    ("sgd", "lr", 1j, TypeError, "lr must be a number, got complex"),
    ("sgd", "momentum", [0.9], TypeError, "momentum must be a number, got list"),
    ("sgd", "nesterov", 1, TypeError, "nesterov must be True or False, got 1"),
    ("sgd", "nesterov", None, TypeError, "nesterov must be True or False"),
    ("adam", "lr", float("nan"), ValueError, "lr must be a finite number > 0, got nan"),
    ("adam", "beta1", 1.0, ValueError, "beta1 must lie in [0.0, 1.0), got 1.0"),
    ("adam", "beta1", -0.5, ValueError, "beta1 must lie in [0.0, 1.0), got -0.5"),
    ("adam", "beta2", 1.5, ValueError, "beta2 must lie in [0.0, 1.0), got 1.5"),
    ("adam", "beta2", np.nan, ValueError, "beta2 must lie in [0.0, 1.0), got nan"),
    ("adam", "eps", 0.0, ValueError, "eps must be > 0"),
    ("adam", "eps", -1e-8, ValueError, "eps must be a finite number >= 0.0, got -1e-08"),
    ("adam", "eps", np.inf, ValueError, "eps must be a finite number >= 0.0, got inf"),
    ("adam", "weight_decay", np.inf, ValueError, "weight_decay must be a finite number >= 0.0"),
    ("adam", "beta1", "0.9", TypeError, "beta1 must be a number, got str"),
    ("adam", "eps", np.bool_(True), TypeError, "eps must be a number, got bool"),
    ("adam", "lr", np.array([1e-3]), TypeError, "lr must be a number, got ndarray"),
    ("adam", "lr", np.array(True), TypeError, "lr must be a number, got bool"),
    ("adam", "lr", np.array(np.nan), ValueError, "lr must be a finite number > 0, got nan"),
    # l2 is optional (absent is 0), but checked like weight_decay when given.
    ("sgd", "l2", -1.0, ValueError, "l2 must be a finite number >= 0.0, got -1.0"),
    ("adam", "l2", np.inf, ValueError, "l2 must be a finite number >= 0.0, got inf"),
    ("sgd", "l2", "0.1", TypeError, "l2 must be a number, got str"),
]


@pytest.mark.parametrize(
    ("optimizer", "key", "value", "exc", "message"),
    BAD_HYPER,
    ids=[f"{o}-{k}-{v!r:.24}" for o, k, v, _, _ in BAD_HYPER],
)
@impls
def test_bad_hyperparameters_are_refused(optimizer, key, value, exc, message, impl):
    base = SGD if optimizer == "sgd" else ADAM
    with _raises(exc, "Trainer: " + message):
        _trainer(optimizer=optimizer, hyper={**base, key: value}, impl=impl)


def _optimizer_refusal(optimizer, key, value):
    """How densa.SGD / densa.Adam refuse ``key=value``: (exception type, message), with
    Adam's betas[0] and betas[1] called beta1 and beta2 as in the Trainer's dict."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]  # the kernels' rule: a 0-d array is the number it holds
    if optimizer == "sgd":
        cls, kwargs = densa.SGD, {key: value}
    elif key in ("beta1", "beta2"):
        cls, kwargs = densa.Adam, {"betas": (value, 0.999) if key == "beta1" else (0.9, value)}
    else:
        cls, kwargs = densa.Adam, {key: value}
    with pytest.raises((TypeError, ValueError)) as info:
        cls(**kwargs)
    message = str(info.value).replace("betas[0]", "beta1").replace("betas[1]", "beta2")
    return type(info.value), message


@pytest.mark.parametrize(
    ("optimizer", "key", "value"),
    [entry[:3] for entry in BAD_HYPER],
    ids=[f"{o}-{k}-{v!r:.24}" for o, k, v, _, _ in BAD_HYPER],
)
@impls
def test_hyperparameter_refusals_are_the_optimizers_own(optimizer, key, value, impl):
    """Same exception type and words as densa.SGD / densa.Adam for the same value: the
    two are written separately (C++ and Python), and this keeps them together."""
    exc, message = _optimizer_refusal(optimizer, key, value)
    base = SGD if optimizer == "sgd" else ADAM
    with pytest.raises(exc) as info:
        _trainer(optimizer=optimizer, hyper={**base, key: value}, impl=impl)
    assert str(info.value) == "Trainer: " + message


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@impls
def test_a_missing_hyperparameter_is_named(optimizer, impl):
    base = SGD if optimizer == "sgd" else ADAM
    expected = ", ".join(base)
    for key in base:
        with _raises(KeyError, f"hyper has no '{key}'", f"{optimizer} takes {expected}"):
            _trainer(
                optimizer=optimizer, hyper={k: v for k, v in base.items() if k != key}, impl=impl
            )
    with _raises(KeyError, "hyper has no 'lr', "):
        _trainer(optimizer=optimizer, hyper={}, impl=impl)


@impls
def test_hyper_must_be_a_mapping(impl):
    with _raises(TypeError, "hyper must be a dict", "got int: 5"):
        _trainer(hyper=5, impl=impl)
    _trainer(hyper=list(SGD.items()), impl=impl)  # whatever dict() takes


@pytest.mark.parametrize(
    "hyper",
    [
        {**SGD, "lr": 1, "momentum": 0, "weight_decay": 0},
        {**SGD, "lr": np.float32(0.5), "momentum": np.float64(0.99), "nesterov": np.bool_(True)},
        # nesterov without momentum changes nothing (the reference takes it too).
        {**SGD, "lr": np.int64(2), "momentum": 0.0, "nesterov": True, "extra": "ignored"},
        {**ADAM, "beta1": 0.0, "beta2": 0.0, "eps": 1e-300, "weight_decay": np.float32(0)},
        {**ADAM, "lr": np.array(1e-3), "beta1": np.array(0.5, np.float32)},  # 0-d arrays
    ],
)
@impls
def test_valid_hyperparameters_are_taken(hyper, impl):
    t, _ = _trainer(optimizer="adam" if "eps" in hyper else "sgd", hyper=hyper, impl=impl)
    X, T = _data()
    assert t.run(X, T, _orders(1)[0], BATCH, 0, 1)[1] == BATCH


# ----- run's arguments ----------------------------------------------------------------------


def _bad_runs(X, T, order):
    """(call arguments, exception, message fragments) of Trainer.run."""
    return [
        ((X, T, order.astype(float), BATCH, 0, 9), TypeError, ["order must be a 1-D array"]),
        ((X, T, order[None], BATCH, 0, 9), TypeError, ["order must be a 1-D", "(1, 300)"]),
        ((X, T, list(order), BATCH, 0, 9), TypeError, ["order must be a 1-D", "got list"]),
        ((X.astype(np.float32), T, order, BATCH, 0, 9), TypeError, ["X has dtype float32"]),
        ((X.astype(np.int64), T, order, BATCH, 0, 9), TypeError, ["X has dtype int64"]),
        ((X.tolist(), T, order, BATCH, 0, 9), TypeError, ["X must be a 2-D float64", "list"]),
        ((X[0], T, order, BATCH, 0, 9), ValueError, ["X must be 2-D, got shape (16,)"]),
        ((X, T.astype(np.float16), order, BATCH, 0, 9), TypeError, ["targets has dtype float16"]),
        ((X, T[:, 0], order, BATCH, 0, 9), ValueError, ["targets must be 2-D"]),
        ((X, T[:10], order, BATCH, 0, 9), ValueError, ["targets do not match"]),
        ((X[:, :4], T, order, BATCH, 0, 9), ValueError, ["X has the wrong number of features"]),
        ((X, T, order, 32.0, 0, 9), TypeError, ["batch_size must be an integer", "float"]),
        ((X, T, order, True, 0, 9), TypeError, ["batch_size must be an integer", "bool"]),
        (
            (X, T, order, BATCH + 1, 0, 9),
            ValueError,
            ["batch size out of range: 33 not in [1, 32]"],
        ),
        ((X, T, order, 0, 0, 9), ValueError, ["batch size out of range: 0"]),
        ((X, T, order, BATCH, 0.0, 9), TypeError, ["first_batch must be an integer"]),
        ((X, T, order, BATCH, -1, 9), ValueError, ["first_batch must be >= 0, got -1"]),
        ((X, T, order, BATCH, 0, "9"), TypeError, ["n_batches must be an integer"]),
        ((X, T, order, BATCH, 0, -2), ValueError, ["n_batches must be >= 0, got -2"]),
    ]


@pytest.mark.parametrize("entry", ["native.Trainer", "_core.Trainer_float64"])
@pytest.mark.parametrize("sizes", [(16, 64, 3), (16, 8, 8, 3)], ids=["two-layer", "three-layer"])
def test_bad_run_arguments_are_named(sizes, entry):
    X, T = _data()
    order = _orders(1)[0]
    t, arrays = _trainer(sizes)
    run = t.run if entry == "native.Trainer" else lambda *a: _core.Trainer_float64.run(t, *a)
    before = [a.copy() for a in arrays]
    for args, exc, fragments in _bad_runs(X, T, order):
        with _raises(exc, *fragments):
            run(*args)
    _assert_same_bits(arrays, before)  # nothing was trained by the refused calls
    assert run(X, T, order, BATCH, 0, 99)[1] == N_SAMPLES


def test_bad_run_epochs_arguments_are_named():
    X, T = _data()
    orders = np.stack(_orders(2))
    t, arrays = _trainer()
    before = [a.copy() for a in arrays]
    for args, exc, fragments in [
        (
            (X, T, orders[0], BATCH),
            ValueError,
            ["Trainer.run_epochs: orders must be 2-D", "(300,)"],
        ),
        (
            (X, T, orders.tolist(), BATCH),
            ValueError,
            ["Trainer.run_epochs: orders must be 2-D", "list"],
        ),
        (
            (X, T, orders.astype(float), BATCH),
            TypeError,
            ["Trainer.run_epochs", "orders must be an array of integer sample indices", "float64"],
        ),
        (
            (X.astype(np.float32), T, orders, BATCH),
            TypeError,
            ["Trainer.run_epochs: X has dtype float32"],
        ),
        (
            (X, T.tolist(), orders, BATCH),
            TypeError,
            ["Trainer.run_epochs: targets must be a 2-D float64", "list"],
        ),
        ((X, T, orders, 1.5), TypeError, ["Trainer.run_epochs: batch_size must be an integer"]),
        ((X, T, orders, BATCH + 1), ValueError, ["batch size out of range"]),
    ]:
        with _raises(exc, *fragments):
            t.run_epochs(*args)
    _assert_same_bits(arrays, before)


def _outcome(call, *args):
    """(exception type, message) of call(*args), or ("ok", its result)."""
    try:
        return "ok", call(*args)
    except Exception as exc:  # compared, not swallowed: the test asserts on it
        return type(exc).__name__, str(exc)


def _run_cases(X, T, order):
    """Trainer.run arguments, good and bad: _bad_runs and the edges of each argument."""
    far = order.copy()
    far[-1] = N_SAMPLES + 5  # out of range, in the last batch only
    negative = order.copy()
    negative[40] = -1
    cases = [args for args, _, _ in _bad_runs(X, T, order)]
    cases += [
        (X, T, far, BATCH, 0, 3),  # not visited: taken
        (X, T, far, BATCH, 0, 99),  # visited: refused, naming order[299]
        (X, T, negative, BATCH, 1, 1),  # order[40], in batch 1
        (X, T, order.astype(np.uint64) + np.uint64(2**63), BATCH, 0, 1),  # wraps negative
        (X, T, order.astype(np.int32), BATCH, 0, 2),
        (X, T, order, np.int64(BATCH), np.int32(1), np.uint8(2)),
        (X, T, order, np.array(BATCH), 0, 1),  # a 0-d integer array is an index
        (X, T, order, BATCH, np.True_, 1),
        (X, T, order, BATCH, 0, 2**70),  # clamped: every batch left
        (X, T, order, BATCH, 2**70, 1),  # clamped: past the end, nothing run
        (X, T, order, -3, 0, 1),
        (X, T, order[:0], BATCH, 0, 1),
        (X, T, order[::2], BATCH, 0, 1),
        (X, T, None, BATCH, 0, 1),
    ]
    return cases


def _epochs_cases(X, T, orders):
    bad_late = orders.copy()
    bad_late[1, 7] = N_SAMPLES  # the second epoch's: refused before the first runs
    return [
        (X, T, orders[0], BATCH),
        (X, T, orders.tolist(), BATCH),
        (X, T, orders.astype(float), BATCH),
        (X, T, orders[:, :0], BATCH),
        (X, T, bad_late, BATCH),
        (X, T, orders.astype(np.uint16), BATCH),
        (X, T, orders, 1.5),
        (X, T, orders, True),
        (X, T, orders, 0),
        (X, T, orders, BATCH + 1),
        (X[:, :4], T, orders, BATCH),
        (X, T[:10], orders, BATCH),
        (X, T, orders, BATCH),
    ]


@pytest.mark.parametrize("sizes", [(32, 64, 3), (16, 8, 8, 3)], ids=["split", "general"])
def test_run_arguments_are_refused_in_the_same_words_on_both_backends(sizes):
    """Each case: the same exception and message on both backends, or the same result,
    and a refused call trains nothing."""
    assert _trainer(sizes)[0].splits_hidden_layer == (len(sizes) == 3)  # both paths
    X, T = _data(n_in=sizes[0], n_out=sizes[-1])
    order = _orders(1)[0]
    orders = np.stack(_orders(2))
    calls = (("run", _run_cases(X, T, order)), ("run_epochs", _epochs_cases(X, T, orders)))
    for method, cases in calls:
        for args in cases:
            got = {}
            for impl in (native, reference):
                t, arrays = _trainer(sizes, impl=impl)
                before = [a.copy() for a in arrays]
                kind, value = _outcome(getattr(t, method), *args)
                if kind != "ok":
                    _assert_same_bits(arrays, before)
                    got[impl.__name__] = (kind, value)
                else:  # losses agree to rounding; counts and flags exactly
                    got[impl.__name__] = (kind, _rounded(value))
            assert got["densa.native"] == got["densa.reference"], (method, args[2:], got)


@impls
def test_a_busy_trainer_refuses_bad_arguments_for_what_they_are(impl):
    """The native binding checks the arguments before it takes the trainer, so that a
    call with a bad order is told so even while another thread trains; the reference
    refuses in the same order."""
    X, T = _data()
    t, _ = _trainer(impl=impl)
    long_order = np.tile(np.arange(N_SAMPLES, dtype=np.int64), 40)  # ~12 000 samples

    def long_run():
        # The probes below may take the trainer before this thread does (more likely
        # under the sanitizers, which slow the start): then take it after them.
        while True:
            try:
                return t.run(X, T, long_order, BATCH, 0, 10**6)
            except RuntimeError as exc:
                if "already running in another thread" not in str(exc):
                    raise

    worker = threading.Thread(target=long_run)
    worker.start()
    try:
        busy = None
        while busy is None and worker.is_alive():  # until the trainer is seen taken
            try:
                t.run(X, T, _orders(1)[0], BATCH, 0, 1)
            except RuntimeError as exc:
                busy = str(exc)
        if busy is None:
            pytest.skip("the long run ended before a second call could see it")
        assert "already running in another thread" in busy
        with _raises(TypeError, "Trainer.run: order must be a 1-D array"):
            t.run(X, T, None, BATCH, 0, 1)
        with _raises(TypeError, "Trainer.run_epochs: batch_size must be an integer"):
            t.run_epochs(X, T, np.stack(_orders(1)), 1.5)
        still_busy = worker.is_alive()
    finally:
        worker.join(HANG_SECONDS)
    if not still_busy:
        pytest.skip("the long run ended during the probes")


def _rounded(result):
    """A run or run_epochs result with its floats rounded to 6 significant digits and
    the epoch times left out (they are wall-clock)."""
    if len(result) == 5:  # run_epochs: (loss_means, seconds, diverged, bad, penalty_means)
        rounded = ([float(f"{v:.6g}") for v in result[k]] for k in (0, 4))
        return (next(rounded), len(result[1]), result[2], result[3], next(rounded))
    return (float(f"{result[0]:.6g}"), *result[1:5], float(f"{result[5]:.6g}"))


def _unaligned(a):
    """A C-contiguous copy of a at an address one byte off its element size."""
    raw = np.empty(a.nbytes + 1, np.uint8)
    view = raw[1:].view(a.dtype).reshape(a.shape)
    view[...] = a
    return view


# Each applies to order (1-D) and to run_epochs' orders (2-D) alike.
LAYOUTS = {
    "fortran-X": lambda X, T, o: (np.asfortranarray(X), T, o),
    "strided-X": lambda X, T, o: (np.repeat(X, 2, axis=1)[:, ::2], T, o),
    "unaligned-X": lambda X, T, o: (_unaligned(X), T, o),
    "byteswapped-targets": lambda X, T, o: (X, T.astype(T.dtype.newbyteorder()), o),
    "strided-order": lambda X, T, o: (X, T, np.repeat(o, 2, axis=-1)[..., ::2]),
    "byteswapped-order": lambda X, T, o: (X, T, o.astype(">i8")),
    "unaligned-order": lambda X, T, o: (X, T, _unaligned(o)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("sizes", [(16, 64, 3), (16, 8, 8, 3)], ids=["two-layer", "three-layer"])
def test_read_only_inputs_in_other_layouts_are_converted(sizes, layout, dtype):
    """docs/robustness.md: Fortran-ordered, strided, unaligned and byte-swapped inputs are
    converted once, with the result of the ordinary array; they are never written."""
    X, T = _data(dtype=dtype)
    order = _orders(1)[0]
    orders = np.stack(_orders(2))
    t, arrays = _trainer(sizes, dtype=dtype)
    same, same_arrays = _trainer(sizes, dtype=dtype)
    for ordinary, call, same_call in [
        ((X, T, order), t.run, same.run),
        ((X, T, orders), t.run_epochs, same.run_epochs),
    ]:
        args = LAYOUTS[layout](*ordinary)
        assert any(
            not a.flags.c_contiguous or not a.flags.aligned or not a.dtype.isnative for a in args
        )
        kept = [a.copy() for a in args]
        extra = (BATCH, 0, 99) if call == t.run else (BATCH,)
        got = call(*args, *extra)
        for a, k in zip(args, kept):
            np.testing.assert_array_equal(a, k)
        expected = same_call(*ordinary, *extra)
        if call == t.run_epochs:  # (losses, seconds, diverged, bad): not the seconds
            got, expected = (got[0], *got[2:]), (expected[0], *expected[2:])
        assert got == expected
        _assert_same_bits(arrays, same_arrays)


@pytest.mark.parametrize("dtype", [np.int32, np.uint64, np.int16])
def test_orders_of_other_integer_dtypes_are_converted(dtype):
    """As the reference reads them: the same bits as int64 orders."""
    X, T = _data()
    order = _orders(1)[0]
    orders = np.stack(_orders(2))
    t, arrays = _trainer()
    same, same_arrays = _trainer()
    assert t.run(X, T, order.astype(dtype), BATCH, 0, 99) == same.run(X, T, order, BATCH, 0, 99)
    got = t.run_epochs(X, T, orders.astype(dtype), BATCH)
    expected = same.run_epochs(X, T, orders, BATCH)
    assert got[0] == expected[0]
    _assert_same_bits(arrays, same_arrays)


def test_an_order_written_by_another_thread_during_training_never_crashes():
    """The order stays the caller's while the GIL is released: a thread that writes an
    index out of range mid-run gets a ValueError from the trainer, never a read outside
    X (a subprocess, so that a crash fails the test instead of the run)."""
    code = """
import threading, time, numpy as np
from densa import native
rng = np.random.default_rng(0)
n = 4000
for sizes in [(16, 64, 3), (16, 8, 8, 3)]:
    Ws = [rng.normal(size=(o, i)) * 0.1 for i, o in zip(sizes[:-1], sizes[1:])]
    bs = [np.zeros(o) for o in sizes[1:]]
    acts = ["relu"] * (len(Ws) - 1) + ["identity"]
    hyper = dict(lr=1e-3, momentum=0.0, nesterov=False, weight_decay=0.0)
    t = native.Trainer(Ws, bs, acts, "mse", "sgd", hyper, [[] for _ in Ws], [[] for _ in Ws],
                       None, 32)
    X, T = rng.normal(size=(n, 16)), np.zeros((n, 3))
    orders = np.tile(np.arange(n), (400, 1))
    stop = False
    def scribble():
        time.sleep(0.02)  # after the trainer's check of the whole order, while it trains
        while not stop:
            orders[-1, ::7] = 10**12
    w = threading.Thread(target=scribble)
    w.start()
    try:
        t.run_epochs(X, T, orders, 32)
        print("finished")
    except ValueError as exc:
        assert "order" in str(exc), exc
        print("refused")
    finally:
        stop = True
        w.join()
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.split()) == 2


def test_the_reference_trainer_refuses_a_second_concurrent_run_too():
    t, _ = _trainer(impl=reference)
    X, T = _data()
    long_order = np.tile(np.arange(N_SAMPLES, dtype=np.int64), 1000)  # ~1 s
    errors = []
    runner = threading.Thread(target=lambda: t.run(X, T, long_order, BATCH, 0, 10**9), daemon=True)
    runner.start()
    while runner.is_alive() and not t._busy.locked():
        pass  # until the long run holds the trainer
    for call in (
        lambda: t.run(X, T, _orders(1)[0], BATCH, 0, 1),
        lambda: t.run_epochs(X, T, np.stack(_orders(1)), BATCH),
    ):
        try:
            call()
        except RuntimeError as exc:
            errors.append(str(exc))
    still_running = runner.is_alive()  # the probes took far less than the long run
    runner.join(120)
    assert not runner.is_alive()
    assert still_running
    assert errors == [f"Trainer.run: {BUSY}", f"Trainer.run_epochs: {BUSY}"]
    # Afterwards the trainer runs again.
    assert t.run(X, T, _orders(1)[0], BATCH, 0, 1)[1] == BATCH


# ----- the constructor's lists and in-place arrays ---------------------------------------
# Both backends refuse them at construction, with the same exception and the same words
# naming the layer and the argument (densa._trainer_checks.trainer_arrays), so that nothing can
# fail halfway through an update later.

MOMENTUM = {**SGD, "momentum": 0.9}
SIZES = (16, 8, 3)


def _parts(dtype=np.float64, n_state=2):
    """Fresh (Ws, bs, activations, state_W, state_b) of a 16-8-3 network."""
    rng = np.random.default_rng(0)
    Ws = [(rng.normal(size=(o, i)) * 0.3).astype(dtype) for i, o in zip(SIZES[:-1], SIZES[1:])]
    bs = [(rng.normal(size=o) * 0.1).astype(dtype) for o in SIZES[1:]]
    sW = [[np.zeros_like(W) for _ in range(n_state)] for W in Ws]
    sb = [[np.zeros_like(b) for _ in range(n_state)] for b in bs]
    return [Ws, bs, ["tanh", "identity"], sW, sb]


def _build(impl, parts, optimizer="adam", hyper=None):
    Ws, bs, acts, sW, sb = parts
    if hyper is None:
        hyper = ADAM if optimizer == "adam" else MOMENTUM
    step = np.zeros(1, np.int64) if optimizer == "adam" else None
    return impl.Trainer(Ws, bs, acts, "mse", optimizer, hyper, sW, sb, step, BATCH)


def _arrays_of(parts):
    """Every array in parts (nested lists included), in order."""
    out = []
    for item in parts:
        if isinstance(item, np.ndarray):
            out.append(item)
        elif isinstance(item, (list, tuple)):
            out += _arrays_of(item)
    return out


def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def _set(path, make):
    """A change of parts: the entry at ``path`` (indices into parts) becomes make(old)."""

    def change(parts):
        *outer, last = path
        holder = parts
        for i in outer:
            holder = holder[i]
        holder[last] = make(holder[last])

    return change


W_, B_, ACT_, SW_, SB_ = range(5)
# (id, change of _parts(), optimizer, exception, fragments of the message)
BAD_ARRAYS = [
    ("fortran-W", _set((W_, 0), np.asfortranarray), "adam", TypeError,
     ["Trainer: layer 0: W must be C-contiguous (it is updated in place)"]),
    ("big-endian-b", _set((B_, 1), lambda b: b.astype(">f8")), "adam", TypeError,
     ["Trainer: layer 1: b must be in native byte order (it is updated in place)", ">f8"]),
    ("read-only-b", _set((B_, 1), _read_only), "sgd", ValueError,
     ["Trainer: layer 1: b is read-only"]),
    ("unaligned-W", _set((W_, 1), _unaligned), "adam", TypeError,
     ["Trainer: layer 1: W must be aligned to its 8-byte elements"]),
    ("float16-W0", _set((W_, 0), lambda W: W.astype(np.float16)), "adam", TypeError,
     ["Trainer: layer 0: W has dtype float16"]),
    ("float32-W1", _set((W_, 1), lambda W: W.astype(np.float32)), "adam", TypeError,
     ["Trainer: layer 1: W has dtype float32 but the parameters are float64"]),
    ("list-W", _set((W_, 0), lambda W: W.tolist()), "adam", TypeError,
     ["Trainer: layer 0: W must be a float64 NumPy array", "got list"]),
    ("1-D-W", _set((W_, 1), np.ravel), "adam", ValueError,
     ["Trainer: layer 1: W must be 2-D", "(24,)"]),
    ("short-b", _set((B_, 0), lambda b: b[:-1]), "adam", ValueError,
     ["Trainer: layer 0: b must be 1-D with W.shape[0] = 8 entries", "(7,)"]),
    ("float32-state", _set((SW_, 0, 0), lambda s: s.astype(np.float32)), "adam", TypeError,
     ["Trainer: layer 0: state_W[0] has dtype float32 but the parameters are float64"]),
    ("strided-state", _set((SB_, 1, 1), lambda s: np.zeros(2 * s.size)[::2]), "adam", TypeError,
     ["Trainer: layer 1: state_b[1] must be C-contiguous (it is updated in place)"]),
    ("read-only-velocity", _set((SW_, 1, 0), _read_only), "sgd", ValueError,
     ["Trainer: layer 1: state_W[0] is read-only"]),
    ("state-size", _set((SW_, 1, 1), lambda s: np.zeros(5)), "adam", ValueError,
     ["Trainer: layer 1: state_W[1] has 5 entries but W has 24"]),
    ("missing-state", _set((SB_, 0), lambda s: s[:1]), "adam", ValueError,
     ["Trainer: layer 0: missing optimizer state arrays", "state_b has 1"]),
    ("state-not-a-list", _set((SW_, 1), lambda s: None), "adam", TypeError,
     ["Trainer: layer 1: state_W must be a list of optimizer state arrays", "NoneType"]),
    ("unread-state-float32", _set((SW_, 0, 1), lambda s: s.astype(np.float32)), "sgd",
     TypeError, ["Trainer: layer 0: state_W[1] has dtype float32 but the parameters are"]),
    ("activation-not-a-string", _set((ACT_, 0), lambda a: None), "adam", TypeError,
     ["Trainer: layer 0: activation must be a string"]),
    ("short-bs", _set((B_,), lambda bs: bs[:1]), "adam", ValueError,
     ["Trainer: Ws, bs, activations and optimizer states must have one entry per layer"]),
    ("Ws-None", _set((W_,), lambda Ws: None), "adam", TypeError,
     ["Trainer: Ws must be a list", "NoneType"]),
    ("velocity-is-W", lambda p: p[SW_][0].__setitem__(0, p[W_][0]), "sgd", ValueError,
     ["Trainer: layer 0: W and state_W[0] share memory"]),
    ("m-is-v", lambda p: p[SB_][1].__setitem__(1, p[SB_][1][0]), "adam", ValueError,
     ["Trainer: layer 1: state_b[0] and state_b[1] share memory"]),
    ("b-views-overlap", lambda p: p[B_].__setitem__(1, p[B_][0][2:5]), "adam", ValueError,
     ["Trainer: layer 0: b and layer 1: b share memory"]),
]  # fmt: skip


def _not_chaining(parts):
    parts[W_][1] = np.zeros((3, 5))  # layer 0 has 8 outputs
    parts[SW_][1] = [np.zeros((3, 5)), np.zeros((3, 5))]


BAD_ARRAYS.append(
    ("not-chaining", _not_chaining, "adam", ValueError,
     ["Trainer: layer 1: W has shape (3, 5)", "(layer sizes do not chain)"])
)  # fmt: skip


def _no_layers(parts):
    for i in (W_, B_, ACT_, SW_, SB_):
        parts[i] = []


BAD_ARRAYS.append(("no-layers", _no_layers, "adam", ValueError, ["must have one entry per layer"]))


@pytest.mark.parametrize(
    ("change", "optimizer", "exc", "fragments"),
    [case[1:] for case in BAD_ARRAYS],
    ids=[case[0] for case in BAD_ARRAYS],
)
@impls
def test_bad_constructor_arrays_are_named(change, optimizer, exc, fragments, impl):
    parts = _parts()
    change(parts)
    arrays = _arrays_of(parts)
    before = [a.copy() for a in arrays]
    with _raises(exc, *fragments):
        _build(impl, parts, optimizer)
    _assert_same_bits(arrays, before)


@pytest.mark.parametrize(
    ("change", "optimizer"),
    [case[1:3] for case in BAD_ARRAYS],
    ids=[case[0] for case in BAD_ARRAYS],
)
def test_bad_constructor_arrays_are_refused_alike_by_both_backends(change, optimizer):
    refusals = []
    for impl in (native, reference):
        parts = _parts()
        change(parts)
        with pytest.raises((TypeError, ValueError)) as info:
            _build(impl, parts, optimizer)
        refusals.append((type(info.value), str(info.value)))
    assert refusals[0] == refusals[1]


def _resize(path, size):
    """A change of parts: the array at ``path`` replaced by zeros of ``size`` entries."""
    return _set(path, lambda a: np.zeros(size, a.dtype))


# Sizes the extension must check by itself: in BAD_ARRAYS each is also caught by another
# check (Adam's full-size state_b refuses a short b; a short state_W comes first).
# (id, optimizer, hyper, number of state arrays, change, the checked path's message)
UNMASKED_SIZES = [
    ("short-b-no-state", "sgd", SGD, 0, _resize((B_, 0), 7),
     "Trainer: layer 0: b must be 1-D with W.shape[0] = 8 entries, got shape (7,)"),
    ("long-b-no-state", "sgd", SGD, 0, _resize((B_, 1), 4),
     "Trainer: layer 1: b must be 1-D with W.shape[0] = 3 entries, got shape (4,)"),
    ("short-b-velocity", "sgd", MOMENTUM, 1, _resize((SB_, 0, 0), 2),
     "Trainer: layer 0: state_b[0] has 2 entries but b has 8"),
    ("short-adam-v-of-b", "adam", ADAM, 2, _resize((SB_, 1, 1), 1),
     "Trainer: layer 1: state_b[1] has 1 entries but b has 3"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("optimizer", "hyper", "n_state", "change", "message"),
    [case[1:] for case in UNMASKED_SIZES],
    ids=[case[0] for case in UNMASKED_SIZES],
)
def test_bias_and_bias_state_sizes_are_checked_by_the_extension(
    optimizer, hyper, n_state, change, message
):
    """The extension itself refuses a b, or a state of b, of the wrong size: never runs past it."""
    for impl in (_core, native, reference):
        parts = _parts(n_state=n_state)
        change(parts)
        arrays = _arrays_of(parts)
        before = [a.copy() for a in arrays]
        Ws, bs, acts, sW, sb = parts
        step = np.zeros(1, np.int64) if optimizer == "adam" else None
        if impl is _core:  # the extension's own check, without densa.native's words
            with pytest.raises(ValueError, match=r"Trainer: layer [01]: "):
                _core.Trainer_float64(Ws, bs, acts, "mse", optimizer, hyper, sW, sb, step, BATCH)
        else:
            with _raises(ValueError, message):
                impl.Trainer(Ws, bs, acts, "mse", optimizer, hyper, sW, sb, step, BATCH)
        _assert_same_bits(arrays, before)


# Arrays the extension's constructor itself refuses, read by the trainer or not (an
# unused optimizer state): anything but C-contiguous float64 in native byte order.
UNREADABLE = [
    ("float32-W", _set((W_, 0), lambda W: W.astype(np.float32))),
    ("big-endian-b", _set((B_, 1), lambda b: b.astype(">f8"))),
    ("fortran-W", _set((W_, 0), np.asfortranarray)),
    ("strided-b", _set((B_, 0), lambda b: np.repeat(b, 2)[::2])),
    ("int-state", _set((SW_, 1, 0), lambda s: s.astype(np.int64))),
    ("unread-float32-state", _set((SW_, 0, 1), lambda s: s.astype(np.float32))),
    ("unread-fortran-state", _set((SW_, 0, 1), np.asfortranarray)),
]  # fmt: skip


@pytest.mark.parametrize("change", [c[1] for c in UNREADABLE], ids=[c[0] for c in UNREADABLE])
def test_the_extension_refuses_every_array_it_would_not_read_in_place(change):
    parts = _parts(n_state=2)
    change(parts)
    Ws, bs, acts, sW, sb = parts
    with pytest.raises(TypeError, match="C-contiguous float64 arrays in native byte order"):
        _core.Trainer_float64(Ws, bs, acts, "mse", "sgd", MOMENTUM, sW, sb, None, BATCH)
    # The unchanged parts are taken.
    Ws, bs, acts, sW, sb = _parts(n_state=2)
    assert _core.Trainer_float64(Ws, bs, acts, "mse", "sgd", MOMENTUM, sW, sb, None, BATCH)


# In-place arrays that share memory: the extension's constructor refuses them itself
# (ValueError), before anything trains; densa.native then names the pair (BAD_ARRAYS).
SHARED = [c for c in BAD_ARRAYS if "share memory" in c[4][0]]
EXTENSION = types.SimpleNamespace(Trainer=_core.Trainer_float64)


@pytest.mark.parametrize(
    ("change", "optimizer"), [c[1:3] for c in SHARED], ids=[c[0] for c in SHARED]
)
def test_the_extension_refuses_in_place_arrays_that_share_memory(change, optimizer):
    parts = _parts(n_state=2)
    change(parts)
    arrays = _arrays_of(parts)
    before = [a.copy() for a in arrays]
    with pytest.raises(ValueError, match="Trainer: in-place arrays share memory"):
        _build(EXTENSION, parts, optimizer)
    _assert_same_bits(arrays, before)


def test_the_extension_takes_neighbouring_arrays_and_unread_state_that_overlaps():
    # Adjacent views of one buffer: apart.
    parts = _parts(n_state=2)
    _one_buffer(parts)
    assert _build(EXTENSION, parts, "adam")
    # SGD with momentum writes state[0] only: a state[1] on W's memory is never written.
    parts = _parts(n_state=2)
    parts[SW_][0][1] = parts[W_][0]
    assert _build(EXTENSION, parts, "sgd")
    # Without momentum no state is written: a velocity on W's memory is not refused.
    parts = _parts(n_state=1)
    parts[SW_][0][0] = parts[W_][0]
    assert _build(EXTENSION, parts, "sgd", SGD)
    # The same velocity with momentum is.
    with pytest.raises(ValueError, match="Trainer: in-place arrays share memory"):
        _build(EXTENSION, parts, "sgd", MOMENTUM)


def test_a_read_only_b_no_longer_trains_the_reference_halfway():
    """It used to be found by sgd_step inside run, after layer 0 had been updated."""
    X, T = _data()
    for impl in (native, reference):
        parts = _parts(n_state=1)
        parts[B_][1] = _read_only(parts[B_][1])
        arrays = _arrays_of(parts)
        before = [a.copy() for a in arrays]
        with _raises(ValueError, "Trainer: layer 1: b is read-only"):
            _build(impl, parts, "sgd").run(X, T, _orders(1)[0], BATCH, 0, 1)
        _assert_same_bits(arrays, before)


def _one_buffer(parts):
    """bs as adjacent, non-overlapping views of one buffer: apart, so accepted."""
    buf = np.zeros(sum(b.size for b in parts[B_]))
    buf[: parts[B_][0].size], buf[parts[B_][0].size :] = parts[B_]
    parts[B_] = [buf[: parts[B_][0].size], buf[parts[B_][0].size :]]


# Accepted as the native constructor accepts them, and trained alike by both backends.
GOOD_ARRAYS = [
    ("sgd-without-momentum-no-state", "sgd", SGD,
     lambda p: p.__setitem__(SW_, [[], []]) or p.__setitem__(SB_, [(), ()])),
    ("sgd-without-momentum-unread-state", "sgd", SGD,
     _set((SW_, 0, 0), lambda s: _read_only(np.zeros(3)))),
    ("sgd-momentum-one-state", "sgd", MOMENTUM, lambda p: [s.pop() for s in p[SW_] + p[SB_]]),
    ("adam-flat-state", "adam", ADAM, _set((SW_, 1, 0), np.ravel)),
    ("adam-extra-state", "adam", ADAM, lambda p: p[SW_][0].append(p[W_][0])),
    ("tuples", "adam", ADAM, lambda p: p.__setitem__(W_, tuple(p[W_]))),
    ("one-buffer", "adam", ADAM, _one_buffer),
]  # fmt: skip


@pytest.mark.parametrize(
    ("optimizer", "hyper", "change"),
    [case[1:] for case in GOOD_ARRAYS],
    ids=[case[0] for case in GOOD_ARRAYS],
)
def test_accepted_constructor_arrays_train_alike(optimizer, hyper, change):
    X, T = _data()
    order = _orders(1)[0]
    results = []
    for impl in (native, reference):
        parts = _parts()
        change(parts)
        t = _build(impl, parts, optimizer, hyper)
        results.append((t.run(X, T, order, BATCH, 0, 3)[1:5], [a.copy() for a in parts[W_]]))
    assert results[0][0] == results[1][0] == (3 * BATCH, 3, False, -1)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


# ----- X and targets of run / run_epochs, on both backends ---------------------------------


def _bad_batches(X, T):
    """(X, targets, exception, the whole message after "Trainer.run"/"run_epochs")."""
    return [
        (X.tolist(), T, TypeError, None),
        (X.astype(np.float32), T, TypeError, None),
        (X.astype(np.int64), T, TypeError, None),
        (X[0], T, ValueError, None),
        (X, T.astype(np.float16), TypeError, None),
        (X, T[:, 0], ValueError, None),
        (X, T[:10], ValueError, "trainer: targets do not match X or the output layer"),
        (X, T[:, :2], ValueError, "trainer: targets do not match X or the output layer"),
        (X[:, :4], T, ValueError, "trainer: X has the wrong number of features"),
    ]


@pytest.mark.parametrize("call", ["run", "run_epochs"])
def test_bad_run_batches_are_refused_alike_by_both_backends(call):
    X, T = _data()
    order = _orders(1)[0]
    refusals = {}
    for impl in (native, reference):
        t, arrays = _trainer(impl=impl)
        before = [a.copy() for a in arrays]
        found = []
        for Xb, Tb, exc, message in _bad_batches(X, T):
            args = (Xb, Tb, order, BATCH, 0, 9) if call == "run" else (Xb, Tb, order[None], BATCH)
            with pytest.raises(exc) as info:
                getattr(t, call)(*args)
            text = str(info.value)
            assert text == message if message else text.startswith(f"Trainer.{call}: ")
            found.append((type(info.value), text))
        refusals[impl.__name__] = found
        _assert_same_bits(arrays, before)  # nothing was trained by the refused calls
    assert refusals["densa.native"] == refusals["densa.reference"]
    assert any("X must be a 2-D float64 NumPy array" in m for _, m in refusals["densa.native"])


@pytest.mark.parametrize("layout", ["fortran-X", "strided-X", "unaligned-X", "byteswapped-targets"])
def test_the_reference_converts_read_only_inputs_once(layout):
    X, T = _data()
    order = _orders(1)[0]
    args = LAYOUTS[layout](X, T, order)
    kept = [a.copy() for a in args]
    t, arrays = _trainer(impl=reference)
    same, same_arrays = _trainer(impl=reference)
    assert t.run(*args, BATCH, 0, 3) == same.run(X, T, order, BATCH, 0, 3)
    for a, k in zip(args, kept):
        np.testing.assert_array_equal(a, k)
    _assert_same_bits(arrays, same_arrays)


@pytest.mark.parametrize(
    ("activations", "loss", "max_batch", "exc", "message"),
    [
        (["swish", "identity"], "mse", 8, ValueError, "Trainer: layer 0: activation: unknown name"),
        ([b"tanh", "identity"], "mse", 8, TypeError, "layer 0: activation must be a string"),
        (["tanh", "identity"], "hinge", 8, ValueError, "Trainer: loss: unknown name 'hinge'"),
        (["tanh", "identity"], 3, 8, TypeError, "Trainer: loss"),
        (["tanh", "identity"], "mse", 2.5, TypeError, "Trainer: max_batch must be an integer"),
        (["tanh", "identity"], "mse", True, TypeError, "Trainer: max_batch must be an integer"),
        (["tanh", "identity"], "mse", 0, ValueError, "Trainer: max_batch must be >= 1, got 0"),
    ],
)
def test_names_and_max_batch_are_refused_alike_when_built(
    activations, loss, max_batch, exc, message
):
    """Both backends, at construction (the reference used to accept them and fail, or
    not, only when training; native took a bytes name and said pybind11's words for a
    float max_batch)."""
    rng = np.random.default_rng(0)
    Ws = [rng.normal(size=(8, 16)), rng.normal(size=(3, 8))]
    bs = [np.zeros(8), np.zeros(3)]
    messages = []
    for impl in (native, reference):
        with pytest.raises(exc, match=re.escape(message)) as info:
            impl.Trainer(Ws, bs, activations, loss, "sgd", SGD, [[], []], [[], []], None, max_batch)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
