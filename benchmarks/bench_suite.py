"""densa against a plain NumPy loop, PyTorch and scikit-learn, side by side in one run.

Workloads (issue 4): W3 784-256-128-10 relu / softmax CE / SGD(0.05, momentum 0.9) /
batch 64 / 60 000 samples; W4 2-16-16-1 tanh / mse / batch 8 / 2 000 samples; W5
scikit-learn's digits 64-64-10, 30 epochs; K1, K2 one layer forward + backward;
peak memory of a W3 fit; ``import densa`` time. float32 throughout.

Implementations run interleaved (A B C A B C ...) after a warm-up, each timed call once
the other implementations' worker threads have stopped (they keep spinning after they
return; ``Pause``, ``--pause``), and the table shows medians, so that a noisy neighbour on
the machine hurts every column alike. Ratios are "how many times faster densa native is"
than each alternative, in the same run.

Every implementation starts from densa's initial weights: PyTorch and the NumPy loop
get copies, scikit-learn gets them through warm_start / partial_fit (``sklearn_from_densa``,
checked: same outputs before training, the same arrays trained after). W5's timed calls
each reuse one model per implementation (scikit-learn's priming allows nothing else),
built before the clock starts and put back to its initial weights before each call, off
the clock (checked by ``check_timed_resets``); a timed call is the library's fit and its
predict of the test set, scored off the clock. W5's accuracy is averaged over
initialisations x sample orders (``ACCURACY_INITS``, ``ACCURACY_SHUFFLES``;
``PAIRED_SHUFFLES`` for densa native and scikit-learn, whose difference the target is
about).

    python benchmarks/bench_suite.py            # everything available
    python benchmarks/bench_suite.py --quick    # fewer repetitions
    python benchmarks/bench_suite.py --only W4 K2
    python benchmarks/bench_suite.py --runs 3   # the whole suite 3 times, then a summary
    python benchmarks/bench_suite.py --pause 0.2  # a fixed pause before each timed call

Each run ends with its targets (issue 4), each met or missed; with ``--runs N`` a table
then gives every run's value per target and how many runs met it.

torch (``pip install torch==2.13.0``) and scikit-learn are optional: missing ones are
reported as such and skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import warnings

import numpy as np

import densa
import two_cores


def _other_threads_cpu_ns() -> int | None:
    """CPU time so far of every thread of this process but the caller's (Linux's
    schedstat, nanoseconds), or None where the kernel does not give it."""
    me = threading.get_native_id()
    total = 0
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return None
    for tid in tids:
        if int(tid) == me:
            continue
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        except (OSError, ValueError, IndexError):
            return None
    return total


class Pause:
    """What each timed call waits for first: the other implementations' worker threads
    to stop. NumPy's OpenBLAS (the NumPy loop, densa's reference, scikit-learn) keeps its
    workers spinning ~0.1 s after a threaded call returns, taking a core from whatever
    runs next in the process.

    ``Pause(None)`` (the default, ``--pause auto``) waits until the process's other
    threads have used under 5% of a core for ``idle`` seconds, polling every ``poll``
    seconds, at most ``timeout``. ``Pause(s)`` sleeps a fixed ``s`` seconds, as every
    session before the eighteenth did with 0.2 s. On this shared virtual machine the
    idle time itself is not free: a W5 timed call of densa took 9.4 ms after 5 ms of
    sleep, 11.3 ms after 20 ms, 13.4 ms after 50 ms and 23-27 ms after 0.2 s (the
    machine drops what the call had cached at a rate that grows with time; see
    docs/performance.md), a cost that lands almost entirely on the shortest calls.
    Waiting only as long as the workers need keeps the pause's purpose without it.
    Each wait's length is recorded (``waited``) and printed with ``--samples``.
    """

    def __init__(self, fixed: float | None = None, idle=0.01, poll=0.0025, timeout=1.0):
        self.fixed, self.idle, self.poll, self.timeout = fixed, idle, poll, timeout
        if fixed is None and _other_threads_cpu_ns() is None:
            self.fixed = 0.2  # no per-thread CPU times here: the old fixed pause
        self.waited: list[float] = []

    def __call__(self) -> float:
        """Wait; returns the seconds waited (also appended to ``waited``)."""
        t0 = time.perf_counter()
        if self.fixed is not None:
            time.sleep(self.fixed)
        else:
            last = _other_threads_cpu_ns() or 0
            quiet_since = t0
            while True:
                time.sleep(self.poll)
                now = time.perf_counter()
                used = _other_threads_cpu_ns() or 0
                if used - last > 0.05 * self.poll * 1e9:
                    quiet_since = now  # someone else was busy in this poll
                last = used
                if now - quiet_since >= self.idle or now - t0 >= self.timeout:
                    break
        self.waited.append(time.perf_counter() - t0)
        return self.waited[-1]

    def describe(self) -> str:
        if self.fixed is not None:
            return f"a fixed {self.fixed:g} s pause before each timed call"
        return (
            f"before each timed call, a wait until the other threads have been idle for "
            f"{self.idle * 1e3:g} ms (polled every {self.poll * 1e3:g} ms, at most "
            f"{self.timeout:g} s)"
        )


PAUSE = Pause()  # main() replaces it per --pause


def _median_times(fns: dict, repeats: int, warmup: int = 1, setups: dict | None = None) -> dict:
    """Median seconds of each fn, calls interleaved across implementations, each timed
    call after ``PAUSE`` (the other implementations' worker threads stopped).

    ``setups[k]``, where given, runs before each call of ``fns[k]``, off the clock and
    before the pause: the harness's own work (putting a model back to its initial
    weights), which is no library's and which would otherwise weigh on the shortest
    calls alone."""
    setups = setups or {}
    for k, fn in fns.items():
        for _ in range(warmup):
            setups.get(k, _nothing)()
            fn()
    times = {k: [] for k in fns}
    waits = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            setups.get(k, _nothing)()
            waits[k].append(PAUSE())
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    SAMPLES.append(times)
    WAITS.append(waits)
    return {k: statistics.median(v) for k, v in times.items()}


def _nothing() -> None:
    """The setup of a timed call that needs none."""


SAMPLES: list = []  # every _median_times call's per-round seconds, for --samples
WAITS: list = []  # and the pause before each of those calls


def machine_state(pause: float = 0.2, rounds: int = 7) -> tuple[float, float]:
    """Median seconds to read one float from each of 4096 pages (16 MiB) right after
    reading them all (warm) and after an idle ``pause`` (cold), as every timed call started
    until the eighteenth session (``--pause 0.2`` still does). On this shared virtual
    machine the cold read took 0.4-13 ms within one day while the warm one stayed at
    ~0.03 ms: what a pause costs then
    (caches and translations evicted by other guests) falls on every implementation,
    most heavily on the shortest calls (W4's epoch, W5's fit). Printed with each run, so
    that runs in different hours can be told apart."""
    data = np.ones((16 << 20) // 8)
    per_page = 4096 // data.itemsize

    def touch() -> float:
        t0 = time.perf_counter()
        data[::per_page].sum()
        return time.perf_counter() - t0

    touch()
    warm = statistics.median(touch() for _ in range(rounds))
    cold = []
    for _ in range(rounds):
        time.sleep(pause)
        cold.append(touch())
    return warm, statistics.median(cold)


def machine_state_line() -> str:
    warm, cold = machine_state()
    return (
        f"machine state: 4096 pages read in {cold * 1e3:.2f} ms after a 0.2 s pause "
        f"({warm * 1e3:.3f} ms warm)"
    )


def _try_import(name):
    try:
        return __import__(name)
    except ImportError:
        return None


# ----- a plain NumPy training loop (what one writes by hand) ---------------------------------
_ACT = {
    "relu": (lambda z: np.maximum(z, 0), lambda z: (z > 0).astype(z.dtype)),
    "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    "identity": (lambda z: z, lambda z: np.ones_like(z)),
}


def numpy_epoch(params, acts, loss, X, T, batch, lr, momentum, rng):
    """One epoch of minibatch SGD with momentum; rows are samples (x @ W.T)."""
    vel = params.setdefault("_vel", [(np.zeros_like(W), np.zeros_like(b)) for W, b in params["Wb"]])
    order = rng.permutation(len(X))
    for s in range(0, len(X), batch):
        idx = order[s : s + batch]
        x, t = X[idx], T[idx]
        ins, zs = [], []
        for (W, b), a in zip(params["Wb"], acts):
            ins.append(x)
            z = x @ W.T + b
            zs.append(z)
            x = _ACT[a][0](z)
        n = len(idx)
        if loss == "softmax_cross_entropy":
            e = np.exp(x - x.max(axis=1, keepdims=True))
            dy = (e / e.sum(axis=1, keepdims=True) - t) / n
        else:
            dy = (x - t) / n
        for j in reversed(range(len(acts))):
            W, b = params["Wb"][j]
            dz = dy * _ACT[acts[j]][1](zs[j])
            dW, db = dz.T @ ins[j], dz.sum(axis=0)
            if j:
                dy = dz @ W
            vW, vb = vel[j]
            vW *= momentum
            vW += dW
            vb *= momentum
            vb += db
            W -= lr * vW
            b -= lr * vb


def make_densa(sizes, acts, loss, backend, seed=0):
    layers = [densa.Dense(a, b, act) for a, b, act in zip(sizes[:-1], sizes[1:], acts)]
    return densa.Network(layers, loss=loss, dtype="float32", backend=backend, seed=seed)


def make_torch(torch, net):
    mods = []
    for layer in net.layers:
        mods.append(torch.nn.Linear(layer.n_in, layer.n_out))
        if layer.activation == "relu":
            mods.append(torch.nn.ReLU())
        elif layer.activation == "tanh":
            mods.append(torch.nn.Tanh())
    model = torch.nn.Sequential(*mods)
    load_torch(torch, model, [(layer.W, layer.b) for layer in net.layers])  # densa's weights
    return model


def load_torch(torch, model, weights):
    """Copy (W, b) pairs, densa's layout, into the model's Linear layers in order."""
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for lin, (W, b) in zip(linears, weights):
            lin.weight.copy_(torch.from_numpy(W))
            lin.bias.copy_(torch.from_numpy(b))


def torch_epoch(torch, model, opt, lossfn, Xt, Tt, batch, gen):
    order = torch.randperm(len(Xt), generator=gen)
    for s in range(0, len(Xt), batch):
        idx = order[s : s + batch]
        opt.zero_grad(set_to_none=True)
        out = model(Xt[idx])
        lossfn(out, Tt[idx]).backward()
        opt.step()


def sklearn_from_densa(est, net, X, y, partial=False, classes=None):
    """Start a scikit-learn MLP from densa's initial weights; returns ``reset()``.

    scikit-learn takes no initial weights as an argument, but it allows them this way:
    a one-batch priming call sets up the estimator's attributes, densa's W and b are
    then copied into ``coefs_`` / ``intercepts_`` (scikit-learn stores W transposed),
    and training continues from them: ``fit`` does so under ``warm_start=True`` (with a
    fresh optimizer), ``partial_fit`` always (its momentum holds one priming step).
    ``reset()`` copies densa's weights in again, into the same arrays, so that every
    timed fit starts from the same point. Checked here: after ``reset()`` both give the
    same outputs, and after a fit scikit-learn still trains those very arrays (it did
    not draw its own).
    """
    W0 = [(layer.W.copy(), layer.b.copy()) for layer in net.layers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning of the one-epoch priming fit
        if partial:
            est.partial_fit(X[:64], y[:64], **({"classes": classes} if classes is not None else {}))
        else:
            est.set_params(warm_start=True)
            max_iter = est.max_iter
            est.set_params(max_iter=1)
            est.fit(X, y)
            est.set_params(max_iter=max_iter)
    arrays = list(est.coefs_) + list(est.intercepts_)

    def reset():
        for c, i, (W, b) in zip(est.coefs_, est.intercepts_, W0):
            c[...] = W.T
            i[...] = b

    reset()
    probe = X[:50]
    mine = net.predict(probe)
    theirs = est.predict_proba(probe) if hasattr(est, "predict_proba") else est.predict(probe)
    theirs = np.asarray(theirs).reshape(mine.shape)
    if not np.allclose(mine, theirs, rtol=1e-3, atol=1e-5):
        raise RuntimeError("scikit-learn does not reproduce densa's initial outputs")

    def still_ours():
        return all(a is b for a, b in zip(arrays, list(est.coefs_) + list(est.intercepts_)))

    reset.still_ours = still_ours
    return reset


# ----- workloads -----------------------------------------------------------------------------
def bench_mlp(name, sizes, acts, loss, n, batch, lr, momentum, repeats, epochs_per_call, torch, sk):
    """Seconds per epoch of each implementation on one synthetic workload."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, sizes[0]), dtype=np.float32)
    if loss == "softmax_cross_entropy":
        y = rng.integers(0, sizes[-1], n)
        T = np.eye(sizes[-1], dtype=np.float32)[y]
    else:
        y = np.sin(X.sum(axis=1, keepdims=True)).astype(np.float32)
        T = y
    nat = make_densa(sizes, acts, loss, "native")
    ref = make_densa(sizes, acts, loss, "reference")
    opt_n = densa.SGD(lr=lr, momentum=momentum)
    opt_r = densa.SGD(lr=lr, momentum=momentum)
    npp = {"Wb": [(layer.W.copy(), layer.b.copy()) for layer in nat.layers]}
    np_rng = np.random.default_rng(1)
    fns = {
        "densa native": lambda: nat.fit(
            X, y, epochs=epochs_per_call, batch_size=batch, optimizer=opt_n, progress=False
        ),
        "densa reference": lambda: ref.fit(
            X, y, epochs=epochs_per_call, batch_size=batch, optimizer=opt_r, progress=False
        ),
        "NumPy loop": lambda: [
            numpy_epoch(npp, acts, loss, X, T, batch, lr, momentum, np_rng)
            for _ in range(epochs_per_call)
        ],
    }
    if torch is not None:
        model = make_torch(torch, nat)
        topt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
        Xt = torch.from_numpy(X)
        if loss == "softmax_cross_entropy":
            lossfn, Tt = torch.nn.CrossEntropyLoss(), torch.from_numpy(y)
        else:
            # densa's mse is 1/(2N) Σ||.||²: half of torch's MSELoss for one output.
            lossfn, Tt = (
                (lambda o, t: 0.5 * torch.nn.functional.mse_loss(o, t)),
                torch.from_numpy(T),
            )
        gen = torch.Generator().manual_seed(0)
        fns["PyTorch"] = lambda: [
            torch_epoch(torch, model, topt, lossfn, Xt, Tt, batch, gen)
            for _ in range(epochs_per_call)
        ]
    if sk is not None:
        from sklearn.neural_network import MLPClassifier, MLPRegressor

        kind = MLPClassifier if loss == "softmax_cross_entropy" else MLPRegressor
        est = kind(
            hidden_layer_sizes=sizes[1:-1],
            activation=acts[0],
            solver="sgd",
            learning_rate_init=lr,
            momentum=momentum,
            nesterovs_momentum=False,
            batch_size=batch,
            alpha=0.0,
            shuffle=True,
            random_state=0,
        )
        yk = y if loss == "softmax_cross_entropy" else y.ravel()
        classes = np.arange(sizes[-1]) if kind is MLPClassifier else None
        sklearn_from_densa(est, nat, X, yk, partial=True, classes=classes)

        def sk_fit():
            for _ in range(epochs_per_call):
                est.partial_fit(X, yk)

        fns["scikit-learn"] = sk_fit
    med = _median_times(fns, repeats)
    return {k: v / epochs_per_call for k, v in med.items()}


