"""What each loss means to a network: how targets are encoded for the kernels, how raw
outputs become predictions, and how accuracy is counted. The costs themselves are
computed by the backends (``densa.reference.loss`` and ``cpp/densa/loss.hpp``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import _checks

CLASSIFICATION = ("softmax_cross_entropy", "binary_cross_entropy")
# How far a row of softmax targets may sum from 1: float32 probabilities of many
# classes round by ~1e-7 each.
_ROW_SUM_TOLERANCE = 1e-3


def is_classification(loss: str) -> bool:
    return loss in CLASSIFICATION


def from_labels(loss: str, y: np.ndarray) -> bool:
    """Whether ``encode_targets`` reads ``y`` as class labels: one-hot rows built from
    them hold only 0 and 1, so they need no check for NaN or inf."""
    return loss == "softmax_cross_entropy" and y.ndim == 1


def encode_targets(
    loss: str,
    y: ArrayLike,
    n_out: int,
    n_samples: int,
    dtype: DTypeLike,
    name: str = "y",
    one_hot: Callable[[np.ndarray, int, np.dtype[Any]], np.ndarray | None] | None = None,
) -> np.ndarray:
    """Targets as the (N, n_out) float array the kernels take.

    * mse: (N,) when n_out == 1, or (N, n_out); any real dtype.
    * softmax_cross_entropy: integer labels (N,) in [0, n_out), or (N, n_out) rows of
      class probabilities (one-hot), each in [0, 1] and summing to 1 (within 1e-3).
    * binary_cross_entropy: (N,) when n_out == 1, or (N, n_out), values in [0, 1].

    Real targets are not checked for NaN or inf here: the network does that, unless
    it was built with ``check_finite=False`` (values beyond float32's range become inf
    in a float32 network). Class labels are always checked: NaN is no class.

    ``one_hot(labels, n_out, dtype)``: the native backend's encoding of integer labels
    (``densa.native._one_hot``), the same rows in one pass, or None when a label is out
    of range (then the labels are checked and reported here). Without it, NumPy builds
    them.
    """
    arr = np.asarray(y)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} has dtype {arr.dtype}; targets must be numbers")
    if arr.ndim == 0 or arr.ndim > 2:
        raise ValueError(f"{name} must be 1-D or 2-D, got shape {arr.shape}")
    if arr.shape[0] != n_samples:
        raise ValueError(f"{name} has {arr.shape[0]} rows but X has {n_samples} samples")
    if from_labels(loss, arr):
        if one_hot is not None and arr.dtype.kind in "iu":
            # int64 as they are; other integer types converted (a huge uint64 wraps
            # negative, and is then refused below with its own value).
            rows = one_hot(np.ascontiguousarray(arr, dtype=np.int64), n_out, np.dtype(dtype))
            if rows is not None:
                return rows
        if arr.dtype.kind == "f" and not np.all(arr == np.round(arr)):  # NaN too
            raise ValueError(f"{name}: class labels must be whole numbers, got {arr[:5]}...")
        # The range is checked before the cast: 1e20 or a huge uint64 would wrap.
        if arr.size and (arr.min() < 0 or arr.max() >= n_out):
            raise ValueError(
                f"{name}: labels must lie in [0, {n_out}) for {n_out} outputs, "
                f"found values from {arr.min()} to {arr.max()}"
            )
        labels = arr.astype(np.int64, copy=False)
        onehot = np.zeros((n_samples, n_out), dtype=dtype)
        onehot[np.arange(n_samples), labels] = 1
        return onehot
    if arr.ndim == 1:
        if n_out != 1:
            raise ValueError(
                f"{name} has shape {arr.shape} but the network has {n_out} "
                f"outputs; pass ({n_samples}, {n_out}) targets"
            )
        arr = arr[:, None]
    if arr.shape[1] != n_out:
        raise ValueError(f"{name} has shape {arr.shape} but the network has {n_out} outputs")
    if loss in CLASSIFICATION and arr.size and (arr.min() < 0 or arr.max() > 1):
        raise ValueError(
            f"{name}: {loss} targets must lie in [0, 1], found values from "
            f"{arr.min()} to {arr.max()}"
        )
    if loss == "softmax_cross_entropy" and arr.size:
        # A row that is not a distribution has no class for accuracy, and an all-zero
        # row gives a loss of 0 whatever the output: neither can be what was meant.
        sums = arr.sum(axis=1, dtype=np.float64)
        bad = np.flatnonzero(np.abs(sums - 1.0) > _ROW_SUM_TOLERANCE)
        if bad.size:
            raise ValueError(
                f"{name}: softmax_cross_entropy targets must be rows of class "
                f"probabilities summing to 1 (one-hot, say); row {bad[0]} sums to "
                f"{sums[bad[0]]:.6g} ({bad.size} of {len(sums)} rows do not)"
            )
    # Beyond float32's range: inf, refused by the network.
    return _checks.in_place(arr, np.dtype(dtype))


def output_to_prediction(loss: str, out: np.ndarray) -> np.ndarray:
    """Probabilities for the cross-entropy losses (softmax / sigmoid of the logits)."""
    if loss == "softmax_cross_entropy":
        e: np.ndarray = np.exp(out - out.max(axis=1, keepdims=True))
        return np.asarray(e / e.sum(axis=1, keepdims=True))
    if loss == "binary_cross_entropy":
        e = np.exp(-np.abs(out))
        probabilities: np.ndarray = np.where(out >= 0, 1 / (1 + e), e / (1 + e))
        return probabilities
    return out


def classes_from_output(loss: str, out: np.ndarray) -> np.ndarray:
    """Labels: argmax for softmax cross-entropy, (logit > 0) per output for binary."""
    if loss == "softmax_cross_entropy":
        return np.asarray(np.argmax(out, axis=1))
    if loss == "binary_cross_entropy":
        labels = (out > 0).astype(np.int64)
        return labels[:, 0] if labels.shape[1] == 1 else labels
    raise ValueError(f"predict_classes needs a classification loss, not {loss!r}")


def accuracy(loss: str, out: np.ndarray, targets: np.ndarray) -> float:
    """Fraction of correct labels (of correct outputs, for multi-output binary).

    Binary cross-entropy: an output predicts 1 where its logit is > 0 (probability above
    ½), and a target counts as 1 where it is > ½; a soft target of exactly ½ counts as 0.
    Softmax: argmax of the output against argmax of the target row (the first on ties).
    """
    if loss == "softmax_cross_entropy":
        return float(np.mean(np.argmax(out, axis=1) == np.argmax(targets, axis=1)))
    return float(np.mean((out > 0) == (targets > 0.5)))


def check_name(loss: object) -> str:
    return _checks.loss_name(loss)
