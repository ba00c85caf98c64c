"""Argument checks shared by both backends, so that they accept and refuse the same things.

Conversion policy of the kernels (``densa.reference`` and ``densa.native``):

* dtype: float32 and float64 are computed in their own precision. Every other dtype
  (float16, integers, bool, complex, object, strings) is refused with a TypeError: a
  kernel never guesses the precision. All arrays of one call must share one dtype.
* layout: a C-contiguous array is used in place. A Fortran-ordered or strided array is
  converted once, here, to a C-contiguous copy (the extension itself never copies).
* ndim and shapes: checked here with a ValueError naming the argument and the shapes;
  the C++ core checks shape agreement again (std::invalid_argument -> ValueError).
* Empty batches (N = 0) are refused: a layer's output over no samples is never what a
  caller meant.
* Optimizer steps (``sgd_step``, ``adam_step``): the coefficients are refused as
  ``densa.SGD`` / ``densa.Adam`` refuse them, and no two of the arrays may share memory
  (``sgd_args``, ``adam_args``); nothing is written before every check has passed.
* Trainers (``densa.native.Trainer``, ``densa.reference.Trainer``): the settings
  (``trainer_settings``) and every list and in-place array (``trainer_arrays``) are
  refused at construction, in the native constructor's terms, so that no update can
  fail halfway; ``run``'s X and targets as the native ``run`` reads them
  (``trainer_batch``, ``trainer_run_args``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .optimizers import _check_lr, _check_range

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

ACTIVATIONS = (
    "identity",
    "linear",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "elu",
    "softplus",
    "gelu",
)


def activation_name(activation: object) -> str:
    """Return the canonical activation name, or raise naming the valid ones."""
    if not isinstance(activation, str):
        raise TypeError(
            f"activation must be a string, got {type(activation).__name__}: {activation!r}"
        )
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"activation: unknown name {activation!r}; expected one of " + ", ".join(ACTIVATIONS)
        )
    return "identity" if activation == "linear" else activation


def float_array(value: object, name: str, ndim: int) -> np.ndarray:
    """``value`` as a C-contiguous float32/float64 array of ``ndim`` dimensions.

    Subclasses become plain arrays (a masked array's mask is ignored, as the native
    extension ignores it), so that NumPy's subclass arithmetic never runs in the
    reference: np.matrix's ``*`` or a masked array's broadcasting rules would compute
    something else."""
    arr = value if value.__class__ is np.ndarray else np.asarray(value)
    if arr.dtype.newbyteorder("=") not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} has dtype {arr.dtype}; densa kernels compute in float32 or float64 "
            f"(convert explicitly, e.g. {name}.astype(np.float32))"
        )
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    return in_place(arr, arr.dtype)


def in_place(arr: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
    """``arr`` as the extension reads it without a copy: ``dtype`` in native byte order,
    C-contiguous, aligned to its element size. ``arr`` itself when it already is; else
    one converted copy (a view at an odd byte offset, say np.frombuffer(..., offset=1),
    or big-endian data)."""
    native = dtype.newbyteorder("=")
    if arr.dtype == native and arr.flags.c_contiguous and arr.flags.aligned:
        return arr
    with np.errstate(over="ignore"):  # beyond float32's range: inf, for the caller to check
        return np.require(arr, dtype=native, requirements=["C_CONTIGUOUS", "ALIGNED"])


def all_finite(arr: np.ndarray, rows_per_chunk: int = 4096) -> bool:
    """True when ``arr`` holds no NaN or inf, without a full-size temporary.

    A sum is finite exactly when no element is NaN or inf, unless finite values
    overflow it; only then are the rows checked element-wise, a chunk at a time, so a
    large training set never needs a bool array of its own size. float32 and float64
    arrays are summed in their own dtype: for a float32 training set that is 3.6x faster
    than a float64 sum (9 against 34 ms on a 60 000 x 784 set, 7% of a W3 epoch).
    """
    own = arr.dtype.kind == "f" and arr.dtype.itemsize >= 4
    with np.errstate(over="ignore", invalid="ignore"):
        if math.isfinite(arr.sum(dtype=arr.dtype if own else np.float64)):
            return True
    if arr.ndim == 0:
        return False
    flat = arr.reshape(arr.shape[0], -1) if arr.ndim > 1 else arr.reshape(-1, 1)
    return all(
        np.isfinite(flat[i : i + rows_per_chunk]).all()
        for i in range(0, flat.shape[0], rows_per_chunk)
    )


def all_finite_many(arrays: Sequence[np.ndarray]) -> bool:
    """``all_finite`` for several arrays, with one float64 sum each and no temporaries:
    ``fit`` checks the parameters after every chunk of batches, which for a small network
    is every epoch, so this sits on its per-epoch cost."""
    total = 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        for a in arrays:
            total += float(a.sum(dtype=np.float64))
    if math.isfinite(total):
        return True
    return all(all_finite(a) for a in arrays)


def same_dtype(**arrays: np.ndarray) -> np.dtype[Any]:
    """The dtype all ``arrays`` share, in native byte order (a ``>f4`` input, converted
    once, is float32 like the others), or a TypeError listing each one's."""
    dtypes: set[np.dtype[Any]] = {a.dtype.newbyteorder("=") for a in arrays.values()}
    if len(dtypes) != 1:
        found = ", ".join(f"{k} is {v.dtype}" for k, v in arrays.items())
        raise TypeError(f"mixed dtypes: {found}; pass arrays of one dtype")
    return dtypes.pop()