# W5 test accuracy: every implementation is trained from ACCURACY_INITS initialisations,
# each with ACCURACY_SHUFFLES sample orders. One run's accuracy moves by 0.003-0.005 (one
# or two of the 450 test digits) with the initial weights, and as much with the order the
# samples are drawn in; averaging over both is what lets implementations be compared.
# The target's comparison, densa native against scikit-learn from the same initial
# weights, gets PAIRED_SHUFFLES orders per initialisation: with 40 runs its standard
# error (~0.0008) was as large as the differences it was to tell apart.
ACCURACY_INITS = 10
ACCURACY_SHUFFLES = 4
PAIRED_SHUFFLES = 16
PAIRED = ("densa native", "scikit-learn")
W5_SIZES, W5_ACTS, W5_LOSS = [64, 64, 10], ["relu", "identity"], "softmax_cross_entropy"
# scikit-learn's MLPClassifier for W5, but for its random_state: densa's network, SGD
# (lr 0.1, plain momentum 0.9), batch and 30 epochs, without L2 or an early stop.
W5_SKLEARN = {
    "hidden_layer_sizes": (64,),
    "solver": "sgd",
    "learning_rate_init": 0.1,
    "momentum": 0.9,
    "nesterovs_momentum": False,
    "batch_size": 32,
    "max_iter": 30,
    "alpha": 0.0,
    "tol": 0.0,
    "n_iter_no_change": 1000,
}


