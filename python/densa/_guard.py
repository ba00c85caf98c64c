"""What keeps ``fit`` from losing work: the last finite training state (``LastFinite``)
and Ctrl-C held back until a chunk of batches is fully accounted for
(``DeferredInterrupt``).

The trainers stop before the update of a batch whose loss is NaN or inf, but an
update can itself overflow (a huge learning rate): the parameters are then NaN or inf
although every loss seen so far was finite. ``fit`` therefore copies the parameters
and the optimizer state between chunks of batches (about ten times a second), when
they are finite, and puts the copy back if training diverges with parameters that are
not. The reference backend also uses it after a KeyboardInterrupt that arrived in the
middle of an update.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from . import _checks

# The C functions under signal's wrappers, which convert every handler and number to an
# enum and back: 9.1 against 1.0 us per block, one block per trainer call in fit.
try:
    import _signal as _raw_signal  # type: ignore[import-not-found]
except ImportError:  # not CPython's layout
    _raw_signal = signal

if TYPE_CHECKING:
    from .layers import Dense
    from .optimizers import Optimizer


def _numpy_copy_if_finite(
    live: Sequence[np.ndarray],
    spare: Sequence[np.ndarray],
    n_params: int,
    n_checked: int,
    copy: bool,
) -> int:
    """The native backend's ``copy_if_finite`` (cpp/bindings/module.cpp) in NumPy: 2 when
    live[:n_checked] are all finite (then live is copied into spare if ``copy``), 1 when
    only the parameters live[:n_params] are, 0 when they are not."""
    if not _checks.all_finite_many(live[:n_checked]):  # one pass in the usual case
        return int(_checks.all_finite_many(live[:n_params]))
    if copy:
        for dst, src in zip(spare, live):
            np.copyto(dst, src)
    return 2


class LastFinite:
    """Double-buffered copy of every W, b and optimizer state array of a network.

    Parameters
    ----------
    layers : list of Dense
    optimizer : Optimizer
        Its state arrays (velocity, Adam's m and v, and step) are copied and restored
        too, so that training continued after a restore is consistent.

    Notes
    -----
    The copy goes into a spare buffer that replaces the saved one only once complete:
    a KeyboardInterrupt in the middle of a copy leaves the previous copy intact.
    Buffers are allocated once per ``fit``.
    """

    def __init__(
        self,
        layers: Sequence[Dense],
        optimizer: Optimizer,
        copy_if_finite: Callable[..., int] | None = None,
        zeros_like: Callable[[list[np.ndarray], int], list[np.ndarray]] | None = None,
    ) -> None:
        self._params = [p for layer in layers for p in (layer.W, layer.b)]
        state = [a for per_layer in optimizer.state_W + optimizer.state_b for a in per_layer]
        self._state = state
        self._checked = self._params + state
        self._live = [*self._checked, optimizer.step]
        self._spare: list[np.ndarray] | None = None
        self.saved: tuple[tuple[int, int], list[np.ndarray]] | None = None
        # The native backend's check and copy in one call (densa.native._copy_if_finite):
        # one crossing instead of ~17 NumPy calls, each slow in the first milliseconds
        # after an idle pause (a capture took 60-130 us there, against 27 us warm).
        self._copy_if_finite = copy_if_finite or _numpy_copy_if_finite
        # And its allocation of a buffer's arrays (densa.native._aligned_zeros_like), one
        # call in place of an np.empty_like per array (~1 ms of a W4 fit's first capture
        # right after an idle pause, in the benchmark's company).
        self._zeros_like = zeros_like

    def params_finite(self) -> bool:
        return _checks.all_finite_many(self._params)

    def capture(self, label: tuple[int, int], keep: bool = True) -> bool:
        """Copy the live arrays if they are all finite; ``label`` is (epoch, batches done).

        Returns False when the parameters hold NaN or inf (nothing is copied then). A
        non-finite optimizer state with finite parameters is not copied either, but is
        not reported: the parameters are still usable. ``keep=False`` only checks: after
        a fit's last chunk nothing trains that a copy could be put back for (the copy
        took ~1% of a digits fit), and the copy saved before stays in place.
        """
        spare = self._spare
        if spare is None and keep:
            spare = (
                self._zeros_like(self._live, 1)
                if self._zeros_like is not None
                else [np.empty_like(a) for a in self._live]
            )
        # 2: all finite (and copied if keep), 1: the parameters only, 0: not them.
        status = self._copy_if_finite(
            self._live, spare or self._live, len(self._params), len(self._checked), keep
        )
        if status < 2:
            return status == 1
        if not keep:
            return True
        assert spare is not None
        previous = self.saved
        self.saved = (label, spare)  # one assignment: the new copy is complete
        self._spare = None if previous is None else previous[1]
        return True

    def restore(self) -> tuple[int, int] | None:
        """Put the saved copy back in place (the arrays keep their identity, since the
        trainers and the user may hold them); returns its label, or None if none."""
        if self.saved is None:
            return None
        label, copies = self.saved
        for dst, src in zip(self._live, copies):
            np.copyto(dst, src)
        return label


class Restored:
    """What ``LastFinite`` would answer after a fit made of one native call (the native
    trainer's ``fit``), which made its capture before the first epoch and put it back
    itself when the parameters ended NaN or inf: for ``Network._diverged``'s message."""

    def __init__(self, params_finite: bool, restored: bool) -> None:
        self._params_finite = params_finite
        self._restored = restored

    def params_finite(self) -> bool:
        """Whether the parameters were finite when training stopped (before any restore)."""
        return self._params_finite

    def restore(self) -> tuple[int, int] | None:
        """The label of the copy put back, (0, 0) (before the first epoch), or None."""
        return (0, 0) if self._restored else None


class DeferredInterrupt:
    """Hold Ctrl-C back for the duration of a block, then raise KeyboardInterrupt.

    ``fit`` runs each chunk of batches and its bookkeeping (batches done, loss sums,
    the finite copy) inside this block, so that a KeyboardInterrupt never separates
    the parameters from the count of batches that produced them: without it, Ctrl-C
    arriving as the native call returns would be raised before its result is read, and
    in the reference loop it could land between two tensors' updates. A block lasts
    about 0.1 s, so Ctrl-C is still answered within a fraction of a second.

    Only the main thread receives SIGINT, and only Python's own handler is replaced:
    elsewhere, or under a handler someone else installed, the block does nothing.
    """

    def __init__(self) -> None:
        self.pending = False
        self._previous: Any = None  # the SIGINT handler to put back

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.pending = True

    def __enter__(self) -> DeferredInterrupt:
        self.pending = False
        if (
            threading.current_thread() is threading.main_thread()
            and _raw_signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
            self._previous = _raw_signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        if self._previous is not None:
            _raw_signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        if self.pending and exc_type is None:
            raise KeyboardInterrupt
        return False