def non_empty(x: np.ndarray, name: str) -> None:
    if x.shape[0] == 0 or x.size == 0:
        raise ValueError(
            f"{name} is empty (shape {x.shape}); need at least one sample and one feature"
        )


def dense_args(
    W: object, b: object, x: object, activation: object
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Checked (W, b, x, activation) for dense_forward."""
    act = activation_name(activation)
    W = float_array(W, "W", 2)
    b = float_array(b, "b", 1)
    x = float_array(x, "x", 2)
    same_dtype(W=W, b=b, x=x)
    non_empty(x, "x")
    if b.shape[0] != W.shape[0]:
        raise ValueError(
            f"b has shape {b.shape} but W has shape {W.shape}; b needs W.shape[0] entries"
        )
    if x.shape[1] != W.shape[1]:
        raise ValueError(
            f"x has shape {x.shape} but W has shape {W.shape}; x.shape[1] must equal W.shape[1]"
        )
    return W, b, x, act


def dense_backward_args(
    W: object, x: object, z: object, dy: object, activation: object
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """Checked (W, x, z, dy, activation) for dense_backward."""
    act = activation_name(activation)
    W = float_array(W, "W", 2)
    x = float_array(x, "x", 2)
    z = float_array(z, "z", 2)
    dy = float_array(dy, "dy", 2)
    same_dtype(W=W, x=x, z=z, dy=dy)
    non_empty(x, "x")
    if x.shape[1] != W.shape[1]:
        raise ValueError(
            f"x has shape {x.shape} but W has shape {W.shape}; x.shape[1] must equal W.shape[1]"
        )
    expected = (x.shape[0], W.shape[0])
    if z.shape != expected:
        raise ValueError(f"z has shape {z.shape}, expected {expected} (x.shape[0], W.shape[0])")
    if dy.shape != z.shape:
        raise ValueError(f"dy has shape {dy.shape} but z has shape {z.shape}; they must match")
    return W, x, z, dy, act


LOSSES = ("mse", "softmax_cross_entropy", "binary_cross_entropy")


def loss_name(loss: object) -> str:
    """Return ``loss`` if it names a known cost, else raise naming the valid ones."""
    if not isinstance(loss, str):
        raise TypeError(f"loss must be a string, got {type(loss).__name__}: {loss!r}")
    if loss not in LOSSES:
        raise ValueError(f"loss: unknown name {loss!r}; expected one of {', '.join(LOSSES)}")
    return loss


def _index(value: object, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}: {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return int(value)


def batch_window(first_batch: object, n_batches: object) -> tuple[int, int]:
    """``first_batch`` and ``n_batches`` of ``Trainer.run``: integers >= 0.

    The C++ trainer takes them as raw indices into ``order``; a negative one would read
    before the array, so it is refused here for both backends.
    """
    return _index(first_batch, "first_batch"), _index(n_batches, "n_batches")


def trainer_run_args(
    order: object,
    X: np.ndarray,
    targets: np.ndarray,
    n_in: int,
    n_out: int,
    batch_size: int,
    max_batch: int,
    first_batch: object,
    n_batches: object,
) -> None:
    """The checks the native ``Trainer.run`` makes in C++ after reading X and targets
    (``trainer_batch``), for the reference trainer: the same refusals, with the same
    messages, in the same order (order, the batch window, the shapes, the batch size,
    the indices)."""
    batch_window(first_batch, n_batches)
    if not isinstance(order, np.ndarray) or order.ndim != 1 or order.dtype.kind not in "iu":
        raise TypeError("Trainer.run: order must be a 1-D array of integer sample indices")
    if X.shape[1] != n_in:
        raise ValueError("trainer: X has the wrong number of features")
    if targets.shape[1] != n_out or targets.shape[0] != X.shape[0]:
        raise ValueError("trainer: targets do not match X or the output layer")
    if not 0 < batch_size <= max_batch:
        raise ValueError(
            f"trainer: batch size out of range: {batch_size} not in [1, {max_batch}] (max_batch)"
        )
    n_samples = X.shape[0]
    if order.size and (order.min() < 0 or order.max() >= n_samples):
        raise ValueError(f"trainer: order holds an index out of range [0, {n_samples})")


def trainer_batch(value: object, name: str, call: str, dtype: np.dtype[Any]) -> np.ndarray:
    """X or targets of ``Trainer.run`` / ``run_epochs`` (``call``), refused as the native
    trainer refuses them (cpp/bindings/module.cpp: read_only_batch), in the same words: a
    2-D NumPy array of the trainer's dtype (any other dtype is refused: a kernel never
    guesses the precision). Only read, so another layout or byte order is converted once,
    to a plain C-contiguous array; the caller's array is never written."""
    want = "float32" if dtype == np.float32 else "float64"
    if not isinstance(value, np.ndarray):
        raise TypeError(
            f"{call}: {name} must be a 2-D {want} NumPy array (the trainer's dtype), "
            f"got {describe(value)}"
        )
    if value.dtype.kind != "f" or value.dtype.itemsize != dtype.itemsize:
        raise TypeError(
            f"{call}: {name} has dtype {value.dtype} but this trainer computes in {want}, its "
            f"parameters' dtype (convert explicitly, e.g. {name}.astype(np.{want}))"
        )
    if value.ndim != 2:
        raise ValueError(f"{call}: {name} must be 2-D, got shape {value.shape}")
    arr = value if value.__class__ is np.ndarray else np.asarray(value)
    return in_place(arr, dtype)