def bench_digits(repeats, sk, torch):
    """W5: fit seconds (initialisation 0, order 0), test accuracies over
    ACCURACY_INITS x ACCURACY_SHUFFLES runs per implementation (see above), and each
    timed round's two_cores factor and round trip, measured right after densa's call."""
    if sk is None:
        return None
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)

    def densa_net(init):
        return make_densa(W5_SIZES, W5_ACTS, W5_LOSS, "native", seed=init)

    def shuffle_seed(shuffle):
        return 1000 + shuffle  # the sample orders' seeds, apart from the initialisations'

    def score(labels):
        return float(np.mean(labels == yte))

    def densa_train(net, shuffle, rng=None):
        """Fit, then the test set's predicted labels."""
        # fit draws its orders from net.rng
        net.rng = np.random.default_rng(shuffle_seed(shuffle)) if rng is None else rng
        net.fit(
            Xtr,
            ytr,
            epochs=30,
            batch_size=32,
            optimizer=densa.SGD(0.1, momentum=0.9),  # a fresh optimizer, as scikit-learn's
            progress=False,
        )
        return net.predict_classes(Xte)

    # The timed calls of every implementation start from a model built before the clock
    # starts and put back to initialisation 0's weights before each call, off the clock
    # (each implementation's setup in _median_times): scikit-learn's estimator is primed
    # once (sklearn_from_densa), so densa's network and PyTorch's module are built once
    # too. A timed call is the library's fit and its predict of the test set; scoring the
    # predictions is the harness's, also off the clock. (Until the twentieth session the
    # resets and the scoring were on the clock: ~1 ms each of densa's ~14 ms right after
    # the pause, and nothing measurable of scikit-learn's ~0.3 s.)
    timed_net = densa_net(0)
    timed_init = [(layer.W.copy(), layer.b.copy()) for layer in timed_net.layers]
    # The timed call's generator is put back to order 0's state like the weights, rather
    # than built again (a new Generator, SeedSequence and PCG64, took 2-8 ms right after
    # the pause on the seventeenth/eighteenth sessions' machine). check_timed_resets checks
    # that the orders match.
    timed_rng = np.random.default_rng(shuffle_seed(0))
    timed_rng_state = timed_rng.bit_generator.state

    def densa_reset():
        for layer, (W, b) in zip(timed_net.layers, timed_init):
            layer.W[...] = W
            layer.b[...] = b
        timed_rng.bit_generator.state = timed_rng_state

    def densa_timed():
        return densa_train(timed_net, 0, timed_rng)

    def densa_fit(init=None, shuffle=0, sklearn_init=False):
        """Test accuracy of a fit from initialisation ``init``, sample orders ``shuffle``
        (init None: the timed call's network, reset first)."""
        if init is None:
            densa_reset()
            return score(densa_timed())
        net = densa_net(init)
        if sklearn_init:
            # scikit-learn's scheme: Glorot-uniform weights AND biases, U(-a, a) with
            # a = sqrt(6 / (n_in + n_out)), for every layer.
            for layer in net.layers:
                a = np.sqrt(6.0 / (layer.n_in + layer.n_out))
                layer.W[...] = net.rng.uniform(-a, a, layer.W.shape)
                layer.b[...] = net.rng.uniform(-a, a, layer.b.shape)
        return score(densa_train(net, shuffle))

    def sk_estimator(init, shuffle, own_init=False):
        """scikit-learn's MLP for W5, from densa's initial weights for `init` (the
        benchmark's rule: "same initial weights where the library allows") or from its
        own draw; returns (estimator, reset), reset() restoring the initial weights."""
        est = MLPClassifier(
            **W5_SKLEARN,
            # the sample orders; also the initialisation when it draws its own
            random_state=shuffle_seed(shuffle) + (init * 100 if own_init else 0),
        )
        if own_init:
            return est, None
        return est, sklearn_from_densa(est, densa_net(init), Xtr, ytr)

    def sk_predict(est):
        """Fit, then the test set's predicted labels."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: 30 epochs is the workload
            est.fit(Xtr, ytr)
        return est.predict(Xte)

    def sk_train(est, reset):
        if reset is not None:
            reset()
        labels = sk_predict(est)
        if reset is not None and not reset.still_ours():
            raise RuntimeError("scikit-learn re-initialised its weights under warm_start")
        return score(labels)

    timed_est, timed_est_reset = sk_estimator(0, 0)  # built once, off the clock

    def sk_reset():
        if not timed_est_reset.still_ours():  # after the last timed call, if any
            raise RuntimeError("scikit-learn re-initialised its weights under warm_start")
        timed_est_reset()

    def sk_fit(init=None, shuffle=0, own_init=False):
        if init is None:  # the timed call's estimator
            return sk_train(timed_est, timed_est_reset)
        return sk_train(*sk_estimator(init, shuffle, own_init))

    fits = {"densa native": densa_fit, "scikit-learn": sk_fit}
    # Right after densa's timed call, off the clock (scikit-learn's setup, before its
    # pause), a densa-free probe says whether the machine gave two threads two cores
    # then (benchmarks/two_cores.py): densa's fit splits its hidden layer between two
    # threads, scikit-learn's runs on one, so rounds in which the host gives the two
    # vCPUs one core's worth slow densa alone.
    probe, round_trip = two_cores.CoreProbe(), two_cores.RoundTrip()
    factors: list[float] = []
    trips: list[float] = []

    def sk_setup():
        factors.append(probe.sample())
        trips.append(round_trip.measure())
        sk_reset()

    timed = {
        "densa native": (densa_reset, densa_timed),
        "scikit-learn": (sk_setup, lambda: sk_predict(timed_est)),
    }
    if torch is not None:
        timed_model = make_torch(torch, timed_net)  # timed_net still holds its initial weights

        def torch_train(model, gen):
            """Fit, then the test set's predicted labels."""
            opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            Xt, yt = torch.from_numpy(Xtr), torch.from_numpy(ytr)
            for _ in range(30):
                torch_epoch(torch, model, opt, torch.nn.CrossEntropyLoss(), Xt, yt, 32, gen)
            with torch.no_grad():
                return model(torch.from_numpy(Xte)).argmax(1).numpy()

        timed_gen = []  # the timed call's generator, made by its setup

        def torch_reset():
            load_torch(torch, timed_model, timed_init)
            timed_gen[:] = [torch.Generator().manual_seed(shuffle_seed(0))]

        def torch_fit(init=None, shuffle=0):
            if init is None:  # the timed call's module
                torch_reset()
                return score(torch_train(timed_model, timed_gen[0]))
            gen = torch.Generator().manual_seed(shuffle_seed(shuffle))
            return score(torch_train(make_torch(torch, densa_net(init)), gen))

        fits["PyTorch"] = torch_fit
        timed["PyTorch"] = (torch_reset, lambda: torch_train(timed_model, timed_gen[0]))
    check_timed_resets(densa_fit, densa_net, densa_train, timed_net, fits.get("PyTorch"))
    with round_trip:
        med = _median_times(
            {k: fn for k, (_, fn) in timed.items()},
            repeats,
            setups={k: setup for k, (setup, _) in timed.items()},
        )
    runs = [(i, s) for i in range(ACCURACY_INITS) for s in range(ACCURACY_SHUFFLES)]
    paired = [(i, s) for i in range(ACCURACY_INITS) for s in range(PAIRED_SHUFFLES)]
    acc = {k: [f(i, s) for i, s in (paired if k in PAIRED else runs)] for k, f in fits.items()}
    acc["scikit-learn, own init"] = [sk_fit(i, s, own_init=True) for i, s in runs]
    acc["densa, scikit-learn's init scheme"] = [densa_fit(i, s, sklearn_init=True) for i, s in runs]
    return med, acc, factors[-repeats:], trips[-repeats:]  # the timed rounds' (not the warm-up's)


