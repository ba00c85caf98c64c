"""What both backends' Trainers accept, so that they refuse the same things in the same
words (``densa.native.Trainer``, ``densa.reference.Trainer``).

The settings (``trainer_settings``) and every list and in-place array
(``trainer_arrays``) are refused at construction, in the native constructor's terms
(cpp/bindings/module.cpp), so that no update can fail halfway; ``run``'s X and targets
are read as the native ``run`` reads them (``trainer_batch``, ``trainer_run_args``).
The kernels' own checks, which these build on, are in ``densa._checks``.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any, SupportsIndex

import numpy as np

from ._checks import (
    FLOAT_DTYPES,
    activation_name,
    coefficient,
    describe,
    in_place,
    loss_name,
    updatable,
)

_INDEX_MAX = 2**63 - 1


def _run_index(value: object, call: str, name: str, non_negative: bool) -> int:
    """A run argument that counts (batch_size, first_batch, n_batches), read as the
    binding reads it (cpp/bindings/module.cpp, index_arg): anything with ``__index__``
    but a bool, clamped to int64 as PyNumber_AsSsize_t clamps."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, SupportsIndex):
        raise TypeError(f"{call}: {name} must be an integer, got {describe(value)}")
    n = min(max(operator.index(value), -_INDEX_MAX - 1), _INDEX_MAX)
    if non_negative and n < 0:
        raise ValueError(f"{call}: {name} must be >= 0, got {n}")
    return n


def _as_int64(a: np.ndarray) -> np.ndarray:
    """Sample indices as the int64 the trainers read (a uint64 beyond int64 wraps
    negative, and is then refused as out of range)."""
    out: np.ndarray = np.ascontiguousarray(a).astype(np.int64, copy=False)
    return out


def _order(order: object, call: str) -> np.ndarray:
    """run's order, refused as index_array refuses it (ndim 1)."""
    if not isinstance(order, np.ndarray) or order.ndim != 1 or order.dtype.kind not in "iu":
        got = (
            f"an array of dtype {order.dtype} and shape {order.shape}"
            if isinstance(order, np.ndarray)
            else describe(order)
        )
        raise TypeError(f"{call}: order must be a 1-D array of integer sample indices, got {got}")
    return _as_int64(order)


def _orders(orders: object, call: str) -> np.ndarray:
    """run_epochs' orders, refused as index_array refuses them (ndim 2)."""
    if not isinstance(orders, np.ndarray) or orders.ndim != 2 or orders.shape[1] == 0:
        got = f"shape {orders.shape}" if isinstance(orders, np.ndarray) else describe(orders)
        raise ValueError(
            f"{call}: orders must be 2-D (epochs, samples) with samples > 0, got {got}"
        )
    if orders.dtype.kind not in "iu":
        raise TypeError(
            f"{call}: orders must be an array of integer sample indices, got dtype {orders.dtype}"
        )
    return _as_int64(orders)


def _shapes(X: np.ndarray, targets: np.ndarray, n_in: int, n_out: int) -> None:
    if X.shape[1] != n_in:
        raise ValueError("trainer: X has the wrong number of features")
    if targets.shape[1] != n_out or targets.shape[0] != X.shape[0]:
        raise ValueError("trainer: targets do not match X or the output layer")


def _batch_size(batch_size: int, max_batch: int) -> None:
    if not 0 < batch_size <= max_batch:
        raise ValueError(
            f"trainer: batch size out of range: {batch_size} not in [1, {max_batch}] (max_batch)"
        )


def _indices_in_range(flat: np.ndarray, lo: int, hi: int, n: int, row: int = 0) -> None:
    """Entries [lo, hi) of the flat order(s) index one of X's n samples; else the first
    that does not is named as trainer.hpp's check_order names it (orders[e, i] for the
    rows of run_epochs, of length ``row``)."""
    window = flat[lo:hi]
    bad = np.flatnonzero((window < 0) | (window >= n))
    if bad.size:
        i = lo + int(bad[0])
        where = f"orders[{i // row}, {i % row}]" if row else f"order[{i}]"
        raise ValueError(
            f"trainer: order holds an index out of range: {where} = {int(flat[i])} "
            f"but X has {n} samples"
        )