def update_args(kind: str, theta: Any, grad: Any, **state: Any) -> None:
    """Refuse, for both backends' ``sgd_step`` / ``adam_step``, what cannot be updated.

    ``theta`` and the ``state`` arrays (velocity, or m and v) are updated in place, so
    they must be writable, C-contiguous, aligned float32/float64 arrays in native byte
    order (a converted copy would be updated instead, and the caller's array silently
    left as it was). ``grad`` is only read: any float32/float64 array, converted once
    (``in_place``) where the extension could not read it as it is. All share one dtype
    and one size. Nothing is written before these checks pass.
    """
    for name, a in {"theta": theta, "grad": grad, **state}.items():
        if a is None and name in state:  # as the native kernel: an empty state array
            raise ValueError(f"{kind}: {name} and parameter sizes differ (no {name} given)")
        if not isinstance(a, np.ndarray) or a.dtype.newbyteorder("=") not in FLOAT_DTYPES:
            found = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
            raise TypeError(f"{kind}_step: {name} must be a float32 or float64 array, got {found}")
        if name == "grad":
            continue
        if not a.dtype.isnative:
            raise TypeError(
                f"{kind}_step: {name} must be in native byte order (it is updated in place), "
                f"got {a.dtype.str}"
            )
        if not a.flags.c_contiguous:
            raise TypeError(f"{kind}_step: {name} must be C-contiguous (it is updated in place)")
        if not a.flags.aligned:
            raise TypeError(
                f"{kind}_step: {name} must be aligned to its {a.dtype.itemsize}-byte elements "
                "(it is updated in place)"
            )
        if not a.flags.writeable:
            raise ValueError(f"{kind}_step: {name} is read-only; densa updates it in place")
    same_dtype(theta=theta, grad=grad, **state)
    if grad.size != theta.size:
        raise ValueError(f"{kind}_step: grad has {grad.size} entries, the parameter {theta.size}")
    for name, a in state.items():
        if a.size != theta.size:
            raise ValueError(
                f"{kind}: {name} and parameter sizes differ ({a.size} vs {theta.size})"
            )