def check_timed_resets(densa_fit, densa_net, densa_train, timed_net, torch_fit):
    """W5's timed calls reuse one model each, reset before each call: check that a reset
    leaves nothing of the previous fit behind (weights, optimizer state, sample orders).
    Two timed densa fits in a row end with the same weights as a fit of a network built
    afresh; PyTorch's timed fit reaches the accuracy of one on a module built afresh."""
    fresh = densa_net(0)
    densa_train(fresh, 0)
    for _ in range(2):
        densa_fit()
        for mine, theirs in zip(timed_net.layers, fresh.layers):
            if not (np.array_equal(mine.W, theirs.W) and np.array_equal(mine.b, theirs.b)):
                raise RuntimeError("W5: densa's timed fit does not start from initialisation 0")
    if torch_fit is not None and not torch_fit() == torch_fit() == torch_fit(0, 0):
        raise RuntimeError("W5: PyTorch's timed fit does not start from initialisation 0")


def bench_layer(m_in, m_out, n, repeats):
    """K1/K2: one relu layer forward + backward, densa native vs NumPy doing the same."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((m_out, m_in), dtype=np.float32) * 0.05
    b = rng.standard_normal(m_out, dtype=np.float32)
    x = rng.standard_normal((n, m_in), dtype=np.float32)
    dy = rng.standard_normal((n, m_out), dtype=np.float32)
    nat = densa.native if hasattr(densa, "native") else __import__("densa.native").native

    def native_fb():
        z, _ = nat.dense_forward(W, b, x, "relu")
        nat.dense_backward(W, x, z, dy, "relu")

    def numpy_fb():
        z = x @ W.T + b
        np.maximum(z, 0)
        dz = dy * (z > 0)
        dz.T @ x
        dz.sum(axis=0)
        dz @ W

    reps = max(repeats, int(2e9 / (6 * m_in * m_out * n)))  # enough calls to time small layers
    fns = {"densa native": native_fb, "NumPy": numpy_fb}
    for fn in fns.values():
        fn()
    times = {k: [] for k in fns}
    inner = max(1, reps // 20)
    for _ in range(20):
        for k, fn in fns.items():
            # NumPy's OpenBLAS workers spin for a while after each call and take a core
            # from whatever runs next (densa's pool sleeps instead): each sample starts
            # once they have stopped (Pause).
            PAUSE()
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            times[k].append((time.perf_counter() - t0) / inner)
    med = {k: statistics.median(v) for k, v in times.items()}
    flops = 6.0 * m_in * m_out * n
    return {k: (v, flops / v / 1e9) for k, v in med.items()}


_MEMORY_CHILD = r"""
import json, numpy as np, densa
rng = np.random.default_rng(0)
def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
base = rss_mib()
X = rng.standard_normal((60000, 784), dtype=np.float32); y = rng.integers(0, 10, 60000)
data = (X.nbytes + y.nbytes) / 2**20
layers = [densa.Dense(784, 256), densa.Dense(256, 128), densa.Dense(128, 10, "identity")]
net = densa.Network(layers, loss="softmax_cross_entropy", seed=0)
net.fit(X, y, epochs=1, batch_size=64, optimizer=densa.SGD(0.05, momentum=0.9), progress=False)
# VmHWM, not ru_maxrss: ru_maxrss survives fork + exec and would report the parent's peak.
peak = int([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]) / 1024
print(json.dumps({"base": base, "data": data, "peak": peak}))
"""


def bench_memory():
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_CHILD], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # last line: a dev build may log


def bench_import(repeats=7):
    code = "import time; t=time.perf_counter(); import densa; print(time.perf_counter()-t)"
    times = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout.split()[-1]
        )
        for _ in range(repeats)
    ]
    return statistics.median(times)


def core_lines(factors: list, trips: list, times: dict, samples: bool) -> list[str]:
    """W5's rounds by what the machine gave two threads (two_cores.state of the readings
    taken right after densa's call): per state, the rounds, each side's median and
    densa's ratio there. Information beside the target, which counts every round."""
    lines = [
        "  what the machine gave two threads, right after densa's call in each round "
        "(benchmarks/two_cores.py): together = two cores sharing a cache, apart = two "
        "cores sharing none (round trip > "
        f"{two_cores.APART_ABOVE * 1e9:.0f} ns), one core = one core's worth"
    ]
    if samples:
        lines.append("    factors " + " ".join(f"{f:.2f}" for f in factors))
        lines.append("    trip ns " + " ".join(f"{t * 1e9:4.0f}" for t in trips))
    groups = two_cores.by_state(factors, trips, **times)
    for state, g in groups.items():
        base = g["densa native"]
        others = ", ".join(
            f"{k} {v:.4f} s ({v / base:.2f}x)"
            for k, v in g.items()
            if k not in ("rounds", "densa native")
        )
        lines.append(
            f"    {state:10s} {g['rounds']:2d} rounds: densa native {base:.4f} s, {others}"
        )
    return lines


