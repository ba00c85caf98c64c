"""Reading data files and writing predictions for the command line.

Three input formats, told apart by their first bytes (not by the file name):

* ``.npy``: one 2-D numeric array; the target is a column given by index.
* ``.npz``: arrays ``X`` (N, features) and ``y`` ((N,) or (N, outputs)); prediction
  needs only ``X``.
* CSV (anything else): UTF-8 text, a header row of column names, then one row of
  numbers per sample; the target is a column given by name. Missing values are not
  supported.

Every problem raises a ValueError that names the file, and the line or column where
it can.
"""

from __future__ import annotations

import csv
import io
import math
import os
import sys
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


@dataclass
class Table:
    """Features, optional targets, and their column names.

    Attributes
    ----------
    X : ndarray, shape (N, features), float64
    y : ndarray, shape (N,) or (N, targets), or None
        None when the data held no target column.
    features, targets : list of str
        Column names (``"x0"``, ... or ``"y0"``, ... when the format has none).
    named : bool
        Whether the names came from the file (a CSV header) rather than being made up.
    """

    X: np.ndarray
    y: np.ndarray | None
    features: list[str]
    targets: list[str]
    named: bool = False


def _kind(path: str) -> str:
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(_NPY_MAGIC):
        return "npy"
    if head.startswith(_ZIP_MAGIC):
        return "npz"
    return "csv"


def _numeric_2d(arr: np.ndarray, what: str) -> np.ndarray:
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{what} has dtype {arr.dtype}; expected numbers")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{what} must be a non-empty 2-D array, got shape {arr.shape}")
    return arr.astype(np.float64)


def _split_names(spec: str | None) -> list[str]:
    if spec is None:
        return []
    names = [s.strip() for s in spec.split(",")]
    if not all(names):
        raise ValueError(f"--target {spec!r} has an empty column name")
    return names


def _column_indices(spec: str | None, names: list[str], path: str, default_last: bool) -> list[int]:
    """Indices of the target columns named (CSV) or numbered (NPY) by ``spec``."""
    wanted = _split_names(spec)
    if not wanted and default_last and len(names) == 1:
        raise ValueError(
            f"{path} has one column, the target (the last column by default): "
            "no feature columns are left"
        )
    if not wanted:
        return [len(names) - 1] if default_last else []
    out: list[int] = []
    for w in wanted:
        if w in names:
            out.append(names.index(w))
            continue
        try:
            i = int(w)
        except ValueError:
            shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
            raise ValueError(f"{path} has no column {w!r}; its columns are: {shown}") from None
        if not -len(names) <= i < len(names):
            raise ValueError(f"{path} has {len(names)} columns; column {i} does not exist")
        out.append(i % len(names))
    if len(set(out)) != len(out):
        raise ValueError(f"--target {spec!r} names a column twice")
    if len(out) == len(names):
        raise ValueError(f"--target {spec!r} leaves no feature columns in {path}")
    return out


def _named_indices(wanted: list[str], names: list[str], targets: list[int], path: str) -> list[int]:
    """Indices of the feature columns ``wanted`` (a model's), in that order."""
    missing = [w for w in wanted if w not in names]
    if missing:
        shown = ", ".join(missing[:20]) + (", ..." if len(missing) > 20 else "")
        raise ValueError(
            f"{path} lacks the column(s) {shown} that the model was trained on "
            "(it matches columns by name)"
        )
    out = [names.index(w) for w in wanted]
    clash = [names[i] for i in out if i in targets]
    if clash:
        raise ValueError(f"{path}: --target names {', '.join(clash)}, a feature of the model")
    return out


def _read_csv(path: str) -> tuple[np.ndarray, list[str]]:
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            text = fh.read()
    except UnicodeDecodeError:
        raise ValueError(f"{path} is neither UTF-8 CSV text nor a .npy/.npz file") from None
    if "\0" in text:
        raise ValueError(f"{path} is neither CSV text nor a .npy/.npz file (it holds NUL bytes)")
    rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    if not rows:
        raise ValueError(f"{path} is empty")
    header = [c.strip() for c in rows[0]]
    if len(rows) == 1:
        raise ValueError(f"{path} has a header but no data rows")
    if not all(header) or len(set(header)) != len(header):
        raise ValueError(f"{path}: the header row must name every column once, got {header}")
    try:
        [float(c) for c in header]
    except ValueError:
        pass
    else:
        raise ValueError(
            f"{path}: the first row {header} looks like data; CSV files need a "
            "header row of column names"
        )
    data = np.empty((len(rows) - 1, len(header)))
    for r, row in enumerate(rows[1:]):
        if len(row) != len(header):
            raise ValueError(
                f"{path}, data row {r + 1}: {len(row)} fields, but the header has {len(header)}"
            )
        for c, cell in enumerate(row):
            try:
                value = float(cell)
            except ValueError:
                raise ValueError(
                    f"{path}, data row {r + 1}, column {header[c]!r}: "
                    f"{cell.strip()[:40]!r} is not a number"
                ) from None
            if not math.isfinite(value):
                raise ValueError(
                    f"{path}, data row {r + 1}, column {header[c]!r}: {cell!r} is not finite"
                )
            data[r, c] = value
    return data, header


