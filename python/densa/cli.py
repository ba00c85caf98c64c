"""The ``densa`` command line (also ``python -m densa``).

Subcommands: ``demo`` (the default), ``train``, ``predict``, ``gradcheck``, ``bench``;
``densa <command> --help`` describes each. Errors print one line to stderr, prefixed
``densa <command>: error:``, and exit with status 1 (2 for a bad command line); never a
traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any, NoReturn

import numpy as np

from . import __version__, _checks, demo, losses, tabular
from .layers import Dense
from .network import Network, TrainingDivergedError
from .optimizers import SGD, Adam, Optimizer

EXIT_ERROR = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse with errors on a single line (argparse prints usage and error on two)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class CommandError(ValueError):
    """A problem the user can fix, reported as one line."""


# ----- argument types ---------------------------------------------------------------------
def _parsed(text: str, convert: Callable[[str], Any], expected: str) -> Any:
    """``convert(text)``, or argparse's one-line error saying what was expected."""
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None


def _int_from(text: str, low: int, expected: str, expected_in_range: str) -> int:
    value: int = _parsed(text, int, expected)
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {expected_in_range}, got {value}")
    return value


def _float_where(text: str, ok: Callable[[float], bool], expected: str) -> float:
    value: float = _parsed(text, float, "a number")
    if not ok(value):  # NaN fails every comparison, so every range refuses it
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    return _int_from(text, 1, "a positive integer", "a positive integer")


def _non_negative_int(text: str) -> int:
    return _int_from(text, 0, "a whole number", "a whole number >= 0")


def _point_count(text: str) -> int:
    """The demo's --samples: two spiral arms need a point each."""
    value = _positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"expected at least 2 points (one per arm), got {value}")
    return value


def _positive_float(text: str) -> float:
    return _float_where(text, lambda v: math.isfinite(v) and v > 0, "a finite number > 0")


def _non_negative_float(text: str) -> float:
    return _float_where(text, lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")


def _unit_float(text: str) -> float:
    return _float_where(text, lambda v: 0 <= v < 1, "a number in [0, 1)")


def _sizes(text: str) -> list[int]:
    """``"64,32"`` -> [64, 32]; ``""`` or ``"none"`` -> [] (no hidden layer)."""
    if text.strip().lower() in ("", "none"):
        return []
    try:
        sizes = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated layer sizes such as 64,32, got {text!r}"
        ) from None
    if any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"layer sizes must be positive, got {text!r}")
    return sizes