def lower_quartiles(times: dict) -> dict:
    """Each implementation's lower quartile of its rounds (NumPy's linear percentile),
    and densa native's advantage there: {name: (seconds, ratio to densa native)}.

    On this shared machine a round that falls in a slow stretch costs whichever
    implementation it hits up to 2x, and the medians compare whatever stretches each
    side's rounds fell in. The lower quartiles compare rounds run at full speed.
    """
    q = {k: float(np.percentile(np.asarray(v, dtype=float), 25)) for k, v in times.items()}
    base = q["densa native"]
    return {k: (v, v / base) for k, v in q.items()}


def print_samples(enabled, per=1):
    """The last benchmark's per-round seconds (divided by ``per`` epochs per call), and
    each side's lower quartile of them."""
    if enabled and SAMPLES:
        for k, v in SAMPLES[-1].items():
            print(f"    rounds {k:16s} " + " ".join(f"{t / per:.4f}" for t in v))
        waits = WAITS[-1] if WAITS else {}
        if waits:
            print(
                "    pause before each call, median (max): "
                + ", ".join(
                    f"{k} {statistics.median(v) * 1e3:.0f} ms ({max(v) * 1e3:.0f})"
                    for k, v in waits.items()
                )
            )
        quartiles = lower_quartiles(SAMPLES[-1])
        print(
            "    lower quartiles (rounds at full speed): "
            + ", ".join(
                f"{k} {q / per:.4f}" + ("" if k == "densa native" else f" ({r:.2f}x)")
                for k, (q, r) in quartiles.items()
            )
        )