def _npz_array(npz: Any, name: str, path: str) -> np.ndarray:
    try:
        arr: np.ndarray = npz[name]
    except ValueError as exc:  # an object array (it would need pickle), a damaged header
        raise ValueError(f"{path}: array {name!r} cannot be read ({exc})") from None
    return arr


def _read_npz(path: str, need_y: bool) -> Table:
    needed = ("X", "y") if need_y else ("X",)
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in needed if k not in npz.files]
            if missing and "meta" in npz.files:
                raise ValueError(f"{path} looks like a densa model, not data (arrays X and y)")
            if missing:
                shown = ", ".join(npz.files[:10]) + (", ..." if len(npz.files) > 10 else "")
                wanted = " and ".join(repr(k) for k in needed)
                raise ValueError(
                    f"{path} must hold {'arrays' if need_y else 'array'} {wanted}; "
                    f"it holds {shown or 'nothing'}"
                )
            X = _npz_array(npz, "X", path)
            y = _npz_array(npz, "y", path) if need_y else None
    except (zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"{path} is not a readable .npz file ({exc})") from None
    X = _numeric_2d(X, f"{path}: X")
    names = [f"x{i}" for i in range(X.shape[1])]
    if y is None:
        return Table(X, None, names, [])
    if y.dtype.kind not in "biuf" or y.ndim not in (1, 2):
        raise ValueError(
            f"{path}: y must be a 1-D or 2-D numeric array, got shape {y.shape} of {y.dtype}"
        )
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"{path}: X has {X.shape[0]} rows but y has {y.shape[0]}")
    n_t = 1 if y.ndim == 1 else y.shape[1]
    return Table(X, y, names, [f"y{i}" for i in range(n_t)])


def read_table(
    path: str | os.PathLike[str],
    target: str | None = None,
    *,
    require_target: bool = True,
    features: list[str] | None = None,
) -> Table:
    """Read ``path`` as features and targets.

    Parameters
    ----------
    path : str or os.PathLike
    target : str, optional
        CSV: column name(s), comma-separated; NPY: column index(es). Default: the last
        column when ``require_target``, else no target. Ignored for NPZ (it has ``y``).
    require_target : bool
        Whether a target must be found (training) or is optional (prediction).
    features : list of str, optional
        The feature columns to take from a CSV, by name and in this order (a model's
        ``feature_names``); its other columns, unless named by ``target``, are ignored.
        NPY and NPZ files have no names: their columns are taken by position.

    Returns
    -------
    Table
    """
    path = os.fsdecode(os.fspath(path))
    kind = _kind(path)
    if kind == "npz":
        # Prediction reads y only to score against it (--target).
        return _read_npz(path, need_y=require_target or target is not None)
    if kind == "npy":
        try:
            data = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise ValueError(f"{path} is not a readable .npy array ({exc})") from None
        data = _numeric_2d(data, path)
        names = [f"c{i}" for i in range(data.shape[1])]
    else:
        data, names = _read_csv(path)
    cols = _column_indices(target, names, path, default_last=require_target)
    if features is not None and kind == "csv":
        keep = _named_indices(features, names, cols, path)
    else:
        keep = [i for i in range(data.shape[1]) if i not in cols]
    y = None
    if cols:
        y = data[:, cols[0]] if len(cols) == 1 else data[:, cols]
    kept, targets = [names[i] for i in keep], [names[i] for i in cols]
    return Table(data[:, keep], y, kept, targets, named=kind == "csv")


def prediction_table(
    loss: str, probabilities: np.ndarray, labels: np.ndarray | None
) -> tuple[list[str], np.ndarray]:
    """Column names and (N, columns) float64 values for ``write_csv``.

    Softmax cross-entropy: ``class`` then ``p0 .. p{K-1}``; binary cross-entropy with
    one output: ``class`` and ``p1``; with several outputs: ``p0 ..``, one probability
    per output and no class column (each output is its own yes/no); mse: one column per
    output, ``y0 ..`` (``prediction`` when there is one).
    """
    out = np.asarray(probabilities, dtype=np.float64)
    if loss == "softmax_cross_entropy":
        assert labels is not None  # classification callers pass the labels
        names = ["class"] + [f"p{k}" for k in range(out.shape[1])]
        return names, np.column_stack([labels, out])
    if loss == "binary_cross_entropy" and out.shape[1] == 1:
        assert labels is not None
        return ["class", "p1"], np.column_stack([labels, out])
    names = ["prediction"] if out.shape[1] == 1 else [f"y{k}" for k in range(out.shape[1])]
    if loss == "binary_cross_entropy":
        names = [f"p{k}" for k in range(out.shape[1])]
    return names, out


def write_csv(
    names: list[str], values: np.ndarray, path: str | os.PathLike[str] | None = None
) -> None:
    """Write a header and rows; floats with ``repr`` so they read back bit for bit.

    ``path`` None writes to standard output. The ``class`` column is written as an
    integer.
    """
    int_cols = {i for i, n in enumerate(names) if n == "class"}

    def fmt(i: int, v: float) -> str:
        return str(int(v)) if i in int_cols else repr(float(v))

    lines = [",".join(names)]
    lines += [",".join(fmt(i, v) for i, v in enumerate(row)) for row in values]
    text = "\n".join(lines) + "\n"
    if path is None:
        sys.stdout.write(text)
        return
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
