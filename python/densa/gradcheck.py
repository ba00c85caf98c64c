"""Check a network's backpropagation against central finite differences.

``check_gradients(net, X, y)`` takes dW and db from ``net.gradients`` (the active
backend, in the network's dtype) and compares them with

    dJ/dθ_i ≈ (J(θ + ε e_i) − J(θ − ε e_i)) / (2ε)

where J is evaluated in float64 by ``densa.reference`` on a float64 copy of the
parameters and of the (already converted) data. A float32 network is therefore checked
against the exact derivative of the function it computes, not against float32 noise:
its parameters and inputs are float32 values, which float64 holds exactly.

Errors are reported per tensor as

* ``max_abs``: max_i |analytic_i − numeric_i|;
* ``max_rel``: max_abs / max_i |numeric_i|, the error relative to the tensor's largest
  gradient (a norm-wise relative error: entries near zero do not make it explode).

A tensor passes when ``max_abs <= atol + rtol · max_i |numeric_i| + fd_noise`` with
``fd_noise = 64 · u64 · max(1, |J|) / ε``, the rounding of the difference itself (u64 is
float64's unit roundoff): it matters only where gradients are tiny beside a large J.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, overload

import numpy as np
from numpy.typing import ArrayLike

from . import _checks, inspection

if TYPE_CHECKING:
    from .network import Network
from .reference import dense_forward, loss_forward

# Defaults per network dtype. float64: the finite difference is good to about
# ε²·|J'''| + u64·|J|/ε, measured 2e-9 relative to a tensor's largest gradient with
# ε = 1e-6; 1e-6 leaves a 500x margin while a real bug (a wrong factor, sign or transpose)
# gives errors of order 1. float32: the analytic gradient carries float32 rounding
# (u32 ≈ 6e-8) grown by the sums over samples and units and by each layer it crosses;
# measured below 7e-7 on 3-layer networks of 32 units over 256 samples, so 1e-4.
_TOLERANCES = {
    np.dtype(np.float64): (1e-6, 1e-9),
    np.dtype(np.float32): (1e-4, 1e-7),
}
# The difference J(θ+ε) − J(θ−ε) is itself rounded, by about u64·|J|; divided by 2ε that
# is an absolute error no gradient code can beat. Allowed on top of atol, with a margin.
_FD_ROUNDING_MARGIN = 64


@dataclass(frozen=True)
class QuantityCheck:
    """The comparison for one tensor (one layer's dW or db).

    Attributes
    ----------
    max_abs : float
        max_i |analytic_i − numeric_i| over the checked entries.
    max_rel : float
        ``max_abs`` divided by max_i |numeric_i| (0 when both are 0).
    scale : float
        max_i |numeric_i| over the checked entries.
    checked, total : int
        Entries compared, and entries in the tensor.
    worst_index : tuple of int
        Index in the tensor of the entry with the largest absolute error.
    ok : bool
        ``max_abs <= atol + rtol * scale + fd_noise`` (see the module docstring).
    """

    max_abs: float
    max_rel: float
    scale: float
    checked: int
    total: int
    worst_index: tuple[int, ...]
    ok: bool


@dataclass(frozen=True)
class LayerCheck:
    """dW and db comparisons for one layer; ``check["dW"]`` equals ``check.dW``."""

    index: int
    layer: str
    dW: QuantityCheck
    db: QuantityCheck

    @property
    def ok(self) -> bool:
        return self.dW.ok and self.db.ok

    def __getitem__(self, key: str) -> QuantityCheck:
        if key not in ("dW", "db"):
            raise KeyError(f"{key!r}: a layer check holds 'dW' and 'db'")
        check: QuantityCheck = getattr(self, key)
        return check


class GradientReport(Sequence["LayerCheck"]):
    """Per-layer results of ``check_gradients``, input side first.

    ``report[j]`` is layer j's ``LayerCheck``; ``report.ok`` is True when every tensor
    passed; ``report.worst`` names the tensor with the largest relative error;
    ``str(report)`` is a table. ``loss`` is J at the checked parameters; ``eps``,
    ``rtol``, ``atol`` and ``fd_noise`` are the settings the verdicts used.
    """

    def __init__(
        self,
        layers: list[LayerCheck],
        *,
        loss: float,
        loss_name: str,
        dtype: str,
        backend: str,
        eps: float,
        rtol: float,
        atol: float,
        fd_noise: float,
    ) -> None:
        self.layers = layers
        self.loss, self.loss_name, self.dtype, self.backend = loss, loss_name, dtype, backend
        self.eps, self.rtol, self.atol, self.fd_noise = eps, rtol, atol, fd_noise

    @overload
    def __getitem__(self, index: int) -> LayerCheck: ...

    @overload
    def __getitem__(self, index: slice) -> list[LayerCheck]: ...

    def __getitem__(self, index: int | slice) -> LayerCheck | list[LayerCheck]:
        return self.layers[index]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[LayerCheck]:
        return iter(self.layers)

    @property
    def ok(self) -> bool:
        """Every checked tensor is within tolerance."""
        return all(layer.ok for layer in self.layers)

    @property
    def worst(self) -> tuple[int, str, QuantityCheck]:
        """``(layer index, "dW" or "db", QuantityCheck)`` with the largest relative error."""
        candidates = [(lc.index, q, lc[q]) for lc in self.layers for q in ("dW", "db")]
        return max(candidates, key=lambda c: (c[2].max_rel, c[2].max_abs))

    @property
    def max_rel(self) -> float:
        """The largest relative error of any tensor."""
        return self.worst[2].max_rel

    def __repr__(self) -> str:
        j, q, c = self.worst
        return (
            f"GradientReport({len(self)} layers, ok={self.ok}, worst=layer {j} {q} "
            f"rel {c.max_rel:.2e})"
        )

    def __str__(self) -> str:
        head = ("#", "layer", "tensor", "checked", "max abs err", "max rel err", "ok")
        rows = [head]
        for lc in self.layers:
            for q in ("dW", "db"):
                c = lc[q]
                rows.append(
                    (
                        str(lc.index),
                        lc.layer if q == "dW" else "",
                        q,
                        f"{c.checked}/{c.total}",
                        f"{c.max_abs:.3e}",
                        f"{c.max_rel:.3e}",
                        "yes" if c.ok else "NO",
                    )
                )
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        right = {0, 3, 4, 5}  # numbers align right
        lines = [
            "  ".join(
                cell.rjust(w) if i in right else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(r, widths))
            ).rstrip()
            for r in rows
        ]
        rule = "-" * max(len(line) for line in lines)
        j, q, c = self.worst
        verdict = "all within tolerance" if self.ok else "FAILED"
        return "\n".join(
            [
                f"gradient check: {self.loss_name} loss {self.loss:.6g}, {self.dtype} network, "
                f"{self.backend} backend; central differences in float64, eps={self.eps:g}",
                rule,
                lines[0],
                rule,
                *lines[1:],
                rule,
                f"worst: layer {j} {q}, relative error {c.max_rel:.3e} "
                f"(pass: abs err <= {self.atol + self.fd_noise:.3g} + {self.rtol:g}·max|grad|): "
                f"{verdict}",
            ]
        )


def _positive_float(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}: {value!r}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def _forward_loss(
    Ws: Sequence[np.ndarray],
    bs: Sequence[np.ndarray],
    acts: Sequence[str],
    loss_name: str,
    y: np.ndarray,
    T: np.ndarray,
    start: int,
) -> float:
    """J in float64, running layers ``start`` onwards from ``y`` (their input)."""
    for W, b, act in zip(Ws[start:], bs[start:], acts[start:]):
        _, y = dense_forward(W, b, y, act)
    return loss_forward(loss_name, y, T)


def _numeric(
    theta: np.ndarray, flat_indices: np.ndarray, loss_at: Callable[[], float], eps: float
) -> np.ndarray:
    """Central differences of ``loss_at()`` along the chosen entries of ``theta``."""
    flat = theta.reshape(-1)  # a view: perturbing it perturbs theta
    out = np.empty(len(flat_indices))
    for k, i in enumerate(flat_indices):
        orig = flat[i]
        flat[i] = orig + eps
        plus = loss_at()
        flat[i] = orig - eps
        minus = loss_at()
        flat[i] = orig  # restored exactly: the next entry sees unperturbed parameters
        out[k] = (plus - minus) / (2 * eps)
    return out


def _compare(
    analytic: np.ndarray,
    theta: np.ndarray,
    flat_indices: np.ndarray,
    loss_at: Callable[[], float],
    eps: float,
    rtol: float,
    atol: float,
) -> QuantityCheck:
    """A ``QuantityCheck`` of ``analytic`` against differences of ``loss_at`` along theta;
    ``atol`` already includes the finite difference's own rounding."""
    numeric = _numeric(theta, flat_indices, loss_at, eps)
    a = np.asarray(analytic, dtype=np.float64).reshape(-1)[flat_indices]
    err = np.abs(a - numeric)
    k = int(np.argmax(err))
    max_abs = float(err[k])
    scale = float(np.max(np.abs(numeric)))
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else math.inf)
    return QuantityCheck(
        max_abs=max_abs,
        max_rel=max_rel,
        scale=scale,
        checked=len(flat_indices),
        total=theta.size,
        worst_index=tuple(int(i) for i in np.unravel_index(flat_indices[k], theta.shape)),
        ok=bool(max_abs <= atol + rtol * scale),
    )


