"""densa.plot: the figures hold the data they were given, and the saved files are real
PNG images with something drawn in them."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")
from matplotlib.image import imread

import densa
from densa import cli, datasets, plot
from densa import native as _native  # noqa: F401  (built before output is captured)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_real_png(path, min_width: int, min_height: int) -> np.ndarray:
    """The file starts with PNG's signature, decodes, and is not one flat colour."""
    assert path.read_bytes()[:8] == PNG_MAGIC
    pixels = imread(path)
    height, width = pixels.shape[:2]
    assert width >= min_width
    assert height >= min_height
    rgb = pixels[..., :3].reshape(-1, 3)
    assert len(np.unique(rgb, axis=0)) > 10  # lines, text and fills, not a blank canvas
    return pixels


def test_import_densa_does_not_import_matplotlib():
    code = "import sys, densa, densa.plot; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


@pytest.fixture
def history():
    h = densa.History()
    h.loss.extend([0.9, 0.5, 0.3, 0.2])
    h.val_loss.extend([1.0, 0.6, 0.45, 0.4])
    h.val_accuracy.extend([0.5, 0.7, 0.8, 0.85])
    h.seconds.extend([0.1] * 4)
    return h


def _lines(ax) -> dict[str, np.ndarray]:
    return {line.get_label(): np.asarray(line.get_ydata()) for line in ax.get_lines()}


def test_history_draws_each_curve_and_saves_a_png(history, tmp_path):
    path = tmp_path / "history.png"
    fig = plot.history(history, path)
    loss_ax, acc_ax = fig.axes
    lines = _lines(loss_ax)
    np.testing.assert_array_equal(lines["training loss"], history.loss)
    np.testing.assert_array_equal(lines["validation loss"], history.val_loss)
    np.testing.assert_array_equal(_lines(acc_ax)["validation accuracy"], history.val_accuracy)
    np.testing.assert_array_equal(loss_ax.get_lines()[0].get_xdata(), [1, 2, 3, 4])
    assert acc_ax.get_ylim()[1] >= 1.0
    # 10 x 4 inches at 100 dpi
    assert_real_png(path, min_width=900, min_height=350)


def test_history_without_accuracy_has_one_panel_and_takes_a_mapping(tmp_path):
    fig = plot.history({"loss": [3.0, 2.0, 1.5]}, tmp_path / "loss.png")
    assert len(fig.axes) == 1
    assert list(_lines(fig.axes[0])) == ["training loss"]
    assert_real_png(tmp_path / "loss.png", min_width=500, min_height=350)


def test_history_of_a_real_fit_without_saving(tmp_path):
    X, y = datasets.spirals(200, seed=0)
    net = densa.Network(
        [densa.Dense(2, 16, "tanh"), densa.Dense(16, 2, "identity")],
        loss="softmax_cross_entropy",
        seed=0,
    )
    h = net.fit(X, y, epochs=3, validation_split=0.25, progress=False)
    fig = plot.history(h)
    assert len(fig.axes) == 2
    assert list(tmp_path.iterdir()) == []  # nothing written without a path


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        ([0.5, 0.4], TypeError, "densa.History or a mapping"),
        ({"val_loss": [1.0]}, ValueError, "no 'loss' entry"),
        ({"loss": []}, ValueError, "no epoch to plot"),
        ({"loss": [[1.0, 2.0]]}, ValueError, "must be a list of numbers"),
    ],
)
def test_history_refuses_what_it_cannot_draw(bad, error, match):
    with pytest.raises(error, match=match):
        plot.history(bad)


@pytest.fixture(scope="module")
def spiral_net():
    X, y = datasets.spirals(300, 0.03, seed=0)
    net = densa.Network(
        [densa.Dense(2, 32, "relu"), densa.Dense(32, 32, "relu"), densa.Dense(32, 2, "identity")],
        loss="softmax_cross_entropy",
        dtype="float64",
        seed=0,
    )
    net.fit(X, y, epochs=60, batch_size=32, optimizer=densa.Adam(lr=0.01), progress=False)
    return net, X, y


