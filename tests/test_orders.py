"""Epoch orders (densa.native / densa.reference ``sample_orders``, cpp/densa/orders.hpp):
the two backends give the same orders, both follow the documented algorithm, each order
is a permutation, and the orders are spread as a shuffle's should be. fit draws one seed
per epoch from the network's generator."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import densa
import densa.datasets
from densa import native, reference

BACKENDS = [native, reference]
MASK = 2**64 - 1


def splitmix64(state: int) -> tuple[int, int]:
    """SplitMix64's next (state, output), in Python integers."""
    state = (state + 0x9E3779B97F4A7C15) & MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return state, z ^ (z >> 31)


def literal_order(seed: int, n: int) -> list[int]:
    """The algorithm of densa/reference/orders.py's docstring, in Python integers, one
    step at a time: the oracle for both vectorised implementations."""
    order = list(range(n))
    state = seed
    for i in range(n - 1, 0, -1):
        state, z = splitmix64(state)
        j = (z * (i + 1)) >> 64
        order[i], order[j] = order[j], order[i]
    return order


def test_splitmix64_matches_its_published_outputs():
    # Vigna's splitmix64.c from state 0: the first outputs.
    state, outputs = 0, []
    for _ in range(3):
        state, z = splitmix64(state)
        outputs.append(z)
    assert outputs == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]
    # n = 3 draws j = (z1 * 3) >> 64 for i = 2, then (z2 * 2) >> 64 for i = 1.
    order = [0, 1, 2]
    j = (outputs[0] * 3) >> 64
    order[2], order[j] = order[j], order[2]
    j = (outputs[1] * 2) >> 64
    order[1], order[j] = order[j], order[1]
    for b in BACKENDS:
        assert b.sample_orders(np.array([0], np.uint64), 3).tolist() == [order]


SEEDS = [0, 1, 2, 7, 2**32, 2**63, 2**64 - 1, 0x9E3779B97F4A7C15, 12345678901234567890]


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 31, 32, 33, 1000, 4099])
@pytest.mark.parametrize("backend", BACKENDS, ids=["native", "reference"])
def test_orders_follow_the_documented_algorithm(backend, n):
    got = backend.sample_orders(np.array(SEEDS, dtype=np.uint64), n)
    assert got.dtype == np.int64
    assert got.shape == (len(SEEDS), n)
    assert got.flags.c_contiguous
    for row, seed in zip(got, SEEDS):
        assert row.tolist() == literal_order(seed, n)


@pytest.mark.parametrize("n", [1, 2, 10, 1347, 60_000])
def test_backends_agree_and_rows_are_permutations(n):
    seeds = np.random.default_rng(n).integers(0, 2**64, size=6, dtype=np.uint64)
    a = native.sample_orders(seeds, n)
    b = reference.sample_orders(seeds, n)
    assert np.array_equal(a, b)
    for row in a:
        assert np.array_equal(np.sort(row), np.arange(n))
    if n > 10:  # different seeds, different orders
        assert len({row.tobytes() for row in a}) == len(a)


def test_all_permutations_equally_likely():
    # n = 4: 24 permutations over 48 000 seeds, 2 000 expected each. Chi-square with 23
    # degrees of freedom: 70 is exceeded with probability ~1e-6 by a fair shuffle, and
    # a shuffle with a one-off error (j in 0 .. i-1, Sattolo's) reaches only 6 of them.
    n, draws = 4, 48_000
    seeds = np.random.default_rng(0).integers(0, 2**64, size=draws, dtype=np.uint64)
    orders = native.sample_orders(seeds, n)
    index = {p: k for k, p in enumerate(itertools.permutations(range(n)))}
    counts = np.bincount([index[tuple(r)] for r in orders.tolist()], minlength=math.factorial(n))
    expected = draws / math.factorial(n)
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 70, (chi2, counts)


def test_every_sample_reaches_every_position():
    # n = 20 over 20 000 seeds: each (sample, position) pair 1 000 times expected,
    # standard deviation ~31; a 6-sigma band.
    n, draws = 20, 20_000
    seeds = np.random.default_rng(1).integers(0, 2**64, size=draws, dtype=np.uint64)
    orders = native.sample_orders(seeds, n)
    counts = np.zeros((n, n), dtype=np.int64)
    for pos in range(n):
        counts[:, pos] = np.bincount(orders[:, pos], minlength=n)
    assert np.abs(counts - draws / n).max() < 6 * math.sqrt(draws / n)