# ----- parser -------------------------------------------------------------------------------
def _add_training_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epochs", type=_positive_int, default=20, help="passes over the data")
    p.add_argument("--batch-size", type=_positive_int, default=32, help="samples per update")
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    p.add_argument(
        "--lr",
        type=_positive_float,
        default=None,
        help="learning rate (default 0.001 for adam, 0.01 for sgd)",
    )
    p.add_argument("--momentum", type=_unit_float, default=None, help="sgd momentum (default 0.9)")
    p.add_argument(
        "--weight-decay",
        type=_non_negative_float,
        default=0.0,
        help="decay of the parameters per step, PyTorch's weight_decay (AdamW for adam)",
    )
    p.add_argument(
        "--l2",
        type=_non_negative_float,
        default=0.0,
        help="L2 penalty l2/(2 n_b)·Σ‖W‖² per batch of n_b samples, scikit-learn's alpha "
        "(weights only; the reported loss includes it)",
    )
    p.add_argument(
        "--patience",
        type=_non_negative_int,
        default=None,
        metavar="EPOCHS",
        help="stop when the loss (the validation loss with --validation-split) has not "
        "improved for more than EPOCHS epochs, and keep the best epoch's parameters",
    )
    p.add_argument("--seed", type=int, default=0, help="seeds initialization and shuffling")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--backend", choices=("native", "reference"), default="native")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="densa",
        description="densa: multilayer perceptrons with a C++/Eigen hot path beside a "
        "literal NumPy reference. Without a command, runs the demo.",
    )
    parser.add_argument("--version", action="version", version=f"densa {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="command")

    p = sub.add_parser(
        "demo",
        help="learn two spirals on both backends (the default)",
        description="A 2-64-64-2 relu network learns two interleaved spirals "
        "(generated in code) on the native backend, printing loss and accuracy "
        "per epoch, then again from the same seed on the NumPy reference; "
        "prints the final accuracy, each backend's time and how far apart "
        "their parameters ended. With matplotlib installed it saves the loss and "
        "accuracy curves and the decision boundary as PNG files.",
    )
    p.add_argument("--epochs", type=_positive_int, default=40)
    p.add_argument("--samples", type=_point_count, default=1000, help="spiral points")
    p.add_argument("--noise", type=float, default=0.03, help="jitter of the points")
    p.add_argument("--lr", type=_positive_float, default=0.005, help="Adam's learning rate")
    p.add_argument("--batch-size", type=_positive_int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--plots",
        metavar="DIR",
        default=os.path.join(tempfile.gettempdir(), "densa-demo"),
        help="folder for the PNG plots (default %(default)s; needs matplotlib)",
    )
    p.add_argument("--no-plots", action="store_true", help="save no plots")

    p = sub.add_parser(
        "train",
        help="train a network on a CSV, NPY or NPZ file",
        description="Train an MLP on DATA and save it. DATA is a CSV file with a header "
        "row, a 2-D .npy array, or a .npz holding arrays X and y. The loss decides "
        "classification or regression: by default ('auto') softmax cross-entropy when "
        "every target value is a whole number in 0..K-1 (K <= 100), else mse. Inputs are "
        "used as given: standardize them beforehand if their scales differ widely. A "
        "CSV's feature column names are saved with the model: 'densa predict' finds the "
        "columns by name.",
    )
    p.add_argument("data", metavar="DATA")
    p.add_argument(
        "--target",
        metavar="COL",
        help="target column: a name (CSV) or index (NPY); several, comma-separated, "
        "for multi-output mse; default the last column; ignored for NPZ",
    )
    p.add_argument(
        "--hidden",
        type=_sizes,
        default=[64, 32],
        metavar="SIZES",
        help="hidden layer sizes, comma-separated (default 64,32; 'none' for none)",
    )
    p.add_argument(
        "--activation",
        default=None,
        choices=[a for a in _checks.ACTIVATIONS if a != "linear"],
        help="hidden layers' activation (default relu)",
    )
    p.add_argument(
        "--loss",
        default="auto",
        choices=("auto", "mse", "softmax_cross_entropy", "binary_cross_entropy"),
    )
    p.add_argument(
        "--validation-split",
        type=_unit_float,
        default=0.0,
        help="hold out this last fraction of the rows for validation",
    )
    p.add_argument("--out", default="model.npz", help="model file to write (default model.npz)")
    _add_training_options(p)

    p = sub.add_parser(
        "predict",
        help="predict with a saved model",
        description="Predict with a model written by 'densa train' (or Network.save). "
        "Writes CSV: for softmax classification a 'class' column and one probability per "
        "class; for binary cross-entropy with one output 'class' and 'p1' (the positive "
        "class's probability), with several outputs one probability per output (p0, ...); "
        "for regression one column per output. With --out FILE.npy, writes net.predict's "
        "array instead. A model trained on a CSV file by 'densa train' knows its feature "
        "columns by name and takes them from a CSV DATA by name, in any order, ignoring "
        "other columns; otherwise every column of DATA is a feature, by position. --target "
        "names columns that are not features, to report loss and accuracy on (after the "
        "'wrote' line with --out, on standard error when the CSV goes to standard output).",
    )
    p.add_argument("model", metavar="MODEL")
    p.add_argument("data", metavar="DATA")
    p.add_argument("--target", metavar="COL", help="columns of DATA to score against, not features")
    p.add_argument(
        "--out", help="output file (.npy, or .csv / .txt for CSV); default standard output"
    )
    p.add_argument(
        "--backend",
        choices=("native", "reference"),
        default=None,
        help="override the backend stored in the model",
    )

    p = sub.add_parser(
        "gradcheck",
        help="check backpropagation: native vs reference vs finite differences",
        description="On random networks (one per loss), compare dW and db from the native "
        "and reference backends with each other and with central finite differences "
        "computed in float64, and print the per-layer table. Exits 1 if either backend's "
        "gradients fail the finite-difference check; the native-vs-reference differences "
        "are printed for reading, not judged.",
    )
    p.add_argument(
        "--sizes",
        type=_sizes,
        default=[4, 7, 6, 3],
        metavar="SIZES",
        help="layer sizes from input to output (default 4,7,6,3)",
    )
    p.add_argument(
        "--activation", default="tanh", choices=[a for a in _checks.ACTIVATIONS if a != "linear"]
    )
    p.add_argument("--samples", type=_positive_int, default=16)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser(
        "bench",
        help="time native against reference",
        description="Time one dense layer's forward + backward on both backends, then a "
        "short training run of the demo network; print milliseconds and the speed-up.",
    )
    p.add_argument("--size", type=_positive_int, default=256, help="layer width (in = out)")
    p.add_argument("--batch", type=_positive_int, default=256, help="samples per batch")
    p.add_argument("--repeat", type=_positive_int, default=20, help="timed repetitions")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    return parser


# ----- commands -----------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    result = demo.run(
        epochs=args.epochs,
        samples=args.samples,
        noise=args.noise,
        lr=args.lr,
        batch_size=args.batch_size,
        seed=args.seed,
        dtype=args.dtype,
        progress=not args.no_progress,
    )
    if not args.no_plots:
        _demo_plots(result, args.plots)
    return 0