def run_call_args(
    order: object, batch_size: object, first_batch: object, n_batches: object
) -> tuple[np.ndarray, int, int, int]:
    """What the native binding checks of ``Trainer.run``'s arguments after X and targets
    (``trainer_batch``), before the trainer is taken (a busy trainer refuses only
    arguments that pass these): the order as int64, the batch size, first_batch and
    n_batches."""
    call = "Trainer.run"
    idx = _order(order, call)
    bs = _run_index(batch_size, call, "batch_size", False)
    first = _run_index(first_batch, call, "first_batch", True)
    count = _run_index(n_batches, call, "n_batches", True)
    return idx, bs, first, count


def run_window(
    X: np.ndarray,
    targets: np.ndarray,
    dims: tuple[int, int, int],
    idx: np.ndarray,
    bs: int,
    first: int,
    count: int,
) -> tuple[int, int]:
    """What trainer.hpp's run then checks, in its order (dims: the trainer's n_in, n_out
    and max_batch): the shapes, the batch size and the indices of the batches visited.
    Returns the batches to run, [first, end)."""
    n_in, n_out, max_batch = dims
    _shapes(X, targets, n_in, n_out)
    _batch_size(bs, max_batch)
    total = -(-idx.size // bs)
    if first >= total:
        return first, first  # nothing left of this epoch
    end = first + min(count, total - first)
    _indices_in_range(idx, first * bs, min(idx.size, end * bs), X.shape[0])
    return first, end


def epochs_call_args(orders: object, batch_size: object) -> tuple[np.ndarray, int]:
    """What the native binding checks of ``Trainer.run_epochs``' orders and batch size,
    before the trainer is taken: the orders as int64 and the batch size."""
    call = "Trainer.run_epochs"
    return _orders(orders, call), _run_index(batch_size, call, "batch_size", False)


def epochs_checks(
    X: np.ndarray, targets: np.ndarray, dims: tuple[int, int, int], idx: np.ndarray, bs: int
) -> None:
    """What trainer.hpp's run_epochs then checks, in its order: the batch size, the
    shapes, and every epoch's indices before the first epoch runs."""
    n_in, n_out, max_batch = dims
    _batch_size(bs, max_batch)
    _shapes(X, targets, n_in, n_out)
    _indices_in_range(idx.reshape(-1), 0, idx.size, X.shape[0], idx.shape[1])


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


TRAINER_HYPER = {
    "sgd": ("lr", "momentum", "nesterov", "weight_decay"),
    "adam": ("lr", "beta1", "beta2", "eps", "weight_decay"),
}


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
    if "l2" in given:  # optional, as the native Trainer reads it: absent is 0
        checked["l2"] = coefficient(optimizer, "l2", given["l2"], prefix="Trainer")
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
        try:
            activation_name(acts[j])
        except ValueError as exc:
            raise ValueError(f"{where}{exc}") from None
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
    updatable(where, name, a, written)


def trainer_overlap(arrays: Sequence[tuple[int, str, np.ndarray]]) -> str | None:
    """``"layer i: A and layer j: B"`` for the first two of ``arrays`` ((layer, name,
    C-contiguous array) each) that share memory, or None.

    As ``overlap``'s first test: arrays whose roots are distinct arrays owning their data
    lie apart (attribute reads only: the reference Trainer makes this test on every
    construction; the native extension makes the range test below itself, in C++).
    Otherwise their byte ranges, sorted: for C-contiguous arrays
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


def trainer_loss_and_batch(loss: object, max_batch: object) -> None:
    """The Trainer's loss name and its largest batch, refused alike on both backends
    (the native constructor otherwise says pybind11's "incompatible constructor
    arguments" for a float max_batch; the reference would fail only when training)."""
    try:
        loss_name(loss)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"Trainer: {exc}") from None
    if isinstance(max_batch, (bool, np.bool_)) or not isinstance(max_batch, (int, np.integer)):
        raise TypeError(f"Trainer: max_batch must be an integer, got {describe(max_batch)}")
    if max_batch < 1:
        raise ValueError(f"Trainer: max_batch must be >= 1, got {max_batch}")