def test_consecutive_seeds_give_unrelated_orders():
    # fit's seeds come from a generator, but a user may pass 0, 1, 2, ...: SplitMix64's
    # finalizer still separates them. Agreement of two orders of 1000 samples: ~1 place.
    a = native.sample_orders(np.arange(50, dtype=np.uint64), 1000)
    same = [(a[i] == a[i + 1]).sum() for i in range(len(a) - 1)]
    assert max(same) < 10


@pytest.mark.parametrize("backend", BACKENDS, ids=["native", "reference"])
def test_seeds_given_as_integers_of_other_kinds(backend):
    want = backend.sample_orders(np.array([3, 2**64 - 1], np.uint64), 9)
    assert np.array_equal(backend.sample_orders([3, 2**64 - 1], 9), want)
    assert np.array_equal(backend.sample_orders(np.array([3], np.int32), 9), want[:1])
    assert np.array_equal(backend.sample_orders((3,), np.int64(9)), want[:1])
    assert np.array_equal(backend.sample_orders([np.uint64(3)], 9), want[:1])
    assert backend.sample_orders([], 5).shape == (0, 5)
    strided = np.array([3, 0, 2**64 - 1, 0], np.uint64)[::2]
    assert np.array_equal(backend.sample_orders(strided, 9), want)
    raw = np.zeros(8 * 2 + 1, np.uint8)
    unaligned = np.frombuffer(raw.data, dtype=np.uint64, count=2, offset=1)
    raw[1:] = np.array([3, 2**64 - 1], np.uint64).view(np.uint8)
    assert not unaligned.flags.aligned
    assert np.array_equal(backend.sample_orders(unaligned, 9), want)
    swapped = np.array([3, 2**64 - 1], dtype=">u8")
    assert np.array_equal(backend.sample_orders(swapped, 9), want)


BAD = [
    (([1.5], 3), TypeError, "integers"),
    ((np.array([1.0]), 3), TypeError, "integers"),
    (([-1], 3), ValueError, r"\[0, 2\*\*64\)"),
    (([2**64], 3), ValueError, r"\[0, 2\*\*64\)"),
    (([[1, 2]], 3), ValueError, "1-D"),
    (([True], 3), TypeError, "integers"),
    (("abc", 3), TypeError, "1-D sequence of integers"),
    ((None, 3), TypeError, "1-D sequence of integers"),
    ((5, 3), ValueError, "1-D"),
    (([1], 2**62), ValueError, "n must be < 2"),
    (([1], 2**63), ValueError, "n must be < 2"),
    (([1], -1), ValueError, "n must be >= 0"),
    (([1], 2.0), TypeError, "n must be an integer"),
    (([1], True), TypeError, "n must be an integer"),
    # uint64 arrays, which the native backend first hands to the extension unchecked
    ((np.zeros((2, 2), np.uint64), 3), ValueError, "1-D"),
    ((np.array([1], np.uint64), 2**62), ValueError, "n must be < 2"),
    ((np.array([1], np.uint64), -1), ValueError, "n must be >= 0"),
    ((np.array([1], np.uint64), np.float64(3)), TypeError, "n must be an integer"),
]


@pytest.mark.parametrize(("args", "exc", "match"), BAD)
@pytest.mark.parametrize("backend", BACKENDS, ids=["native", "reference"])
def test_bad_arguments_are_refused_alike(backend, args, exc, match):
    with pytest.raises(exc, match=match):
        backend.sample_orders(*args)


def test_the_extension_itself_refuses_what_the_checks_would():
    # densa.native checks first; the binding must still not crash on what reaches it.
    core = native.core
    with pytest.raises(TypeError, match="uint64"):
        core.sample_orders(np.array([1], np.int64), 3)
    with pytest.raises(TypeError, match="uint64"):
        core.sample_orders(np.zeros((2, 2), np.uint64), 3)
    with pytest.raises(TypeError, match="uint64"):
        core.sample_orders(np.zeros(4, np.uint64)[::2], 3)
    raw = np.zeros(8 * 3 + 1, np.uint8)
    unaligned = np.frombuffer(raw.data, dtype=np.uint64, count=3, offset=1)
    with pytest.raises(TypeError, match="aligned"):
        core.sample_orders(unaligned, 3)
    with pytest.raises(ValueError, match="n must be >= 0"):
        core.sample_orders(np.zeros(1, np.uint64), -3)


# ----- fit's use of them -------------------------------------------------------------