def _demo_plots(result: demo.DemoResult, folder: str) -> None:
    """Save the native run's curves and decision boundary as PNGs in ``folder``."""
    try:
        import matplotlib  # noqa: F401

        from . import plot
    except ImportError:
        _say("plots: none saved (matplotlib is not installed: pip install 'densa[plot]')")
        return
    os.makedirs(folder, exist_ok=True)
    curves = os.path.join(folder, "densa-demo-history.png")
    boundary = os.path.join(folder, "densa-demo-boundary.png")
    plot.history(result.curves, curves)
    plot.decision_boundary(result.net, result.X, result.y, boundary)
    _say(f"plots saved: {curves} (loss and accuracy), {boundary} (decision boundary)")


def _choose_loss(requested: str, y: np.ndarray) -> tuple[str, int, str]:
    """(loss, outputs, why) for targets y."""
    n_targets = 1 if y.ndim == 1 else y.shape[1]
    whole = bool(np.all(y == np.round(y)))
    if requested == "auto":
        if n_targets == 1 and whole and y.min() >= 0 and y.max() < 100:
            k = int(y.max()) + 1
            if k >= 2:
                return (
                    "softmax_cross_entropy",
                    k,
                    f"auto: the target holds whole numbers 0..{k - 1}; pass --loss mse "
                    "for regression",
                )
        return "mse", n_targets, "auto: the target is not a class label 0..K-1"
    if requested == "softmax_cross_entropy":
        if n_targets != 1 or not whole or y.min() < 0:
            raise CommandError(
                "--loss softmax_cross_entropy needs one target column of "
                "class labels 0, 1, ..., K-1"
            )
        return requested, max(int(y.max()) + 1, 2), "as requested"
    if requested == "binary_cross_entropy" and not np.all((y == 0) | (y == 1)):
        raise CommandError("--loss binary_cross_entropy needs targets that are 0 or 1")
    return requested, n_targets, "as requested"


def _say(text: str) -> None:
    print(text, flush=True)


def _check_out(path: str) -> None:
    """Refuse an --out that cannot be written before training, not after every epoch."""
    if os.path.isdir(path) or path.endswith((os.sep, os.altsep or os.sep)):
        raise CommandError(f"--out {path} names a directory; name the model file to write")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CommandError(f"--out {path}: the directory {directory} does not exist")


