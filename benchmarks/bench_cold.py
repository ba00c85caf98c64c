"""Where densa's shortest timed calls go: W4's fit and W5's fit + predict, each timed as
bench_suite.py times it ("cold": after the other libraries' calls and the suite's pause)
and again right after the same call ("warm"), split into parts.

The suite's W4 and W5 ratios rest on calls of a few milliseconds, which the shared
machine makes slower after other work than alone. This script says which part of such
a call grows, in one run, so that a slow stretch of the machine can be told from a
change in densa:

- ``fit's Python``: fit's own Python around the trainer (argument checks, data and
  optimizer preparation, the finite copy, the history);
- ``constructor``: the native trainer's construction (its workspaces);
- ``trainer calls``: the native trainer calls (``run``, ``run_epochs``, or ``fit`` when
  the whole fit is one call), minus the epochs they ran;
- ``epoch 1``, ``later epochs``: the epochs as the trainer times them in C++
  (``History.seconds``; later epochs: the mean of one);
- ``predict`` (W5): ``predict_classes`` of the test set;
- ``total``: the whole call (as the suite times it, without its harness);
- ``page faults``: the minor page faults the call took (a count, not ms; where the
  ``resource`` module exists): memory handed back to the system and faulted in again
  would show here, cold caches and translations would not.

Each round runs densa's cold call, the other implementations' calls, then densa's warm
call (a call, then the timed one) and the others again, each after bench_suite's pause;
medians over the rounds, and the cold − warm difference of each part paired by round.
The Python wrapper that times the trainer's calls adds ~1 us per call.

    python benchmarks/bench_cold.py                 # W4 and W5, 15 rounds
    python benchmarks/bench_cold.py --only W5 --rounds 21

torch (``pip install torch==2.13.0``) and scikit-learn are optional: without them the
cold calls follow fewer libraries than in the suite (said in the output).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import numpy as np

import bench_suite as bs
import densa
from densa import native

try:
    import resource
except ImportError:  # not a Unix system: no fault counts
    resource = None  # type: ignore[assignment]

PARTS = ("fit's Python", "constructor", "trainer calls", "epoch 1", "later epochs", "predict")


# Seconds of the native trainer's constructor and training calls during one timed call,
# summed per kind (``measured`` resets it).
RECORD = {"constructor": 0.0, "trainer calls": 0.0}


class TimedTrainer:
    """densa.native.Trainer whose constructor and training calls are timed into RECORD;
    everything else passes through."""

    def __init__(self, *args):
        t0 = time.perf_counter()
        self._inner = _native_trainer(*args)
        RECORD["constructor"] += time.perf_counter() - t0

    def _timed(self, name, *args):
        t0 = time.perf_counter()
        try:
            return getattr(self._inner, name)(*args)
        finally:
            RECORD["trainer calls"] += time.perf_counter() - t0

    def run(self, *args):
        return self._timed("run", *args)

    def run_epochs(self, *args):
        return self._timed("run_epochs", *args)

    def fit(self, *args):  # a whole plain fit in one call (Network._fit_once)
        return self._timed("fit", *args)

    def __getattr__(self, name):
        return getattr(self._inner, name)


_native_trainer = native.Trainer


def minor_faults() -> int:
    """This process's minor page faults so far (0 where the count is not available)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt if resource is not None else 0


def measured(net, fit, predict=None) -> dict[str, float]:
    """One call (``fit()``, then ``predict()`` if given) split into PARTS, in seconds,
    with its minor page faults."""
    RECORD.update(dict.fromkeys(RECORD, 0.0))
    faults = minor_faults()
    t0 = time.perf_counter()
    fit()
    t1 = time.perf_counter()
    if predict is not None:
        predict()
    t2 = time.perf_counter()
    faults = minor_faults() - faults
    rec = RECORD
    if rec["constructor"] == 0.0:
        raise RuntimeError(
            "no native trainer was built through TimedTrainer during the call: install it "
            "as densa.native.Trainer first (main does), or the parts would be wrong"
        )
    seconds = net.history.seconds
    epochs = sum(seconds)
    return {
        "fit's Python": (t1 - t0) - rec["constructor"] - rec["trainer calls"],
        "constructor": rec["constructor"],
        "trainer calls": rec["trainer calls"] - epochs,
        "epoch 1": seconds[0],
        "later epochs": (epochs - seconds[0]) / max(len(seconds) - 1, 1),
        "predict": t2 - t1,
        "total": t2 - t0,
        "page faults": faults,
    }