def test_decision_boundary_regions_follow_the_network(spiral_net, tmp_path):
    net, X, y = spiral_net
    path = tmp_path / "boundary.png"
    fig = plot.decision_boundary(net, X, y, path, resolution=50)
    ax = fig.axes[0]
    assert ax.get_title() == "decision boundary"
    # The grid spans the data with a margin.
    x0, x1 = ax.get_xlim()
    assert x0 < X[:, 0].min() < X[:, 0].max() < x1
    # Every data point is drawn, coloured by its own label.
    points = ax.collections[-1]
    np.testing.assert_allclose(points.get_offsets(), X)
    np.testing.assert_array_equal(np.asarray(points.get_array()), y)
    pixels = assert_real_png(path, min_width=550, min_height=450)
    # Both classes' regions are visible: the two fill colours cover the plot.
    assert len(np.unique(pixels[..., :3].reshape(-1, 3), axis=0)) > 50


def test_decision_boundary_of_an_mse_network_and_of_an_estimator(tmp_path):
    # One linear output y = x0 + 0.5, read as class 1 where y > 0.5: the boundary is x0 = 0.
    net = densa.Network([densa.Dense(2, 1, "identity")], loss="mse", dtype="float64")
    net.layers[0].W = [[1.0, 0.0]]
    net.layers[0].b = [0.5]
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(100, 2))
    y = (X[:, 0] > 0).astype(int)
    np.testing.assert_array_equal(plot._predict_labels(net, X), y)
    plot.decision_boundary(net, X, y, tmp_path / "mse.png", resolution=20)
    assert_real_png(tmp_path / "mse.png", min_width=550, min_height=450)

    class Constant:  # anything with predict: every grid point gets one label
        def predict(self, points):
            return np.full(len(points), "b")

    labels = np.where(y == 1, "a", "b")
    fig = plot.decision_boundary(Constant(), X, labels, resolution=10)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["a", "b"]


@pytest.mark.parametrize(
    ("X", "y", "error", "match"),
    [
        (np.zeros((5, 3)), np.zeros(5), ValueError, r"must have shape \(N, 2\), got \(5, 3\)"),
        (np.zeros((0, 2)), np.zeros(0), ValueError, "no points"),
        (np.zeros((5, 2)), np.zeros(4), ValueError, r"y must have shape \(5,\)"),
        (np.array([["a", "b"]]), np.zeros(1), TypeError, "real numbers"),
        (np.array([[0.0, np.nan]]), np.zeros(1), ValueError, "X contains NaN or inf"),
        (np.array([[-1e308, 0.0], [1e308, 1.0]]), np.zeros(2), ValueError, "scale the points"),
    ],
)
def test_decision_boundary_refuses_bad_input(spiral_net, X, y, error, match):
    net = spiral_net[0]
    with pytest.raises(error, match=match):
        plot.decision_boundary(net, X, y)


def test_decision_boundary_resolution_is_checked(spiral_net):
    net, X, y = spiral_net
    with pytest.raises(ValueError, match="resolution must be >= 2"):
        plot.decision_boundary(net, X, y, resolution=1)
    with pytest.raises(TypeError, match="resolution must be an integer"):
        plot.decision_boundary(net, X, y, resolution=2.5)


# ----- the demo saves both pictures ---------------------------------------------------------
def test_demo_saves_both_pngs_and_says_where(tmp_path, capsys):
    folder = tmp_path / "plots"
    args = ["demo", "--epochs", "3", "--samples", "120", "--no-progress", "--plots", folder]
    assert cli.main([str(a) for a in args]) == 0
    out = capsys.readouterr().out
    history_png = folder / "densa-demo-history.png"
    boundary_png = folder / "densa-demo-boundary.png"
    assert f"plots saved: {history_png} (loss and accuracy), {boundary_png}" in out
    assert_real_png(history_png, min_width=900, min_height=350)
    assert_real_png(boundary_png, min_width=550, min_height=450)


def test_demo_without_plots_writes_nothing(tmp_path, capsys):
    args = ["demo", "--epochs", "1", "--samples", "60", "--no-progress", "--no-plots"]
    assert cli.main([*args, "--plots", str(tmp_path / "plots")]) == 0
    assert "plots saved" not in capsys.readouterr().out
    assert not (tmp_path / "plots").exists()
