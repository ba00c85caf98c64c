"""The built-in demo (``python -m densa``): two interleaved spirals, learnt twice.

A 2-64-64-2 relu network with softmax cross-entropy and Adam learns the spirals of
``densa.datasets.spirals`` on the native backend, printing loss and accuracy per epoch;
then the same network, from the same seed, learns them again on the NumPy reference.
The demo prints the final accuracy (on the training points and on fresh points of the
same spirals), each backend's time, and how far apart the two backends' parameters
ended: both run the same arithmetic, so in float64 they agree to rounding.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from . import datasets
from .layers import Dense
from .network import Network
from .optimizers import Adam


@dataclass
class DemoResult:
    """What the demo measured.

    Attributes
    ----------
    accuracy, test_accuracy : float
        Native network's accuracy on the training points and on fresh points.
    seconds : dict
        Training wall time per backend.
    max_param_diff : float
        max |θ_native − θ_reference| over every weight and bias.
    net : Network
        The network trained on the native backend (its ``history`` is that training's).
    X, y : ndarray, shapes (samples, 2) and (samples,)
        The training points, e.g. for ``densa.plot.decision_boundary(net, X, y)``.
    curves : dict of list of float
        The native run per epoch: ``loss`` and ``accuracy`` on the training points,
        ``val_loss`` and ``val_accuracy`` on the fresh ones (``densa.plot.history`` takes it).
    """

    accuracy: float
    test_accuracy: float
    seconds: dict[str, float]
    max_param_diff: float
    net: Network
    X: np.ndarray
    y: np.ndarray
    curves: dict[str, list[float]]


def build(seed: int, dtype: str, backend: str, hidden: int = 64) -> Network:
    """The demo's 2-hidden-hidden-2 network."""
    layers = [Dense(2, hidden, "relu"), Dense(hidden, hidden, "relu"), Dense(hidden, 2, "identity")]
    return Network(layers, loss="softmax_cross_entropy", dtype=dtype, backend=backend, seed=seed)


def run(
    epochs: int = 40,
    samples: int = 1000,
    noise: float = 0.03,
    lr: float = 0.005,
    batch_size: int = 32,
    seed: int = 0,
    dtype: str = "float64",
    progress: bool = True,
    out: TextIO | None = None,
) -> DemoResult:
    """Train on both backends and print the comparison to ``out`` (default stdout).

    Parameters
    ----------
    epochs, samples, noise, lr, batch_size, seed : as their names say
        ``samples`` spiral points (``noise`` their jitter) for training, as many fresh
        ones for testing; Adam with learning rate ``lr``.
    dtype : {"float32", "float64"}
    progress : bool
        Progress bars while training (shown only on a terminal).
    out : text stream, optional
    """
    out = sys.stdout if out is None else out

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    X, y = datasets.spirals(samples, noise, seed=seed)
    X_test, y_test = datasets.spirals(samples, noise, seed=seed + 1)
    nets: dict[str, Network] = {}
    seconds: dict[str, float] = {}
    curves: dict[str, list[float]] = {
        "loss": [],
        "accuracy": [],
        "val_loss": [],
        "val_accuracy": [],
    }
    say(
        f"densa demo: two interleaved spirals, {samples} points ({noise} noise), "
        f"a 2-64-64-2 relu network, softmax cross-entropy, Adam(lr={lr}), {dtype}"
    )
    for backend in ("native", "reference"):
        net = build(seed, dtype, backend)
        verbose = backend == "native"
        say(
            f"\n[{backend} backend] training {epochs} epochs, batch size {batch_size}"
            + ("" if verbose else " (the same seed: it should end where native did)")
        )

        def report(
            epoch: int, logs: dict[str, float], net: Network = net, verbose: bool = verbose
        ) -> None:
            if verbose:
                acc = net.evaluate(X, y)["accuracy"]
                fresh = net.evaluate(X_test, y_test)  # for the plotted curves
                for key, value in (
                    ("loss", logs["loss"]),
                    ("accuracy", acc),
                    ("val_loss", fresh["loss"]),
                    ("val_accuracy", fresh["accuracy"]),
                ):
                    curves[key].append(value)
                say(
                    f"epoch {epoch + 1:3d}/{epochs}  loss {logs['loss']:.4f}  "
                    f"accuracy {acc:.3f}  ({logs['seconds'] * 1e3:.0f} ms)"
                )

        history = net.fit(
            X,
            y,
            epochs=epochs,
            batch_size=batch_size,
            optimizer=Adam(lr=lr),
            progress=progress,
            on_epoch_end=report,
        )
        # Training time only: the per-epoch accuracy printed above is not counted.
        seconds[backend] = sum(history.seconds)
        nets[backend] = net
    native, reference = nets["native"], nets["reference"]
    diff = max(
        float(np.max(np.abs(a - b)))
        for la, lb in zip(native.layers, reference.layers)
        for a, b in ((la.W, lb.W), (la.b, lb.b))
    )
    result = DemoResult(
        accuracy=native.evaluate(X, y)["accuracy"],
        test_accuracy=native.evaluate(X_test, y_test)["accuracy"],
        seconds=seconds,
        max_param_diff=diff,
        net=native,
        X=X,
        y=y,
        curves=curves,
    )
    say("\nresults")
    say(
        f"final accuracy: {result.accuracy:.4f} (training points), "
        f"{result.test_accuracy:.4f} ({samples} fresh points)"
    )
    for backend in ("native", "reference"):
        say(f"time {backend}: {seconds[backend]:.3f} s")
    speedup = seconds["reference"] / max(seconds["native"], 1e-9)
    say(f"native speed-up: {speedup:.1f}x")
    say(f"max parameter difference native vs reference: {diff:.3e}")
    return result
