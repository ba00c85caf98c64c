"""The generated data sets (python/densa/datasets.py): shapes, classes, order and seeds."""

from __future__ import annotations

import numpy as np
import pytest

from densa import datasets


@pytest.mark.parametrize("n", [2, 3, 101, 1000])
def test_spirals_shapes_and_class_counts(n):
    X, y = datasets.spirals(n, seed=3)
    assert X.shape == (n, 2)
    assert X.dtype == np.float64
    assert y.shape == (n,)
    assert y.dtype == np.int64
    assert np.bincount(y, minlength=2).tolist() == [n // 2, n - n // 2]


def test_spirals_shuffled_are_the_unshuffled_points_in_another_order():
    X, y = datasets.spirals(500, noise=0.05, seed=7)
    Xs, ys = datasets.spirals(500, noise=0.05, seed=7, shuffle=False)
    # Class order without shuffling, each arm from its centre outwards.
    assert (ys[:250] == 0).all()
    assert (ys[250:] == 1).all()
    radius = np.hypot(*datasets.spirals(500, noise=0.0, shuffle=False)[0].T)
    assert (np.diff(radius[:250]) > 0).all()
    # The same points (with the same noise) and labels, in a new order.
    key = np.lexsort((X[:, 1], X[:, 0]))
    key_s = np.lexsort((Xs[:, 1], Xs[:, 0]))
    np.testing.assert_array_equal(X[key], Xs[key_s])
    np.testing.assert_array_equal(y[key], ys[key_s])
    assert not np.array_equal(y, ys)


def test_spirals_any_slice_holds_both_classes():
    """What fit(validation_split=0.2) holds out: the last fifth of the rows."""
    _, y = datasets.spirals(1000, seed=0)
    for part in (y[-200:], y[:200], y[400:600]):
        assert 0.35 < part.mean() < 0.65


def test_spirals_are_reproducible_from_the_seed():
    a = datasets.spirals(300, seed=5)
    b = datasets.spirals(300, seed=5)
    c = datasets.spirals(300, seed=6)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n": 1}, ValueError, "n must be >= 2"),
        ({"n": 2.5}, TypeError, "n must be an integer"),
        ({"noise": -0.1}, ValueError, "noise must be a finite number >= 0"),
        ({"noise": float("nan")}, ValueError, "noise must be a finite number >= 0"),
        ({"turns": 0}, ValueError, "turns must be a finite number > 0"),
        ({"turns": float("inf")}, ValueError, "turns must be a finite number > 0"),
        ({"turns": float("nan")}, ValueError, "turns must be a finite number > 0"),
        ({"turns": "2"}, TypeError, "turns must be a number, got str"),
        ({"shuffle": "yes"}, TypeError, "shuffle must be True or False"),
        # The seed is named (NumPy's "expected non-negative integer" names nothing).
        ({"seed": -1}, ValueError, "seed must be >= 0, got -1"),
        (
            {"seed": 1.5},
            TypeError,
            r"seed must be None, an integer >= 0 or a numpy\.random\.Generator, got float: 1\.5",
        ),
        ({"seed": "0"}, TypeError, "seed must be None, an integer >= 0 or a numpy"),
    ],
)
def test_spirals_refuse_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        datasets.spirals(**kwargs)


@pytest.mark.parametrize(
    ("seed", "error", "match"),
    [
        (-1, ValueError, "seed must be >= 0, got -1"),
        (1.5, TypeError, "seed must be None, an integer >= 0 or a numpy.random.Generator"),
    ],
)
def test_sine_names_a_bad_seed(seed, error, match):
    with pytest.raises(error, match=match):
        datasets.sine(10, noise=0.1, seed=seed)


def test_seeds_may_be_numpy_integers_and_generators():
    a = datasets.spirals(50, seed=np.int64(4))
    b = datasets.spirals(50, seed=np.random.default_rng(4))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(
        datasets.sine(9, 0.1, seed=4)[1], datasets.sine(9, 0.1, seed=np.random.default_rng(4))[1]
    )


def test_sine_and_xor():
    x, y = datasets.sine(50, noise=0.0)
    assert x.shape == y.shape == (50, 1)
    np.testing.assert_allclose(y, np.sin(x))
    assert x[0, 0] == -np.pi
    assert x[-1, 0] == np.pi
    X, y = datasets.xor()
    np.testing.assert_array_equal(y, np.logical_xor(X[:, 0], X[:, 1]).astype(np.int64))


@pytest.mark.parametrize("turns", [0.5, 1.5])
def test_noiseless_spirals_follow_the_documented_arms(turns):
    """Guards the arms' formula: r = 0.1 + 0.9·t, θ = 2π·turns·t + c·π, t = 1/m, 2/m, ..., 1."""
    n = 41  # odd: arms of 20 and 21 points
    X, y = datasets.spirals(n, noise=0.0, turns=turns, shuffle=False)
    for c, m in ((0, n // 2), (1, n - n // 2)):
        t = np.arange(1, m + 1) / m
        r, theta = 0.1 + 0.9 * t, 2 * np.pi * turns * t + c * np.pi
        arm = X[y == c]
        np.testing.assert_allclose(arm, np.column_stack([r * np.cos(theta), r * np.sin(theta)]))
        np.testing.assert_allclose(np.hypot(*arm.T), r)  # from r = 0.1 + 0.9/m out to 1
