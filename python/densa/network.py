"""``Network``: dense layers, a loss and an optimizer; fit, predict, evaluate, inspect.

Parameters live in NumPy arrays the network owns (``layer.W``, ``layer.b``, the
optimizer's state). Both backends compute on those same arrays in place, so switching
``net.backend`` keeps everything, and a learner can look at any of it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from . import _backends, _checks, _progress, inspection, losses
from .history import History
from .layers import Dense
from .optimizers import OPTIMIZERS, SGD, Optimizer

_DTYPES = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}
_PREDICT_CHUNK = 8192  # rows per forward pass in predict: bounds the memory of z and y
_CHUNK_SECONDS = 0.1  # native batches run this long between returns to Python (Ctrl-C, bar)


class TrainingDivergedError(FloatingPointError):
    """The loss became NaN or inf; the network keeps the parameters of the last good step."""


class EarlyStopping:
    """Stop when the monitored loss has not improved for ``patience`` epochs.

    Parameters
    ----------
    patience : int
        Epochs without improvement tolerated before stopping.
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
        if not isinstance(min_delta, (int, float)) or not math.isfinite(min_delta) or min_delta < 0:
            raise ValueError(f"min_delta must be a finite number >= 0, got {min_delta!r}")
        if monitor not in ("auto", "val_loss", "loss"):
            raise ValueError(f"monitor must be 'auto', 'val_loss' or 'loss', got {monitor!r}")
        self.patience, self.min_delta = int(patience), float(min_delta)
        self.monitor, self.restore_best = monitor, bool(restore_best)

    def __repr__(self) -> str:
        return (
            f"EarlyStopping(patience={self.patience}, min_delta={self.min_delta}, "
            f"monitor={self.monitor!r}, restore_best={self.restore_best})"
        )


