"""Networks learn: XOR, two spirals, a sine curve and scikit-learn's digits.

Each problem is one a correct MLP solves in well under a second with the native backend;
a broken gradient, update or loss leaves it far from the thresholds.
"""

from __future__ import annotations

import numpy as np
import pytest

import densa
from network_cases import BACKENDS, spirals


@pytest.mark.parametrize("backend", BACKENDS)
def test_xor_reaches_full_training_accuracy(backend):
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    y = np.array([0, 1, 1, 0])
    net = densa.Network(
        [densa.Dense(2, 8, activation="tanh"), densa.Dense(8, 1, activation="identity")],
        loss="binary_cross_entropy",
        backend=backend,
        seed=0,
    )
    # Untrained, the loss is near log 2 (chance); trained, near 0.
    assert net.evaluate(X, y)["loss"] > 0.5
    net.fit(X, y, epochs=500, batch_size=4, optimizer=densa.Adam(lr=0.05), progress=False)
    scores = net.evaluate(X, y)
    assert scores["accuracy"] == 1.0
    np.testing.assert_array_equal(net.predict_classes(X), y)
    assert scores["loss"] < 0.01


def test_two_spirals_reach_98_percent():
    X, y = spirals(n_per_class=200, turns=1.5, seed=0)
    net = densa.Network(
        [
            densa.Dense(2, 64, activation="relu"),
            densa.Dense(64, 64, activation="relu"),
            densa.Dense(64, 2, activation="identity"),
        ],
        loss="softmax_cross_entropy",
        seed=0,
    )
    history = net.fit(
        X, y, epochs=200, batch_size=32, optimizer=densa.Adam(lr=0.01), progress=False
    )
    assert history.loss[-1] < history.loss[0] / 10
    assert net.evaluate(X, y)["accuracy"] >= 0.98


def test_sine_regression_reaches_low_mse():
    rng = np.random.default_rng(0)
    X = rng.uniform(-np.pi, np.pi, (512, 1))
    net = densa.Network(
        [
            densa.Dense(1, 32, activation="tanh"),
            densa.Dense(32, 32, activation="tanh"),
            densa.Dense(32, 1, activation="identity"),
        ],
        loss="mse",
        seed=0,
    )
    net.fit(X, np.sin(X), epochs=300, batch_size=32, optimizer=densa.Adam(lr=0.01), progress=False)
    # On a dense grid over the training interval, the mean squared error must be below
    # 5e-3: 1% of sin's variance (0.5). A constant predictor scores 0.5, a straight line
    # about 0.2; a working net reaches 1e-4 to 1.5e-3 with these settings.
    grid = np.linspace(-np.pi, np.pi, 1000)[:, None]
    mse = float(np.mean((net.predict(grid) - np.sin(grid)) ** 2))
    assert mse < 5e-3
    # densa's "mse" loss is the derivation's J = 1/(2N) Σ (y_K − y)²: half the mean.
    J = net.evaluate(grid, np.sin(grid))["loss"]
    assert pytest.approx(mse / 2, rel=1e-4) == J


def test_digits_reach_95_percent_test_accuracy():
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    X_train, X_test, y_train, y_test = train_test_split(
        digits.data / 16.0, digits.target, test_size=0.25, random_state=0, stratify=digits.target
    )
    net = densa.Network(
        [
            densa.Dense(64, 128, activation="relu"),
            densa.Dense(128, 64, activation="relu"),
            densa.Dense(64, 10, activation="identity"),
        ],
        loss="softmax_cross_entropy",
        seed=0,
    )
    history = net.fit(
        X_train,
        y_train,
        epochs=30,
        batch_size=32,
        optimizer=densa.Adam(lr=1e-3),
        validation_data=(X_test, y_test),
        progress=False,
    )
    scores = net.evaluate(X_test, y_test)
    assert scores["accuracy"] >= 0.95
    assert history.val_accuracy[-1] == scores["accuracy"]
    assert float(np.mean(net.predict_classes(X_test) == y_test)) == scores["accuracy"]
