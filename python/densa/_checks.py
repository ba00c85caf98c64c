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
"""

from __future__ import annotations

import numpy as np

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
    """``value`` as a C-contiguous float32/float64 array of ``ndim`` dimensions."""
    arr = value if isinstance(value, np.ndarray) else np.asarray(value)
    if arr.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} has dtype {arr.dtype}; densa kernels compute in float32 or float64 "
            f"(convert explicitly, e.g. {name}.astype(np.float32))"
        )
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    if not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)
    return arr


def all_finite(arr: np.ndarray, rows_per_chunk: int = 4096) -> bool:
    """True when ``arr`` holds no NaN or inf, without a full-size temporary.

    A sum is finite exactly when no element is NaN or inf, unless finite values
    overflow it; only then are the rows checked element-wise, a chunk at a time, so a
    large training set never needs a bool array of its own size.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.sum(arr, dtype=np.float64)):
            return True
    flat = arr.reshape(arr.shape[0], -1) if arr.ndim > 1 else arr.reshape(-1, 1)
    return all(
        np.isfinite(flat[i : i + rows_per_chunk]).all()
        for i in range(0, flat.shape[0], rows_per_chunk)
    )


def same_dtype(**arrays: np.ndarray) -> np.dtype:
    """The dtype all ``arrays`` share, or a TypeError listing each one's."""
    dtypes = {a.dtype for a in arrays.values()}
    if len(dtypes) != 1:
        found = ", ".join(f"{k} is {v.dtype}" for k, v in arrays.items())
        raise TypeError(f"mixed dtypes: {found}; pass arrays of one dtype")
    return dtypes.pop()


def non_empty(x: np.ndarray, name: str) -> None:
    if x.shape[0] == 0 or x.size == 0:
        raise ValueError(
            f"{name} is empty (shape {x.shape}); need at least one sample and one feature"
        )


def dense_args(W: object, b: object, x: object, activation: object):
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


def dense_backward_args(W: object, x: object, z: object, dy: object, activation: object):
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