def step_count(step: object) -> int:
    """Adam's step count t (after this update's increment): an integer >= 1, else the
    reference's ValueError."""
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 1:
        raise ValueError(f"adam: step count must be at least 1, got {step!r}")
    return int(step)


def coefficient(kind: str, name: str, value: object, prefix: str | None = None) -> float:
    """An optimizer coefficient of ``sgd_step`` / ``adam_step`` as a float, refused as
    ``densa.SGD`` / ``densa.Adam`` refuse it, with their words after ``"{kind}_step: "``.

    ``lr`` a finite number > 0; ``momentum``, ``beta1``, ``beta2`` in [0, 1);
    ``weight_decay`` a finite number >= 0; ``eps`` a finite number > 0. Out of range,
    NaN or inf: ValueError. Not a number (a bool, text, complex, None, an array with
    dimensions, a list): TypeError. A NumPy scalar or a 0-d array is the number it holds.
    The checks are the optimizers' own (``_check_lr``, ``_check_range``), so the two
    levels cannot drift apart.
    """
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]  # a 0-d array holds one number (or one bool, str, ...: refused)
    try:
        if name == "lr":
            return _check_lr(value)
        if name in ("weight_decay", "eps"):
            number = _check_range(value, name, 0.0, math.inf, False)
            if name == "eps" and number == 0.0:
                raise ValueError("eps must be > 0 (it keeps the update finite where v = 0)")
            return number
        return _check_range(value, name, 0.0, 1.0, True)  # momentum, beta1, beta2
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{prefix or kind + '_step'}: {exc}") from None


# The hyperparameters each optimizer's trainer takes, in the order they are checked.
TRAINER_HYPER = {
    "sgd": ("lr", "momentum", "nesterov", "weight_decay"),
    "adam": ("lr", "beta1", "beta2", "eps", "weight_decay"),
}


def describe(value: object) -> str:
    """``type: repr`` of a value for messages, the repr cut to 60 characters."""
    r = repr(value)
    return f"{type(value).__name__}: {r if len(r) <= 60 else r[:57] + '...'}"


def trainer_settings(optimizer: object, hyper: object, step: object) -> dict[str, Any]:
    """The reference Trainer's optimizer settings, refused as the native Trainer refuses
    them (cpp/bindings/module.cpp: HyperReader, step_array), in the same words: the
    hyperparameters as ``densa.SGD`` / ``densa.Adam`` take them, and Adam's step count as
    the caller's own writable int64 array of one entry, which training increments in
    place (a converted copy would count instead). Returns the checked hyperparameters."""
    if optimizer not in TRAINER_HYPER:
        raise ValueError(f"Trainer: unknown optimizer '{optimizer}' (expected sgd or adam)")
    assert isinstance(optimizer, str)
    keys = TRAINER_HYPER[optimizer]
    expected = f"{optimizer} takes {', '.join(keys)}"
    try:
        given = dict(hyper)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise TypeError(
            "Trainer: hyper must be a dict of the optimizer's hyperparameters "
            f"({expected}), got {describe(hyper)}"
        ) from None
    missing = [k for k in keys if k not in given]
    if missing:
        names = ", ".join(f"'{k}'" for k in missing)
        raise KeyError(f"Trainer: hyper has no {names} ({expected})")
    checked: dict[str, Any] = {}
    for key in keys:
        value = given[key]
        if key == "nesterov":
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"Trainer: nesterov must be True or False, got {value!r}")
            checked[key] = bool(value)
        else:
            checked[key] = coefficient(optimizer, key, value, prefix="Trainer")
    if optimizer == "adam":
        want = "Trainer: step must be a writable int64 array of one entry"
        if not isinstance(step, np.ndarray):
            raise TypeError(f"{want}, got {describe(step)}")
        if step.dtype != np.dtype(np.int64):  # native byte order included
            raise TypeError(f"{want} (updated in place), got an array of dtype {step.dtype}")
        if step.ndim != 1 or step.size != 1:
            raise ValueError(f"{want}, got an array of shape {step.shape}")
        if not step.flags.aligned:
            raise TypeError(f"{want} (updated in place), got an unaligned array")
        if not step.flags.writeable:
            raise ValueError(f"{want} (updated in place), got a read-only array")
    return checked


# How many optimizer state arrays per tensor each optimizer's trainer updates.
TRAINER_STATES = {"sgd": ("velocity",), "adam": ("m", "v")}

_PER_LAYER = "Trainer: Ws, bs, activations and optimizer states must have one entry per layer"


