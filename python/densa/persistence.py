"""Saving and loading networks: densa's ``.npz`` model format, versions 1 and 2.

A model file is an ordinary NumPy ``.npz`` archive (a zip of ``.npy`` arrays) holding
only numeric arrays, so it is read with ``np.load(path, allow_pickle=False)``: opening
a file never runs code from it. docs/format.md describes the same format for readers
in other languages.

Members
-------
========================  ===============  =========================================
name                      dtype, shape     content
========================  ===============  =========================================
``meta``                  uint8 (n,)       UTF-8 JSON object, described below
``W{i}``, ``b{i}``        dtype (m, k),    layer i's weights (n_out, n_in) and bias
                          (m,)             (n_out,), i = 0 for the input-side layer
``opt_W{i}_{k}``,         dtype, as W{i},  optimizer state array k of layer i:
``opt_b{i}_{k}``          as b{i}          k = 0 velocity (SGD); k = 0 m, 1 v (Adam)
``history_loss``,         float64 (e,)     ``net.history`` (present when ``history``
``history_val_loss``,                      is not null in ``meta``); val_* may be
``history_val_accuracy``,                  empty
``history_seconds``
========================  ===============  =========================================

``dtype`` is the network's ``float32`` or ``float64``. No other member is allowed.

The ``meta`` JSON object::

    {"format": "densa.network", "version": 1, "densa_version": "0.1.0",
     "dtype": "float32", "loss": "softmax_cross_entropy", "backend": "native",
     "seed": 0, "check_finite": true,
     "layers": [{"n_in": 2, "n_out": 64, "activation": "tanh", "init": "glorot_uniform"},
                ...],
     "rng": {"bit_generator": "PCG64", "state": "<decimal>", "inc": "<decimal>",
             "has_uint32": 0, "uinteger": 0},
     "optimizer": {"kind": "adam", "step": 1200, "n_state": 2,
                   "hyper": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-08,
                             "weight_decay": 0.0}},
     "history": {"stopped_early": false, "best_epoch": null},
     "feature_names": ["sepal_length", ...]}

``seed``, ``rng``, ``optimizer`` and ``history`` may be ``null``. ``feature_names``
is optional: the names of the n_in input columns (``densa train`` stores a CSV's
header), absent when unknown; ``load`` sets ``net.feature_names`` to it or None.
``rng`` is the state of the network's random generator (it draws the shuffling order),
kept so that training continued after ``load`` is the training that would have followed
without saving; the 128-bit integers are decimal strings. ``n_state`` is the number of
state arrays per parameter (0 when the optimizer has none yet, or plain SGD without
momentum). No other field is allowed, in ``meta`` or in the objects it holds.

Writing is atomic: the archive goes to a temporary file in the destination's
directory, is flushed and ``fsync``-ed, then renamed over the destination with
``os.replace``. If anything fails, the previous file is untouched and the temporary
file is removed. The file is written at exactly the path given: unlike ``np.savez``,
no ``.npz`` is appended (any name works; ``.npz`` is the convention).

Reading checks everything before building anything: the zip structure, every
member's ``.npy`` header (dtype, shape, and that the stored bytes match the declared
shape, before any data is read; a compressed member may not expand beyond 100-fold),
the JSON fields and their types (no unknown field is allowed), that layer sizes chain,
that every array has the shape the architecture implies, that parameters and state are
finite and Adam's second moments are not negative. A file that fails any check raises
``ModelFileError`` (a ``ValueError``) naming the file and the problem. A missing or
unreadable file raises the usual ``OSError``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import secrets
import weakref
import zipfile
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _backends, _checks, initializers
from .history import History
from .layers import Dense
from .optimizers import SGD, Adam, Optimizer

if TYPE_CHECKING:
    from .network import Network

FORMAT_NAME = "densa.network"
FORMAT_VERSION = 2  # the newest this densa writes; it reads READABLE_VERSIONS
# Version 2 is version 1 plus an optional "l2" in meta.optimizer.hyper. A file is written
# as version 2 only when it holds l2, so that a densa from before l2 refuses that file
# instead of dropping the penalty; every other file stays version 1.
READABLE_VERSIONS = (1, 2)

_FLOAT_DTYPES: dict[str, np.dtype[Any]] = {
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
}
_HISTORY_KEYS = ("loss", "val_loss", "val_accuracy", "seconds")
_PCG_STATE_KEYS = ("state", "inc")
# Every field each JSON object of meta may hold: anything else is refused, so that a
# field this reader would ignore (a misspelling, or one from a newer writer) is not lost.
_META_KEYS = (
    *("format", "version", "densa_version", "dtype", "loss", "backend", "seed"),
    *("check_finite", "layers", "rng", "optimizer", "history", "feature_names"),
)
_HYPER_KEYS = {
    "sgd": ("lr", "momentum", "nesterov", "weight_decay"),
    "adam": ("lr", "beta1", "beta2", "eps", "weight_decay"),
}
# Limits that only a damaged or hostile file reaches; they bound the work done and the
# memory asked for before the data itself is read.
_MAX_META_BYTES = 1 << 20
_MAX_LAYERS = 10_000
_MAX_DIM = 2**31 - 1  # the native kernels' BLAS sizes are 32-bit
_MAX_HISTORY = 10_000_000
_MAX_MEMBERS = 4 * _MAX_LAYERS + 16
# densa stores members uncompressed. A compressed member may expand at most this much:
# float weights barely compress, while a "zip bomb" of zeros expands ~1000-fold.
_MAX_EXPANSION = 100
_SMALL_MEMBER = 1 << 24  # below 16 MiB, any expansion is harmless
_MEMBER_RE = re.compile(r"(meta|[Wb]\d+|opt_[Wb]\d+_\d+|history_[a-z_]+)\.npy")


class ModelFileError(ValueError):
    """A file is not a valid densa model: truncated, corrupted, hostile, or of a
    format version this densa cannot read. The message names the file and the problem."""


# ----- saving ---------------------------------------------------------------------------
def _rng_state(rng: object) -> dict[str, Any] | None:
    # Only the PCG64 family (default_rng's) has a state of plain integers; another
    # generator is not saved and a loaded network starts a fresh one from its seed.
    if not isinstance(rng, np.random.Generator):
        return None
    st = rng.bit_generator.state
    if st.get("bit_generator") not in ("PCG64", "PCG64DXSM"):
        return None
    return {
        "bit_generator": st["bit_generator"],
        "state": str(int(st["state"]["state"])),
        "inc": str(int(st["state"]["inc"])),
        "has_uint32": int(st["has_uint32"]),
        "uinteger": int(st["uinteger"]),
    }


def _optimizer_entry(
    opt: Optimizer | None, layers: list[Dense], arrays: dict[str, Any]
) -> dict[str, Any] | None:
    if opt is None:
        return None
    n_state = len(opt.state_W[0]) if opt.state_W and len(opt.state_W) == len(layers) else 0
    fits = n_state > 0 and all(
        len(sw) == n_state
        and len(sb) == n_state
        and all(a.shape == layer.W.shape and a.dtype == layer.W.dtype for a in sw)
        and all(a.shape == layer.b.shape and a.dtype == layer.b.dtype for a in sb)
        for sw, sb, layer in zip(opt.state_W, opt.state_b, layers)
    )
    # State that does not fit this network (after net.layers was changed) would be reset
    # by the next fit anyway, so it is saved as "no state yet".
    if not fits:
        n_state = 0
    for i in range(len(layers) if n_state else 0):
        for k in range(n_state):
            arrays[f"opt_W{i}_{k}"] = opt.state_W[i][k]
            arrays[f"opt_b{i}_{k}"] = opt.state_b[i][k]
    return {
        "kind": opt.kind,
        "hyper": opt.hyper(),
        "step": int(opt.step[0]) if n_state else 0,
        "n_state": n_state,
    }


def _seed_entry(seed: object) -> int | None:
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_)):
        return int(seed)
    return None  # None, or a SeedSequence / array seed JSON cannot hold; rng state suffices


def _contents(net: Network) -> dict[str, np.ndarray]:
    """Every member of the archive, ``meta`` first."""
    from . import __version__

    arrays: dict[str, np.ndarray] = {}
    for i, layer in enumerate(net.layers):
        arrays[f"W{i}"] = layer.W
        arrays[f"b{i}"] = layer.b
    history = None
    if net.history is not None:
        history = {
            "stopped_early": bool(net.history.stopped_early),
            "best_epoch": net.history.best_epoch,
        }
        for key in _HISTORY_KEYS:
            arrays[f"history_{key}"] = np.asarray(getattr(net.history, key), dtype=np.float64)
    meta = {
        "format": FORMAT_NAME,
        "version": 2 if net.optimizer is not None and "l2" in net.optimizer.hyper() else 1,
        "densa_version": __version__,
        "dtype": net.dtype.name,
        "loss": net.loss,
        "backend": net.backend,
        "seed": _seed_entry(net.seed),
        "check_finite": bool(net.check_finite),
        "layers": [
            {
                "n_in": layer.n_in,
                "n_out": layer.n_out,
                "activation": layer.activation,
                "init": layer.init,
            }
            for layer in net.layers
        ],
        "rng": _rng_state(net.rng),
        "optimizer": _optimizer_entry(net.optimizer, net.layers, arrays),
        "history": history,
    }
    if net.feature_names is not None:  # absent, not null: files without names stay as before
        meta["feature_names"] = list(net.feature_names)
    text = json.dumps(meta, allow_nan=False, sort_keys=True)
    return {"meta": np.frombuffer(text.encode("utf-8"), dtype=np.uint8), **arrays}


def _fspath(path: Any, name: str = "path") -> str:  # Any: checked here
    try:
        return os.fsdecode(os.fspath(path))
    except TypeError:
        raise TypeError(f"{name} must be a str or os.PathLike, got {type(path).__name__}") from None


def save(net: Network, path: str | os.PathLike[str]) -> None:
    """Write ``net`` to ``path`` atomically, in the format this module describes.

    Parameters
    ----------
    net : densa.Network
    path : str or os.PathLike
        Written exactly as given (no ``.npz`` is appended). The directory must exist.

    Raises
    ------
    OSError
        The file cannot be written; an existing file at ``path`` is then unchanged.
    IsADirectoryError
        ``path`` is a directory (or ends with a separator): nothing is written.
    ValueError
        The file would be one that ``load`` refuses: a parameter or optimizer state array
        holds NaN or inf, the layers' sizes do not chain (after ``net.layers`` was
        edited), ``net.feature_names`` is not n_in distinct strings, ...; nothing is
        written.
    """
    from .network import Network

    if not isinstance(net, Network):
        raise TypeError(f"net must be a densa.Network, got {type(net).__name__}")
    path = _fspath(path)
    # Refused here, or the temporary file's name would appear in the error from replace.
    if os.path.isdir(path) or path.endswith((os.sep, os.altsep or os.sep)):
        raise IsADirectoryError(errno.EISDIR, "the path names a directory, not a file", path)
    # What load refuses, save refuses first: a file that cannot be loaded is lost work.
    names: Any = net.feature_names  # Any: whatever the caller set, checked here
    if names is not None and not (
        isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names)
    ):
        raise ValueError(
            f"cannot save to {path}: net.feature_names must be None or a list of strings, "
            f"got {_short(names)}; nothing was written"
        )
    for i in range(1, len(net.layers)):
        a, b = net.layers[i - 1], net.layers[i]
        if a.n_out != b.n_in:
            raise ValueError(
                f"cannot save to {path}: layer sizes do not chain: net.layers[{i - 1}] outputs "
                f"{a.n_out} values but net.layers[{i}] expects {b.n_in} inputs; nothing "
                "was written"
            )
    members: dict[str, Any] = _contents(net)  # Any: numpy types **kwds of savez loosely
    for name, value in members.items():
        if (
            isinstance(value, np.ndarray)
            and value.dtype.kind == "f"
            and not name.startswith("history_")
            and not np.isfinite(value).all()
        ):
            raise ValueError(
                f"cannot save to {path}: array {name!r} contains NaN or inf, which "
                "densa.Network.load refuses; nothing was written"
            )
    # The reader's own checks of meta against the arrays, for anything else set by hand.
    rd = _Reader(
        path, "cannot save to {path}: load would refuse it: {problem}; nothing was written"
    )
    meta = json.loads(members["meta"].tobytes().decode("utf-8"))
    try:
        plan = _validate(
            rd, meta, {k: (np.shape(v), np.asarray(v).dtype) for k, v in members.items()}
        )
        for name, value in members.items():
            _check_moment(rd, plan, name, value)
    except ModelFileError as exc:
        raise ValueError(str(exc)) from None
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    # 0o666 through the umask: the file gets the permissions a plain open() would give.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(tmp, flags, 0o666)
    except OSError as exc:
        # Name the destination, not the temporary file the user never asked for.
        raise OSError(exc.errno, exc.strerror, path) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **members)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        # Ctrl-C included: never leave a half-written temporary file behind.
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    # Makes the rename itself durable on POSIX; a no-op where directories cannot be opened.
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


# ----- loading: validation helpers --------------------------------------------------------
class _Reader:
    """Checks one file's pieces, raising ModelFileError that names the file."""

    def __init__(
        self, path: str, message: str = "{path}: not a valid densa model file: {problem}"
    ) -> None:
        self.path, self.message = path, message

    def fail(self, problem: str) -> ModelFileError:
        return ModelFileError(self.message.format(path=self.path, problem=problem))

    def field(
        self, obj: dict[str, Any], key: str, kinds: tuple[Any, ...], where: str = "meta"
    ) -> Any:
        if key not in obj:
            raise self.fail(f"{where} lacks the field {key!r}")
        value = obj[key]
        if isinstance(value, bool) and bool not in kinds:
            raise self.fail(f"{where}.{key} must be {_kind_names(kinds)}, got {value!r}")
        if not isinstance(value, kinds):
            raise self.fail(
                f"{where}.{key} must be {_kind_names(kinds)}, got "
                f"{type(value).__name__} {_short(value)}"
            )
        return value

    def int_field(self, obj: dict[str, Any], key: str, low: int, high: int, where: str) -> int:
        value = self.field(obj, key, (int,), where)
        if not low <= value <= high:
            raise self.fail(f"{where}.{key} = {value} is outside [{low}, {high}]")
        checked: int = value
        return checked

    def only(self, obj: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
        unknown = [k for k in obj if k not in allowed]
        if unknown:
            shown = ", ".join(_short(k) for k in unknown[:5])
            raise self.fail(f"{where} has unknown field(s) {shown}")

    def choice(
        self, obj: dict[str, Any], key: str, allowed: tuple[Any, ...], where: str = "meta"
    ) -> str:
        value = self.field(obj, key, (str,), where)
        if value not in allowed:
            raise self.fail(f"{where}.{key} = {_short(value)} is not one of {', '.join(allowed)}")
        checked: str = value
        return checked


def _kind_names(kinds: tuple[Any, ...]) -> str:
    names = {
        int: "an integer",
        float: "a number",
        str: "a string",
        bool: "true or false",
        dict: "an object",
        list: "a list",
        type(None): "null",
    }
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _read_headers(rd: _Reader, zf: zipfile.ZipFile) -> dict[str, tuple[Any, ...]]:
    """``{name: (shape, dtype)}`` from every member's .npy header, data unread.

    Also checks that each member's stored size equals what its header declares, so an
    absurd declared shape is refused before any memory is allocated for it.
    """
    infos = zf.infolist()
    if len(infos) > _MAX_MEMBERS:
        raise rd.fail(f"{len(infos)} members (at most {_MAX_MEMBERS} expected)")
    headers: dict[str, tuple[Any, ...]] = {}
    for info in infos:
        if not _MEMBER_RE.fullmatch(info.filename):
            raise rd.fail(f"unexpected member {_short(info.filename)}")
        name = info.filename[:-4]
        if name in headers:
            raise rd.fail(f"member {name!r} appears twice")
        if info.file_size > max(_SMALL_MEMBER, _MAX_EXPANSION * info.compress_size):
            raise rd.fail(
                f"member {name!r} would expand from {info.compress_size:,} to "
                f"{info.file_size:,} bytes (a zip bomb?)"
            )
        with zf.open(info) as fp:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
            else:
                raise rd.fail(f"member {name!r} has .npy version {version}")
            header_end = fp.tell()
        if dtype.hasobject or dtype.kind not in "uf" or dtype.fields is not None:
            raise rd.fail(
                f"member {name!r} has dtype {dtype}; only numeric arrays are allowed "
                "(object arrays would need pickle)"
            )
        if fortran and len(shape) > 1:
            raise rd.fail(f"member {name!r} is stored in Fortran order")
        if any(d > _MAX_DIM for d in shape):
            raise rd.fail(f"member {name!r} declares an absurd shape {shape}")
        declared = math.prod(shape) * dtype.itemsize
        if info.file_size - header_end != declared:
            raise rd.fail(
                f"member {name!r} declares shape {shape} of {dtype} ({declared:,} "
                f"bytes) but holds {info.file_size - header_end:,} bytes"
            )
        headers[name] = (tuple(shape), dtype)
    return headers


def _parse_meta(rd: _Reader, raw: np.ndarray) -> dict[str, Any]:
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise rd.fail(f"meta is not UTF-8 JSON ({exc})") from None
    except RecursionError:  # arrays nested deeper than the parser's recursion allows
        raise rd.fail("meta nests JSON arrays or objects too deeply") from None
    if not isinstance(meta, dict):
        raise rd.fail(f"meta must be a JSON object, got {type(meta).__name__}")
    if meta.get("format") != FORMAT_NAME:
        raise rd.fail(f"meta.format is {_short(meta.get('format'))}, expected {FORMAT_NAME!r}")
    version = rd.field(meta, "version", (int,))
    if version not in READABLE_VERSIONS:
        newer = (
            " (written by a newer densa; upgrade densa to read it)"
            if version > FORMAT_VERSION
            else ""
        )
        raise rd.fail(
            f"format version {version} is not supported; this densa reads "
            f"versions {', '.join(map(str, READABLE_VERSIONS))}{newer}"
        )
    return meta


def _check_layers(rd: _Reader, meta: dict[str, Any]) -> list[dict[str, Any]]:
    layers = rd.field(meta, "layers", (list,))
    if not 1 <= len(layers) <= _MAX_LAYERS:
        raise rd.fail(f"meta.layers must hold 1 to {_MAX_LAYERS} layers, got {len(layers)}")
    out: list[dict[str, Any]] = []
    for i, spec in enumerate(layers):
        where = f"meta.layers[{i}]"
        if not isinstance(spec, dict):
            raise rd.fail(f"{where} must be an object")
        rd.only(spec, ("n_in", "n_out", "activation", "init"), where)
        n_in = rd.int_field(spec, "n_in", 1, _MAX_DIM, where)
        n_out = rd.int_field(spec, "n_out", 1, _MAX_DIM, where)
        activation = rd.choice(spec, "activation", _checks.ACTIVATIONS, where)
        init = rd.choice(spec, "init", initializers.INITIALIZERS, where)
        if out and out[-1]["n_out"] != n_in:
            raise rd.fail(
                f"layer sizes do not chain: meta.layers[{i - 1}] outputs "
                f"{out[-1]['n_out']} values but meta.layers[{i}] expects {n_in} inputs"
            )
        out.append({"n_in": n_in, "n_out": n_out, "activation": activation, "init": init})
    return out


def _expect(
    rd: _Reader, headers: dict[str, Any], name: str, shape: tuple[Any, ...], dtype: np.dtype[Any]
) -> None:
    if name not in headers:
        raise rd.fail(f"missing array {name!r}")
    have_shape, have_dtype = headers.pop(name)
    if have_shape != shape:
        raise rd.fail(f"array {name!r} has shape {have_shape} but the architecture needs {shape}")
    if have_dtype.kind != dtype.kind or have_dtype.itemsize != dtype.itemsize:
        raise rd.fail(f"array {name!r} has dtype {have_dtype} but meta.dtype says {dtype}")


def _check_optimizer(rd: _Reader, meta: dict[str, Any]) -> dict[str, Any] | None:
    spec = rd.field(meta, "optimizer", (dict, type(None)))
    if spec is None:
        return None
    rd.only(spec, ("kind", "hyper", "step", "n_state"), "meta.optimizer")
    kind = rd.choice(spec, "kind", ("sgd", "adam"), "meta.optimizer")
    hyper = rd.field(spec, "hyper", (dict,), "meta.optimizer")
    step = rd.int_field(spec, "step", 0, 2**62, "meta.optimizer")
    n_state = rd.int_field(spec, "n_state", 0, 2, "meta.optimizer")
    keys = _HYPER_KEYS[kind]
    if meta["version"] >= 2 and "l2" in hyper:  # version 2: an optional l2
        keys = (*keys, "l2")
    rd.only(hyper, keys, "meta.optimizer.hyper")
    for key in keys:
        kinds = (bool,) if key == "nesterov" else (int, float)
        rd.field(hyper, key, kinds, "meta.optimizer.hyper")
    expected_state = (SGD if kind == "sgd" else Adam).n_state
    if n_state not in (0, expected_state):
        raise rd.fail(
            f"meta.optimizer.n_state = {n_state}, but {kind} keeps "
            f"{expected_state} state arrays per parameter (or 0 before training)"
        )
    return {"kind": kind, "hyper": {k: hyper[k] for k in keys}, "step": step, "n_state": n_state}


def _check_rng(rd: _Reader, meta: dict[str, Any]) -> dict[str, Any] | None:
    spec = rd.field(meta, "rng", (dict, type(None)))
    if spec is None:
        return None
    where = "meta.rng"
    rd.only(spec, ("bit_generator", *_PCG_STATE_KEYS, "has_uint32", "uinteger"), where)
    name = rd.choice(spec, "bit_generator", ("PCG64", "PCG64DXSM"), where)
    state = {}
    for key in _PCG_STATE_KEYS:
        text = rd.field(spec, key, (str,), where)
        if not (text.isascii() and text.isdigit() and len(text) <= 39):
            raise rd.fail(f"{where}.{key} must be a decimal 128-bit integer, got {_short(text)}")
        state[key] = int(text)
        if state[key] >= 2**128:
            raise rd.fail(f"{where}.{key} does not fit in 128 bits")
    return {
        "bit_generator": name,
        "state": state,
        "has_uint32": rd.int_field(spec, "has_uint32", 0, 1, where),
        "uinteger": rd.int_field(spec, "uinteger", 0, 2**32 - 1, where),
    }


def _check_history(
    rd: _Reader, meta: dict[str, Any], headers: dict[str, Any]
) -> dict[str, Any] | None:
    spec = rd.field(meta, "history", (dict, type(None)))
    if spec is None:
        return None
    rd.only(spec, ("stopped_early", "best_epoch"), "meta.history")
    stopped = rd.field(spec, "stopped_early", (bool,), "meta.history")
    best = rd.field(spec, "best_epoch", (int, type(None)), "meta.history")
    lengths = {}
    for key in _HISTORY_KEYS:
        name = f"history_{key}"
        if name not in headers:
            raise rd.fail(f"missing array {name!r}")
        shape = headers[name][0]
        if len(shape) != 1 or shape[0] > _MAX_HISTORY:
            raise rd.fail(
                f"array {name!r} must be 1-D with at most {_MAX_HISTORY} entries, got shape {shape}"
            )
        _expect(rd, headers, name, shape, np.dtype(np.float64))
        lengths[key] = shape[0]
    epochs = lengths["loss"]
    for key in ("seconds", "val_loss"):
        if lengths[key] != epochs and not (key == "val_loss" and lengths[key] == 0):
            raise rd.fail(f"history_{key} has {lengths[key]} entries but history_loss has {epochs}")
    if lengths["val_accuracy"] not in (0, lengths["val_loss"]):
        raise rd.fail("history_val_accuracy and history_val_loss differ in length")
    if best is not None and not 0 <= best < max(epochs, 1):
        raise rd.fail(f"meta.history.best_epoch = {best} is not an epoch of the history")
    return {"stopped_early": stopped, "best_epoch": best}


def _check_feature_names(rd: _Reader, meta: dict[str, Any], n_in: int) -> list[str] | None:
    names = meta.get("feature_names")  # optional: files from before it existed lack it
    if names is None:
        return None
    if (
        not isinstance(names, list)
        or len(names) != n_in
        or not all(isinstance(n, str) for n in names)
        or len(set(names)) != n_in
    ):
        # Distinct, since densa predict picks each input column by its name.
        raise rd.fail(f"meta.feature_names must be a list of {n_in} distinct strings (n_in)")
    return names


def _check_moment(rd: _Reader, plan: dict[str, Any], name: str, arr: Any) -> None:
    # Adam's v is a running mean of squared gradients; a negative one can make the update
    # take the square root of a negative number (NaN) in the first fit after load.
    opt = plan["optimizer"]
    moment = opt and opt["kind"] == "adam" and re.fullmatch(r"opt_[Wb]\d+_1", name)
    if moment and (np.asarray(arr) < 0).any():
        raise rd.fail(f"array {name!r} (Adam's second moment v) holds negative values")


def _validate(rd: _Reader, meta: dict[str, Any], headers: dict[str, Any]) -> dict[str, Any]:
    """Every field of ``meta`` checked against the headers; a plan for building."""
    rd.only(meta, _META_KEYS, "meta")
    rd.field(meta, "densa_version", (str,))  # informative only, but still a string
    plan = {
        "dtype": rd.choice(meta, "dtype", tuple(_FLOAT_DTYPES)),
        "loss": rd.choice(meta, "loss", _checks.LOSSES),
        "backend": rd.choice(meta, "backend", _backends.BACKENDS),
        "seed": rd.field(meta, "seed", (int, type(None))),
        "check_finite": rd.field(meta, "check_finite", (bool,)),
        "layers": _check_layers(rd, meta),
        "rng": _check_rng(rd, meta),
        "optimizer": _check_optimizer(rd, meta),
    }
    plan["feature_names"] = _check_feature_names(rd, meta, plan["layers"][0]["n_in"])
    dtype = _FLOAT_DTYPES[plan["dtype"]]
    headers = dict(headers)
    headers.pop("meta")
    for i, spec in enumerate(plan["layers"]):
        _expect(rd, headers, f"W{i}", (spec["n_out"], spec["n_in"]), dtype)
        _expect(rd, headers, f"b{i}", (spec["n_out"],), dtype)
    opt = plan["optimizer"]
    for i, spec in enumerate(plan["layers"] if opt else []):
        for k in range(opt["n_state"]):
            _expect(rd, headers, f"opt_W{i}_{k}", (spec["n_out"], spec["n_in"]), dtype)
            _expect(rd, headers, f"opt_b{i}_{k}", (spec["n_out"],), dtype)
    plan["history"] = _check_history(rd, meta, headers)
    if headers:
        raise rd.fail(f"unexpected array(s) {', '.join(sorted(headers))}")
    return plan


# ----- loading ----------------------------------------------------------------------------
def _array(rd: _Reader, npz: Any, name: str, dtype: np.dtype[Any]) -> np.ndarray:
    try:
        arr = npz[name]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise rd.fail(f"array {name!r} cannot be read ({exc})") from None
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if dtype.kind == "f" and not np.isfinite(arr).all() and not name.startswith("history_"):
        raise rd.fail(f"array {name!r} contains NaN or inf")
    return arr


def _build(rd: _Reader, plan: dict[str, Any], npz: Any) -> Network:
    from .network import Network

    dtype = _FLOAT_DTYPES[plan["dtype"]]
    layers = []
    for i, spec in enumerate(plan["layers"]):
        layer = Dense(spec["n_in"], spec["n_out"], spec["activation"], spec["init"])
        # Set before the Network exists, so that it draws no initial weights.
        layer.W = _array(rd, npz, f"W{i}", dtype)
        layer.b = _array(rd, npz, f"b{i}", dtype)
        layers.append(layer)
    net = Network(
        layers,
        loss=plan["loss"],
        dtype=plan["dtype"],
        backend=plan["backend"],
        seed=plan["seed"],
        check_finite=plan["check_finite"],
    )
    if plan["rng"] is not None:
        net.rng = np.random.Generator(getattr(np.random, plan["rng"]["bit_generator"])())
        net.rng.bit_generator.state = plan["rng"]
    opt = plan["optimizer"]
    if opt is not None:
        h = opt["hyper"]
        try:
            if opt["kind"] == "sgd":
                net.optimizer = SGD(
                    lr=h["lr"],
                    momentum=h["momentum"],
                    nesterov=h["nesterov"],
                    weight_decay=h["weight_decay"],
                    l2=h.get("l2", 0.0),
                )
            else:
                net.optimizer = Adam(
                    lr=h["lr"],
                    betas=(h["beta1"], h["beta2"]),
                    eps=h["eps"],
                    weight_decay=h["weight_decay"],
                    l2=h.get("l2", 0.0),
                )
        except (TypeError, ValueError, OverflowError) as exc:
            raise rd.fail(f"meta.optimizer.hyper: {exc}") from None
        n = opt["n_state"]
        if n:
            net.optimizer.state_W = [
                [_array(rd, npz, f"opt_W{i}_{k}", dtype) for k in range(n)]
                for i in range(len(layers))
            ]
            net.optimizer.state_b = [
                [_array(rd, npz, f"opt_b{i}_{k}", dtype) for k in range(n)]
                for i in range(len(layers))
            ]
            if opt["kind"] == "adam":  # its second moments, state[1], must be >= 0
                for i in range(len(layers)):
                    _check_moment(rd, plan, f"opt_W{i}_1", net.optimizer.state_W[i][1])
                    _check_moment(rd, plan, f"opt_b{i}_1", net.optimizer.state_b[i][1])
            net.optimizer.step[0] = opt["step"]
        # The state read is this network's: another network's fit refuses it (fit's docs).
        net.optimizer._owner = weakref.ref(net)
    if plan["history"] is not None:
        net.history = History(
            **{
                key: _array(rd, npz, f"history_{key}", np.dtype(np.float64)).tolist()
                for key in _HISTORY_KEYS
            },
            stopped_early=plan["history"]["stopped_early"],
            best_epoch=plan["history"]["best_epoch"],
        )
    net.feature_names = plan["feature_names"]
    return net


def load(path: str | os.PathLike[str]) -> Network:
    """Read a network written by ``save``; validated completely before it is built.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    densa.Network
        Same architecture, loss, dtype, backend, parameters (bit for bit), optimizer
        (hyperparameters, state and step), random generator state and history; and
        ``net.feature_names``, the input column names (a list of n_in strings) or None.

    Raises
    ------
    ModelFileError
        The file is not a valid densa model (the message says why).
    OSError
        The file cannot be opened (missing, a directory, no permission).
    """
    path = _fspath(path)
    rd = _Reader(path)
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            raise rd.fail("the file is empty")
        try:
            with zipfile.ZipFile(fh) as zf:
                headers = _read_headers(rd, zf)
        except ModelFileError:
            raise
        except (
            zipfile.BadZipFile,
            zipfile.LargeZipFile,
            ValueError,
            OSError,
            EOFError,
            NotImplementedError,
            RuntimeError,
        ) as exc:
            # RuntimeError: zipfile's "encrypted" and "compression method" complaints.
            raise rd.fail(f"not a readable .npz archive ({type(exc).__name__}: {exc})") from None
        if "meta" not in headers:
            raise rd.fail("missing the 'meta' array (is this a densa model?)")
        shape, dtype = headers["meta"]
        if len(shape) != 1 or dtype != np.dtype(np.uint8) or shape[0] > _MAX_META_BYTES:
            raise rd.fail(
                f"'meta' must be 1-D uint8 of at most {_MAX_META_BYTES} bytes, got "
                f"shape {shape} of {dtype}"
            )
        fh.seek(0)
        try:
            npz = np.load(fh, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise rd.fail(f"not a readable .npz archive ({exc})") from None
        with npz:
            meta = _parse_meta(rd, _array(rd, npz, "meta", np.dtype(np.uint8)))
            plan = _validate(rd, meta, headers)
            try:
                return _build(rd, plan, npz)
            except ModelFileError:
                raise
            except (TypeError, ValueError, OverflowError) as exc:
                raise rd.fail(str(exc)) from None
