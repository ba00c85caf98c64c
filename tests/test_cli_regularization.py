"""``densa train``'s --weight-decay, --l2 and --patience: the model it saves is the one the
Python API trains with the same settings, and bad values are refused by name."""

from __future__ import annotations

import numpy as np
import pytest

import densa
from helpers import run_cli


@pytest.fixture
def data(tmp_path):
    """A binary problem as a .npz: (path, X, y)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 4))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int64)
    path = tmp_path / "d.npz"
    np.savez(path, X=X, y=y)
    return path, X, y


def _api_net(X, y, optimizer, **fit):
    """What `densa train` builds by default (4-64-32-2 relu, float32, seed 0), trained."""
    sizes = [X.shape[1], 64, 32, 2]
    layers = [densa.Dense(a, b, "relu") for a, b in zip(sizes[:-2], sizes[1:-1])]
    layers.append(densa.Dense(sizes[-2], sizes[-1], "identity"))
    net = densa.Network(layers, loss="softmax_cross_entropy", dtype="float32", seed=0)
    history = net.fit(X, y, batch_size=32, optimizer=optimizer, progress=False, **fit)
    return net, history


@pytest.mark.parametrize(
    ("options", "optimizer"),
    [
        (["--l2", "0.5"], lambda: densa.Adam(lr=1e-3, l2=0.5)),
        (["--weight-decay", "0.01"], lambda: densa.Adam(lr=1e-3, weight_decay=0.01)),
        (
            ["--optimizer", "sgd", "--l2", "0.3", "--weight-decay", "0.02"],
            lambda: densa.SGD(lr=0.01, momentum=0.9, l2=0.3, weight_decay=0.02),
        ),
    ],
    ids=["adam-l2", "adamw", "sgd-both"],
)
def test_penalties_reach_the_optimizer(tmp_path, data, options, optimizer):
    path, X, y = data
    out = tmp_path / "m.npz"
    argv = ["train", path, "--epochs", 4, "--no-progress", "--out", out, *options]
    code, stdout, _ = run_cli(argv)
    assert code == 0
    saved = densa.Network.load(out)
    want, history = _api_net(X, y, optimizer(), epochs=4)
    assert saved.optimizer.hyper() == want.optimizer.hyper()
    for a, b in zip(saved.layers, want.layers):
        np.testing.assert_array_equal(a.W, b.W)
        np.testing.assert_array_equal(a.b, b.b)
    # The losses it printed are the API's, the penalty included.
    printed = [float(line.split("loss ")[1].split()[0]) for line in stdout.splitlines()
               if line.startswith("epoch ")]  # fmt: skip
    np.testing.assert_allclose(printed, history.loss, rtol=1e-4)


@pytest.mark.parametrize("validation", [0.0, 0.25])
def test_patience_stops_early_and_keeps_the_best_epoch(tmp_path, data, validation):
    path, X, y = data
    out = tmp_path / "m.npz"
    argv = ["train", path, "--epochs", 200, "--patience", 2, "--lr", 0.05, "--no-progress"]
    code, stdout, _ = run_cli([*argv, "--validation-split", validation, "--out", out])
    assert code == 0
    want, history = _api_net(
        X, y, densa.Adam(lr=0.05), epochs=200, early_stopping=2, validation_split=validation
    )
    assert history.stopped_early  # the case under test
    assert history.epochs < 200
    watched = "validation loss" if validation else "loss"
    best = history.best_epoch + 1
    assert f"stopped early after epoch {history.epochs}; kept epoch {best}'s" in stdout
    assert f"(best {watched})" in stdout
    saved = densa.Network.load(out)
    for a, b in zip(saved.layers, want.layers):  # the best epoch's, put back
        np.testing.assert_array_equal(a.W, b.W)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--l2", "-1", "argument --l2: expected a finite number >= 0, got '-1'"),
        ("--l2", "inf", "argument --l2: expected a finite number >= 0, got 'inf'"),
        ("--weight-decay", "x", "argument --weight-decay: expected a number, got 'x'"),
        ("--patience", "-2", "argument --patience: expected a whole number >= 0, got -2"),
        ("--patience", "1.5", "argument --patience: expected a whole number, got '1.5'"),
    ],
)
def test_bad_values_are_refused_by_name(tmp_path, data, option, value, message):
    path, _, _ = data
    code, _, stderr = run_cli(["train", path, option, value, "--out", tmp_path / "m.npz"])
    assert code == 2
    assert message in stderr
    assert not (tmp_path / "m.npz").exists()