def _entries(value: object, name: str, what: str, where: str = "Trainer: ") -> list[Any]:
    """``value`` as a list, if it is a sequence as the native trainer takes one (a list,
    a tuple, ...; not a string or a mapping), else a TypeError naming it."""
    if (
        isinstance(value, (str, bytes, dict))
        or not hasattr(value, "__len__")
        or not hasattr(value, "__getitem__")
    ):
        raise TypeError(f"{where}{name} must be a list of {what}, got {describe(value)}")
    return [*value]  # type: ignore[misc]


def trainer_state_count(optimizer: str, hyper: dict[str, Any]) -> int:
    """How many state arrays per tensor the trainer updates (checked settings): Adam's
    m and v; SGD's velocity only with momentum (without, SGD reads no state)."""
    if optimizer == "adam":
        return 2
    return 1 if hyper["momentum"] > 0.0 else 0


def trainer_arrays(
    Ws: object,
    bs: object,
    activations: object,
    state_W: object,
    state_b: object,
    n_state: int,
) -> np.dtype[Any]:
    """Refuse, for both backends' ``Trainer``, the lists and in-place arrays the native
    constructor refuses (cpp/bindings/module.cpp, PyTrainer), with messages naming the
    layer and the argument, before anything is kept; returns the parameters' dtype.

    ``n_state`` (``trainer_state_count``) is how many state arrays per tensor training
    updates. Every array updated in place (each layer's W and b, and its first
    ``n_state`` entries of state_W and state_b) must be a writable, C-contiguous,
    aligned array in native byte order of the parameters' dtype: float32 when
    ``Ws[0]`` is float32, else float64 (the native trainer chosen). W is 2-D, b 1-D with
    W.shape[0] entries, a state array has as many entries as its tensor (any shape: it
    is read flat); each layer's W.shape[1] is the previous layer's W.shape[0]. No two of
    them may share memory. Any further state entries (all of
    them for SGD without momentum) are never read, but the native constructor still
    takes them as arrays of the parameters' dtype: C-contiguous, native byte order.
    Wrong types, dtypes and layouts: TypeError; wrong lengths, shapes, sizes, read-only
    arrays, shared memory: ValueError. Nothing is converted: a converted copy would be
    trained instead of the caller's array.
    """
    Ws = _entries(Ws, "Ws", "W arrays, one per layer")
    bs = _entries(bs, "bs", "b arrays, one per layer")
    acts = _entries(activations, "activations", "activation names, one per layer")
    sW = _entries(state_W, "state_W", "lists of optimizer state arrays, one per layer")
    sb = _entries(state_b, "state_b", "lists of optimizer state arrays, one per layer")
    K = len(Ws)
    if K == 0 or not len(bs) == len(acts) == len(sW) == len(sb) == K:
        lengths = ", ".join(f"{n} {len(v)}" for n, v in zip(_LISTS, (Ws, bs, acts, sW, sb)))
        raise ValueError(f"{_PER_LAYER} (got {lengths})")
    # The parameters' dtype: float32 when W of layer 0 is (in any byte order), else float64.
    first = Ws[0]
    single = isinstance(first, np.ndarray) and first.dtype.newbyteorder("=") == FLOAT_DTYPES[0]
    dtype = FLOAT_DTYPES[0] if single else FLOAT_DTYPES[1]
    want = str(dtype)
    in_place_arrays: list[tuple[int, str, np.ndarray]] = []
    for j in range(K):
        where = f"Trainer: layer {j}: "
        if not isinstance(acts[j], str):
            raise TypeError(f"{where}activation must be a string, got {describe(acts[j])}")
        states = {
            name: _entries(entries, name, "optimizer state arrays", where)
            for name, entries in (("state_W", sW[j]), ("state_b", sb[j]))
        }
        for name in ("state_W", "state_b"):
            if len(states[name]) < n_state:
                raise ValueError(
                    f"{where}missing optimizer state arrays: {name} has "
                    f"{len(states[name])}, the optimizer updates {n_state} per tensor"
                )
        W, b = Ws[j], bs[j]
        for name, a, written in [
            ("W", W, True),
            ("b", b, True),
            *[
                (f"{n}[{k}]", s, k < n_state)
                for n in ("state_W", "state_b")
                for k, s in enumerate(states[n])
            ],
        ]:
            _trainer_array(where, name, a, dtype, want, written, j == 0 and name == "W")
            if written:
                in_place_arrays.append((j, name, a))
        if W.ndim != 2:
            raise ValueError(f"{where}W must be 2-D (n_out, n_in), got shape {W.shape}")
        if b.ndim != 1 or b.shape[0] != W.shape[0]:
            raise ValueError(
                f"{where}b must be 1-D with W.shape[0] = {W.shape[0]} entries, got shape {b.shape}"
            )
        for name in ("state_W", "state_b"):
            tensor, label = (W, "W") if name == "state_W" else (b, "b")
            for k in range(n_state):
                s = states[name][k]
                if s.size != tensor.size:
                    raise ValueError(
                        f"{where}{name}[{k}] has {s.size} entries but {label} has "
                        f"{tensor.size}: optimizer state has the wrong size"
                    )
    for j in range(1, K):
        n_in, n_prev = Ws[j].shape[1], Ws[j - 1].shape[0]
        if n_in != n_prev:
            raise ValueError(
                f"Trainer: layer {j}: W has shape {Ws[j].shape} but layer {j - 1} has "
                f"{n_prev} outputs: W.shape[1] must be {n_prev} (layer sizes do not chain)"
            )
    pair = trainer_overlap(in_place_arrays)
    if pair is not None:
        raise ValueError(f"Trainer: {pair} share memory; each in-place array needs its own")
    return dtype


