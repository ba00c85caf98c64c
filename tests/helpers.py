"""What the tests share: the one comparison helper, and inputs drawn under fixed seeds.

``assert_matches`` is the only place where a native result meets its reference: it
checks the shape, then the dtype, then the values, with the tolerances stated below.
"""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path
from types import ModuleType

import numpy as np

import densa
from densa import native, reference

DTYPES = (np.float32, np.float64)

# Every name dense_forward / dense_backward accept ("linear" is an alias of "identity").
ACTIVATIONS = (
    "identity",
    "linear",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "elu",
    "softplus",
    "gelu",
)

BACKENDS = {"native": native, "reference": reference}

# Tolerances per dtype, for inputs of magnitude O(1) (``draw_layer`` scales them so).
# Native and reference do not compute bit for bit alike, for two reasons, and each has
# its own term in atol:
#
# * element-wise functions: Eigen's vectorised exp / tanh / log1p and NumPy's differ by
#   a few ulp, and f' amplifies that where it cancels (gelu's 1 - tanh²u times z·u' is
#   the worst: up to ~100 ulp of 1 measured in float32, ~40 in float64). Hence
#   ``elem``: 2e-5 (~170 ulp of 1.0) in float32, 5e-14 (~225 ulp) in float64.
# * reductions: GEMM and row sums add k terms in a different order in Eigen and in
#   OpenBLAS (blocking, vector lanes, FMA). A sum of k O(1) terms reaches ~sqrt(k), and
#   each of its k additions may round by an ulp of that, so the two orders differ by
#   about k ulp: measured up to 1.2·k ulp at k = 1000 in both dtypes. Hence ``per_term``
#   · k: 1e-6 (~8 ulp) per term in float32, 2e-15 (~9 ulp) per term in float64, which
#   keeps a margin of about 7x at k = 1000.
#
# rtol covers elements far from zero: 1e-5 (~84 ulp) in float32, 1e-12 in float64.
TOLERANCES = {
    np.dtype(np.float32): {"rtol": 1e-5, "elem": 2e-5, "per_term": 1e-6},
    np.dtype(np.float64): {"rtol": 1e-12, "elem": 5e-14, "per_term": 2e-15},
}


# DETERMINISM: the native kernels run element-wise work on aligned chunks and build
# with -ffp-contract=off, so equal inputs give bit-identical outputs wherever NumPy put
# the buffers (tests/test_network_construction.py and tests/test_threads.py assert it).
# Native and reference still differ in summation order, hence the tolerances below.


def tolerance(dtype, reduction: int = 1) -> tuple[float, float]:
    """``(rtol, atol)`` for results of ``dtype`` whose elements sum ``reduction`` terms."""
    t = TOLERANCES[np.dtype(dtype)]
    return t["rtol"], t["elem"] + t["per_term"] * max(int(reduction), 1)


def assert_matches(
    actual, expected, name: str, *, reduction: int = 1, tol_dtype=None, rtol=None, atol=None
):
    """Assert ``actual`` equals ``expected``: same shape, same dtype, then values.

    Parameters
    ----------
    actual, expected : array_like
        The result under test (usually native) and the oracle (usually the reference).
    name : str
        The tensor's name (``dz``, ``dW``, ...), quoted in every failure message.
    reduction : int
        Length of the longest sum behind one element (m_in for z, N for dW and db,
        m_out for dx, 1 for element-wise results); scales atol, see ``TOLERANCES``.
    tol_dtype : dtype, optional
        The precision the value was computed in, when it differs from its dtype (a loss
        computed in float32 and returned as a Python float).
    rtol, atol : float, optional
        Explicit tolerances, replacing the per-dtype ones (stated where used).
    """
    a, e = np.asarray(actual), np.asarray(expected)
    assert a.shape == e.shape, f"{name}: shape {a.shape}, expected {e.shape}"
    assert a.dtype == e.dtype, f"{name}: dtype {a.dtype}, expected {e.dtype}"
    d_rtol, d_atol = tolerance(tol_dtype if tol_dtype is not None else e.dtype, reduction)
    rtol = d_rtol if rtol is None else rtol
    atol = d_atol if atol is None else atol
    np.testing.assert_allclose(
        a, e, rtol=rtol, atol=atol, err_msg=f"{name} (rtol={rtol:g}, atol={atol:g})"
    )


def draw_layer(rng: np.random.Generator, m_in: int, m_out: int, n: int, dtype):
    """``W, b, x, dy`` of a layer, O(1) in magnitude whatever its width.

    W ~ N(0, 1/m_in) (LeCun scaling) keeps z = W x + b of unit variance, so that every
    activation sees both its saturated and its curved parts.
    """
    W = rng.standard_normal((m_out, m_in)) / np.sqrt(m_in)
    b = 0.5 * rng.standard_normal(m_out)
    x = rng.standard_normal((n, m_in))
    dy = rng.standard_normal((n, m_out))
    return tuple(a.astype(dtype) for a in (W, b, x, dy))