class Recording:
    """A Trainer (either backend's) that records every epoch's order it is given."""

    def __init__(self, inner, seen: list[np.ndarray]):
        self._inner, self._seen = inner, seen
        if hasattr(inner, "fit"):
            self.fit = self._fit  # the native trainer's whole-fit call

    def run(self, X, T, order, batch_size, first_batch, n_batches):
        if first_batch == 0:
            self._seen.append(np.array(order))
        return self._inner.run(X, T, order, batch_size, first_batch, n_batches)

    def run_epochs(self, X, T, orders, batch_size):
        self._seen.extend(np.array(o) for o in orders)
        return self._inner.run_epochs(X, T, orders, batch_size)

    def _fit(self, X, T, seeds, n_epochs, batch_size, *history_lists):
        # The orders the native trainer's fit computes from its seeds.
        n = X.shape[0]
        orders = (
            np.tile(np.arange(n), (n_epochs, 1))
            if seeds is None
            else reference.sample_orders(seeds, n)
        )
        self._seen.extend(np.array(o) for o in orders)
        return self._inner.fit(X, T, seeds, n_epochs, batch_size, *history_lists)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def _record_orders(net, monkeypatch) -> list[np.ndarray]:
    """The epoch orders net's trainers will be given, in a list that fit fills."""
    seen: list[np.ndarray] = []
    make = net._backend.Trainer
    monkeypatch.setattr(net._backend, "Trainer", lambda *a: Recording(make(*a), seen))
    return seen


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_fit_shuffles_each_epoch_from_one_seed_drawn_from_net_rng(backend, monkeypatch):
    X, y = densa.datasets.spirals(90, seed=3)
    net = densa.Network(
        [densa.Dense(2, 8, "tanh"), densa.Dense(8, 2, "identity")],
        loss="softmax_cross_entropy",
        backend=backend,
        seed=5,
    )
    twin = np.random.default_rng(5)
    twin.bit_generator.state = net.rng.bit_generator.state
    seen = _record_orders(net, monkeypatch)
    net.fit(X, y, epochs=4, batch_size=16, progress=False)
    seeds = twin.integers(0, 2**64, size=4, dtype=np.uint64)
    assert len(seen) == 4
    assert np.array_equal(np.stack(seen), reference.sample_orders(seeds, 90))
    assert net.rng.bit_generator.state == twin.bit_generator.state


def test_unshuffled_fit_visits_samples_in_order(monkeypatch):
    X, y = densa.datasets.spirals(40, seed=3)
    net = densa.Network([densa.Dense(2, 2, "identity")], loss="mse", seed=5)
    state = net.rng.bit_generator.state
    seen = _record_orders(net, monkeypatch)
    net.fit(X, np.eye(2)[y], epochs=3, batch_size=8, shuffle=False, progress=False)
    assert len(seen) == 3
    assert all(np.array_equal(o, np.arange(40)) for o in seen)
    assert net.rng.bit_generator.state == state  # nothing drawn


@pytest.mark.parametrize(
    "bit_generator",
    [np.random.PCG64, np.random.PCG64DXSM, np.random.MT19937, np.random.Philox, np.random.SFC64],
)
def test_fit_draws_its_seeds_as_integers_would_on_any_generator(bit_generator, monkeypatch):
    """fit reads raw outputs where they are what integers(0, 2**64, uint64) gives (the
    64-bit generators): the same seeds and the same generator state after, whatever
    generator the user put in net.rng, also after a 32-bit draw left half a word
    (MT19937 reads integers: its raw outputs are 32-bit)."""
    X, y = densa.datasets.spirals(50, seed=3)
    net = densa.Network([densa.Dense(2, 2, "identity")], loss="softmax_cross_entropy", seed=5)
    net.rng = np.random.Generator(bit_generator(11))
    twin = np.random.Generator(bit_generator(11))
    for g in (net.rng, twin):
        g.integers(0, 10, size=3, dtype=np.uint32)  # 32-bit draws: one may stay buffered
    seen = _record_orders(net, monkeypatch)
    net.fit(X, y, epochs=3, batch_size=8, progress=False)
    seeds = twin.integers(0, 2**64, size=3, dtype=np.uint64)
    assert np.array_equal(np.stack(seen), reference.sample_orders(seeds, 50))
    assert net.rng.integers(0, 2**63, size=4).tolist() == twin.integers(0, 2**63, size=4).tolist()
    assert net.rng.random() == twin.random()