# Issue 4's targets: (what is measured, the bound, whether it is a lower bound).
TARGETS = {
    "W3": ("x faster than PyTorch", 2.5, True),
    "W4": ("x faster than PyTorch", 100.0, True),
    "W5": ("x faster than scikit-learn", 25.0, True),
    "W5 accuracy": ("densa - scikit-learn, paired, in standard errors", -2.0, True),
    "K1": ("x NumPy's speed", 0.95, True),
    "K2": ("x faster than NumPy", 2.0, True),
    "MEM": ("MiB beyond the data", 60.0, False),
    "IMPORT": ("s for import densa", 0.3, False),
}


# Printed in the summary beside the targets, not targets themselves: W5's rounds split
# by what the machine gave two threads (core_lines).
INFO = {
    "W5 together": "x faster than scikit-learn, in W5's rounds on two cores sharing a cache",
    "W5 rounds": "W5's timed rounds in which the machine gave less",
}


def target_lines(values: dict) -> list[str]:
    """One line per target measured in a run: its value, the bound and met / missed.

    W5's accuracy counts as met unless densa's paired mean is more than two standard
    errors below scikit-learn's: "no worse" within what 160 runs can tell apart.
    """
    lines = []
    for key, (what, bound, lower) in TARGETS.items():
        if key not in values:
            continue
        v = values[key]
        met = v >= bound if lower else v <= bound
        sign = ">=" if lower else "<="
        lines.append(
            f"  {key:12s} {v:9.3f} {what} (target {sign} {bound:g}): "
            + ("met" if met else "MISSED")
        )
    return lines