def w5_calls(torch, sk):
    """W5's timed densa call (with its reset, off the clock) and the suite's companions."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    Xtr, Xte, ytr, _ = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    net = bs.make_densa(bs.W5_SIZES, bs.W5_ACTS, bs.W5_LOSS, "native", seed=0)
    init = [(layer.W.copy(), layer.b.copy()) for layer in net.layers]
    rng = np.random.default_rng(1000)
    rng_state = rng.bit_generator.state

    def reset():
        for layer, (W, b) in zip(net.layers, init):
            layer.W[...] = W
            layer.b[...] = b
        rng.bit_generator.state = rng_state
        net.rng = rng

    def fit():
        net.fit(
            Xtr,
            ytr,
            epochs=30,
            batch_size=32,
            optimizer=densa.SGD(0.1, momentum=0.9),
            progress=False,
        )

    companions = {}
    if sk is not None:
        from sklearn.neural_network import MLPClassifier

        est = MLPClassifier(**bs.W5_SKLEARN, random_state=1000)
        sk_reset = bs.sklearn_from_densa(est, net, Xtr, ytr)

        def sk_call():
            sk_reset()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ConvergenceWarning: 30 epochs is the workload
                est.fit(Xtr, ytr)
            est.predict(Xte)

        companions["scikit-learn"] = sk_call
    if torch is not None:
        model = bs.make_torch(torch, net)
        Xt, yt = torch.from_numpy(Xtr), torch.from_numpy(ytr)

        def torch_call():
            bs.load_torch(torch, model, init)
            opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            gen = torch.Generator().manual_seed(1000)
            for _ in range(30):
                bs.torch_epoch(torch, model, opt, torch.nn.CrossEntropyLoss(), Xt, yt, 32, gen)
            with torch.no_grad():
                model(torch.from_numpy(Xte)).argmax(1)

        companions["PyTorch"] = torch_call
    return net, reset, fit, (lambda: net.predict_classes(Xte)), companions


def w4_calls(torch, sk):
    """W4's timed densa call (5 epochs, the optimizer's state carried over as in the
    suite) and the suite's companions."""
    sizes, acts, loss, lr, momentum, batch, epochs = (
        [2, 16, 16, 1],
        ["tanh", "tanh", "identity"],
        "mse",
        0.05,
        0.9,
        8,
        5,
    )
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2000, 2), dtype=np.float32)
    y = np.sin(X.sum(axis=1, keepdims=True)).astype(np.float32)
    net = bs.make_densa(sizes, acts, loss, "native")
    ref = bs.make_densa(sizes, acts, loss, "reference")
    opt, opt_ref = densa.SGD(lr, momentum=momentum), densa.SGD(lr, momentum=momentum)
    params = {"Wb": [(layer.W.copy(), layer.b.copy()) for layer in net.layers]}
    np_rng = np.random.default_rng(1)

    def fit():
        net.fit(X, y, epochs=epochs, batch_size=batch, optimizer=opt, progress=False)

    companions = {
        "densa reference": lambda: ref.fit(
            X, y, epochs=epochs, batch_size=batch, optimizer=opt_ref, progress=False
        ),
        "NumPy loop": lambda: [
            bs.numpy_epoch(params, acts, loss, X, y, batch, lr, momentum, np_rng)
            for _ in range(epochs)
        ],
    }
    if torch is not None:
        model = bs.make_torch(torch, net)
        topt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
        Xt, Tt = torch.from_numpy(X), torch.from_numpy(y)
        gen = torch.Generator().manual_seed(0)

        def mse(o, t):
            return 0.5 * torch.nn.functional.mse_loss(o, t)  # densa's mse: 1/(2N) Σ||.||²

        companions["PyTorch"] = lambda: [
            bs.torch_epoch(torch, model, topt, mse, Xt, Tt, batch, gen) for _ in range(epochs)
        ]
    if sk is not None:
        from sklearn.neural_network import MLPRegressor

        est = MLPRegressor(
            hidden_layer_sizes=sizes[1:-1],
            activation="tanh",
            solver="sgd",
            learning_rate_init=lr,
            momentum=momentum,
            nesterovs_momentum=False,
            batch_size=batch,
            alpha=0.0,
            shuffle=True,
            random_state=0,
        )
        bs.sklearn_from_densa(est, net, X, y.ravel(), partial=True)
        companions["scikit-learn"] = lambda: [est.partial_fit(X, y.ravel()) for _ in range(epochs)]
    return net, (lambda: None), fit, None, companions


