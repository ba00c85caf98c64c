"""The dense layer a network is made of: its sizes, activation and parameters."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import _checks, _memory, initializers


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}: {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return int(value)


class Dense:
    """A fully connected layer: z = W x + b, y = f(z).

    Parameters
    ----------
    n_in, n_out : int
        Input and output sizes (m_{j-1} and m_j in docs/backprop.md).
    activation : str
        One of identity (alias linear), sigmoid, tanh, relu, leaky_relu, elu, softplus, gelu.
    init : str, optional
        glorot_uniform, glorot_normal, he_uniform or he_normal; by default He for the
        relu family and Glorot otherwise. Drawn from the network's seed when the layer
        joins a ``Network``.

    Attributes
    ----------
    W : ndarray, shape (n_out, n_in)
        Weights. Assigning copies the new values, converted to the layer's dtype, into
        the array the layer already holds: a ``fit`` in progress (an ``on_epoch_end``
        that clips the weights, say), its optimizer and any trainer keep working on it.
    b : ndarray, shape (n_out,)
        Bias, zeros at initialization; assigned like W.

    A layer belongs to the networks built from it, which must share one dtype.
    """

    def __init__(
        self, n_in: int, n_out: int, activation: str = "relu", init: str | None = None
    ) -> None:
        self.n_in = _positive_int(n_in, "n_in")
        self.n_out = _positive_int(n_out, "n_out")
        self.activation = _checks.activation_name(activation)
        self.init = (
            initializers.default_for(self.activation)
            if init is None
            else (initializers.check_name(init))
        )
        self._W: np.ndarray | None = None
        self._b: np.ndarray | None = None
        self._in_network = False  # set when a Network adopts the layer (initialize)

    _in_network = False  # the default for layers pickled before the attribute existed

    # Parameters are stored C-contiguous in the network's dtype because the native
    # backend updates them in place through a zero-copy view.
    @property
    def W(self) -> np.ndarray:
        if self._W is None:
            raise RuntimeError("this layer's W is not initialized yet: add it to a densa.Network")
        return self._W

    @W.setter
    def W(self, value: ArrayLike) -> None:
        self._W = self._place(self._W, self._coerce(value, "W", (self.n_out, self.n_in)))

    @property
    def b(self) -> np.ndarray:
        if self._b is None:
            raise RuntimeError("this layer's b is not initialized yet: add it to a densa.Network")
        return self._b

    @b.setter
    def b(self, value: ArrayLike) -> None:
        self._b = self._place(self._b, self._coerce(value, "b", (self.n_out,)))

    @property
    def initialized(self) -> bool:
        return self._W is not None and self._b is not None

    @property
    def dtype(self) -> np.dtype[Any] | None:
        return None if self._W is None else self._W.dtype

    @property
    def n_params(self) -> int:
        return self.n_out * self.n_in + self.n_out

    def _coerce(self, value: ArrayLike, name: str, shape: tuple[int, ...]) -> np.ndarray:
        arr = np.asarray(value)
        if arr.dtype.kind not in "fiu" or arr.dtype.kind == "b":
            raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
        if arr.shape != shape:
            raise ValueError(
                f"{name} must have shape {shape} for a Dense({self.n_in}, "
                f"{self.n_out}) layer, got {arr.shape}"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or inf")
        dtype = (
            self.dtype
            if self.dtype is not None
            else (arr.dtype if arr.dtype in _checks.FLOAT_DTYPES else np.dtype(np.float32))
        )
        with np.errstate(over="ignore"):  # reported below, as an error
            converted = _memory.aligned_copy(arr, dtype)
        if not np.all(np.isfinite(converted)):
            raise ValueError(
                f"{name} has values beyond {dtype}'s range (largest finite "
                f"{float(np.finfo(dtype).max):.4g}): they would become inf"
            )
        return converted

    @staticmethod
    def _place(current: np.ndarray | None, new: np.ndarray) -> np.ndarray:
        """The array to hold: ``current`` with ``new``'s values, once there is one.

        In place, because others hold ``current``: a running fit's trainer updates it
        through a zero-copy view, and a replaced array would silently stop training.
        """
        if current is None or current.dtype != new.dtype:
            return new
        current[...] = new
        return current

    def initialize(self, rng: np.random.Generator, dtype: DTypeLike) -> None:
        """Draw W (and zero b) if unset; otherwise convert existing values to ``dtype``.

        A layer already in a network keeps its dtype: converting it would change the
        type of that network's parameters under it (ValueError).
        """
        dtype = np.dtype(dtype)
        self.check_can_join(dtype)
        self._in_network = True
        if self._W is None:
            self._W = initializers.draw(self.init, self.n_in, self.n_out, rng, dtype)
        if self._b is None:
            self._b = np.zeros(self.n_out, dtype=dtype)
        self.realign(dtype)

    def check_can_join(self, dtype: DTypeLike) -> None:
        """Refuse (ValueError) a network of ``dtype`` if the layer is in one of another."""
        dtype = np.dtype(dtype)
        if self._in_network and self._W is not None and self._W.dtype != dtype:
            raise ValueError(
                f"{self!r} already belongs to a {self._W.dtype} network and cannot join a "
                f"{dtype} one (sharing it would change the type of the other network's "
                "parameters): build new layers, or use the same dtype"
            )

    def realign(self, dtype: DTypeLike | None = None) -> None:
        """Keep W and b C-contiguous, 64-byte aligned and in ``dtype`` (see densa._memory);
        called after unpickling and loading, which hand back arrays placed anywhere."""
        target = self.W.dtype if dtype is None else np.dtype(dtype)
        self._W = _memory.aligned(self.W, target)
        self._b = _memory.aligned(self.b, target)

    def __repr__(self) -> str:
        return f"Dense({self.n_in}, {self.n_out}, activation={self.activation!r})"