def runs_summary(runs: list[dict]) -> list[str]:
    """Per target, every run's value and how many runs met it."""
    lines = [f"SUMMARY of {len(runs)} runs (value per run; runs that met the target)"]
    for key, (what, bound, lower) in TARGETS.items():
        vals = [r[key] for r in runs if key in r]
        if not vals:
            continue
        met = sum(v >= bound if lower else v <= bound for v in vals)
        sign = ">=" if lower else "<="
        lines.append(
            f"  {key:12s} {' '.join(f'{v:8.3f}' for v in vals)}   {met}/{len(vals)} met "
            f"({what}, target {sign} {bound:g})"
        )
    for key, what in INFO.items():
        vals = [r[key] for r in runs if key in r]
        if vals:
            shown = " ".join(f"{v:8.3f}" for v in vals)
            lines.append(f"  {key:12s} {shown}   ({what}; not a target)")
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions")
    p.add_argument("--only", nargs="*", default=None, help="subset of W3 W4 W5 K1 K2 MEM IMPORT")
    p.add_argument(
        "--samples", action="store_true", help="also print every round's seconds (the noise)"
    )
    p.add_argument(
        "--runs",
        type=int,
        default=1,
        help="run the whole suite this many times, then print a summary of the targets",
    )
    p.add_argument(
        "--pause",
        default="auto",
        help="before each timed call: 'auto' (default) waits until the other threads are "
        "idle; a number of seconds sleeps that long (0.2 was the method until the "
        "eighteenth session)",
    )
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error(f"--runs must be at least 1, got {args.runs}")
    global PAUSE
    if args.pause == "auto":
        PAUSE = Pause()
    else:
        try:
            seconds = float(args.pause)
        except ValueError:
            p.error(f"--pause: expected 'auto' or seconds, got {args.pause!r}")
        if not (0.0 <= seconds <= 60.0):
            p.error(f"--pause: seconds must be between 0 and 60, got {args.pause}")
        PAUSE = Pause(seconds)
    want = set(args.only) if args.only else {"W3", "W4", "W5", "K1", "K2", "MEM", "IMPORT"}
    torch, sk = _try_import("torch"), _try_import("sklearn")
    if torch is not None:
        torch.set_num_threads(os.cpu_count() or 1)
    r = 3 if args.quick else 7
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, NumPy {np.__version__}, "
        f"torch {getattr(torch, '__version__', 'absent')}, "
        f"scikit-learn {getattr(sk, '__version__', 'absent')}, densa {densa.__version__}"
    )
    if hasattr(densa, "show_config"):
        densa.show_config()
    print(f"timing: interleaved rounds, medians; {PAUSE.describe()}")
    runs = []
    for i in range(args.runs):
        print(f"\n== run {i + 1} of {args.runs}" if args.runs > 1 else "")
        print(machine_state_line())
        values = run_suite(args, want, torch, sk, r)
        print(machine_state_line())
        print("TARGETS")
        print("\n".join(target_lines(values)))
        runs.append(values)
    if args.runs > 1:
        print()
        print("\n".join(runs_summary(runs)))