def unaligned(a: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``a`` one byte past an aligned address: a legal NumPy
    array (np.frombuffer at an offset) that the kernels must not load in place."""
    raw = np.zeros(a.nbytes + 1, dtype=np.uint8)
    out = np.frombuffer(raw.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    out[...] = a
    assert out.flags.c_contiguous
    assert not out.flags.aligned
    return out


def copies(arrays):
    """Independent copies of a list of arrays (or of a list of lists of arrays)."""
    return [copies(a) if isinstance(a, list) else a.copy() for a in arrays]


def training_problem(sizes, n_samples: int, loss: str, dtype, seed: int = 0):
    """``(Ws, bs, X, T)`` for a network of layer widths ``sizes`` and ``n_samples``
    samples: weights scaled by 1/sqrt(fan-in), small biases, standard-normal inputs, and
    targets of the kind ``loss`` is meant for (one-hot, 0/1 or real)."""
    rng = np.random.default_rng(seed)
    Ws = [
        (rng.standard_normal((o, i)) / np.sqrt(i)).astype(dtype)
        for i, o in zip(sizes[:-1], sizes[1:])
    ]
    bs = [(0.1 * rng.standard_normal(o)).astype(dtype) for o in sizes[1:]]
    X = rng.standard_normal((n_samples, sizes[0])).astype(dtype)
    m = sizes[-1]
    if loss == "softmax_cross_entropy":
        T = np.eye(m)[rng.integers(0, m, n_samples)]
    elif loss == "binary_cross_entropy":
        T = rng.integers(0, 2, (n_samples, m))
    else:
        T = rng.standard_normal((n_samples, m))
    return Ws, bs, X, T.astype(dtype)


class TrainerOnCopies:
    """A backend's Trainer over its own copies of ``Ws`` and ``bs``, with zeroed optimizer
    state (a velocity for SGD; m and v, and a step count, for Adam)."""

    def __init__(self, backend, Ws, bs, activations, loss, optimizer, hyper, max_batch):
        self.Ws, self.bs = copies(Ws), copies(bs)
        n_state = 1 if optimizer == "sgd" else 2
        self.state_W = [[np.zeros_like(W) for _ in range(n_state)] for W in self.Ws]
        self.state_b = [[np.zeros_like(b) for _ in range(n_state)] for b in self.bs]
        self.step = np.zeros(1, dtype=np.int64) if optimizer == "adam" else None
        self.trainer = backend.Trainer(
            self.Ws,
            self.bs,
            list(activations),
            loss,
            optimizer,
            hyper,
            self.state_W,
            self.state_b,
            self.step,
            max_batch,
        )

    def arrays(self):
        """The trained arrays by name (W0, b0, state0_W0, ...), live, not copies."""
        named = {f"W{j}": W for j, W in enumerate(self.Ws)}
        named.update({f"b{j}": b for j, b in enumerate(self.bs)})
        for j, (sW, sb) in enumerate(zip(self.state_W, self.state_b)):
            named.update({f"state{k}_W{j}": s for k, s in enumerate(sW)})
            named.update({f"state{k}_b{j}": s for k, s in enumerate(sb)})
        return named


def assert_identical(a: dict, b: dict, when: str) -> None:
    """The same array names, each equal bit for bit."""
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=f"{name} {when}")


def train_with_threads(make_run, threads: int, orders, epochs_at_once: bool):
    """``(epoch losses, trained arrays)`` of ``make_run()`` (a Run with ``run``,
    ``epochs`` and ``arrays``), built and trained on ``threads`` threads over ``orders``,
    one call per epoch or all epochs in one ``run_epochs`` call."""
    with densa.threads(threads):
        r = make_run()
        if epochs_at_once:
            losses = np.array(r.epochs(orders)[0])
        else:
            losses = np.array([r.run(order)[0] for order in orders])
    return losses, r.arrays()


ROOT = Path(__file__).resolve().parents[1]


def load_script(relative_path: str, name: str) -> ModuleType:
    """A repository script that is not part of the package (tools/, benchmarks/),
    imported from its file, with its directory first on sys.path while it loads, as
    when it is run (its imports of sibling scripts then work)."""
    path = ROOT / relative_path
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


def run_cli(argv) -> tuple[int, str, str]:
    """``densa argv`` in this process: (exit status, stdout, stderr)."""
    from densa import cli

    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:  # argparse: --help, and command-line errors
        code = exc.code
    finally:
        sys.stdout, sys.stderr = saved
    return code, out.getvalue(), err.getvalue()


# The two-thread loops' tests (test_hidden_split.py, test_first_layer_split.py): each
# optimizer path's hyperparameters (plain SGD, momentum folded into the products,
# Nesterov with weight decay, AdamW, and scikit-learn's l2 under each kind)...
SGD = {"lr": 0.1, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0}
MOMENTUM = {"lr": 0.05, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0}
NESTEROV = {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}
ADAMW = {"lr": 1e-2, "beta1": 0.8, "beta2": 0.99, "eps": 1e-7, "weight_decay": 1e-2}
L2_MOMENTUM = {**MOMENTUM, "l2": 0.3}
L2_ADAM = {"lr": 1e-2, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0, "l2": 0.3}
# ...and their tolerances, native against reference after 3 epochs (~10-30 updates):
# the same operations in another summation order (products, and a layer's sum formed as
# two partial products). float64 differs by ~1e-15 per step; float32 by a few ulp per
# step, carried through the later steps.
TRAIN_TOL = {
    np.dtype(np.float64): {"rtol": 1e-9, "atol": 1e-11},
    np.dtype(np.float32): {"rtol": 2e-4, "atol": 2e-5},
}
# AdamW in float32 moves every weight by up to lr per step whatever its gradient's size,
# so where a weight's gradients are near zero, m / sqrt(v) carries their few ulp of
# rounding difference into a sizeable step: W0[16, 154] of test_hidden_split.py's
# "odd-hidden" after one epoch differs from the reference by 1.6e-5 in the x86-64-v3
# module and 2.7e-5 in the v4 one (whose element-wise exp, in elu and softplus, is twice
# as wide), the other 6599 weights by far less.
ADAM_F32_TOL = {"rtol": 2e-4, "atol": 5e-5}
