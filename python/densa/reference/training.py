"""The training loop, batch by batch in Python: the oracle for the native fused loop.

``Trainer`` has the constructor and ``run`` of the extension's ``Trainer_float32`` /
``Trainer_float64`` (``cpp/densa/trainer.hpp``), and follows the same steps in the same
order, so that both backends train to the same parameters.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .._trainer_checks import (
    epochs_call_args,
    epochs_checks,
    run_call_args,
    run_window,
    trainer_arrays,
    trainer_batch,
    trainer_loss_and_batch,
    trainer_settings,
    trainer_state_count,
)
from .dense import dense_backward, dense_forward
from .loss import loss_backward
from .optimizer import adam_step, sgd_step


def _check_still_in_range(idx: np.ndarray, n_samples: int) -> None:
    """Refuse a minibatch whose indices left [0, n_samples) after the run's checks."""
    bad = idx[(idx < 0) | (idx >= n_samples)]
    if bad.size:
        raise ValueError(
            f"trainer: order changed during training: it now holds {int(bad[0])} "
            f"but X has {n_samples} samples"
        )


class Trainer:
    """Trains the caller's parameter arrays in place, one minibatch at a time.

    Parameters
    ----------
    Ws, bs : list of ndarray
        Per layer, W (m_out, m_in) and b (m_out,); updated in place.
    activations : list of str
    loss : str
    optimizer : {"sgd", "adam"}
    hyper : dict
        sgd: lr, momentum, nesterov, weight_decay; adam: lr, beta1, beta2, eps, weight_decay.
    state_W, state_b : list of list of ndarray
        Per layer, the optimizer's state arrays: [velocity] for SGD, [m, v] for Adam.
    step : ndarray of int64, shape (1,), or None
        Adam's step count t, incremented in place once per batch.
    max_batch : int
    """

    def __init__(
        self,
        Ws: Sequence[np.ndarray],
        bs: Sequence[np.ndarray],
        activations: Sequence[str],
        loss: str,
        optimizer: str,
        hyper: dict[str, float],
        state_W: list[list[np.ndarray]],
        state_b: list[list[np.ndarray]],
        step: np.ndarray | None,
        max_batch: int,
    ) -> None:
        # Refused as the native Trainer refuses them, before anything is kept: the
        # settings, then every list and in-place array, so that no update can fail
        # halfway through (a read-only b of layer 1, after layer 0 was updated).
        self.hyper = trainer_settings(optimizer, hyper, step)
        trainer_loss_and_batch(loss, max_batch)
        self.dtype = trainer_arrays(
            Ws, bs, activations, state_W, state_b, trainer_state_count(optimizer, self.hyper)
        )
        self.Ws, self.bs, self.activations = list(Ws), list(bs), list(activations)
        self.loss, self.optimizer = loss, optimizer
        self.state_W, self.state_b, self.step = state_W, state_b, step
        self.max_batch = max_batch
        self._dims = (self.Ws[0].shape[1], self.Ws[-1].shape[0], max_batch)  # run's checks
        # True while an update is half applied: a KeyboardInterrupt arriving then leaves
        # some tensors updated and others not, and the network restores its snapshot.
        self.updating = False
        self._busy = threading.Lock()  # one run at a time, as the native trainer

    @contextlib.contextmanager
    def _only_run(self, call: str) -> Iterator[None]:
        """Refuse a second run while one is in progress (another thread's)."""
        if not self._busy.acquire(blocking=False):
            raise RuntimeError(f"{call}: this trainer is already running in another thread")
        try:
            yield
        finally:
            self._busy.release()

    def run(
        self,
        X: np.ndarray,
        targets: np.ndarray,
        order: np.ndarray,
        batch_size: int,
        first_batch: int,
        n_batches: int,
    ) -> tuple[float, int, int, bool, int, float]:
        """Batches [first_batch, first_batch + n_batches) of the epoch given by ``order``.

        Returns ``(loss_sum, samples, batches, diverged, diverged_batch, penalty_sum)``
        exactly as the native trainer does: loss_sum is Σ J_batch · batch size over
        completed batches (the data term), penalty_sum the L2 penalty's share of that sum,
        Σ l2/2·Σ‖W‖² with each batch's weights before its update (0 without l2); a
        batch whose J is NaN or inf stops the run before its update. Like the native
        loop, it does not warn on overflow: divergence is reported by its result (a
        RuntimeWarning turned into an error would stop it halfway through an update).
        """
        # Refused in the native trainer's order: its binding checks the arguments before
        # it takes the trainer, and the trainer the rest once taken.
        X = trainer_batch(X, "X", "Trainer.run", self.dtype)
        targets = trainer_batch(targets, "targets", "Trainer.run", self.dtype)
        idx, bs, first, count = run_call_args(order, batch_size, first_batch, n_batches)
        with self._only_run("Trainer.run"):
            first, end = run_window(X, targets, self._dims, idx, bs, first, count)
            return self._run_batches(X, targets, idx, bs, first, end)

    def run_epochs(
        self, X: np.ndarray, targets: np.ndarray, orders: np.ndarray, batch_size: int
    ) -> tuple[list[float], list[float], bool, int, list[float]]:
        """Whole epochs, one per row of ``orders`` (epochs, N), as the native trainer does.

        Returns ``(loss_means, seconds, diverged, diverged_batch, penalty_means)``: the
        mean loss (data term), wall time and mean L2 penalty of each completed epoch; a
        divergence stops the run inside epoch ``len(loss_means)``, at batch
        ``diverged_batch``, before that batch's update.
        Every epoch's indices are checked before the first epoch runs.
        """
        X = trainer_batch(X, "X", "Trainer.run_epochs", self.dtype)
        targets = trainer_batch(targets, "targets", "Trainer.run_epochs", self.dtype)
        idx, bs = epochs_call_args(orders, batch_size)
        with self._only_run("Trainer.run_epochs"):
            epochs_checks(X, targets, self._dims, idx, bs)
            losses: list[float] = []
            seconds: list[float] = []
            penalties: list[float] = []
            per_epoch = -(-idx.shape[1] // bs)
            for order in idx:
                t0 = time.perf_counter()
                loss_sum, samples, _, diverged, bad, penalty_sum = self._run_batches(
                    X, targets, order, bs, 0, per_epoch
                )
                if diverged:
                    return losses, seconds, True, bad, penalties
                losses.append(loss_sum / samples)
                penalties.append(penalty_sum / samples)
                seconds.append(time.perf_counter() - t0)
            return losses, seconds, False, -1, penalties

    def _run_batches(
        self,
        X: np.ndarray,
        targets: np.ndarray,
        order: np.ndarray,
        batch_size: int,
        first_batch: int,
        end_batch: int,
    ) -> tuple[float, int, int, bool, int, float]:
        """Batches [first_batch, end_batch) of ``order``, whose indices are checked."""
        loss_sum, samples, batches, penalty_sum = 0.0, 0, 0, 0.0
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            for bi in range(first_batch, end_batch):
                # A copy, checked again as the native loop does (types.hpp, sample_index):
                # the order stays the caller's array, which another thread may write
                # meanwhile, and a negative index would silently pick another sample.
                idx = order[bi * batch_size : (bi + 1) * batch_size].copy()
                _check_still_in_range(idx, X.shape[0])
                penalty = self._l2_penalty()  # with the weights before this batch's update
                value = self._step(X[idx], targets[idx])
                if not math.isfinite(value):
                    return loss_sum, samples, batches, True, bi, penalty_sum
                loss_sum += value * len(idx)
                penalty_sum += penalty
                samples += len(idx)
                batches += 1
        return loss_sum, samples, batches, False, -1, penalty_sum

    def _l2_penalty(self) -> float:
        """The L2 penalty's share of a batch's J · n_b: l2/(2 n_b)·Σ‖W‖² times n_b."""
        l2 = float(self.hyper.get("l2", 0.0))
        if not l2:
            return 0.0
        squares = 0.0
        for W in self.Ws:
            w = W.ravel().astype(np.float64)  # in float64 whatever the dtype, as natively
            squares += float(w @ w)
        return 0.5 * l2 * squares

    def _step(self, x: np.ndarray, t: np.ndarray) -> float:
        inputs, zs = [], []
        y = x
        for W, b, act in zip(self.Ws, self.bs, self.activations):
            inputs.append(y)  # last_input of this layer
            z, y = dense_forward(W, b, y, act)
            zs.append(z)
        value, dy = loss_backward(self.loss, y, t)  # dy_K = dJ/dy_K
        if not math.isfinite(value):
            return value
        grads: list[Any] = [None] * len(self.Ws)  # (dW, db) per layer, filled below
        for j in reversed(range(len(self.Ws))):
            dy, dW, db = dense_backward(self.Ws[j], inputs[j], zs[j], dy, self.activations[j])
            grads[j] = (dW, db)  # dy of the layer below is this layer's dx
        l2 = self.hyper.get("l2", 0.0)
        if l2:
            # The L2 penalty l2/(2 n_b)·Σ‖W‖²: W's gradient gains (l2/n_b)·W, b's nothing.
            c = self.Ws[0].dtype.type(l2 / len(x))  # x: a row per sample
            grads = [(dW + c * W, db) for (dW, db), W in zip(grads, self.Ws)]
        self._update(grads)
        return value

    def _update(self, grads: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        self.updating = True
        self._apply(grads)
        self.updating = False

    def _apply(self, grads: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        h = self.hyper
        if self.optimizer == "adam":
            assert self.step is not None  # Adam counts its steps
            self.step[0] += 1
            t = int(self.step[0])
        for j, (dW, db) in enumerate(grads):
            for theta, g, state in (
                (self.Ws[j], dW, self.state_W[j]),
                (self.bs[j], db, self.state_b[j]),
            ):
                if self.optimizer == "sgd":
                    velocity = state[0] if h["momentum"] > 0 else None
                    sgd_step(
                        theta,
                        g,
                        velocity,
                        h["lr"],
                        h["momentum"],
                        bool(h["nesterov"]),
                        h["weight_decay"],
                    )
                else:
                    adam_step(
                        theta,
                        g,
                        state[0],
                        state[1],
                        t,
                        h["lr"],
                        h["beta1"],
                        h["beta2"],
                        h["eps"],
                        h["weight_decay"],
                    )
