"""Optimizers: hyperparameters plus the state they carry between steps.

The update rules are written once per backend (``densa.reference.optimizer`` and
``cpp/densa/optimizer.hpp``); these classes hold what those rules need. The state
(velocities, moments, Adam's step count) is created for a network on first use and
kept in the optimizer object, which the network keeps as ``net.optimizer``: calling
``fit`` again, with no optimizer or with the same object, continues from it. That state
belongs to the one network it was made for (``Network.fit`` refuses an optimizer holding
another network's state): each network needs an optimizer object of its own.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _memory

if TYPE_CHECKING:
    from .layers import Dense
    from .network import Network


def _check_lr(lr: object) -> float:
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating, np.integer)):
        raise TypeError(f"lr must be a number, got {type(lr).__name__}: {lr!r}")
    try:
        value = float(lr)
    except OverflowError:  # an int beyond float's range
        value = math.inf
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"lr must be a finite number > 0, got {lr}")
    return value


def _check_range(value: object, name: str, low: float, high: float, high_open: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}: {value!r}")
    given = value
    try:
        value = float(value)
    except OverflowError:  # an int beyond float's range
        value = math.inf
    ok = math.isfinite(value) and low <= value and (value < high if high_open else value <= high)
    if not ok:
        if math.isinf(high):  # [low, inf] would seem to admit inf, which is refused
            raise ValueError(f"{name} must be a finite number >= {low}, got {given}")
        bracket = ")" if high_open else "]"
        raise ValueError(f"{name} must lie in [{low}, {high}{bracket}, got {given}")
    return value


class Optimizer:
    """Base class: state per network parameter, created on first use."""

    kind = ""
    n_state = 0  # state arrays per parameter tensor
    lr: float  # set by every optimizer
    weight_decay: float
    # scikit-learn's L2 penalty (SGD's docstring). A class default, for optimizers pickled
    # before the attribute existed.
    l2: float = 0.0
    # The network whose fit made the state, weakly held (the optimizer, kept as
    # net.optimizer, must not keep its network alive); None until a fit uses it, and
    # after unpickling or copying, which keep the state but not the network (see
    # Network.fit). A class default, for optimizers pickled before the attribute existed.
    _owner: weakref.ReferenceType[Network] | None = None

    def __init__(self) -> None:
        self.state_W: list[list[np.ndarray]] = []
        self.state_b: list[list[np.ndarray]] = []
        # Adam's t, the updates applied so far (its bias correction); SGD leaves it at 0.
        self.step = np.zeros(1, dtype=np.int64)
        self._owner = None

    def __getstate__(self) -> dict[str, Any]:
        # A weak reference does not pickle; a copy's state is adopted by the first
        # network it trains (an unpickled network claims its own: Network.__setstate__).
        state = self.__dict__.copy()
        state.pop("_owner", None)
        return state

    def _has_state(self) -> bool:
        """Whether a fit left state here: arrays (momentum, Adam's moments) or steps."""
        return any(len(s) for s in self.state_W) or int(self.step[0]) != 0

    def hyper(self) -> dict[str, float]:
        """The hyperparameters the update rules take, by name."""
        raise NotImplementedError

    def _uses_state(self) -> bool:
        return self.n_state > 0

    def prepare(
        self,
        layers: Sequence[Dense],
        ready: Callable[..., bool] | None = None,
        zeros_like: Callable[[list[np.ndarray], int], list[np.ndarray]] | None = None,
    ) -> None:
        """Create zero state for ``layers`` unless state of the right shapes exists.

        The native backend's helpers, each one call in place of many NumPy ones (fit
        calls this right after whatever preceded it, often an idle pause that has made
        NumPy's code cold; docs/performance.md): ``ready(Ws, bs, state_W, state_b, n,
        alignment)`` tells whether the state already fits, aligned
        (``densa.native._state_ready``; when it says no, the comparisons below run as
        without it), and ``zeros_like(arrays, alignment)`` makes the new state
        (``densa.native._aligned_zeros_like``: the arrays ``_memory.aligned_zeros``
        makes).
        """
        n = self.n_state if self._uses_state() else 0
        Ws, bs = [layer.W for layer in layers], [layer.b for layer in layers]
        if (
            n
            and ready is not None
            and ready(Ws, bs, self.state_W, self.state_b, n, _memory.ALIGNMENT)
        ):
            return
        shapes = [(layer.W.shape, layer.b.shape, layer.W.dtype) for layer in layers]
        have = [
            (s[0].shape, t[0].shape, s[0].dtype)
            for s, t in zip(self.state_W, self.state_b)
            if s and t
        ]
        if n == 0:
            self.state_W = [[] for _ in layers]
            self.state_b = [[] for _ in layers]
            return
        if have == shapes and all(len(s) == n for s in self.state_W):
            # Unpickled or loaded state may sit anywhere in memory: realign it in place.
            for states in (*self.state_W, *self.state_b):
                states[:] = [_memory.aligned(a, a.dtype) for a in states]
            return
        if zeros_like is not None:
            # Per state slot k, every layer's W then every layer's b.
            count = len(layers)
            new = zeros_like((Ws + bs) * n, _memory.ALIGNMENT)
            slots = [new[k * 2 * count : (k + 1) * 2 * count] for k in range(n)]
            self.state_W = [[slot[i] for slot in slots] for i in range(count)]
            self.state_b = [[slot[count + i] for slot in slots] for i in range(count)]
            self.step[0] = 0
            return
        zeros = _memory.aligned_zeros  # aligned like the parameters, for bitwise repeatability
        self.state_W = [[zeros(layer.W.shape, layer.W.dtype) for _ in range(n)] for layer in layers]
        self.state_b = [[zeros(layer.b.shape, layer.b.dtype) for _ in range(n)] for layer in layers]
        self.step[0] = 0

    def reset(self) -> None:
        """Forget all state: the next ``fit`` starts the optimizer afresh, on any network."""
        self.state_W, self.state_b = [], []
        self.step[0] = 0

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyper().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay.

    θ ← θ − lr · step, with g = dθ + weight_decay·θ, v = momentum·v + g and
    step = v (or g + momentum·v with Nesterov; g without momentum). PyTorch's convention.

    ``l2`` is scikit-learn's ``alpha``: each batch of n_b samples adds
    ``l2/(2·n_b)·Σ‖W‖²`` to the loss, so W's gradient (never b's) gains ``(l2/n_b)·W``
    before the step. The loss ``fit`` reports (``History.loss``) includes each batch's
    penalty, with the weights that batch saw; ``weight_decay`` adds nothing to it.
    """

    kind = "sgd"
    n_state = 1

    def __init__(
        self,
        lr: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        l2: float = 0.0,
    ) -> None:
        super().__init__()
        self.lr = _check_lr(lr)
        self.l2 = _check_range(l2, "l2", 0.0, math.inf, False)
        self.momentum = _check_range(momentum, "momentum", 0.0, 1.0, high_open=True)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be True or False, got {nesterov!r}")
        if nesterov and self.momentum == 0.0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.nesterov = bool(nesterov)
        self.weight_decay = _check_range(weight_decay, "weight_decay", 0.0, math.inf, False)

    def _uses_state(self) -> bool:
        return self.momentum > 0.0

    def hyper(self) -> dict[str, float]:
        return {
            "lr": self.lr,
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
            **_l2_entry(self.l2),
        }


class Adam(Optimizer):
    """Adam with decoupled weight decay (AdamW when weight_decay > 0).

    θ ← θ·(1 − lr·wd); m = β1 m + (1−β1) g; v = β2 v + (1−β2) g²;
    θ ← θ − lr/(1−β1ᵗ) · m / (sqrt(v)/sqrt(1−β2ᵗ) + ε).

    ``l2``: scikit-learn's ``alpha``, as for SGD: W's gradient g gains ``(l2/n_b)·W``
    before the moments see it (coupled, unlike ``weight_decay``), and the loss ``fit``
    reports includes its penalty.
    """

    kind = "adam"
    n_state = 2

    def __init__(
        self,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        l2: float = 0.0,
    ) -> None:
        super().__init__()
        self.lr = _check_lr(lr)
        self.l2 = _check_range(l2, "l2", 0.0, math.inf, False)
        try:
            beta1, beta2 = betas
        except (TypeError, ValueError):
            raise TypeError(f"betas must be a pair of numbers, got {betas!r}") from None
        self.betas = (
            _check_range(beta1, "betas[0]", 0.0, 1.0, True),
            _check_range(beta2, "betas[1]", 0.0, 1.0, True),
        )
        self.eps = _check_range(eps, "eps", 0.0, math.inf, False)
        if self.eps == 0.0:
            raise ValueError("eps must be > 0 (it keeps the update finite where v = 0)")
        self.weight_decay = _check_range(weight_decay, "weight_decay", 0.0, math.inf, False)

    def hyper(self) -> dict[str, float]:
        return {
            "lr": self.lr,
            "beta1": self.betas[0],
            "beta2": self.betas[1],
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            **_l2_entry(self.l2),
        }

    def __repr__(self) -> str:
        l2 = f", l2={self.l2!r}" if self.l2 else ""
        return (
            f"Adam(lr={self.lr!r}, betas={self.betas!r}, eps={self.eps!r}, "
            f"weight_decay={self.weight_decay!r}{l2})"
        )


def _l2_entry(l2: float) -> dict[str, float]:
    # Only when set: hyper() without it is what densa gave before l2 existed, and a model
    # file without it stays readable by densa versions that predate it.
    return {"l2": l2} if l2 else {}


OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "adam": Adam}
