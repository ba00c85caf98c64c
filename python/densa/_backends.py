"""Backend names to modules. Both modules expose the same functions (docs/backprop.md
shows the two side by side)."""

from __future__ import annotations

import importlib
from types import ModuleType

BACKENDS = ("native", "reference")


def check_name(backend: object) -> str:
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a string, got {type(backend).__name__}: {backend!r}")
    if backend not in BACKENDS:
        expected = ", ".join(BACKENDS)
        raise ValueError(f"backend: unknown name {backend!r}; expected one of {expected}")
    return backend


def module(backend: str) -> ModuleType:
    """The module implementing ``backend`` (imported on first use)."""
    return importlib.import_module(f"densa.{check_name(backend)}")