def _int_arg(value: object, name: str, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}: {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


class Network:
    """A multilayer perceptron.

    Parameters
    ----------
    layers : sequence of Dense
        Input side first; each layer's n_in must equal the previous layer's n_out.
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
    """

    def __init__(
        self,
        layers: Sequence[Dense],
        loss: str = "mse",
        dtype: str = "float32",
        backend: str = "native",
        seed: int | None = None,
        check_finite: bool = True,
    ) -> None:
        layers = list(layers) if not isinstance(layers, Dense) else [layers]
        if not layers:
            raise ValueError("layers is empty: a network needs at least one Dense layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Dense):
                raise TypeError(f"layers[{i}] must be a densa.Dense, got {type(layer).__name__}")
        for i in range(1, len(layers)):
            a, b = layers[i - 1], layers[i]
            if a.n_out != b.n_in:
                raise ValueError(
                    f"layers[{i - 1}] {a!r} outputs {a.n_out} values but layers[{i}] "
                    f"{b!r} expects {b.n_in} inputs"
                )
        if isinstance(dtype, np.dtype) or dtype in (np.float32, np.float64):
            dtype = np.dtype(dtype).name
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        self.loss = losses.check_name(loss)
        self._dtype = _DTYPES[dtype]
        self.backend = backend
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.check_finite = bool(check_finite)
        self.layers = layers
        for layer in layers:
            layer.initialize(self.rng, self._dtype)
        self.optimizer: Optimizer | None = None
        self.history: History | None = None
        self._fit_lock = threading.Lock()

    # ----- basic properties -------------------------------------------------------------
    @property
    def backend(self) -> str:
        return self._backend_name

    @backend.setter
    def backend(self, name: str) -> None:
        self._backend = _backends.module(name)
        self._backend_name = name

    @property
    def dtype(self) -> np.dtype:
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
    def _prepare_X(self, X, name: str = "X") -> np.ndarray:
        """X as a C-contiguous (N, n_in) array in the network's dtype.

        Converted: integer, unsigned, bool and other float dtypes (once, here);
        Fortran-ordered or strided arrays (one contiguous copy). Refused: complex,
        object, string and other non-numeric dtypes (TypeError), wrong shapes, no
        samples, and NaN or inf unless ``check_finite`` is False (ValueError).
        """
        arr = X if isinstance(X, np.ndarray) else np.asarray(X)
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
        arr = np.ascontiguousarray(arr, dtype=self._dtype)
        if self.check_finite and not _checks.all_finite(arr):
            raise ValueError(
                f"{name} contains NaN or inf (pass check_finite=False to the Network to allow it)"
            )
        return arr

    def _prepare_xy(self, X, y, xname: str = "X", yname: str = "y"):
        Xa = self._prepare_X(X, xname)
        T = losses.encode_targets(self.loss, y, self.n_out, Xa.shape[0], self._dtype, yname)
        if self.check_finite and not _checks.all_finite(T):
            raise ValueError(f"{yname} contains NaN or inf")
        return Xa, T

    # ----- inference --------------------------------------------------------------------
    def _forward(self, X: np.ndarray) -> np.ndarray:
        be = self._backend
        parts = []
        for start in range(0, X.shape[0], _PREDICT_CHUNK):
            y = X[start : start + _PREDICT_CHUNK]
            for layer in self.layers:
                _, y = be.dense_forward(layer.W, layer.b, y, layer.activation)
            parts.append(y)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def predict_raw(self, X) -> np.ndarray:
        """The last layer's output y_K, shape (N, n_out): logits for cross-entropy losses."""
        return self._forward(self._prepare_X(X))

    def predict(self, X) -> np.ndarray:
        """Predictions, shape (N, n_out): class probabilities for the cross-entropy losses
        (softmax or sigmoid of the logits), raw outputs for mse."""
        return losses.output_to_prediction(self.loss, self.predict_raw(X))

    def predict_classes(self, X) -> np.ndarray:
        """Labels: (N,) class indices for softmax cross-entropy; 0/1 per output for binary
        cross-entropy ((N,) with one output, else (N, n_out))."""
        return losses.classes_from_output(self.loss, self.predict_raw(X))

    def evaluate(self, X, y) -> dict:
        """``{"loss": J}``, plus ``"accuracy"`` for the classification losses."""
        Xa, T = self._prepare_xy(X, y)
        return self._evaluate_prepared(Xa, T)

    def _evaluate_prepared(self, Xa: np.ndarray, T: np.ndarray) -> dict:
        out = self._forward(Xa)
        result = {"loss": float(self._backend.loss_forward(self.loss, out, T))}
        if losses.is_classification(self.loss):
            result["accuracy"] = losses.accuracy(self.loss, out, T)
        return result

    # ----- inspection ---------------------------------------------------------------------
    def gradients(self, X, y) -> list[inspection.LayerGradients]:
        """Per layer (input side first) the derivation's quantities for one batch:
        ``last_input``, ``z``, ``dy``, ``dz``, ``dW``, ``db``, ``dx`` (see
        ``densa.inspection.LayerGradients``), computed by the active backend. The
        parameters are not changed."""
        Xa, T = self._prepare_xy(X, y)
        return inspection.gradients(self, Xa, T)[1]

    def loss_value(self, X, y) -> float:
        """The loss J on (X, y) with the current parameters."""
        return self.evaluate(X, y)["loss"]

    # ----- training -----------------------------------------------------------------------
    def _resolve_optimizer(self, optimizer) -> Optimizer:
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

    def _split_validation(self, Xa, T, validation_data, validation_split):
        if validation_data is not None and validation_split:
            raise ValueError("give validation_data or validation_split, not both")
        if validation_data is not None:
            try:
                Xv, yv = validation_data
            except (TypeError, ValueError):
                raise TypeError("validation_data must be a pair (X_val, y_val)") from None
            Xv, Tv = self._prepare_xy(Xv, yv, "validation_data[0]", "validation_data[1]")
            return Xa, T, (Xv, Tv)
        if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float)):
            raise TypeError(f"validation_split must be a number, got {validation_split!r}")
        if not 0.0 <= validation_split < 1.0:
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

    def _restore(self, snapshot) -> None:
        # In place: the arrays keep their identity (trainers and users may hold them).
        for layer, (W, b) in zip(self.layers, snapshot):
            layer.W[...] = W
            layer.b[...] = b

    def fit(
        self,
        X,
        y,
        epochs: int = 10,
        batch_size: int = 32,
        optimizer=None,
        shuffle: bool = True,
        validation_data=None,
        validation_split: float = 0.0,
        early_stopping=None,
        progress: bool = True,
        on_epoch_end: Callable[[int, dict], None] | None = None,
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
            ``fit`` continues where this one stopped.
        shuffle : bool
            Draw a new sample order every epoch from the network's generator.
        validation_data : (X_val, y_val), optional
        validation_split : float
            Hold out this last fraction of (X, y) for validation instead.
        early_stopping : EarlyStopping, int (patience) or None
        progress : bool
            Show a progress bar when writing to a terminal or notebook.
        on_epoch_end : callable(epoch, logs), optional
            Called after each epoch with a dict holding that epoch's history entries.

        Returns
        -------
        History
            Also kept as ``net.history``.

        Raises
        ------
        TrainingDivergedError
            The loss became NaN or inf; the message names the epoch and batch, and the
            parameters are those before the failing batch.
        KeyboardInterrupt
            Re-raised after Ctrl-C, once the current batch has finished: the parameters
            are those of the last completed step and ``net.history`` holds the completed
            epochs.
        """
        epochs = _int_arg(epochs, "epochs", 0)
        batch_size = _int_arg(batch_size, "batch_size", 1)
        if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
            early_stopping = EarlyStopping(patience=early_stopping)
        opt = self._resolve_optimizer(optimizer)
        Xa, T = self._prepare_xy(X, y)
        Xa, T, val = self._split_validation(Xa, T, validation_data, validation_split)
        if not self._fit_lock.acquire(blocking=False):
            raise RuntimeError("fit is already running on this network in another thread")
        try:
            return self._fit_locked(
                Xa, T, val, epochs, batch_size, opt, shuffle, early_stopping, progress, on_epoch_end
            )
        finally:
            self._fit_lock.release()

    def _fit_locked(
        self, Xa, T, val, epochs, batch_size, opt, shuffle, early_stopping, progress, on_epoch_end
    ) -> History:
        n = Xa.shape[0]
        batch_size = min(batch_size, n)
        self.optimizer = opt
        opt.prepare(self.layers)
        trainer = self._backend.Trainer(
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
        history = History()
        self.history = history
        monitor = None
        if early_stopping is not None:
            monitor = early_stopping.monitor
            if monitor == "auto":
                monitor = "val_loss" if val is not None else "loss"
            if monitor == "val_loss" and val is None:
                raise ValueError("early stopping on val_loss needs validation data")
        best, best_params, waited = math.inf, None, 0
        n_batches = -(-n // batch_size)
        chunk = 1
        for epoch in range(epochs):
            t0 = time.perf_counter()
            order = self.rng.permutation(n) if shuffle else np.arange(n, dtype=np.int64)
            order = np.ascontiguousarray(order, dtype=np.int64)
            bar = _progress.bar(progress, n, f"epoch {epoch + 1}/{epochs}")
            loss_sum, samples, done = 0.0, 0, 0
            try:
                while done < n_batches:
                    tc = time.perf_counter()
                    r_loss, r_samples, r_batches, diverged, bad = trainer.run(
                        Xa, T, order, batch_size, done, chunk
                    )
                    loss_sum += r_loss
                    samples += r_samples
                    done += r_batches
                    bar.update(r_samples)
                    if diverged:
                        raise TrainingDivergedError(
                            f"training diverged: the loss became NaN or inf at epoch {epoch + 1}"
                            f", batch {bad + 1} of {n_batches}; the parameters are those before "
                            "that batch (try a smaller learning rate)"
                        )
                    # Grow or shrink the chunk so that control returns ~10 times a second.
                    per_batch = (time.perf_counter() - tc) / max(r_batches, 1)
                    chunk = max(1, min(n_batches, int(_CHUNK_SECONDS / max(per_batch, 1e-7))))
                    if samples:
                        bar.set_postfix_str(f"loss {loss_sum / samples:.4g}", refresh=False)
            finally:
                bar.close()
            history.loss.append(loss_sum / samples)
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
        if best_params is not None:
            self._restore(best_params)
        return history

    # ----- persistence (densa.persistence holds the format) ---------------------------------
    def save(self, path) -> None:
        """Write the network to ``path`` (.npz; see ``densa.persistence``), atomically."""
        from . import persistence

        persistence.save(self, path)

    @classmethod
    def load(cls, path) -> Network:
        """Read a network written by ``save``."""
        from . import persistence

        return persistence.load(path)

    # ----- pickling and copying -------------------------------------------------------------
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_fit_lock"], state["_backend"]  # a lock and a module do not pickle
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._fit_lock = threading.Lock()
        self._backend = _backends.module(self._backend_name)
