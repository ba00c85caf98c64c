"""Floating-point warnings off for the reference kernels, as the native ones have none.

Overflow in a diverging network is reported through its results (inf or NaN), and
``fit`` turns that into ``TrainingDivergedError``. A ``RuntimeWarning`` made an error
(``python -W error``, pytest's ``-W error``) would instead stop a kernel halfway, and an
optimizer step halfway through its update (the velocity updated, the parameter not).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

F = TypeVar("F", bound=Callable[..., Any])


def quiet(kernel: F) -> F:
    """``kernel`` run under ``np.errstate`` that ignores overflow, invalid operations,
    division by zero and underflow; its body stays the derivation, line for line."""

    @functools.wraps(kernel)
    def run(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            return kernel(*args, **kwargs)

    return run  # type: ignore[return-value]