def run_suite(args, want, torch, sk, r) -> dict:
    """One run of the workloads in ``want``, printed as it goes; returns each target's value."""
    values: dict = {}

    def ratio_line(title, med, unit_scale=1.0, unit="s"):
        base = med["densa native"]
        print(title)
        for k, v in med.items():
            speed = v / base
            print(
                f"  {k:16s} {v * unit_scale:12.4f} {unit}   densa native is {speed:7.2f}x faster"
                if k != "densa native"
                else f"  {k:16s} {v * unit_scale:12.4f} {unit}"
            )

    if "W3" in want:
        med = bench_mlp(
            "W3",
            [784, 256, 128, 10],
            ["relu", "relu", "identity"],
            "softmax_cross_entropy",
            60000,
            64,
            0.05,
            0.9,
            2 * r + 1,  # the noisiest workload (15 rounds): more samples for its medians
            1,
            torch,
            sk,
        )
        ratio_line("W3 784-256-128-10 relu, batch 64, 60 000 samples: seconds per epoch", med)
        print_samples(args.samples)
        if "PyTorch" in med:
            values["W3"] = med["PyTorch"] / med["densa native"]
    if "W4" in want:
        med = bench_mlp(
            "W4",
            [2, 16, 16, 1],
            ["tanh", "tanh", "identity"],
            "mse",
            2000,
            8,
            0.05,
            0.9,
            r,
            5,
            torch,
            sk,
        )
        ratio_line("W4 2-16-16-1 tanh, mse, batch 8, 2 000 samples: seconds per epoch", med)
        print_samples(args.samples, per=5)
        if "PyTorch" in med:
            values["W4"] = med["PyTorch"] / med["densa native"]
    if "W5" in want:
        # 21 rounds: a round costs under a second, and W5's ratio rests on densa's ~10 ms
        # fits, which one slow stretch of a vCPU moves by a third.
        res = bench_digits(3 * r, sk, torch)
        if res is None:
            print("W5 skipped: scikit-learn absent")
        else:
            med, acc, factors, trips = res
            ratio_line("W5 digits 64-64-10, 30 epochs: fit seconds", med)
            print_samples(args.samples)
            print("\n".join(core_lines(factors, trips, SAMPLES[-1], args.samples)))
            print(
                f"  test accuracy, mean (standard error of the mean) over runs from "
                f"{ACCURACY_INITS} initialisations x sample orders:"
            )
            for k, v in acc.items():
                se = np.std(v, ddof=1) / np.sqrt(len(v))
                print(f"    {k:34s} {np.mean(v):.4f} ({se:.4f})  {len(v)} runs")
            # Run j of both started from the same weights: the paired difference.
            d = np.array(acc["densa native"]) - np.array(acc["scikit-learn"])
            d_se = np.std(d, ddof=1) / np.sqrt(len(d))
            print(
                "    densa native - scikit-learn (same initial weights, paired): "
                f"{d.mean():+.4f} ({d_se:.4f})"
            )
            values["W5"] = med["scikit-learn"] / med["densa native"]
            groups = two_cores.by_state(factors, trips, **SAMPLES[-1])
            values["W5 rounds"] = float(len(factors) - groups.get("together", {}).get("rounds", 0))
            if "together" in groups:
                g = groups["together"]
                values["W5 together"] = g["scikit-learn"] / g["densa native"]
            values["W5 accuracy"] = float(d.mean() / d_se) if d_se > 0 else 0.0
    for key, shape in (("K1", (1024, 1024, 512)), ("K2", (64, 64, 32))):
        if key in want:
            res = bench_layer(*shape, r)
            print(
                f"{key} one relu layer {shape[0]}->{shape[1]}, batch {shape[2]}, fwd+bwd "
                "(a pause before each sample):"
            )
            base = res["densa native"][0]
            for k, (t, gf) in res.items():
                extra = "" if k == "densa native" else f"   densa native is {t / base:.2f}x faster"
                print(f"  {k:16s} {t * 1e6:10.1f} us {gf:8.1f} GFLOP/s{extra}")
            values[key] = res["NumPy"][0] / base
    if "MEM" in want:
        m = bench_memory()
        extra = m["peak"] - m["base"] - m["data"]
        print(
            f"MEM W3 fit: baseline {m['base']:.0f} MiB, data {m['data']:.0f} MiB, peak "
            f"{m['peak']:.0f} MiB -> {extra:.0f} MiB beyond baseline + data (target <= 60)"
        )
        values["MEM"] = float(extra)
    if "IMPORT" in want:
        seconds = bench_import()
        print(f"IMPORT `import densa` in a fresh process: {seconds:.3f} s (median of 7)")
        values["IMPORT"] = seconds
    return values


if __name__ == "__main__":
    main()