def check_gradients(
    net: Network,
    X: ArrayLike,
    y: ArrayLike,
    eps: float = 1e-6,
    *,
    max_entries: int | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    seed: int | np.random.Generator | None = 0,
) -> GradientReport:
    """Compare ``net``'s backpropagated dW and db with float64 finite differences.

    Parameters
    ----------
    net : densa.Network
        Any dtype and backend; its parameters and random generator are left untouched.
    X : array_like, shape (N, n_in)
    y : array_like
        Targets as ``net.fit`` takes them.
    eps : float
        Step of the central difference (absolute, on each parameter).
    max_entries : int, optional
        Check at most this many entries per tensor, drawn without replacement; by
        default every entry. Each entry costs two float64 forward passes over the
        layers from its own onwards, so a (1000, 1000) layer needs ``max_entries``
        to stay fast.
    rtol, atol : float, optional
        A tensor passes when ``max_abs <= atol + rtol · max|numeric| + fd_noise`` (see
        the module docstring). Defaults: 1e-6 and 1e-9 for float64 networks, 1e-4 and
        1e-7 for float32.
    seed : int, numpy.random.Generator or None
        Seeds the choice of sampled entries (a generator of its own, not the network's;
        a Generator given is drawn from).

    Returns
    -------
    GradientReport
        Per layer, max absolute and relative errors of dW and db; ``.ok``,
        ``.worst`` and a readable ``str()``.
    """
    from .network import Network

    if not isinstance(net, Network):
        raise TypeError(f"net must be a densa.Network, got {type(net).__name__}")
    eps = _positive_float(eps, "eps")
    if max_entries is not None and (
        isinstance(max_entries, (bool, np.bool_)) or not isinstance(max_entries, (int, np.integer))
    ):
        raise TypeError(
            f"max_entries must be a positive integer or None, got {_checks.describe(max_entries)}"
        )
    if max_entries is not None and max_entries < 1:
        raise ValueError(f"max_entries must be a positive integer or None, got {max_entries!r}")
    default_rtol, default_atol = _TOLERANCES[np.dtype(net.dtype)]
    rtol = default_rtol if rtol is None else _positive_float(rtol, "rtol")
    atol = default_atol if atol is None else _positive_float(atol, "atol")
    seed = _checks.seed(seed)

    Xa, T = net._prepare_xy(X, y)
    value, grads = inspection.gradients(net, Xa, T)  # the active backend, net's dtype
    fd_noise = _FD_ROUNDING_MARGIN * np.finfo(np.float64).eps / 2 * max(1.0, abs(value)) / eps

    # Float64 copies: exact for float32 values, so J below is the network's own function.
    Ws = [np.array(layer.W, dtype=np.float64) for layer in net.layers]
    bs = [np.array(layer.b, dtype=np.float64) for layer in net.layers]
    acts = [layer.activation for layer in net.layers]
    T64 = T.astype(np.float64)
    inputs = [Xa.astype(np.float64)]  # inputs[j] = y_{j}: layers before j never change
    for W, b, act in zip(Ws[:-1], bs[:-1], acts[:-1]):
        inputs.append(dense_forward(W, b, inputs[-1], act)[1])

    pick = np.random.default_rng(seed)
    checks = []
    for j, layer in enumerate(net.layers):

        def loss_at(j: int = j) -> float:
            return _forward_loss(Ws, bs, acts, net.loss, inputs[j], T64, j)

        results = {}
        for name, theta in (("dW", Ws[j]), ("db", bs[j])):
            n = theta.size
            if max_entries is None or max_entries >= n:
                idx = np.arange(n)
            else:
                idx = np.sort(pick.choice(n, size=int(max_entries), replace=False))
            results[name] = _compare(
                grads[j][name], theta, idx, loss_at, eps, rtol, atol + fd_noise
            )
        checks.append(LayerCheck(index=j, layer=repr(layer), dW=results["dW"], db=results["db"]))
    return GradientReport(
        checks,
        loss=value,
        loss_name=net.loss,
        dtype=net.dtype.name,
        backend=net.backend,
        eps=eps,
        rtol=rtol,
        atol=atol,
        fd_noise=fd_noise,
    )