def profile(name, calls, rounds) -> list[str]:
    """Rounds of [densa cold, companions, densa warm, companions]; the table's lines."""
    net, reset, fit, predict, companions = calls
    parts: dict[str, list[dict[str, float]]] = {"cold": [], "warm": []}

    def cold():
        parts["cold"].append(measured(net, fit, predict))

    def warm():
        fit()  # the same call just before: what it touches is then in cache
        if predict is not None:
            predict()
        reset()
        parts["warm"].append(measured(net, fit, predict))

    fns = {"cold": cold}
    fns.update({f"{k} 1": f for k, f in companions.items()})
    fns["warm"] = warm
    fns.update({f"{k} 2": f for k, f in companions.items()})
    bs._median_times(fns, rounds, setups={"cold": reset, "warm": reset})
    cold_parts, warm_parts = parts["cold"][1:], parts["warm"][1:]  # without the warm-up
    keys = [k for k in (*PARTS, "total") if predict is not None or k != "predict"]
    lines = [
        f"{name}: densa's timed call, ms (medians of {len(cold_parts)} rounds; cold after "
        f"{', '.join(companions) or 'nothing (no other library installed)'})",
        f"  {'part':14s} {'cold':>8s} {'warm':>8s} {'cold - warm':>12s}",
    ]
    for k in keys:
        c = statistics.median(p[k] for p in cold_parts)
        w = statistics.median(p[k] for p in warm_parts)
        d = statistics.median(p[k] - q[k] for p, q in zip(cold_parts, warm_parts))
        lines.append(f"  {k:14s} {c * 1e3:8.3f} {w * 1e3:8.3f} {d * 1e3:12.3f}")
    c, w = (statistics.median(p["page faults"] for p in ps) for ps in (cold_parts, warm_parts))
    lines.append(f"  {'page faults':14s} {c:8.0f} {w:8.0f}   (a count per call, not ms)")
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=15, help="rounds per workload (default 15)")
    p.add_argument("--only", nargs="*", default=None, help="subset of W4 W5")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error(f"--rounds must be at least 1, got {args.rounds}")
    want = set(args.only) if args.only else {"W4", "W5"}
    unknown = want - {"W4", "W5"}
    if unknown:
        p.error(f"--only: unknown workloads {sorted(unknown)} (choose from W4 W5)")
    torch, sk = bs._try_import("torch"), bs._try_import("sklearn")
    if torch is not None:
        torch.set_num_threads(os.cpu_count() or 1)  # as bench_suite.py
    print(f"timing: interleaved rounds, medians; {bs.PAUSE.describe()}")
    print(bs.machine_state_line())
    native.Trainer = TimedTrainer  # what Network.fit constructs on the native backend
    try:
        if "W4" in want:
            print("\n".join(profile("W4 (5 epochs per call)", w4_calls(torch, sk), args.rounds)))
        if "W5" in want:
            if sk is None:
                print("W5 skipped: scikit-learn absent (its digits are the data)")
            else:
                print("\n".join(profile("W5 (fit + predict)", w5_calls(torch, sk), args.rounds)))
    finally:
        native.Trainer = _native_trainer
    print(bs.machine_state_line())


if __name__ == "__main__":
    main()