_LISTS = ("Ws", "bs", "activations", "state_W", "state_b")


def _trainer_array(
    where: str, name: str, a: object, dtype: np.dtype[Any], want: str, written: bool, first: bool
) -> None:
    """One array given to the Trainer: see ``trainer_arrays``."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{where}{name} must be a {want} NumPy array, got {describe(a)}")
    if a.dtype.newbyteorder("=") != dtype:
        if first:  # W of layer 0 decides the dtype: float32, else float64
            raise TypeError(
                f"{where}W has dtype {a.dtype}; the Trainer trains float32 or float64 "
                f"parameters (convert explicitly, e.g. W.astype(np.float32))"
            )
        raise TypeError(f"{where}{name} has dtype {a.dtype} but the parameters are {want}")
    why = "it is updated in place" if written else "the trainer keeps it, though unread"
    if not a.dtype.isnative:
        raise TypeError(f"{where}{name} must be in native byte order ({why}), got {a.dtype.str}")
    if not a.flags.c_contiguous:
        raise TypeError(f"{where}{name} must be C-contiguous ({why})")
    if not written:
        return
    if not a.flags.aligned:
        raise TypeError(
            f"{where}{name} must be aligned to its {a.dtype.itemsize}-byte elements "
            "(it is updated in place)"
        )
    if not a.flags.writeable:
        raise ValueError(f"{where}{name} is read-only; densa updates it in place")


def trainer_overlap(arrays: Sequence[tuple[int, str, np.ndarray]]) -> str | None:
    """``"layer i: A and layer j: B"`` for the first two of ``arrays`` ((layer, name,
    C-contiguous array) each) that share memory, or None.

    As ``overlap``'s first test: arrays whose roots are distinct arrays owning their data
    lie apart (attribute reads only: the native Trainer's fast path makes this test on
    every construction). Otherwise their byte ranges, sorted: for C-contiguous arrays
    the range is the memory, so two overlap exactly when ``np.shares_memory`` says so,
    at O(n log n) for n arrays rather than n² calls. Only when some do are the pairs
    tested in order, so that both backends name the same first pair.
    """
    roots = set()
    for _, _, a in arrays:
        r = a.base
        if r is None:
            r = a
        if r.__class__ is not np.ndarray or not r.flags.owndata or id(r) in roots:
            break
        roots.add(id(r))
    else:
        return None
    spans = sorted((a.__array_interface__["data"][0], a.nbytes) for _, _, a in arrays if a.nbytes)
    reach = -1  # the furthest end so far
    for start, nbytes in spans:
        if start < reach:  # some two overlap: name the first pair in the order given
            for i, (j1, n1, a1) in enumerate(arrays):
                for j2, n2, a2 in arrays[i + 1 :]:
                    if np.shares_memory(a1, a2):
                        second = n2 if j1 == j2 else f"layer {j2}: {n2}"
                        return f"layer {j1}: {n1} and {second}"
        reach = max(reach, start + nbytes)
    return None


def overlap(**arrays: np.ndarray) -> tuple[str, str] | None:
    """The first two of ``arrays`` (ndarrays; by name, in the order given) that share
    memory, or None.

    ``np.shares_memory`` (exact) rather than ``np.may_share_memory`` (bounds only): both
    first compare the byte ranges, which settles every pair whose ranges are apart at
    the same cost (~0.15-0.2 us a pair); only when they meet does the exact test look
    further (~0.2-0.5 us more, measured). For two C-contiguous arrays (theta and the
    state, after ``update_args``) the byte range *is* the memory, so the two answer
    alike; but ``grad`` may be strided (it is only read, and converted), and a strided
    grad can straddle a theta it never touches (rows 0 and 2 of a buffer whose row 1 is
    theta), which the bounds test would refuse.
    """
    # First the test without calls that the native fast path makes inline: arrays whose
    # roots (the array itself, or the array it is a view of) are distinct arrays owning
    # their data lie in distinct allocations. Views of one buffer take the exact test.
    roots = [a if a.base is None else a.base for a in arrays.values()]
    if all(isinstance(r, np.ndarray) and r.flags.owndata for r in roots) and len(
        {id(r) for r in roots}
    ) == len(roots):
        return None
    names = list(arrays)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            if np.shares_memory(arrays[first], arrays[second]):
                return first, second
    return None


def separate(kind: str, **arrays: np.ndarray) -> None:
    """Refuse two arrays of one update that share memory (a ValueError naming both).

    ``theta`` and the state arrays are written in place, and ``grad`` is read while they
    are written: if any two overlap, the result depends on the order in which each
    backend reads and writes (NumPy whole-array steps against one C++ loop), so the
    backends would disagree, and neither result is an optimizer step. Called after
    ``update_args``, so the arrays are float arrays, the in-place ones C-contiguous.
    """
    pair = overlap(**arrays)
    if pair is not None:
        first, second = pair
        why = " (grad would change while it is read)" if "grad" in pair else ""
        message = f"{first} and {second} share memory; each needs its own array"
        raise ValueError(f"{kind}_step: {message}{why}")


def sgd_args(
    theta: Any, grad: Any, velocity: Any, lr: object, momentum: object, weight_decay: object
) -> tuple[np.ndarray | None, float, float, float]:
    """Every check of ``sgd_step``, for both backends, before anything is written:
    ``(velocity or None when momentum == 0, lr, momentum, weight_decay)``, the
    coefficients as floats.

    momentum first: it decides whether there is a velocity (SGD without momentum never
    reads it, so any velocity, or None, is then ignored). Then the arrays, their
    overlaps, and the other coefficients in the signature's order.
    """
    momentum = coefficient("sgd", "momentum", momentum)
    state = {"velocity": velocity} if momentum > 0.0 else {}
    update_args("sgd", theta, grad, **state)
    separate("sgd", theta=theta, grad=grad, **state)
    lr = coefficient("sgd", "lr", lr)
    weight_decay = coefficient("sgd", "weight_decay", weight_decay)
    return state.get("velocity"), lr, momentum, weight_decay


def adam_args(
    theta: Any,
    grad: Any,
    m: Any,
    v: Any,
    step: object,
    lr: object,
    beta1: object,
    beta2: object,
    eps: object,
    weight_decay: object,
) -> tuple[int, float, float, float, float, float]:
    """Every check of ``adam_step``, for both backends, before anything is written, in
    the signature's order: the arrays, their overlaps, the step count, the coefficients.
    Returns ``(step, lr, beta1, beta2, eps, weight_decay)`` as int and floats."""
    update_args("adam", theta, grad, m=m, v=v)
    separate("adam", theta=theta, grad=grad, m=m, v=v)
    return (
        step_count(step),
        coefficient("adam", "lr", lr),
        coefficient("adam", "beta1", beta1),
        coefficient("adam", "beta2", beta2),
        coefficient("adam", "eps", eps),
        coefficient("adam", "weight_decay", weight_decay),
    )


def loss_args(name: object, output: object, target: object) -> tuple[str, np.ndarray, np.ndarray]:
    """Checked (name, output, target) for loss_forward / loss_backward (both backends)."""
    name = loss_name(name)
    output = float_array(output, "output", 2)
    target = float_array(target, "target", 2)
    same_dtype(output=output, target=target)
    non_empty(output, "output")
    if target.shape != output.shape:
        raise ValueError(f"target has shape {target.shape} but the output has shape {output.shape}")
    return name, output, target