def cmd_train(args: argparse.Namespace) -> int:
    # Options the chosen setup would silently ignore are refused: the user meant something.
    if args.momentum is not None and args.optimizer != "sgd":
        raise CommandError(
            f"--momentum is an option of --optimizer sgd; {args.optimizer} does not use it"
        )
    if args.activation is not None and not args.hidden:
        raise CommandError(
            "--activation sets the hidden layers' activation, but --hidden none makes none"
        )
    activation = args.activation or "relu"
    _check_out(args.out)
    table = tabular.read_table(args.data, args.target, require_target=True)
    assert table.y is not None  # require_target=True
    loss, n_out, why = _choose_loss(args.loss, table.y)
    sizes = [table.X.shape[1], *args.hidden, n_out]
    layers = [Dense(a, b, activation) for a, b in zip(sizes[:-2], sizes[1:-1])]
    # The output layer is linear: the cross-entropy losses apply softmax/sigmoid themselves.
    layers.append(Dense(sizes[-2], sizes[-1], "identity"))
    net = Network(layers, loss=loss, dtype=args.dtype, backend=args.backend, seed=args.seed)
    if table.named:
        # Saved with the model, so that predict can pick a CSV's columns by name.
        net.feature_names = table.features
    opt: Optimizer
    penalties = dict(weight_decay=args.weight_decay, l2=args.l2)
    if args.optimizer == "adam":
        opt = Adam(lr=args.lr or 1e-3, **penalties)
    else:
        momentum = 0.9 if args.momentum is None else args.momentum
        opt = SGD(lr=args.lr or 0.01, momentum=momentum, **penalties)
    y = table.y.astype(np.int64) if loss == "softmax_cross_entropy" else table.y
    _say(
        f"data: {args.data}: {table.X.shape[0]} samples, {table.X.shape[1]} features, "
        f"target {', '.join(table.targets)}"
    )
    _say(f"loss: {loss} ({why})")
    shape = "-".join(map(str, sizes))
    shape += f" {activation}" if args.hidden else " (no hidden layer: one identity layer)"
    _say(f"network: {shape}, {args.dtype}, {args.backend} backend, {opt!r}")

    def report(epoch: int, logs: dict[str, float]) -> None:
        parts = [f"epoch {epoch + 1}/{args.epochs}", f"loss {logs['loss']:.5g}"]
        parts += [f"{k} {logs[k]:.5g}" for k in ("val_loss", "val_accuracy") if k in logs]
        _say("  ".join(parts))

    history = net.fit(
        table.X,
        y,
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=opt,
        validation_split=args.validation_split,
        early_stopping=args.patience,
        progress=not args.no_progress,
        on_epoch_end=report,
    )
    if history.best_epoch is not None:
        watched = "validation loss" if args.validation_split else "loss"
        ended = (
            f"stopped early after epoch {history.epochs}"
            if history.stopped_early
            else f"ran all {history.epochs} epochs"
        )
        _say(f"{ended}; kept epoch {history.best_epoch + 1}'s parameters (best {watched})")
    scores = net.evaluate(table.X, y)
    _say("training set: " + ", ".join(f"{k} {v:.5g}" for k, v in scores.items()))
    net.save(args.out)
    _say(f"saved the model to {args.out}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    if args.out is not None and not str(args.out).lower().endswith((".npy", ".csv", ".txt")):
        raise CommandError(
            f"--out {args.out}: predict writes a .npy array or CSV text (.csv, .txt); "
            "name the file with one of those extensions"
        )
    net = Network.load(args.model)
    if args.backend:
        net.backend = args.backend
    # A model trained from a CSV knows its columns' names: a CSV's are then taken by name.
    features = getattr(net, "feature_names", None)
    table = tabular.read_table(args.data, args.target, require_target=False, features=features)
    if table.X.shape[1] != net.n_in:
        hint = "" if args.target else "; pass --target COL to leave the target column out"
        raise CommandError(
            f"{args.data} has {table.X.shape[1]} feature columns but the model "
            f"expects {net.n_in}{hint}"
        )
    scores = ""
    if table.y is not None:
        # Checked before anything is written, and named as the user knows the column.
        where = f"{args.data}, target {', '.join(table.targets)}"
        losses.encode_targets(net.loss, table.y, net.n_out, len(table.y), net.dtype, where)
        scored = net.evaluate(table.X, table.y)
        scores = ", ".join(f"{k} {v:.5g}" for k, v in scored.items())
    probabilities = net.predict(table.X)
    if args.out is not None and str(args.out).lower().endswith(".npy"):
        np.save(args.out, probabilities, allow_pickle=False)
    else:
        labels = None
        if net.loss != "mse":
            labels = net.predict_classes(table.X)
        names, values = tabular.prediction_table(net.loss, probabilities, labels)
        tabular.write_csv(names, values, args.out)
    if args.out is not None:
        line = f"wrote {len(probabilities)} predictions to {args.out}"
        _say(line + (f" ({scores})" if scores else ""))
    elif scores:
        # The predictions are on stdout, where the score line would corrupt the CSV.
        print(f"scores on {args.target}: {scores}", file=sys.stderr)
    return 0


def _gradcheck_data(
    loss: str, n: int, n_in: int, n_out: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    X = rng.standard_normal((n, n_in))
    if loss == "mse":
        return X, rng.standard_normal((n, n_out))
    if loss == "softmax_cross_entropy":
        return X, rng.integers(0, n_out, size=n)
    return X, rng.integers(0, 2, size=(n, n_out)).astype(np.float64)


def cmd_gradcheck(args: argparse.Namespace) -> int:
    from .gradcheck import check_gradients

    if len(args.sizes) < 2:
        raise CommandError("--sizes needs at least an input and an output size, e.g. 4,3")
    rng = np.random.default_rng(args.seed)
    all_ok = True
    for loss in ("mse", "softmax_cross_entropy", "binary_cross_entropy"):
        sizes = list(args.sizes)
        if loss == "softmax_cross_entropy" and sizes[-1] < 2:
            sizes[-1] = 2
        acts = [args.activation] * (len(sizes) - 2) + ["identity"]
        layers = [Dense(a, b, f) for a, b, f in zip(sizes[:-1], sizes[1:], acts)]
        net = Network(layers, loss=loss, dtype=args.dtype, seed=args.seed)
        X, y = _gradcheck_data(loss, args.samples, sizes[0], sizes[-1], rng)
        _say(
            f"\n== {loss}: {'-'.join(map(str, sizes))} {args.activation}, {args.samples} "
            f"samples, {args.dtype}"
        )
        grads = {}
        for backend in ("native", "reference"):
            net.backend = backend
            report = check_gradients(net, X, y)
            grads[backend] = net.gradients(X, y)
            all_ok &= report.ok
            _say(f"\n[{backend} backend vs finite differences]")
            _say(str(report))
        _say("\n[native vs reference] max |difference| per layer")
        for j, (gn, gr) in enumerate(zip(grads["native"], grads["reference"])):
            parts = []
            for q in ("dW", "db", "dx"):
                scale = max(float(np.max(np.abs(gr[q]))), np.finfo(gr[q].dtype).tiny)
                d = float(np.max(np.abs(gn[q] - gr[q])))
                parts.append(f"{q} {d:.2e} (rel {d / scale:.1e})")
            _say(f"layer {j}: " + "  ".join(parts))
    _say("\ngradcheck: " + ("every tensor within tolerance" if all_ok else "FAILED"))
    return 0 if all_ok else EXIT_ERROR


def _best_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up: first calls pay for imports and allocation
    best = math.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def cmd_bench(args: argparse.Namespace) -> int:
    from . import datasets, native, reference

    rng = np.random.default_rng(0)
    dt = np.dtype(args.dtype)
    W = (rng.standard_normal((args.size, args.size)) / math.sqrt(args.size)).astype(dt)
    b = np.zeros(args.size, dtype=dt)
    x = rng.standard_normal((args.batch, args.size)).astype(dt)
    dy = rng.standard_normal((args.batch, args.size)).astype(dt)
    flops = 3 * 2 * args.batch * args.size * args.size  # three products
    _say(f"densa bench ({args.dtype}); best of {args.repeat}")
    _say(f"\none dense layer {args.size}->{args.size} relu, batch {args.batch}: forward + backward")
    times: dict[str, float] = {}
    for name, be in (("native", native), ("reference", reference)):

        def step(be: ModuleType = be) -> None:
            z, _ = be.dense_forward(W, b, x, "relu")
            be.dense_backward(W, x, z, dy, "relu")

        times[name] = _best_ms(step, args.repeat)
        _say(f"  {name:<9} {times[name]:9.3f} ms   {flops / times[name] / 1e6:7.2f} GFLOP/s")
    _say(f"  native speed-up: {times['reference'] / times['native']:.1f}x")

    X, y = datasets.spirals(1000, seed=0)
    _say("\ntraining the demo network (2-64-64-2, 1000 spiral points, 5 epochs, batch 32)")
    for name in ("native", "reference"):
        net = demo.build(0, args.dtype, name)
        history = net.fit(X, y, epochs=5, optimizer=Adam(lr=0.005), progress=False)
        times[name] = sum(history.seconds) * 1e3
        _say(f"  {name:<9} {times[name]:9.1f} ms")
    _say(f"  native speed-up: {times['reference'] / times['native']:.1f}x")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "demo": cmd_demo,
    "train": cmd_train,
    "predict": cmd_predict,
    "gradcheck": cmd_gradcheck,
    "bench": cmd_bench,
}


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror + (f": {exc.filename}" if exc.filename else "")
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv = ["demo", *argv]  # `densa` and `densa --epochs 10` run the demo
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("densa: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`densa gradcheck | head`): stop quietly, and point stdout
        # at devnull so that Python's final flush does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR
    except MemoryError as exc:
        # NumPy's says how much it tried to allocate; ours (std::bad_alloc) may be empty.
        detail = str(exc) or "the sizes asked for do not fit in memory"
        print(
            f"densa {args.command}: error: out of memory: {_one_line(Exception(detail))}",
            file=sys.stderr,
        )
        return EXIT_ERROR
    except (ValueError, TypeError, OSError, TrainingDivergedError, RuntimeError) as exc:
        print(f"densa {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
