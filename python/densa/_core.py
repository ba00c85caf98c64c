"""densa's native core: the fastest build of it that this CPU can run.

The C++ core is compiled once per x86-64 instruction-set level into separate extension
modules: ``_core_baseline`` (any x86-64 CPU, or any CPU on other architectures),
``_core_x86_64_v3`` (AVX2 + FMA) and, when built, ``_core_x86_64_v4`` (AVX-512). This
module asks the baseline build which levels the CPU and OS support, imports the highest
one that was built, and re-exports its functions, so that ``from densa import _core``
gives the picked build. ``DENSA_ISA`` (``baseline``, ``x86-64-v3``/``avx2``,
``x86-64-v4``/``avx512``) forces a level; a level the CPU cannot run is refused.

The GEMMs run in OpenBLAS from the ``scipy-openblas32`` package; importing that package
first loads its library, which the extension modules link to.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import warnings
from typing import TYPE_CHECKING

# Loads libscipy_openblas (RTLD_GLOBAL) before the extension needs it; a build with
# DENSA_USE_BLAS=OFF does not need it.
with contextlib.suppress(ImportError):
    import scipy_openblas32  # noqa: F401

from . import _core_baseline
from ._config import MAX_THREADS

if TYPE_CHECKING:
    # Type checkers see the API every level shares (tools/stubs.py checks it is one).
    from ._core_baseline import *  # noqa: F403

LEVELS = ("baseline", "x86-64-v3", "x86-64-v4")
MODULES = {
    "baseline": "_core_baseline",
    "x86-64-v3": "_core_x86_64_v3",
    "x86-64-v4": "_core_x86_64_v4",
}
_ALIASES = {
    "baseline": "baseline",
    "generic": "baseline",
    "x86-64": "baseline",
    "x86-64-v3": "x86-64-v3",
    "v3": "x86-64-v3",
    "avx2": "x86-64-v3",
    "x86-64-v4": "x86-64-v4",
    "v4": "x86-64-v4",
    "avx512": "x86-64-v4",
}


def built_levels() -> tuple[str, ...]:
    """The ISA levels whose extension module is installed."""
    return tuple(
        level
        for level in LEVELS
        if importlib.util.find_spec(f"{__package__}.{MODULES[level]}") is not None
    )


def supported_levels() -> tuple[str, ...]:
    """The ISA levels this CPU and OS can run."""
    features = _core_baseline.cpu_features()
    return tuple(level for level in LEVELS if level == "baseline" or features.get(level))


def _pick() -> str:
    built, supported = built_levels(), supported_levels()
    forced = os.environ.get("DENSA_ISA", "").strip().lower()
    if forced:
        if forced not in _ALIASES:
            raise ImportError(
                f"DENSA_ISA={forced!r} is not a level densa knows; expected one of "
                f"{', '.join(sorted(_ALIASES))}"
            )
        level = _ALIASES[forced]
        if level not in built:
            raise ImportError(
                f"DENSA_ISA={forced!r}: densa was built without the {level} module "
                f"(built: {', '.join(built)})"
            )
        if level not in supported:
            raise ImportError(
                f"DENSA_ISA={forced!r}: this CPU cannot run {level} code "
                f"(supported: {', '.join(supported)})"
            )
        return level
    return [level for level in LEVELS if level in built and level in supported][-1]


def _default_num_threads() -> int:
    """DENSA_NUM_THREADS, else OMP_NUM_THREADS (its first entry), else the usable CPUs."""
    for var in ("DENSA_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "").split(",")[0].strip()
        if value:
            try:
                n = int(value)
            except ValueError:
                n = 0
            if 1 <= n <= MAX_THREADS:
                return n
            # Said once, as the extension loads: a typo here would otherwise go unnoticed.
            warnings.warn(
                f"densa: ignoring {var}={os.environ[var]!r} (expected a whole number of "
                f"threads from 1 to {MAX_THREADS})",
                RuntimeWarning,
                stacklevel=2,
            )
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


picked = _pick()
module = (
    _core_baseline
    if picked == "baseline"
    else importlib.import_module(f"{__package__}.{MODULES[picked]}")
)
globals().update({k: v for k, v in vars(module).items() if not k.startswith("__")})
module.set_num_threads(_default_num_threads())
