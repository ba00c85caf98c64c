"""densa in a minute: train an MLP on two spirals, evaluate it, look inside, save it.

Run from anywhere after `pip install .`:  python examples/quickstart.py
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

import densa
from densa import datasets

# Two interleaved spirals (generated in code), 1000 points to learn and 1000 to test.
X, y = datasets.spirals(1000, noise=0.03, seed=0)
X_test, y_test = datasets.spirals(1000, noise=0.03, seed=1)

net = densa.Network(
    [
        densa.Dense(2, 64, activation="relu"),
        densa.Dense(64, 64, activation="relu"),
        densa.Dense(64, 2, activation="identity"),  # logits: the loss applies softmax
    ],
    loss="softmax_cross_entropy",
    seed=0,  # same seed, same network, same training
)
print(net.summary())

history = net.fit(
    X, y, epochs=30, batch_size=32, optimizer=densa.Adam(lr=0.005), validation_data=(X_test, y_test)
)
print(f"loss {history.loss[0]:.3f} -> {history.loss[-1]:.4f} in {sum(history.seconds):.2f} s")
print(f"test accuracy: {net.evaluate(X_test, y_test)['accuracy']:.3f}")
print("some test points:", net.predict_classes(X_test[::200]), "true:", y_test[::200])

# The derivation made visible: dy, dz, dW, db, dx of every layer on a batch.
grads = net.gradients(X[:8], y[:8])
print("dW of the output layer has shape", grads[-1]["dW"].shape)

# Same parameters, NumPy reference backend: the same predictions up to rounding.
p_native = net.predict(X_test)
net.backend = "reference"
print("max |native - reference| prediction:", float(np.abs(net.predict(X_test) - p_native).max()))
net.backend = "native"

# Save and load: a documented .npz file, read without pickle.
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "spirals.npz")
    net.save(path)
    again = densa.Network.load(path)
    print("reloaded predictions identical:", bool(np.array_equal(again.predict(X_test), p_native)))
