"""``Network``: dense layers, a loss and an optimizer; fit, predict, evaluate, inspect.

Parameters live in NumPy arrays the network owns (``layer.W``, ``layer.b``, the
optimizer's state). Both backends compute on those same arrays in place, so switching
``net.backend`` keeps everything, and a learner can look at any of it.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, Union

import numpy as np
from numpy.typing import ArrayLike

from . import _backends, _checks, _guard, _pacing, _progress, inspection, losses
from .history import History
from .layers import Dense
from .optimizers import OPTIMIZERS, SGD, Optimizer

_DTYPES: dict[str, np.dtype[Any]] = {
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
}
# What fit passes to on_epoch_end: that epoch's history entries, by name.
EpochCallback = Callable[[int, dict[str, float]], None]
PathLike = Union[str, "os.PathLike[str]"]
# Bit generators whose raw output is what Generator.integers draws for the full uint64
# range (one next_uint64 each); MT19937's raw output is 32 bits.
_RAW_IS_UINT64 = (np.random.PCG64, np.random.PCG64DXSM, np.random.Philox, np.random.SFC64)
_PREDICT_CHUNK = 8192  # rows per forward pass in predict: bounds the memory of z and y


def _backend_quiet(backend: Any) -> contextlib.AbstractContextManager[Any]:
    """What wraps the backend's own computations (fit's trainer calls, the forward passes
    of predict): NumPy's floating-point warnings off, as the reference backend's overflows
    show in its results and fit reports them as TrainingDivergedError. The native backend
    computes nothing there in NumPy and offers a reusable no-op instead
    (``densa.native._no_numpy_warnings``): np.errstate's context variables cost a digits
    fit ~1 ms right after an idle pause."""
    quiet: contextlib.AbstractContextManager[Any] | None = getattr(
        backend, "_no_numpy_warnings", None
    )
    return quiet if quiet is not None else _quiet()


def _quiet() -> np.errstate:
    """No NumPy floating-point warnings, as the native backend gives none: an overflow
    shows in the results (inf or NaN), and fit reports it as TrainingDivergedError."""
    return np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore")


class TrainingDivergedError(FloatingPointError):
    """The loss or the parameters became NaN or inf during ``fit``.

    The message names the epoch and batch (also kept, 1-based, as ``epoch`` and
    ``batch``). The network keeps finite parameters: those before the failing batch, or,
    when an update itself overflowed, the last finite ones ``fit`` saw (see
    docs/robustness.md).
    """

    epoch: int | None = None
    batch: int | None = None


class EarlyStopping:
    """Stop when the monitored loss has not improved for more than ``patience`` epochs.

    Parameters
    ----------
    patience : int
        Epochs without improvement tolerated: training stops at the next one.
    min_delta : float
        An epoch improves only if it lowers the best loss by more than this.
    monitor : {"auto", "val_loss", "loss"}
        ``"auto"`` watches the validation loss when there is validation data, else the
        training loss.
    restore_best : bool
        Put back the parameters of the best epoch when training ends.
    """

    def __init__(
        self,
        patience: int = 5,
        min_delta: float = 0.0,
        monitor: str = "auto",
        restore_best: bool = True,
    ) -> None:
        if isinstance(patience, bool) or not isinstance(patience, (int, np.integer)):
            raise TypeError(f"patience must be an integer, got {patience!r}")
        if patience < 0:
            raise ValueError(f"patience must be >= 0, got {patience}")
        if _real(min_delta, "min_delta") < 0 or not math.isfinite(_real(min_delta, "min_delta")):
            raise ValueError(f"min_delta must be a finite number >= 0, got {min_delta!r}")
        if monitor not in ("auto", "val_loss", "loss"):
            raise ValueError(f"monitor must be 'auto', 'val_loss' or 'loss', got {monitor!r}")
        self.patience, self.min_delta = int(patience), float(min_delta)
        self.monitor = monitor
        self.restore_best = _checks.flag(restore_best, "restore_best")

    def __repr__(self) -> str:
        return (
            f"EarlyStopping(patience={self.patience}, min_delta={self.min_delta}, "
            f"monitor={self.monitor!r}, restore_best={self.restore_best})"
        )


def _real(value: object, name: str) -> float:
    """``value`` as a float: Python and NumPy numbers, not bools (TypeError otherwise).
    An int too large for a float gives inf, which the callers' range checks refuse."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}: {value!r}")
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _int_arg(value: object, name: str, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}: {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_chain(layers: Sequence[Dense], name: str) -> None:
    """Refuse what is not a Dense (TypeError), a layer given twice and sizes that do not
    chain (ValueError), naming the entries as ``name[i]``.

    A layer twice would be one set of weights trained as two (its W and b given to the
    trainer twice), which the trainer refuses only as arrays that share memory.
    """
    first_index: dict[int, int] = {}
    for i, layer in enumerate(layers):
        if not isinstance(layer, Dense):
            raise TypeError(f"{name}[{i}] must be a densa.Dense, got {type(layer).__name__}")
        first = first_index.setdefault(id(layer), i)
        if first != i:
            raise ValueError(
                f"{name}[{i}] is the same Dense object as {name}[{first}]; each layer "
                "needs its own weights (build another densa.Dense)"
            )
    for i in range(1, len(layers)):
        a, b = layers[i - 1], layers[i]
        if a.n_out != b.n_in:
            raise ValueError(
                f"{name}[{i - 1}] {a!r} outputs {a.n_out} values but {name}[{i}] "
                f"{b!r} expects {b.n_in} inputs"
            )


class Network:
    """A multilayer perceptron.

    Parameters
    ----------
    layers : sequence of Dense
        Input side first, each a different Dense object; each layer's n_in must equal
        the previous layer's n_out. Kept as the list ``net.layers``; changing that list
        after construction is not supported (``fit`` checks these rules again).
    loss : {"mse", "softmax_cross_entropy", "binary_cross_entropy"}
        ``mse`` is the exercise's J = 1/(2N) Σ||y_K − y||². The cross-entropy losses take
        the last layer's output as logits (give it ``activation="identity"``); softmax or
        sigmoid is fused into the loss.
    dtype : {"float32", "float64"}
        Precision of parameters and computation. Inputs are converted to it.
    backend : {"native", "reference"}
        C++ kernels, or the NumPy reference. Settable at any time.
    seed : int or None
        Seeds the ``numpy.random.Generator`` behind initialization and shuffling.
    check_finite : bool
        Refuse inputs and targets holding NaN or inf (the default, as scikit-learn does).
        False lets them through (values beyond float32's range then become inf in a
        float32 network); class labels are always checked.

    Notes
    -----
    Input policy (docs/robustness.md has the full table): X and y may be any array-like
    of bool, integer, unsigned or float dtype, converted once to the network's dtype;
    Fortran-ordered and strided arrays are copied once to C order. Complex, object,
    string, datetime and other dtypes raise TypeError; wrong shapes, N = 0, labels out
    of range and NaN or inf raise ValueError; sizes that cannot be allocated raise
    MemoryError.
    """

    def __init__(
        self,
        layers: Sequence[Dense],
        loss: str = "mse",
        dtype: str | np.dtype[Any] | type[np.floating[Any]] = "float32",
        backend: str = "native",
        seed: int | None = None,
        check_finite: bool = True,
    ) -> None:
        if isinstance(layers, Dense):
            layers = [layers]
        elif isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
            raise TypeError(
                f"layers must be a sequence of densa.Dense, got {type(layers).__name__}"
            )
        layers = list(layers)
        if not layers:
            raise ValueError("layers is empty: a network needs at least one Dense layer")
        _check_chain(layers, "layers")
        if isinstance(dtype, np.dtype) or dtype in (np.float32, np.float64):
            dtype = np.dtype(dtype).name
        if not isinstance(dtype, str):  # the documented names, like every other name
            raise TypeError(f"dtype must be 'float32' or 'float64', got {type(dtype).__name__}")
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        # An int only (kept as net.seed, and saved): a Generator would be net.rng itself.
        seed = _checks.seed(seed, generator=False)
        self.loss = losses.check_name(loss)
        if self.loss == "softmax_cross_entropy" and layers[-1].n_out < 2:
            raise ValueError(
                "softmax_cross_entropy needs at least 2 outputs: a softmax over one output "
                "is always 1, so nothing could be learned (for one output, use "
                "binary_cross_entropy)"
            )
        self._dtype = _DTYPES[dtype]
        self.backend = backend
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.check_finite = _checks.flag(check_finite, "check_finite")
        for layer in layers:  # all checked before any is changed
            layer.check_can_join(self._dtype)
        self.layers = layers
        for layer in layers:
            layer.initialize(self.rng, self._dtype)
        self.optimizer: Optimizer | None = None
        self.history: History | None = None
        # The names of the n_in input columns, when known: `densa train` sets them from a
        # CSV header, save/load carry them, and `densa predict` picks a CSV's columns by them.
        self.feature_names: list[str] | None = None
        self._fit_lock = threading.Lock()
        self._fit_thread: int | None = None  # the thread holding _fit_lock

    # ----- basic properties -------------------------------------------------------------
    @property
    def backend(self) -> str:
        return self._backend_name

    @backend.setter
    def backend(self, name: str) -> None:
        self._backend = _backends.module(name)
        self._backend_name = name

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._dtype

    @property
    def n_in(self) -> int:
        return self.layers[0].n_in

    @property
    def n_out(self) -> int:
        return self.layers[-1].n_out

    @property
    def n_params(self) -> int:
        return sum(layer.n_params for layer in self.layers)

    def __repr__(self) -> str:
        sizes = "-".join(str(s) for s in [self.n_in] + [layer.n_out for layer in self.layers])
        return (
            f"Network({sizes}, loss={self.loss!r}, dtype={self.dtype.name!r}, "
            f"backend={self.backend!r})"
        )

    def summary(self) -> str:
        """A table of layers, shapes, activations and parameter counts."""
        rows = [("#", "layer", "W shape", "b shape", "activation", "params")]
        for i, layer in enumerate(self.layers):
            rows.append(
                (
                    str(i),
                    f"Dense {layer.n_in}->{layer.n_out}",
                    str(layer.W.shape),
                    str(layer.b.shape),
                    layer.activation,
                    f"{layer.n_params:,}",
                )
            )
        widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
        rule = "-" * len(lines[0])
        return "\n".join(
            [
                rule,
                lines[0],
                rule,
                *lines[1:],
                rule,
                f"total parameters: {self.n_params:,}   loss: {self.loss}"
                f"   dtype: {self.dtype.name}   backend: {self.backend}",
            ]
        )

    # ----- input preparation --------------------------------------------------------------
    def _prepare_X(self, X: ArrayLike, name: str = "X") -> np.ndarray:
        """X as a C-contiguous (N, n_in) array in the network's dtype.

        Converted: integer, unsigned, bool and other float dtypes (once, here);
        Fortran-ordered or strided arrays (one contiguous copy). Refused: complex,
        object, string and other non-numeric dtypes (TypeError), wrong shapes, no
        samples, and NaN or inf unless ``check_finite`` is False (ValueError).
        """
        if X.__class__ is np.ndarray and self._ready_rows(X, -1, self.n_in):
            return X
        # Subclasses as plain arrays: a masked array's mask is ignored (documented), and
        # its data is what the checks below must see (masked sums skip a hidden NaN).
        arr = X if X.__class__ is np.ndarray else np.asarray(X)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{name} has dtype {arr.dtype}; densa needs real numbers")
        if arr.ndim != 2:
            hint = " (reshape a single feature with X.reshape(-1, 1))" if arr.ndim == 1 else ""
            raise ValueError(f"{name} must be 2-D (samples, features), got shape {arr.shape}{hint}")
        if arr.shape[0] == 0:
            raise ValueError(f"{name} has no samples (shape {arr.shape})")
        if arr.shape[1] != self.n_in:
            raise ValueError(
                f"{name} has {arr.shape[1]} features but the network's first layer "
                f"expects {self.n_in}"
            )
        arr = _checks.in_place(arr, self._dtype)  # beyond float32's range: inf, caught below
        if self.check_finite and not self._all_finite(arr):
            raise ValueError(
                f"{name} contains NaN or inf, or values beyond {self._dtype.name}'s range "
                "(pass check_finite=False to the Network to allow it)"
            )
        return arr

    def _ready_rows(self, arr: np.ndarray, n_rows: int, n_cols: int) -> bool:
        """Whether ``arr`` (an ndarray) is already what the checks below would return, in
        one native call: the network's dtype, 2-D, C-contiguous, aligned, at least one
        row (``n_rows`` of them unless negative), ``n_cols`` columns and, with
        ``check_finite``, finite. The native backend's test (densa.native._ready_rows)
        replaces ~2 ms of NumPy attribute reads and calls in a fit right after an idle
        pause (docs/performance.md); False with the reference backend, and for anything
        that needs a conversion or an error message, which the checks then give."""
        ready = getattr(self._backend, "_ready_rows", None)
        return ready is not None and bool(
            ready(arr, self._dtype, n_rows, n_cols, self.check_finite)
        )

    def _all_finite(self, arr: np.ndarray) -> bool:
        """Whether ``arr`` (C-contiguous, in the network's dtype) holds no NaN or inf: in
        one native pass on the native backend, where NumPy's reduction cost ~140 us in
        the first milliseconds after an idle pause (docs/performance.md)."""
        check = getattr(self._backend, "_all_finite", None)
        return bool(check(arr)) if check is not None else _checks.all_finite(arr)

    def _prepare_xy(
        self, X: ArrayLike, y: ArrayLike, xname: str = "X", yname: str = "y"
    ) -> tuple[np.ndarray, np.ndarray]:
        Xa = self._prepare_X(X, xname)
        if y.__class__ is np.ndarray and self.loss == "mse":
            # Real targets already in the network's dtype, as (N, n_out) or, with one
            # output, (N,): encode_targets would return them (as a view) unchanged.
            rows = y[:, None] if y.ndim == 1 and self.n_out == 1 else y
            if self._ready_rows(rows, Xa.shape[0], self.n_out):
                return Xa, rows
        elif (
            y.__class__ is np.ndarray
            and self.loss == "softmax_cross_entropy"
            and y.ndim == 1
            and y.shape[0] == Xa.shape[0]
        ):
            # int64 class labels, C-contiguous: the native one-hot call encode_targets
            # would make, without its Python around it (~0.3 ms right after an idle
            # pause). Anything else (another dtype or layout: TypeError; a label out of
            # range: None) takes encode_targets, which converts or names the problem.
            one_hot = getattr(self._backend, "_one_hot", None)
            if one_hot is not None:
                try:
                    onehot = one_hot(y, self.n_out, self._dtype)
                except TypeError:
                    onehot = None
                if onehot is not None:
                    return Xa, onehot
        ya = np.asarray(y)
        T = losses.encode_targets(
            self.loss,
            ya,
            self.n_out,
            Xa.shape[0],
            self._dtype,
            yname,
            getattr(self._backend, "_one_hot", None),
        )
        # One-hot rows from class labels need no check: encode_targets checked the labels.
        labels = losses.from_labels(self.loss, ya)
        if self.check_finite and not labels and not self._all_finite(T):
            raise ValueError(
                f"{yname} contains NaN or inf, or values beyond {self._dtype.name}'s range "
                "(pass check_finite=False to the Network to allow it)"
            )
        return Xa, T

    # ----- inference --------------------------------------------------------------------
    def _forward(self, X: np.ndarray) -> np.ndarray:
        be = self._backend
        fused = getattr(be, "_network_forward", None)
        if fused is not None:
            # The native backend's forward through every layer in one call: the same
            # bits as the layers one by one below (tests/test_network_forward.py), without
            # a crossing and two new arrays per layer. Anything it does not take (a layer
            # the user replaced with another dtype, say) goes the layer-by-layer way, which
            # converts or names the problem as before.
            layers = self.layers
            acts = [layer.activation for layer in layers]
            if all(a.__class__ is str for a in acts):  # as native.dense_forward's guard
                try:
                    out: np.ndarray = fused(
                        [layer.W for layer in layers],
                        [layer.b for layer in layers],
                        acts,
                        X,
                        _PREDICT_CHUNK,
                    )
                    return out
                except (TypeError, ValueError):
                    pass
        parts: list[np.ndarray] = []
        with _backend_quiet(be):
            for start in range(0, X.shape[0], _PREDICT_CHUNK):
                y = X[start : start + _PREDICT_CHUNK]
                for layer in self.layers:
                    _, y = be.dense_forward(layer.W, layer.b, y, layer.activation)
                parts.append(y)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def predict_raw(self, X: ArrayLike) -> np.ndarray:
        """The last layer's output y_K, shape (N, n_out): logits for cross-entropy losses."""
        return self._forward(self._prepare_X(X))

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Predictions, shape (N, n_out): class probabilities for the cross-entropy losses
        (softmax or sigmoid of the logits), raw outputs for mse."""
        out = self.predict_raw(X)
        with _quiet():
            return losses.output_to_prediction(self.loss, out)

    def predict_classes(self, X: ArrayLike) -> np.ndarray:
        """Labels: (N,) class indices for softmax cross-entropy; 0/1 per output for binary
        cross-entropy ((N,) with one output, else (N, n_out))."""
        return losses.classes_from_output(self.loss, self.predict_raw(X))

    def evaluate(self, X: ArrayLike, y: ArrayLike) -> dict[str, float]:
        """``{"loss": J}``, plus ``"accuracy"`` for the classification losses."""
        Xa, T = self._prepare_xy(X, y)
        return self._evaluate_prepared(Xa, T)

    def _evaluate_prepared(self, Xa: np.ndarray, T: np.ndarray) -> dict[str, float]:
        out = self._forward(Xa)
        with _quiet():
            result = {"loss": float(self._backend.loss_forward(self.loss, out, T))}
        if losses.is_classification(self.loss):
            result["accuracy"] = losses.accuracy(self.loss, out, T)
        return result

    # ----- inspection ---------------------------------------------------------------------
    def gradients(self, X: ArrayLike, y: ArrayLike) -> list[inspection.LayerGradients]:
        """Per layer (input side first) the derivation's quantities for one batch:
        ``last_input``, ``z``, ``dy``, ``dz``, ``dW``, ``db``, ``dx`` (see
        ``densa.inspection.LayerGradients``), computed by the active backend. The
        parameters are not changed."""
        Xa, T = self._prepare_xy(X, y)
        with _quiet():
            return inspection.gradients(self, Xa, T)[1]

    def loss_value(self, X: ArrayLike, y: ArrayLike) -> float:
        """The loss J on (X, y) with the current parameters."""
        return self.evaluate(X, y)["loss"]

    # ----- training -----------------------------------------------------------------------
    def _resolve_optimizer(self, optimizer: Optimizer | str | None) -> Optimizer:
        if optimizer is None:
            return self.optimizer if self.optimizer is not None else SGD(lr=0.01)
        if isinstance(optimizer, str):
            if optimizer not in OPTIMIZERS:
                raise ValueError(
                    f"optimizer: unknown name {optimizer!r}; expected "
                    f"{', '.join(OPTIMIZERS)} or an optimizer object"
                )
            return OPTIMIZERS[optimizer]()
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"optimizer must be densa.SGD, densa.Adam or a name, got {type(optimizer).__name__}"
            )
        return optimizer

    def _check_owner(self, opt: Optimizer, name: str) -> None:
        """Refuse (ValueError) an optimizer holding state that another network's fit made.

        The state (momentum, Adam's moments and step) is that network's: carried over,
        it would start this network from another's trajectory, and the two would then
        share one optimizer, each fit continuing from the other's. An optimizer without
        state may train any network; one whose state has no owner (unpickled, copied
        with copy.deepcopy, or read by ``load``) is adopted by the first network it trains.
        """
        owner = opt._owner() if opt._owner is not None else None
        if opt._owner is None or owner is self or not opt._has_state():
            return
        what = "moments and step count" if opt.kind == "adam" else "momentum"
        gone = " (since deleted)" if owner is None else ""
        raise ValueError(
            f"{name} holds its {what} from training another network{gone}; an "
            "optimizer's state belongs to the one network it trained: give each network "
            f"its own optimizer, e.g. densa.{opt!r} for the same settings with fresh "
            f"state, or copy.deepcopy({name}) for a copy of this state"
        )

    def _split_validation(
        self,
        Xa: np.ndarray,
        T: np.ndarray,
        validation_data: tuple[ArrayLike, ArrayLike] | None,
        validation_split: float,
    ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
        if validation_data is not None and validation_split:
            raise ValueError("give validation_data or validation_split, not both")
        if validation_data is not None:
            try:
                Xv, yv = validation_data
            except (TypeError, ValueError):
                raise TypeError("validation_data must be a pair (X_val, y_val)") from None
            Xv, Tv = self._prepare_xy(Xv, yv, "validation_data[0]", "validation_data[1]")
            return Xa, T, (Xv, Tv)
        if not 0.0 <= _real(validation_split, "validation_split") < 1.0:
            raise ValueError(f"validation_split must lie in [0, 1), got {validation_split}")
        if validation_split == 0.0:
            return Xa, T, None
        # The last fraction of the rows, before any shuffling (as Keras does).
        n_val = round(Xa.shape[0] * validation_split)
        if n_val < 1 or n_val >= Xa.shape[0]:
            raise ValueError(
                f"validation_split={validation_split} leaves {n_val} of "
                f"{Xa.shape[0]} samples for validation; need at least one on each side"
            )
        cut = Xa.shape[0] - n_val
        return Xa[:cut], T[:cut], (Xa[cut:], T[cut:])

    def _snapshot(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(layer.W.copy(), layer.b.copy()) for layer in self.layers]

    def _restore(self, snapshot: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        # In place: the arrays keep their identity (trainers and users may hold them).
        for layer, (W, b) in zip(self.layers, snapshot):
            layer.W[...] = W
            layer.b[...] = b

    def fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        epochs: int = 10,
        batch_size: int = 32,
        optimizer: Optimizer | str | None = None,
        shuffle: bool = True,
        validation_data: tuple[ArrayLike, ArrayLike] | None = None,
        validation_split: float = 0.0,
        early_stopping: EarlyStopping | int | None = None,
        progress: bool = True,
        on_epoch_end: EpochCallback | None = None,
    ) -> History:
        """Train with minibatch gradient descent.

        Parameters
        ----------
        X : array_like, shape (N, n_in)
        y : array_like
            Targets: (N,) or (N, n_out) for mse and binary cross-entropy; integer labels
            (N,) or one-hot rows (N, n_out) for softmax cross-entropy.
        epochs : int
            Passes over the data (0 does nothing).
        batch_size : int
            Samples per update; the last batch of an epoch may be smaller.
        optimizer : SGD, Adam, "sgd", "adam" or None
            None continues with ``net.optimizer`` (SGD(lr=0.01) the first time). The
            optimizer's state (momentum, Adam moments and step) is kept, so a later
            ``fit`` continues where this one stopped. That state belongs to this
            network: an optimizer object holding another network's state is refused
            (ValueError); give each network its own (``densa.Adam(...)`` anew, or
            ``copy.deepcopy(opt)`` for a copy of the state, which the first network it
            trains adopts). An optimizer with no state yet may train any network.
        shuffle : bool
            Visit the samples in a new order every epoch, shuffled from a seed drawn
            from the network's generator ``net.rng`` (the shuffle is
            ``densa.reference.sample_orders``; both backends draw the same orders).
        validation_data : (X_val, y_val), optional
        validation_split : float
            Hold out this last fraction of (X, y) for validation instead (the last
            rows, as in Keras: rows sorted by class or by time give a validation set
            unlike the training set, so shuffle such data first).
        early_stopping : EarlyStopping, int (patience) or None
        progress : bool
            Show a progress bar when writing to a terminal or notebook.
        on_epoch_end : callable(epoch, logs), optional
            Called after each epoch with a dict holding that epoch's history entries.

        Returns
        -------
        History
            Also kept as ``net.history``.

        Notes
        -----
        Batches run in chunks of about 0.1 s between returns to Python (the bar, Ctrl-C,
        the finite check). When nothing happens between epochs (no validation data,
        callback, early stopping or visible bar) and epochs are shorter than that,
        several run in one call (on the native backend, a whole fit predicted to take
        less than that is one call, its finite copy and checks in C++ too); the result
        is the same bit for bit, and each epoch's ``history.seconds`` is then measured
        in C++.

        Raises
        ------
        TrainingDivergedError
            The loss or the parameters became NaN or inf; the message names the epoch
            and batch. The parameters are those before the failing batch when they are
            finite; when an update itself overflowed, the parameters and optimizer
            state are restored to the last finite ones, saved between chunks of
            batches (about ten times a second). ``net.history`` holds the completed
            epochs.
        KeyboardInterrupt
            Re-raised after Ctrl-C, within about 0.1 s (the native loop returns to Python
            between chunks of batches): the parameters and optimizer state are those of
            a completed step (the last one; with the reference backend, an interrupt
            in the middle of an update puts back the copy saved at the last chunk
            boundary) and ``net.history`` holds the completed epochs (the last one may
            lack its validation entries if the interrupt came during its validation).
        """
        # The usual arguments pass without a call (each helper's first call after an idle
        # pause costs more than its check); anything else is checked, or refused, by them.
        if not (epochs.__class__ is int and epochs >= 0):
            epochs = _int_arg(epochs, "epochs", 0)
        if not (batch_size.__class__ is int and batch_size >= 1):
            batch_size = _int_arg(batch_size, "batch_size", 1)
        if shuffle.__class__ is not bool:
            shuffle = _checks.flag(shuffle, "shuffle")
        if progress.__class__ is not bool:
            progress = _checks.flag(progress, "progress")
        if on_epoch_end is not None and not callable(on_epoch_end):
            raise TypeError(f"on_epoch_end must be callable, got {type(on_epoch_end).__name__}")
        if isinstance(early_stopping, (bool, np.bool_)):
            # True would otherwise become a patience of 1.
            raise TypeError(
                "early_stopping must be a densa.EarlyStopping, an integer (the patience) "
                f"or None, got {early_stopping!r}"
            )
        if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
            early_stopping = EarlyStopping(patience=early_stopping)
        try:
            # A list the user may have changed since construction.
            _check_chain(self.layers, "net.layers")
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{exc} (net.layers was changed after construction)") from None
        opt = self._resolve_optimizer(optimizer)
        self._check_owner(opt, "optimizer" if optimizer is not None else "net.optimizer")
        Xa, T = self._prepare_xy(X, y)
        if (
            validation_data is None
            and validation_split.__class__ in (float, int)
            and not validation_split
        ):
            val = None  # nothing to split off (the usual case, without the helper's call)
        else:
            Xa, T, val = self._split_validation(Xa, T, validation_data, validation_split)
        if not self._fit_lock.acquire(blocking=False):
            if self._fit_thread == threading.get_ident():
                raise RuntimeError(
                    "fit was called again from inside fit (e.g. from on_epoch_end); a "
                    "network runs one fit at a time: call fit again after this one returns"
                )
            raise RuntimeError("fit is already running on this network in another thread")
        self._fit_thread = threading.get_ident()
        try:
            return self._fit_locked(
                Xa, T, val, epochs, batch_size, opt, shuffle, early_stopping, progress, on_epoch_end
            )
        finally:
            self._fit_thread = None
            self._fit_lock.release()

    def _fit_locked(
        self,
        Xa: np.ndarray,
        T: np.ndarray,
        val: tuple[np.ndarray, np.ndarray] | None,
        epochs: int,
        batch_size: int,
        opt: Optimizer,
        shuffle: bool,
        early_stopping: EarlyStopping | None,
        progress: bool,
        on_epoch_end: EpochCallback | None,
    ) -> History:
        n = Xa.shape[0]
        batch_size = min(batch_size, n)
        monitor = None
        if early_stopping is not None:
            monitor = early_stopping.monitor
            if monitor == "auto":
                monitor = "val_loss" if val is not None else "loss"
            if monitor == "val_loss" and val is None:
                raise ValueError("early stopping on val_loss needs validation data")
        be = self._backend
        opt.prepare(
            self.layers,
            getattr(be, "_state_ready", None),
            getattr(be, "_aligned_zeros_like", None),
        )
        # Refusals (above) and a MemoryError for the workspaces (here) leave the
        # network's optimizer and history as they were.
        trainer = be.Trainer(
            [layer.W for layer in self.layers],
            [layer.b for layer in self.layers],
            [layer.activation for layer in self.layers],
            self.loss,
            opt.kind,
            opt.hyper(),
            opt.state_W,
            opt.state_b,
            opt.step if opt.kind == "adam" else None,
            batch_size,
        )
        self.optimizer = opt
        opt._owner = weakref.ref(self)  # its state is now this network's (_check_owner)
        history = History()
        self.history = history
        best, best_params, waited = math.inf, None, 0
        n_batches = -(-n // batch_size)
        sizes = [self.n_in] + [layer.n_out for layer in self.layers]
        costs = _pacing.costs_for(self._backend_name)
        deferred = _guard.DeferredInterrupt()
        # Nothing to do between epochs (no validation, callback, early stopping or bar):
        # once an epoch is seen to take well under _pacing.CHUNK_SECONDS, several run in
        # one call, which otherwise would cost more in bookkeeping than in training.
        plain = (
            val is None
            and on_epoch_end is None
            and early_stopping is None
            and not _progress.shown(progress)
        )
        fit_once = getattr(trainer, "fit", None)  # the native trainer's
        if (
            plain
            and fit_once is not None
            and epochs > 0
            # The whole fit is assumed to take under ONE_CALL_SECONDS: one native call.
            and _pacing.one_call(sizes, batch_size, n_batches, epochs, n, costs)
            and self._fit_once(fit_once, Xa, T, epochs, batch_size, shuffle, deferred)
        ):
            return history
        chunk = _pacing.first_chunk(sizes, batch_size, n_batches, costs)
        guard = _guard.LastFinite(
            self.layers,
            opt,
            getattr(be, "_copy_if_finite", None),
            getattr(be, "_aligned_zeros_like", None),
        )
        guard.capture((0, 0))
        epoch = 0
        while epoch < epochs:
            if plain:
                # From the last epoch's time; before any, from the assumed costs (a small
                # network's whole fit is then one call).
                group = (
                    _pacing.epoch_group(history.seconds[-1], epochs - epoch, n)
                    if history.seconds
                    else _pacing.first_group(sizes, batch_size, n_batches, epochs - epoch, n, costs)
                )
                if group > 1:
                    epoch += self._fit_epoch_group(
                        trainer, Xa, T, batch_size, group, epoch, epochs, shuffle, guard, deferred
                    )
                    continue
            t0 = time.perf_counter()
            order = self._epoch_orders(n, shuffle, 1)[0]
            bar = _progress.bar(progress, n, f"epoch {epoch + 1}/{epochs}")
            loss_sum, penalty_sum, samples, done = 0.0, 0.0, 0, 0
            try:
                while done < n_batches:
                    tc = time.perf_counter()
                    # Divergence is reported below as TrainingDivergedError; NumPy's
                    # overflow warnings on the way (reference backend) would only precede
                    # it, or replace it where warnings are errors.
                    # Ctrl-C waits until this chunk is accounted for (see densa._guard).
                    with deferred, _backend_quiet(self._backend):
                        r_loss, r_samples, r_batches, diverged, bad, r_penalty = trainer.run(
                            Xa, T, order, batch_size, done, chunk
                        )
                        loss_sum += r_loss + r_penalty  # the penalty of l2, if any, counts
                        penalty_sum += r_penalty
                        samples += r_samples
                        done += r_batches
                        last_chunk = epoch == epochs - 1 and done == n_batches
                        finite = diverged or guard.capture((epoch, done), keep=not last_chunk)
                    bar.update(r_samples)
                    if diverged:
                        self._diverged(guard, epoch, bad, n_batches, "the loss became NaN or inf")
                    if not finite:
                        self._diverged(
                            guard,
                            epoch,
                            done - 1,
                            n_batches,
                            "the parameters became NaN or inf (an update overflowed)",
                        )
                    # Grow or shrink the chunk so that control returns ~10 times a second.
                    per_batch = (time.perf_counter() - tc) / max(r_batches, 1)
                    chunk = _pacing.next_chunk(per_batch, n_batches)
                    if samples:
                        bar.set_postfix_str(f"loss {loss_sum / samples:.4g}", refresh=False)
                history.loss.append(loss_sum / samples)
                history._penalty.append(penalty_sum / samples)
            except KeyboardInterrupt:
                # The native trainer returns only between whole batches; the reference one
                # may be stopped halfway through an update: then the last copy is put back.
                if getattr(trainer, "updating", False):
                    guard.restore()
                elif done == n_batches and len(history.loss) == epoch:
                    # Every batch of this epoch was applied: it is a completed epoch.
                    history.loss.append(loss_sum / samples)
                    history._penalty.append(penalty_sum / samples)
                    history.seconds.append(time.perf_counter() - t0)
                raise
            finally:
                bar.close()
            if val is not None:
                scores = self._evaluate_prepared(*val)
                history.val_loss.append(scores["loss"])
                if "accuracy" in scores:
                    history.val_accuracy.append(scores["accuracy"])
            history.seconds.append(time.perf_counter() - t0)
            if on_epoch_end is not None:
                logs = {k: v[-1] for k, v in history.as_dict().items() if v}
                on_epoch_end(epoch, logs)
            if early_stopping is not None:
                current = history.loss[-1] if monitor == "loss" else history.val_loss[-1]
                if current < best - early_stopping.min_delta:
                    best, waited, history.best_epoch = current, 0, epoch
                    if early_stopping.restore_best:
                        best_params = self._snapshot()
                else:
                    waited += 1
                    if waited > early_stopping.patience:
                        history.stopped_early = True
                        break
            epoch += 1
        if best_params is not None:
            self._restore(best_params)
        return history

    def _fit_once(
        self,
        fit_once: Callable[..., tuple[bool, int, bool, bool]],
        Xa: np.ndarray,
        T: np.ndarray,
        epochs: int,
        batch_size: int,
        shuffle: bool,
        deferred: _guard.DeferredInterrupt,
    ) -> bool:
        """A whole plain fit in one native call (the native trainer's ``fit``): the
        finite copy, the orders from their seeds, the epochs and the end's check, in C++.
        The same bits, history and generator state as the epoch groups of the ordinary
        path (tests/test_fit_once.py), without its ~20 Python calls around them, whose
        cost grows most when the machine's caches are cold: W4's 5-epoch fit in the
        benchmark's company, ~2.6 ms, took 0.09-0.36 ms less this way in six runs of
        21 rounds, paired (docs/performance.md, the twenty-second session). Returns
        False, having changed nothing, if the trainer refused the arguments: the
        ordinary path then trains or names the problem."""
        history = self.history
        assert history is not None  # fit made it before calling
        rng_state = self.rng.bit_generator.state if shuffle else None
        seeds = self._draw_seeds(epochs) if shuffle else None
        try:
            with deferred, _backend_quiet(self._backend):
                # Each completed epoch is in the history when the call returns (the
                # extension appends it), so Ctrl-C cannot separate the two.
                diverged, bad, params_finite, restored = fit_once(
                    Xa,
                    T,
                    seeds,
                    epochs,
                    batch_size,
                    history.loss,
                    history._penalty,
                    history.seconds,
                )
                done = len(history.loss)
                if diverged and rng_state is not None:
                    # Draw again only the orders of the epochs that ran (the last diverged).
                    self.rng.bit_generator.state = rng_state
                    self._draw_seeds(done + 1)
        except (TypeError, ValueError):
            # Refused before anything trained (trainer.fit checks first).
            if rng_state is not None:
                self.rng.bit_generator.state = rng_state
            return False
        except MemoryError:
            # The orders' or the copy's buffers, allocated before anything trained: the
            # generator goes back too, as when the ordinary path's copy cannot be made.
            if rng_state is not None:
                self.rng.bit_generator.state = rng_state
            raise
        n_batches = -(-Xa.shape[0] // batch_size)
        if diverged or not params_finite:
            # The extension made LastFinite's capture before the first epoch and put it
            # back if the parameters ended NaN or inf.
            guard = _guard.Restored(params_finite, restored)
            if diverged:
                self._diverged(guard, done, bad, n_batches, "the loss became NaN or inf")
            # As epoch by epoch: the epoch whose last update overflowed is not completed.
            history._drop_last_epoch()
            self._diverged(
                guard,
                epochs - 1,
                n_batches - 1,
                n_batches,
                "the parameters became NaN or inf (an update overflowed)",
            )
        return True

    def _epoch_orders(self, n: int, shuffle: bool, count: int) -> np.ndarray:
        """The sample orders of the next ``count`` epochs, (count, n) int64: each shuffled
        from one 64-bit seed drawn from the network's generator (``_draw_seeds``;
        densa.reference.orders documents the shuffle, the same on both backends), or
        0 .. n-1 each when not shuffled."""
        if not shuffle:
            return np.tile(np.arange(n, dtype=np.int64), (count, 1))
        orders: np.ndarray = self._backend.sample_orders(self._draw_seeds(count), n)
        return orders

    def _draw_seeds(self, count: int) -> np.ndarray:
        """One seed per epoch, ``rng.integers(0, 2**64, count, dtype=np.uint64)``:
        ``count`` draws at once leave the generator where ``count`` draws of one would."""
        bits = getattr(self.rng, "bit_generator", None)
        if bits.__class__ in _RAW_IS_UINT64:
            # The same numbers and the same state afterwards (tests/test_orders.py), at a
            # sixth of the cost: 48 against 168 us after an idle pause, twice per fit.
            raw: np.ndarray = bits.random_raw(count)
            return raw
        seeds: np.ndarray = self.rng.integers(0, 2**64, size=count, dtype=np.uint64)
        return seeds

    def _fit_epoch_group(
        self,
        trainer: Any,
        Xa: np.ndarray,
        T: np.ndarray,
        batch_size: int,
        group: int,
        first_epoch: int,
        epochs: int,
        shuffle: bool,
        guard: _guard.LastFinite,
        deferred: _guard.DeferredInterrupt,
    ) -> int:
        """Run ``group`` whole epochs in one trainer call, from ``first_epoch`` of the
        fit's ``epochs``; returns how many completed.

        The history gets each completed epoch, as one call per epoch would give it, and
        the generator ends where epoch-by-epoch training would have left it.
        """
        n = Xa.shape[0]
        n_batches = -(-n // batch_size)
        rng_state = self.rng.bit_generator.state
        orders = self._epoch_orders(n, shuffle, group)
        accounted = False
        history = self.history
        assert history is not None  # fit made it before the first epoch
        kept = len(history.loss)
        try:
            with deferred, _backend_quiet(self._backend):
                losses, seconds, diverged, bad, penalties = trainer.run_epochs(
                    Xa, T, orders, batch_size
                )
                done = len(losses)
                history.loss.extend(x + p for x, p in zip(losses, penalties))
                history._penalty.extend(penalties)
                history.seconds.extend(seconds)
                if diverged and shuffle:
                    # Draw again only the orders of the epochs that ran (the last diverged).
                    self.rng.bit_generator.state = rng_state
                    self._draw_seeds(done + 1)
                last = first_epoch + done - 1  # the last completed epoch
                ends_fit = last == epochs - 1
                finite = diverged or guard.capture((last, n_batches), keep=not ends_fit)
                accounted = True
        except KeyboardInterrupt:
            if not accounted:
                # Raised inside the call (possible only under a SIGINT handler of someone
                # else's, which fit does not replace; Ctrl-C under Python's own handler
                # waits for the block's end): the group's epochs are not in the history,
                # so go back to the state where the group started.
                guard.restore()
                self.rng.bit_generator.state = rng_state
                del history.loss[kept:], history._penalty[kept:], history.seconds[kept:]
            raise
        if diverged:
            self._diverged(guard, first_epoch + done, bad, n_batches, "the loss became NaN or inf")
        if not finite:
            # The group's last update overflowed: its last epoch is the one reported as
            # diverged, so it is not among the completed ones (as epoch by epoch, where
            # the check after that epoch's last chunk raises before the epoch is recorded).
            history._drop_last_epoch()
            self._diverged(
                guard,
                last,
                n_batches - 1,
                n_batches,
                "the parameters became NaN or inf (an update overflowed)",
            )
        return done

    def _diverged(
        self,
        guard: _guard.LastFinite | _guard.Restored,
        epoch: int,
        batch: int,
        n_batches: int,
        what: str,
    ) -> NoReturn:
        """Raise TrainingDivergedError for 0-based (epoch, batch), restoring the last finite
        parameters first if the current ones are not."""
        where = f"epoch {epoch + 1}, batch {batch + 1} of {n_batches}"
        if guard.params_finite():
            kept = "the parameters are those before that batch"
        else:
            # An update overflowed (at this batch, or earlier in the same chunk).
            label = guard.restore()
            if label is None:
                kept = "the parameters are NaN or inf, and no finite ones were seen to restore"
            else:
                e, done = label
                point = (
                    "their initial values"
                    if (e, done) == (0, 0)
                    else f"those at the end of epoch {e + 1}"
                    if done == n_batches
                    else f"those after batch {done} of epoch {e + 1}"
                )
                kept = f"they and the optimizer state were restored to {point}"
                if what.startswith("the loss"):
                    kept = "the parameters were NaN or inf (an update overflowed); " + kept
        hint = "try a smaller learning rate"
        if not self.check_finite:
            # NaN or inf in the data would diverge at any learning rate.
            hint += (
                "; with check_finite=False, X and y were not checked for NaN or inf, "
                "which check_finite=True would refuse"
            )
        err = TrainingDivergedError(f"training diverged at {where}: {what}; {kept} ({hint})")
        err.epoch, err.batch = epoch + 1, batch + 1
        raise err

    # ----- persistence (densa.persistence holds the format) ---------------------------------
    def save(self, path: PathLike) -> None:
        """Write the network to ``path`` (.npz; see ``densa.persistence``), atomically."""
        from . import persistence

        persistence.save(self, path)

    @classmethod
    def load(cls, path: PathLike) -> Network:
        """Read a network written by ``save``."""
        from . import persistence

        return persistence.load(path)

    # ----- pickling and copying -------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_fit_lock"], state["_backend"]  # a lock and a module do not pickle
        state.pop("_fit_thread", None)  # a copy is not running fit
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("feature_names", None)  # pickled before it existed
        self._fit_lock = threading.Lock()
        self._fit_thread = None
        self._backend = _backends.module(self._backend_name)
        # A pickled or deep copy has its own optimizer, whose state is its own (pickling
        # drops the owner); a shallow copy shares the original's, which stays the original's.
        if self.optimizer is not None and self.optimizer._owner is None:
            self.optimizer._owner = weakref.ref(self)
        for layer in self.layers:
            layer.realign()  # unpickled arrays may sit anywhere (see densa._memory)
