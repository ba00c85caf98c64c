"""How much training ``fit`` hands a trainer per call.

Each call returns to Python for the bookkeeping between chunks of batches: the progress
bar, Ctrl-C, the finite copy of the parameters (densa._guard). Calls should be long
enough that this bookkeeping costs little next to the training, and short enough that
control comes back about every ``CHUNK_SECONDS``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

CHUNK_SECONDS = 0.1  # training between returns to Python (Ctrl-C, bar, finite copy)
# A plain fit (no bar, callback, validation or early stopping) returns to Python for
# nothing but Ctrl-C, which waits for the call to end: it runs whole in one native call
# when it is assumed to take at most this long. The assumed costs are pessimistic by
# design (NATIVE_COSTS: the digits network's 30 epochs are assumed to take 0.23 s, and
# take 7-9 ms on the development machine), so Ctrl-C is then answered within
# milliseconds, and within this time even on a machine several times slower. Held to
# CHUNK_SECONDS instead, that fit ran as two calls and two finite copies, 3.7% slower
# after an idle pause (docs/performance.md, the twenty-fourth session).
ONE_CALL_SECONDS = 0.5
# Epochs run in one call hold their sample orders at once (int64 each): at most this
# many entries, 16 MiB, so that a fast epoch over many samples cannot claim much memory.
GROUP_ORDER_ENTRIES = 2_000_000


class Costs(NamedTuple):
    """What a batch is assumed to cost before any has been timed: ``batch_seconds``,
    plus ``layer_seconds`` per layer, plus its products' flops at ``flops`` per second,
    plus ``value_seconds`` per value of its layers' outputs (the activations, their
    derivatives and the loss)."""

    batch_seconds: float
    layer_seconds: float
    flops: float
    value_seconds: float


# The reference backend's costs. All are pessimistic by design: on the development
# machine a small network's batch takes 5-15 us native and ~0.1 ms reference, a reference
# layer 20-60 us, products run at 10-150 GFLOP/s, and the slowest activation (the
# reference's gelu in float64, forward and backward) ~230 ns per value. An estimate too
# low would make the first call overrun the chunk time; one too high only costs an extra
# call. Timing the first batch instead costs a call and a finite copy more per fit.
REFERENCE_COSTS = Costs(5e-4, 1e-4, 1e9, 2.5e-7)
# The native backend runs a batch without Python: its fixed costs are ~1 us a batch and
# well under 1 us a layer on the development machines (W4's whole batch: 1.3 us), its
# products run at 10-150 GFLOP/s, and its slowest activation costs a few ns per value.
# Each cost below is still several times the slowest of those, so that the first call
# stays within the chunk time (tests/test_pacing.py times it); sized from the reference's
# costs instead, a small network's first epoch was cut into chunks and only the later
# epochs grouped, which cost a W4 fit two trainer calls and two finite copies more.
NATIVE_COSTS = Costs(2e-5, 5e-6, 1e10, 2.5e-8)


def costs_for(backend: str) -> Costs:
    """The assumed costs of a backend's batches (by its name)."""
    return NATIVE_COSTS if backend == "native" else REFERENCE_COSTS


def batch_flops(sizes: Sequence[int], batch_size: int) -> float:
    """Flops of one training step of a network with these layer widths (input first):
    per layer, the forward product and the two backward ones (dW and dx)."""
    macs = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return 6.0 * float(batch_size) * float(macs)


def assumed_batch_seconds(
    sizes: Sequence[int], batch_size: int, costs: Costs = REFERENCE_COSTS
) -> float:
    """What a training step of this network is assumed to cost before any is timed."""
    values = float(batch_size) * float(sum(sizes[1:]))
    return (
        costs.batch_seconds
        + costs.layer_seconds * (len(sizes) - 1)
        + batch_flops(sizes, batch_size) / costs.flops
        + values * costs.value_seconds
    )


def assumed_epoch_seconds(
    sizes: Sequence[int], batch_size: int, n_batches: int, costs: Costs = REFERENCE_COSTS
) -> float:
    """What an epoch of ``n_batches`` training steps is assumed to cost before any is timed."""
    return assumed_batch_seconds(sizes, batch_size, costs) * n_batches


def first_chunk(
    sizes: Sequence[int], batch_size: int, n_batches: int, costs: Costs = REFERENCE_COSTS
) -> int:
    """Batches of the first call, before any has been timed (see Costs)."""
    guess = assumed_batch_seconds(sizes, batch_size, costs)
    return max(1, min(n_batches, int(CHUNK_SECONDS / guess)))


def first_group(
    sizes: Sequence[int],
    batch_size: int,
    n_batches: int,
    epochs_left: int,
    n_samples: int,
    costs: Costs = REFERENCE_COSTS,
) -> int:
    """Whole epochs for the first call, before any has been timed (1: no group): as
    ``epoch_group`` with the assumed cost of an epoch."""
    per_epoch = assumed_epoch_seconds(sizes, batch_size, n_batches, costs)
    return epoch_group(per_epoch, epochs_left, n_samples)


def one_call(
    sizes: Sequence[int],
    batch_size: int,
    n_batches: int,
    epochs: int,
    n_samples: int,
    costs: Costs = REFERENCE_COSTS,
) -> bool:
    """Whether a plain fit of ``epochs`` epochs runs in one call (ONE_CALL_SECONDS), its
    sample orders held at once within GROUP_ORDER_ENTRIES."""
    per_epoch = assumed_epoch_seconds(sizes, batch_size, n_batches, costs)
    return epochs * per_epoch <= ONE_CALL_SECONDS and epochs * n_samples <= GROUP_ORDER_ENTRIES


def next_chunk(seconds_per_batch: float, n_batches: int) -> int:
    """Batches of the next call, from the time the last call took per batch."""
    return max(1, min(n_batches, int(CHUNK_SECONDS / max(seconds_per_batch, 1e-7))))


def epoch_group(seconds_per_epoch: float, epochs_left: int, n_samples: int) -> int:
    """Whole epochs for one call, from the time the last epoch took (1: no group)."""
    return min(
        epochs_left,
        int(CHUNK_SECONDS / max(seconds_per_epoch, 1e-7)),
        GROUP_ORDER_ENTRIES // n_samples,
    )
