"""Pictures of training: loss and accuracy curves, and a decision boundary in 2-D.

matplotlib is an optional extra (``pip install "densa[plot]"``), imported inside these
functions only, so ``import densa`` never loads it. The figures are built from
``matplotlib.figure.Figure`` on an Agg canvas rather than through ``pyplot``: nothing
needs a display or picks an interactive backend, saving always renders with Agg, and no
figure lingers in pyplot's registry. In a notebook the returned Figure shows itself;
elsewhere pass ``path`` or call ``fig.savefig``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from .history import History

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["decision_boundary", "history"]

PathLike = Union[str, "os.PathLike[str]"]

_SERIES = ("loss", "val_loss", "accuracy", "val_accuracy")
_LABELS = {
    "loss": "training loss",
    "val_loss": "validation loss",
    "accuracy": "training accuracy",
    "val_accuracy": "validation accuracy",
}


def _new_figure(width: float, height: float) -> Figure:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(
            "densa.plot needs matplotlib; install it with: pip install 'densa[plot]'"
        ) from None
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # renders (and saves) with Agg, whatever the session's backend
    return fig


def _save(fig: Figure, path: PathLike | None) -> None:
    if path is not None:
        fig.savefig(os.fspath(path), dpi=100)


def _series(history: History | Mapping[str, Sequence[float]]) -> dict[str, np.ndarray]:
    if isinstance(history, History):
        source: Mapping[str, Sequence[float]] = history.as_dict()
    elif isinstance(history, Mapping):
        source = history
    else:
        raise TypeError(
            "history must be a densa.History or a mapping of lists "
            f"({', '.join(_SERIES)}), got {type(history).__name__}"
        )
    if "loss" not in source:
        raise ValueError(f"history has no 'loss' entry; its keys are {sorted(source)}")
    out = {}
    for key in _SERIES:
        values = np.asarray(source.get(key, []), dtype=np.float64)
        if values.ndim != 1:
            raise ValueError(
                f"history[{key!r}] must be a list of numbers, got shape {values.shape}"
            )
        if values.size:
            out[key] = values
    if "loss" not in out:
        raise ValueError("history['loss'] is empty: there is no epoch to plot")
    return out


def history(
    history: History | Mapping[str, Sequence[float]], path: PathLike | None = None
) -> Figure:
    """Loss curves (training and validation) and, when recorded, accuracy curves.

    Parameters
    ----------
    history : densa.History or mapping
        What ``Network.fit`` returns, or a mapping with a list of per-epoch values under
        ``"loss"`` and optionally ``"val_loss"``, ``"accuracy"`` and ``"val_accuracy"``
        (e.g. ``{"loss": est.loss_curve_}`` for a ``densa.sklearn`` estimator).
    path : str or path-like, optional
        Also save the figure there; the format follows the extension (``.png``, ``.svg``,
        ``.pdf``, ...).

    Returns
    -------
    matplotlib.figure.Figure
        One panel for the losses, and a second for the accuracies when there are any.
    """
    series = _series(history)
    has_accuracy = "accuracy" in series or "val_accuracy" in series
    fig = _new_figure(10.0 if has_accuracy else 5.5, 4.0)
    panels = fig.subplots(1, 2 if has_accuracy else 1, squeeze=False)[0]
    _curves(panels[0], series, ("loss", "val_loss"), "loss")
    if has_accuracy:
        _curves(panels[1], series, ("accuracy", "val_accuracy"), "accuracy")
        panels[1].set_ylim(min(0.0, *(series[k].min() for k in series if "acc" in k)), 1.02)
    _save(fig, path)
    return fig


def _curves(ax: Axes, series: dict[str, np.ndarray], keys: Sequence[str], ylabel: str) -> None:
    for key in keys:
        if key in series:
            values = series[key]
            ax.plot(
                np.arange(1, values.size + 1),
                values,
                marker="o" if values.size < 30 else "",
                markersize=3,
                label=_LABELS[key],
            )
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()


def _predict_labels(net: Any, points: np.ndarray) -> np.ndarray:
    """Class labels of ``points`` (M, 2) from a densa Network or a fitted estimator."""
    loss = getattr(net, "loss", None)
    if hasattr(net, "predict_classes") and loss in (
        "softmax_cross_entropy",
        "binary_cross_entropy",
    ):
        labels = np.asarray(net.predict_classes(points))
        if labels.ndim != 1:
            raise ValueError(
                "decision_boundary needs one label per point; this network has "
                f"{labels.shape[1]} binary outputs"
            )
        return labels
    if not hasattr(net, "predict"):
        raise TypeError(
            f"net must be a densa.Network or have a predict method, got {type(net).__name__}"
        )
    pred = np.asarray(net.predict(points))
    if isinstance(loss, str):  # a densa Network trained with mse: read outputs as classes
        if pred.ndim == 2 and pred.shape[1] > 1:
            return np.asarray(np.argmax(pred, axis=1))  # one-hot targets
        return (pred.reshape(-1) > 0.5).astype(np.int64)  # 0/1 targets
    return pred.reshape(-1) if pred.ndim == 2 and pred.shape[1] == 1 else pred


def decision_boundary(
    net: Any, X: Any, y: Any, path: PathLike | None = None, *, resolution: int = 200
) -> Figure:
    """The predicted class over the plane of two input features, with the data on top.

    Parameters
    ----------
    net : densa.Network or fitted classifier
        A Network with 2 inputs: its ``predict_classes`` for the cross-entropy losses; for
        ``mse``, the argmax of several outputs or one output thresholded at 0.5. Any
        object with ``predict`` (e.g. a ``densa.sklearn.MLPClassifier``) works too.
    X : array_like, shape (N, 2)
        The points to draw; the grid spans them with a 10% margin.
    y : array_like, shape (N,)
        Their labels (colours the points).
    path : str or path-like, optional
        Also save the figure there (format from the extension).
    resolution : int
        Grid points per axis (at least 2).

    Returns
    -------
    matplotlib.figure.Figure
    """
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise TypeError(f"X has dtype {X.dtype}; decision_boundary needs real numbers")
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(
            f"decision_boundary draws 2-D inputs: X must have shape (N, 2), got {X.shape}"
        )
    if X.shape[0] == 0:
        raise ValueError("X has no points")
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"y must have shape ({X.shape[0]},) to match X, got {y.shape}")
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)):
        raise TypeError(f"resolution must be an integer, got {resolution!r}")
    if resolution < 2:
        raise ValueError(f"resolution must be >= 2, got {resolution}")
    X = X.astype(np.float64)
    if not np.isfinite(X).all():
        raise ValueError("X contains NaN or inf: decision_boundary needs finite points")
    low, high = X.min(axis=0), X.max(axis=0)
    with np.errstate(over="ignore"):
        pad = np.where(high > low, 0.1 * (high - low), 0.5)
        if not (np.isfinite(low - pad).all() and np.isfinite(high + pad).all()):
            raise ValueError(
                "X spans more than float64 can grid (its range with a 10% margin "
                "overflows); scale the points first"
            )
    gx = np.linspace(low[0] - pad[0], high[0] + pad[0], resolution)
    gy = np.linspace(low[1] - pad[1], high[1] + pad[1], resolution)
    xx, yy = np.meshgrid(gx, gy)
    grid = np.column_stack([xx.ravel(), yy.ravel()])
    predicted = _predict_labels(net, grid)
    # One colour per label, shared by the regions and the points.
    classes, codes = np.unique(np.concatenate([y, predicted]), return_inverse=True)
    region = codes[y.shape[0] :].reshape(xx.shape)
    point = codes[: y.shape[0]]
    import matplotlib as mpl
    from matplotlib.colors import Colormap, ListedColormap
    from matplotlib.lines import Line2D

    if classes.size <= 10:  # tab10's first colours: blue, orange, green, ...
        cmap: Colormap = ListedColormap(mpl.color_sequences["tab10"][: classes.size])
    else:
        cmap = mpl.colormaps["viridis"].resampled(classes.size)
    fig = _new_figure(6.0, 5.0)
    ax = fig.subplots()
    levels = np.arange(classes.size + 1) - 0.5
    ax.contourf(xx, yy, region, levels=levels, cmap=cmap, alpha=0.35)
    if classes.size > 1:
        ax.contour(xx, yy, region, levels=levels[1:-1], colors="k", linewidths=0.8)
    ax.scatter(
        X[:, 0],
        X[:, 1],
        c=point,
        cmap=cmap,
        vmin=-0.5,
        vmax=classes.size - 0.5,
        s=12,
        edgecolors="k",
        linewidths=0.3,
    )
    handles = [
        Line2D([], [], marker="o", linestyle="", color=cmap(i), label=str(c))
        for i, c in enumerate(classes)
    ]
    ax.legend(handles=handles, title="class", loc="best", fontsize="small")
    ax.set_xlabel("x[0]")
    ax.set_ylabel("x[1]")
    ax.set_title("decision boundary")
    _save(fig, path)
    return fig
