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
* Trainers: in ``densa._trainer_checks``, built on these.
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


def flag(value: object, name: str) -> bool:
    """``value`` as a bool: True or False only (NumPy's too). Strict, because any object
    has a truth value: ``"no"`` or ``0.5`` would otherwise count as True."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {describe(value)}")
    return bool(value)


def seed(value: object, name: str = "seed", generator: bool = True) -> Any:
    """``value`` checked as a seed for ``numpy.random.default_rng``: None, an integer >= 0,
    or (where ``generator``) a ``numpy.random.Generator``, returned as it is. NumPy's
    own refusals name no argument ("expected non-negative integer")."""
    if value is None or (generator and isinstance(value, np.random.Generator)):
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        kinds = (
            "None, an integer >= 0 or a numpy.random.Generator"
            if generator
            else "None or an integer >= 0"
        )
        raise TypeError(f"{name} must be {kinds}, got {describe(value)}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return int(value)


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
    # dtype.newbyteorder only when needed: its first call after an idle pause cost fit
    # ~0.5 ms, and a network's dtype is always in native order.
    native = dtype if dtype.isnative else dtype.newbyteorder("=")
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
    """``all_finite`` for several float arrays, with one sum each in its own dtype and no
    temporaries: ``fit`` checks the parameters after every chunk of batches, which for a
    small network is every epoch, so this sits on its per-epoch cost (a float64 sum of
    float32 arrays took twice as long). Finite values whose sum overflows are told apart
    from NaN and inf by ``all_finite``'s element-wise check."""
    total = 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        for a in arrays:
            total += float(np.add.reduce(a, axis=None))
    if math.isfinite(total):
        return True
    return all(all_finite(a) for a in arrays)


MAX_ORDER = 2**62  # no sample order that long fits in memory; NumPy's limit, said alike


def order_args(seeds: object, n: object) -> tuple[np.ndarray, int]:
    """``sample_orders``' arguments on both backends: the seeds as a 1-D C-contiguous
    uint64 array (integers in [0, 2**64)), and n as an int >= 0."""
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be an integer, got {type(n).__name__}: {n!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n >= MAX_ORDER:
        raise ValueError(f"n must be < 2**62, got {n}")
    if isinstance(seeds, (str, bytes)) or seeds is None:
        raise TypeError(f"seeds must be a 1-D sequence of integers, got {describe(seeds)}")
    if isinstance(seeds, np.ndarray) and seeds.dtype == np.uint64 and seeds.ndim == 1:
        return _uint64_seeds(seeds), int(n)  # what fit passes
    # Lists go through object arrays: NumPy would read [3, 2**64 - 1] as float64.
    arr = seeds if isinstance(seeds, np.ndarray) else np.array(seeds, dtype=object)
    if arr.ndim != 1:
        raise ValueError(f"seeds must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind == "O":
        values = arr.tolist()
        if not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in values
        ):
            kinds = sorted({type(v).__name__ for v in values})
            raise TypeError(f"seeds must be integers, got {', '.join(kinds)}")
        values = [int(v) for v in values]
        if any(not 0 <= v < 2**64 for v in values):
            raise ValueError("seeds must be integers in [0, 2**64)")
        return _uint64_seeds(np.array(values, dtype=np.uint64)), int(n)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"seeds must be integers, got dtype {arr.dtype}")
    if arr.dtype.kind == "i" and (arr < 0).any():
        raise ValueError("seeds must be integers in [0, 2**64)")
    return _uint64_seeds(arr), int(n)


def _uint64_seeds(arr: np.ndarray) -> np.ndarray:
    """The seeds as the extension reads them: native uint64, C-contiguous, aligned."""
    out: np.ndarray = np.require(arr, np.uint64, ["C_CONTIGUOUS", "ALIGNED"])
    return out


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
        updatable(f"{kind}_step: ", name, a)
    same_dtype(theta=theta, grad=grad, **state)
    if grad.size != theta.size:
        raise ValueError(f"{kind}_step: grad has {grad.size} entries, the parameter {theta.size}")
    for name, a in state.items():
        if a.size != theta.size:
            raise ValueError(
                f"{kind}: {name} and parameter sizes differ ({a.size} vs {theta.size})"
            )


def updatable(where: str, name: str, a: np.ndarray, written: bool = True) -> None:
    """Refuse an array the extension would have to copy to update (a copy would be
    updated instead of the caller's array): another byte order or a non-C-contiguous
    layout (TypeError); when it is ``written``, also misaligned (TypeError) or read-only
    (ValueError). ``where`` prefixes the messages ("sgd_step: ", "Trainer: layer 0: ")."""
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
        if name in ("weight_decay", "eps", "l2"):
            number = _check_range(value, name, 0.0, math.inf, False)
            if name == "eps" and number == 0.0:
                raise ValueError("eps must be > 0 (it keeps the update finite where v = 0)")
            return number
        return _check_range(value, name, 0.0, 1.0, True)  # momentum, beta1, beta2
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{prefix or kind + '_step'}: {exc}") from None


# The hyperparameters each optimizer's trainer takes, in the order they are checked.
def describe(value: object) -> str:
    """``type: repr`` of a value for messages, the repr cut to 60 characters."""
    r = repr(value)
    return f"{type(value).__name__}: {r if len(r) <= 60 else r[:57] + '...'}"


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
