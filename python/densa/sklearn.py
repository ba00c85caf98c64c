"""scikit-learn estimators trained by densa: ``MLPClassifier`` and ``MLPRegressor``.

Drop-in replacements for ``sklearn.neural_network.MLPClassifier`` and ``MLPRegressor``
with the stochastic solvers: the same parameters (where they apply), fitted attributes
and methods, so they work in pipelines, ``GridSearchCV``, ``cross_val_score`` and with
``pickle``. Each epoch runs in densa's fused training loop (C++ with the default
``backend="native"``). This module imports scikit-learn; ``import densa`` never does.

Where densa differs from scikit-learn
-------------------------------------
* ``solver="lbfgs"`` is not available (its ``max_fun`` is accepted and ignored), nor
  ``MLPRegressor(loss="poisson")``: ``loss`` must be ``"squared_error"``, and is
  keyword-only (scikit-learn's is the first positional parameter). Sparse ``X`` is
  refused (densify it first); ``momentum`` must be below 1.
* ``fit`` and ``partial_fit`` take ``sample_weight=None`` only, outside their signatures,
  so that scikit-learn's ``has_fit_parameter`` (consulted by bagging, boosting,
  calibration and ``check_estimator``) sees no support for sample weights.
* ``alpha`` is scikit-learn's L2 penalty, ``alpha/(2·n_b)·Σ‖W‖²`` on each minibatch
  of ``n_b`` samples (the weights' gradient gains ``(alpha/n_b)·W``, the intercepts'
  nothing; densa's optimizers take it as ``l2``). ``loss_curve_`` includes the penalty
  with each batch's weights, as scikit-learn's does.
* With ``solver="sgd"`` densa's momentum buffer accumulates gradients (PyTorch's
  convention) where scikit-learn's accumulates steps: the same updates while the
  learning rate is constant; when ``learning_rate`` changes it (``invscaling``,
  ``adaptive``) densa applies the new rate to the accumulated momentum too.
* Adam's ``epsilon`` is added to ``sqrt(v̂)`` (bias-corrected), where scikit-learn adds
  it to ``sqrt(v)``; the two agree up to a factor ``sqrt(1 − beta_2ᵗ)`` on epsilon.
* ``MLPRegressor.loss_curve_`` reports scikit-learn's scale, ``mean((y − ŷ)²)/2`` over
  all outputs; the gradient (of ``Σ(y − ŷ)²/(2N)``) is the same as scikit-learn's.
* Computation is in ``dtype`` (float64 by default, like scikit-learn on float64 data).
* A single training class is accepted (it is always predicted), as in scikit-learn.

What is the same: Glorot-uniform initialisation of weights and intercepts drawn from
``random_state`` in scikit-learn's order, so the initial ``coefs_`` match scikit-learn's
for the same seed; ``batch_size="auto"`` (``min(200, n_samples)``); the
``learning_rate`` schedules of the SGD solver; stopping when the loss (or, with
``early_stopping``, the validation score) has not improved by ``tol`` for more than
``n_iter_no_change`` epochs; a ``ConvergenceWarning`` when ``max_iter`` is reached;
``partial_fit`` as one epoch; ``warm_start``; the output activations (softmax for
multiclass, one logistic output for two classes, one per label for multilabel ``y``).
"""

from __future__ import annotations

import copy
import math
import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from . import _backends, _checks
from .layers import Dense
from .network import Network, TrainingDivergedError
from .optimizers import SGD, Adam, Optimizer

__all__ = ["MLPClassifier", "MLPRegressor"]

# scikit-learn's activation names, and densa's own (which are accepted too).
_SKLEARN_ACTIVATIONS = {
    "identity": "identity",
    "logistic": "sigmoid",
    "tanh": "tanh",
    "relu": "relu",
}
_OUT_LOSS = {
    "softmax": "softmax_cross_entropy",
    "logistic": "binary_cross_entropy",
    "identity": "mse",
}
_ADAPTIVE_MIN_LR = 1e-6  # scikit-learn's floor for learning_rate="adaptive"


# ----- parameter checks: TypeError for a wrong type, ValueError for a wrong value ----------
def _number(
    value: object,
    name: str,
    low: float,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}: {value!r}")
    v = float(value)
    too_low = v <= low if low_open else v < low
    too_high = v >= high if high_open else v > high
    if math.isnan(v) or too_low or too_high:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")
    return v


def _integer(value: object, name: str, low: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}: {value!r}")
    if int(value) < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    return int(value)


def _boolean(value: object, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__}: {value!r}")
    return bool(value)


def _choice(value: object, name: str, options: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}, got {value!r}")
    return value


def _hidden_sizes(value: object) -> list[int]:
    """``hidden_layer_sizes`` as a list: an int is one layer, a sequence one per layer.

    Errors name the parameter and the value given: a string is a sequence too, so "10"
    would otherwise be refused for its first character."""
    expected = "hidden_layer_sizes must be a positive integer or a tuple/list of positive integers"
    one = isinstance(value, numbers.Integral)
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{expected}, got {type(value).__name__}: {value!r}")
    try:
        sizes = [value] if one else list(value)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(f"{expected}, got {type(value).__name__}: {value!r}") from None
    checked = []
    for i, s in enumerate(sizes):
        try:
            checked.append(_integer(s, "", 1))
        except (TypeError, ValueError) as exc:  # the same type, said of the whole value
            entry = "" if one else f" (hidden_layer_sizes[{i}] is {s!r})"
            raise type(exc)(f"{expected}, got {value!r}{entry}") from None
    return checked


def _hidden_activation(value: object) -> str:
    """densa's name for a hidden activation given by scikit-learn's or densa's name."""
    if isinstance(value, str) and value in _SKLEARN_ACTIVATIONS:
        return _SKLEARN_ACTIVATIONS[value]
    try:
        return _checks.activation_name(value)
    except (TypeError, ValueError):
        # scikit-learn's names, then densa's others: each accepted name once.
        names = [*_SKLEARN_ACTIVATIONS]
        names += [a for a in _checks.ACTIVATIONS if a not in _SKLEARN_ACTIVATIONS]
        raise ValueError(
            f"activation must be one of {', '.join(map(repr, names))}, got {value!r}"
        ) from None


_PARAMETERS_DOC = """
    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Units of each hidden layer, input side first.
    activation : {"identity", "logistic", "tanh", "relu"}, default="relu"
        Hidden activation (scikit-learn's names). densa's ``"sigmoid"``, ``"linear"``,
        ``"leaky_relu"``, ``"elu"``, ``"softplus"`` and ``"gelu"`` are accepted too.
    solver : {"adam", "sgd"}, default="adam"
    alpha : float, default=1e-4
        L2 penalty on the weights, as scikit-learn's (the optimizer's ``l2``).
    batch_size : int or "auto", default="auto"
        Samples per update; ``"auto"`` is ``min(200, n_samples)``.
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        SGD schedule: ``invscaling`` sets ``lr = learning_rate_init / (t + 1)**power_t``
        after each epoch (t = samples seen); ``adaptive`` divides lr by 5 whenever
        training stops improving, until it falls below 1e-6. Ignored by Adam.
    learning_rate_init : float, default=1e-3
    power_t : float, default=0.5
    max_iter : int, default=200
        Epochs.
    shuffle : bool, default=True
    random_state : int, RandomState instance or None, default=None
        Draws the initial weights, the early-stopping split and the shuffling seed.
    tol : float, default=1e-4
    verbose : bool or int, default=False
        Print the loss after each epoch.
    warm_start : bool, default=False
        ``fit`` continues from the current weights (with a fresh optimizer).
    momentum : float in [0, 1), default=0.9
    nesterovs_momentum : bool, default=True
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data; stop when the validation score has
        not improved by ``tol`` for more than ``n_iter_no_change`` epochs; keep the best
        weights.
    validation_fraction : float, default=0.1
    beta_1, beta_2 : float in [0, 1), default=0.9, 0.999
    epsilon : float, default=1e-8
    n_iter_no_change : int or np.inf, default=10
    max_fun : int, default=15000
        Used only by scikit-learn's ``solver="lbfgs"``, which densa does not implement:
        accepted for compatibility (and checked to be an integer >= 1), otherwise ignored.
    dtype : {"float64", "float32"}, default="float64"
        Precision of the weights and of the computation (densa's own parameter).
        Changed with ``set_params`` before a ``warm_start`` fit or a ``partial_fit``,
        the weights (and optimizer state) are converted to it.
    backend : {"native", "reference"}, default="native"
        densa's C++ kernels or its NumPy reference (densa's own parameter).
"""

# MLPRegressor's own parameter, documented after ``activation`` as scikit-learn does.
_LOSS_DOC = """    loss : {"squared_error"}, default="squared_error"
        Half the squared error, as in scikit-learn. scikit-learn's ``"poisson"`` is not
        available in densa. Keyword-only (scikit-learn's is the first positional
        parameter).
"""


class _BaseMLP(BaseEstimator):  # type: ignore[misc]
    """What the classifier and the regressor share: parameters, initialisation, the
    epoch loop with scikit-learn's stopping rules, and the fitted attributes.
    The parameters are documented in ``_PARAMETERS_DOC``.
    """

    _estimator_kind = ""  # "classifier" or "regressor", set by the subclasses
    # The default for estimators pickled before this parameter existed, which then lack
    # the instance attribute (get_params and refitting read it).
    max_fun = 15000

    # The public classes list the parameters with their defaults (scikit-learn reads
    # them from the class's own __init__) and pass them here.
    def __init__(
        self,
        *,
        hidden_layer_sizes: int | Sequence[int],
        activation: str,
        solver: str,
        alpha: float,
        batch_size: int | str,
        learning_rate: str,
        learning_rate_init: float,
        power_t: float,
        max_iter: int,
        shuffle: bool,
        random_state: int | np.random.RandomState | None,
        tol: float,
        verbose: bool | int,
        warm_start: bool,
        momentum: float,
        nesterovs_momentum: bool,
        early_stopping: bool,
        validation_fraction: float,
        beta_1: float,
        beta_2: float,
        epsilon: float,
        n_iter_no_change: int | float,
        max_fun: int,
        dtype: str,
        backend: str,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype
        self.backend = backend

    # ----- parameters -----------------------------------------------------------------------
    def _check_params(self) -> None:
        """Check every parameter (they may have changed through ``set_params``)."""
        self._hidden = _hidden_sizes(self.hidden_layer_sizes)
        self._activation = _hidden_activation(self.activation)
        if self.solver == "lbfgs":
            raise ValueError("solver='lbfgs' is not available in densa; use 'adam' or 'sgd'")
        _choice(self.solver, "solver", ("adam", "sgd"))
        _number(self.alpha, "alpha", 0.0)
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            _integer(self.batch_size, "batch_size", 1)
        _choice(self.learning_rate, "learning_rate", ("constant", "invscaling", "adaptive"))
        _number(self.learning_rate_init, "learning_rate_init", 0.0, low_open=True)
        _number(self.power_t, "power_t", 0.0)
        _integer(self.max_iter, "max_iter", 1)
        _boolean(self.shuffle, "shuffle")
        check_random_state(self.random_state)
        _number(self.tol, "tol", 0.0)
        if isinstance(self.verbose, bool) or not isinstance(self.verbose, numbers.Integral):
            _boolean(self.verbose, "verbose")
        _boolean(self.warm_start, "warm_start")
        _number(self.momentum, "momentum", 0.0, 1.0, high_open=True)
        _boolean(self.nesterovs_momentum, "nesterovs_momentum")
        _boolean(self.early_stopping, "early_stopping")
        _number(
            self.validation_fraction,
            "validation_fraction",
            0.0,
            1.0,
            high_open=True,
            low_open=bool(self.early_stopping),
        )
        _number(self.beta_1, "beta_1", 0.0, 1.0, high_open=True)
        _number(self.beta_2, "beta_2", 0.0, 1.0, high_open=True)
        _number(self.epsilon, "epsilon", 0.0, low_open=True)
        if not (isinstance(self.n_iter_no_change, float) and self.n_iter_no_change == math.inf):
            _integer(self.n_iter_no_change, "n_iter_no_change", 1)
        _integer(self.max_fun, "max_fun", 1)  # lbfgs only: checked as scikit-learn does
        _choice(self.dtype, "dtype", ("float64", "float32"))
        _backends.check_name(self.backend)

    # ----- fitted attributes (views of the network's parameters) -----------------------------
    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "network_")

    @property
    def coefs_(self) -> list[np.ndarray]:
        """Weights per layer, shape (n_in, n_out) as scikit-learn orients them: views
        ``W.T`` of the network's ``W`` (n_out, n_in), so writing to them changes the model.
        Assigning a list of arrays of these shapes copies them into the network."""
        check_is_fitted(self)
        return [layer.W.T for layer in self.network_.layers]

    @coefs_.setter
    def coefs_(self, value: Sequence[Any]) -> None:
        shapes = [(layer.n_in, layer.n_out) for layer in self._fitted_layers("coefs_")]
        for layer, coef in zip(self.network_.layers, self._checked_params(value, "coefs_", shapes)):
            layer.W = coef.T

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """Bias per layer, shape (n_out,): the network's own ``b`` arrays. Assigning a list
        of arrays of these shapes copies them into the network."""
        check_is_fitted(self)
        return [layer.b for layer in self.network_.layers]

    @intercepts_.setter
    def intercepts_(self, value: Sequence[Any]) -> None:
        shapes = [(layer.n_out,) for layer in self._fitted_layers("intercepts_")]
        for layer, b in zip(
            self.network_.layers, self._checked_params(value, "intercepts_", shapes)
        ):
            layer.b = b

    def _fitted_layers(self, name: str) -> list[Dense]:
        # scikit-learn allows assigning coefs_ and intercepts_ (to set the weights a
        # warm_start fit starts from, say); here they are the network's parameters,
        # which exist once the data has fixed the shapes.
        check_is_fitted(
            self,
            msg=f"{name} can be assigned only once this %(name)s is fitted: the data fixes "
            "the layers' shapes (fit it, e.g. with max_iter=1, then assign)",
        )
        return list(self.network_.layers)

    def _checked_params(
        self, value: object, name: str, shapes: Sequence[tuple[int, ...]]
    ) -> list[np.ndarray]:
        """``value`` checked as a new ``coefs_`` or ``intercepts_``: a list of real, finite
        arrays of ``shapes``, converted to the network's dtype. All are checked before
        any is assigned, so a refused list leaves the model as it was."""
        if not isinstance(value, (list, tuple)):
            raise TypeError(
                f"{name} must be a list of arrays, one per layer, got {_checks.describe(value)}"
            )
        if len(value) != len(shapes):
            raise ValueError(
                f"{name} must hold {len(shapes)} arrays, one per layer, got {len(value)}"
            )
        dtype = self.network_.dtype
        out = []
        for i, (v, shape) in enumerate(zip(value, shapes)):
            arr = np.asarray(v)
            if arr.dtype.kind not in "fiu":
                raise TypeError(f"{name}[{i}] must hold real numbers, got dtype {arr.dtype}")
            if arr.shape != shape:
                axes = " (n_in, n_out)" if len(shape) == 2 else ""
                raise ValueError(f"{name}[{i}] must have shape {shape}{axes}, got {arr.shape}")
            with np.errstate(over="ignore"):  # beyond float32's range: inf, refused below
                converted = arr.astype(dtype)
            if not np.isfinite(converted).all():
                raise ValueError(
                    f"{name}[{i}] contains NaN or inf, or values beyond {dtype.name}'s range"
                )
            out.append(converted)
        return out

    # ----- initialisation ---------------------------------------------------------------------
    def _out_activation(self) -> str:
        raise NotImplementedError

    def _initialize(self, n_features: int, n_outputs: int, rs: np.random.RandomState) -> None:
        """A new network with scikit-learn's initialisation; resets the training record."""
        self.n_outputs_ = n_outputs
        self.n_layers_ = len(self._hidden) + 2
        self.out_activation_ = self._out_activation()
        units = [n_features, *self._hidden, n_outputs]
        acts = [self._activation] * len(self._hidden) + ["identity"]
        layers = [Dense(a, b, activation=f) for a, b, f in zip(units[:-1], units[1:], acts)]
        # Glorot uniform for weights and intercepts, drawn in scikit-learn's order.
        factor = 2.0 if self._activation == "sigmoid" else 6.0
        params = []
        for a, b in zip(units[:-1], units[1:]):
            bound = math.sqrt(factor / (a + b))
            params.append((rs.uniform(-bound, bound, (a, b)), rs.uniform(-bound, bound, b)))
        net = Network(
            layers,
            loss=_OUT_LOSS[self.out_activation_],
            dtype=self.dtype,
            backend=self.backend,
        )
        for layer, (coef, intercept) in zip(net.layers, params):
            layer.W = coef.T
            layer.b = intercept
        self.network_ = net
        self._optimizer: Optimizer | None = None
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_: list[float] = []
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_: list[float] | None = []
            self.best_validation_score_: float | None = -math.inf
            self.best_loss_: float | None = None
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.best_loss_ = math.inf

    def _convert_dtype(self) -> None:
        """Continue (warm_start, partial_fit) in a ``dtype`` changed by ``set_params``: the
        network rebuilt in it from the current weights, its shuffling generator kept, and
        the optimizer state ``partial_fit`` continues converted too."""
        old = self.network_
        layers = []
        for layer in old.layers:
            new = Dense(layer.n_in, layer.n_out, activation=layer.activation)
            new.W, new.b = layer.W, layer.b  # converted when the network adopts them
            layers.append(new)
        net = Network(layers, loss=old.loss, dtype=self.dtype, backend=old.backend)
        net.seed, net.rng = old.seed, old.rng
        self.network_ = net
        if self._optimizer is not None:
            opt = copy.deepcopy(self._optimizer)  # a copy of the state, for the new network
            for states in (*opt.state_W, *opt.state_b):
                states[:] = [a.astype(net.dtype) for a in states]
            self._optimizer = opt

    def _new_optimizer(self) -> Optimizer:
        if self.solver == "sgd":
            momentum = float(self.momentum)
            return SGD(
                lr=self.learning_rate_init,
                momentum=momentum,
                nesterov=bool(self.nesterovs_momentum) and momentum > 0,
                l2=float(self.alpha),
            )
        return Adam(
            lr=self.learning_rate_init,
            betas=(self.beta_1, self.beta_2),
            eps=self.epsilon,
            l2=float(self.alpha),
        )

    # ----- input checks -------------------------------------------------------------------------
    def _validate_xy(self, X: Any, y: Any, reset: bool) -> tuple[np.ndarray, np.ndarray]:
        X, y = validate_data(
            self,
            X,
            y,
            multi_output=True,
            dtype=(np.float64, np.float32),
            y_numeric=self._estimator_kind == "regressor",
            reset=reset,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    def _encode_targets(self, y: np.ndarray, incremental: bool) -> np.ndarray:
        """Targets as the network's (N, n_outputs) array."""
        raise NotImplementedError

    def _decode_for_score(self, T: np.ndarray) -> np.ndarray:
        """Encoded targets back to what ``score`` compares predictions with."""
        raise NotImplementedError

    def _score_prepared(self, X: np.ndarray, y_true: np.ndarray) -> float:
        raise NotImplementedError

    def _prepared_X(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=(np.float64, np.float32), reset=False)
        return np.asarray(X)

    # ----- training ---------------------------------------------------------------------------
    def _fit(self, X: Any, y: Any, incremental: bool) -> _BaseMLP:
        self._check_params()
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        first_pass = not hasattr(self, "network_") or (not self.warm_start and not incremental)
        X, y = self._validate_xy(X, y, reset=first_pass)
        T = self._encode_targets(y, incremental)
        rs = check_random_state(self.random_state)
        if first_pass:
            self._initialize(X.shape[1], T.shape[1], rs)
        elif T.shape[1] != self.n_outputs_:
            raise ValueError(
                f"y has {T.shape[1]} outputs but the fitted model has "
                f"{self.n_outputs_}; fit again with warm_start=False"
            )
        elif self.network_.dtype.name != self.dtype:
            self._convert_dtype()
        net = self.network_
        net.backend = self.backend
        if not incremental or self._optimizer is None:
            self._optimizer = self._new_optimizer()
        dtype = net.dtype
        X = np.ascontiguousarray(X, dtype=dtype)
        T = np.ascontiguousarray(T, dtype=dtype)

        X_val: np.ndarray | None = None
        y_val: np.ndarray | None = None
        if self.early_stopping:
            # As scikit-learn: stratify only single-output classification targets.
            stratify = T if self._estimator_kind == "classifier" and T.shape[1] == 1 else None
            X, X_val, T, T_val = train_test_split(
                X, T, random_state=rs, stratify=stratify, test_size=self.validation_fraction
            )
            if X_val.shape[0] < 2:
                raise ValueError(
                    "The validation set is too small. Increase "
                    "'validation_fraction' or the size of your dataset."
                )
            y_val = self._decode_for_score(T_val)
        if first_pass:
            # Shuffling draws from random_state after the initial weights and the
            # validation split, in scikit-learn's order.
            net.seed = int(rs.randint(np.iinfo(np.int32).max))
            net.rng = np.random.default_rng(net.seed)
        self._run_epochs(X, T, X_val, y_val, incremental)
        return self

    def _run_epochs(
        self,
        X: np.ndarray,
        T: np.ndarray,
        X_val: np.ndarray | None,
        y_val: np.ndarray | None,
        incremental: bool,
    ) -> None:
        net, opt = self.network_, self._optimizer
        assert opt is not None
        n = X.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn(
                    "Got `batch_size` less than 1 or larger than sample size. It is "
                    "going to be clipped",
                    stacklevel=3,
                )
            batch_size = int(np.clip(self.batch_size, 1, n))
        # scikit-learn's L2 penalty alpha/(2 n_b)·Σ‖W‖² per batch of n_b samples.
        opt.l2 = float(self.alpha)
        # scikit-learn reports the squared error averaged over outputs too.
        loss_scale = self.n_outputs_ if self._estimator_kind == "regressor" else 1
        best_params = None
        stopped = False
        self.n_iter_ = 0  # epochs of this call, as scikit-learn counts them
        try:
            for _ in range(self.max_iter):
                try:
                    history = net.fit(
                        X,
                        T,
                        epochs=1,
                        batch_size=batch_size,
                        optimizer=opt,
                        shuffle=bool(self.shuffle),
                        progress=False,
                    )
                except TrainingDivergedError as err:
                    raise ValueError(
                        f"{err}. The input data may contain large values and "
                        "need to be preprocessed."
                    ) from err
                # history.loss includes each batch's penalty (with that batch's weights,
                # as scikit-learn's loss does); only the data term is rescaled.
                penalty = history._penalty[0]
                self.loss_ = (history.loss[0] - penalty) / loss_scale + penalty
                self.n_iter_ += 1
                self.t_ += n
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
                if X_val is not None and y_val is not None:
                    if self._track_validation(X_val, y_val):
                        best_params = [(lay.W.copy(), lay.b.copy()) for lay in net.layers]
                else:
                    self._track_loss()
                if self.solver == "sgd" and self.learning_rate == "invscaling":
                    opt.lr = float(self.learning_rate_init) / (self.t_ + 1) ** self.power_t
                if self._no_improvement_count > self.n_iter_no_change:
                    if self._should_stop(opt):
                        stopped = True
                        break
                    self._no_improvement_count = 0
                if incremental:
                    break
            if not stopped and not incremental:
                warnings.warn(
                    f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) "
                    "reached and the optimization hasn't converged yet.",
                    ConvergenceWarning,
                    stacklevel=3,
                )
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.", stacklevel=3)
        if best_params is not None:  # early stopping keeps the best validation epoch
            for layer, (W, b) in zip(net.layers, best_params):
                layer.W[...] = W
                layer.b[...] = b

    def _track_validation(self, X_val: np.ndarray, y_val: np.ndarray) -> bool:
        """Record the validation score; True when it is the best so far."""
        assert self.validation_scores_ is not None
        assert self.best_validation_score_ is not None
        score = self._score_prepared(X_val, y_val)
        self.validation_scores_.append(score)
        if self.verbose:
            print(f"Validation score: {score:f}")
        if score < self.best_validation_score_ + self.tol:
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        if score > self.best_validation_score_:
            self.best_validation_score_ = score
            return True
        return False

    def _track_loss(self) -> None:
        assert self.best_loss_ is not None
        if self.loss_curve_[-1] > self.best_loss_ - self.tol:
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        self.best_loss_ = min(self.best_loss_, self.loss_curve_[-1])

    def _should_stop(self, opt: Optimizer) -> bool:
        """scikit-learn's ``trigger_stopping``: stop, or (adaptive SGD) divide lr by 5."""
        what = "Validation score" if self.early_stopping else "Training loss"
        msg = (
            f"{what} did not improve more than tol={self.tol:f} for "
            f"{self.n_iter_no_change} consecutive epochs."
        )
        if self.solver != "sgd" or self.learning_rate != "adaptive":
            if self.verbose:
                print(msg + " Stopping.")
            return True
        assert isinstance(opt, SGD)
        if opt.lr <= _ADAPTIVE_MIN_LR:
            if self.verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        opt.lr /= 5.0
        if self.verbose:
            print(msg + f" Setting learning rate to {opt.lr:f}")
        return False

    def _refuse_fit_params(self, method: str, fit_params: dict[str, Any]) -> None:
        """Accept scikit-learn's ``sample_weight`` keyword when it is None, refuse anything
        else. It is taken through ``**fit_params``, not named in the signatures, so that
        ``has_fit_parameter`` reports (to bagging, boosting, calibration and
        ``check_estimator``) that sample weights are not supported."""
        where = f"{type(self).__name__}.{method}()"
        for key, value in fit_params.items():
            if key != "sample_weight":
                raise TypeError(f"{where} got an unexpected keyword argument {key!r}")
            if value is not None:
                raise ValueError(
                    f"{where}: sample_weight is not supported; densa's estimators weight "
                    "every sample equally (pass sample_weight=None)"
                )

    def _raw_output(self, X: Any) -> np.ndarray:
        """Network predictions (probabilities or values), shape (n_samples, n_outputs)."""
        X = self._prepared_X(X)  # checks fitted before network_ is looked up
        return self.network_.predict(X)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


class MLPClassifier(ClassifierMixin, _BaseMLP):  # type: ignore[misc]
    __doc__ = (
        """Multilayer perceptron classifier trained by densa (log-loss, Adam or SGD).

    A drop-in replacement for ``sklearn.neural_network.MLPClassifier``; see
    ``densa.sklearn`` for where it differs. The output layer is a softmax over the
    classes for multiclass ``y``, one logistic unit for two classes and one logistic unit
    per label for a multilabel indicator matrix.
"""
        + _PARAMETERS_DOC
        + """
    Attributes
    ----------
    classes_ : ndarray, shape (n_classes,)
        The labels, sorted. Multilabel: one per column of ``y``.
    coefs_ : list of ndarray, shape (n_in, n_out) per layer
        Weights in scikit-learn's orientation: views ``W.T`` of ``network_``'s weights.
    intercepts_ : list of ndarray, shape (n_out,) per layer
    network_ : densa.Network
        The trained network itself (its W is (n_out, n_in)).
    loss_ : float
    loss_curve_ : list of float
        Loss (with the L2 penalty) after each epoch.
    best_loss_ : float or None
    validation_scores_ : list of float or None
        Accuracy on the held-out data per epoch, with ``early_stopping``.
    best_validation_score_ : float or None
    n_iter_ : int
        Epochs run by the last ``fit``.
    t_ : int
        Training samples seen.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` had column names.
    n_layers_ : int
        Layers counting input and output.
    n_outputs_ : int
    out_activation_ : {"softmax", "logistic"}
    """
    )

    _estimator_kind = "classifier"

    def __init__(
        self,
        hidden_layer_sizes: int | Sequence[int] = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: int | np.random.RandomState | None = None,
        tol: float = 1e-4,
        verbose: bool | int = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int | float = 10,
        max_fun: int = 15000,
        dtype: str = "float64",
        backend: str = "native",
    ) -> None:
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
            dtype=dtype,
            backend=backend,
        )

    def _out_activation(self) -> str:
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _validate_xy(self, X: Any, y: Any, reset: bool) -> tuple[np.ndarray, np.ndarray]:
        X, y = super()._validate_xy(X, y, reset)
        check_classification_targets(y)
        return X, y

    def _encode_targets(self, y: np.ndarray, incremental: bool) -> np.ndarray:
        # The same bookkeeping of classes_ as scikit-learn's MLPClassifier.
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start and not incremental:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in "
                        f"the previous call to fit. Previously got {self.classes_}, `y` has "
                        f"{classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    f"`y` has classes not in `self.classes_`. `self.classes_` "
                    f"has {self.classes_}. 'y' has {classes}."
                )
        T = self._label_binarizer.transform(y)
        return np.asarray(T.toarray() if hasattr(T, "toarray") else T)

    def _decode_for_score(self, T: np.ndarray) -> np.ndarray:
        return np.asarray(self._label_binarizer.inverse_transform(T))

    def _labels_from_proba(self, proba: np.ndarray) -> np.ndarray:
        if self.n_outputs_ == 1:
            proba = proba.ravel()
        return np.asarray(self._label_binarizer.inverse_transform(proba))

    def _score_prepared(self, X: np.ndarray, y_true: np.ndarray) -> float:
        proba = self.network_.predict(X)
        if not np.isfinite(proba).all():
            return math.nan
        return float(accuracy_score(y_true, self._labels_from_proba(proba)))

    def fit(self, X: Any, y: Any, **fit_params: Any) -> MLPClassifier:
        """Train on (X, y) for up to ``max_iter`` epochs.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
        y : array_like, shape (n_samples,) or (n_samples, n_labels)
            Class labels, or a 2-D indicator matrix for multilabel.
        sample_weight : None
            Keyword-only; only None is accepted (densa does not support sample weights).

        Returns
        -------
        self
        """
        self._refuse_fit_params("fit", fit_params)
        self._fit(X, y, incremental=False)
        return self

    def partial_fit(self, X: Any, y: Any, classes: Any = None, **fit_params: Any) -> MLPClassifier:
        """One epoch over (X, y), continuing from the current weights and optimizer.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
        y : array_like, shape (n_samples,) or (n_samples, n_labels)
        classes : array_like, shape (n_classes,)
            Every class of the whole data set; required on the first call (ignored for a
            multilabel ``y``), optional later.
        sample_weight : None
            Keyword-only; only None is accepted (densa does not support sample weights).

        Returns
        -------
        self
        """
        self._refuse_fit_params("partial_fit", fit_params)
        if not hasattr(self, "classes_"):
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
            self.classes_ = self._label_binarizer.classes_
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(
                f"classes={classes!r} is not the same as on the first call to "
                f"partial_fit: {self.classes_!r}"
            )
        self._fit(X, y, incremental=True)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Class labels, shape (n_samples,), or (n_samples, n_labels) for multilabel."""
        return self._labels_from_proba(self._raw_output(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), columns ordered as
        ``classes_``; for multilabel, each label's probability (n_samples, n_labels)."""
        proba = self._raw_output(X)
        if self.n_outputs_ == 1:
            p = proba.ravel()
            return np.column_stack([1 - p, p])
        return proba

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """``log(predict_proba(X))``, shape (n_samples, n_classes)."""
        proba = self.predict_proba(X)
        with np.errstate(divide="ignore"):  # log(0) = -inf is the right answer
            return np.asarray(np.log(proba))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):  # type: ignore[misc]
    __doc__ = (
        """Multilayer perceptron regressor trained by densa (squared error, Adam or SGD).

    A drop-in replacement for ``sklearn.neural_network.MLPRegressor``; see
    ``densa.sklearn`` for where it differs. The output layer is linear, one unit per
    target column.
"""
        + _PARAMETERS_DOC.replace("    solver : ", _LOSS_DOC + "    solver : ", 1)
        + """
    Attributes
    ----------
    coefs_ : list of ndarray, shape (n_in, n_out) per layer
        Weights in scikit-learn's orientation: views ``W.T`` of ``network_``'s weights.
    intercepts_ : list of ndarray, shape (n_out,) per layer
    network_ : densa.Network
        The trained network itself (its W is (n_out, n_in)).
    loss_ : float
    loss_curve_ : list of float
        ``mean((y − ŷ)²)/2`` plus the L2 penalty after each epoch.
    best_loss_ : float or None
    validation_scores_ : list of float or None
        R² on the held-out data per epoch, with ``early_stopping``.
    best_validation_score_ : float or None
    n_iter_ : int
    t_ : int
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` had column names.
    n_layers_ : int
    n_outputs_ : int
    out_activation_ : "identity"
    """
    )

    _estimator_kind = "regressor"
    loss = "squared_error"  # for estimators pickled before the parameter existed

    def __init__(
        self,
        hidden_layer_sizes: int | Sequence[int] = (100,),
        activation: str = "relu",
        *,
        loss: str = "squared_error",
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: int | np.random.RandomState | None = None,
        tol: float = 1e-4,
        verbose: bool | int = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int | float = 10,
        max_fun: int = 15000,
        dtype: str = "float64",
        backend: str = "native",
    ) -> None:
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
            dtype=dtype,
            backend=backend,
        )
        self.loss = loss

    def _out_activation(self) -> str:
        return "identity"

    def _check_params(self) -> None:
        super()._check_params()
        if self.loss == "poisson":
            raise ValueError(
                "loss='poisson' is not available in densa; MLPRegressor supports only "
                "loss='squared_error'"
            )
        _choice(self.loss, "loss", ("squared_error",))

    def _encode_targets(self, y: np.ndarray, incremental: bool) -> np.ndarray:
        return y.reshape(-1, 1) if y.ndim == 1 else y

    def _decode_for_score(self, T: np.ndarray) -> np.ndarray:
        return T

    def _score_prepared(self, X: np.ndarray, y_true: np.ndarray) -> float:
        pred = self.network_.predict(X)
        if not np.isfinite(pred).all():
            return math.nan
        return float(r2_score(y_true, pred))

    def fit(self, X: Any, y: Any, **fit_params: Any) -> MLPRegressor:
        """Train on (X, y) for up to ``max_iter`` epochs.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
        y : array_like, shape (n_samples,) or (n_samples, n_outputs)
            Targets.
        sample_weight : None
            Keyword-only; only None is accepted (densa does not support sample weights).

        Returns
        -------
        self
        """
        self._refuse_fit_params("fit", fit_params)
        self._fit(X, y, incremental=False)
        return self

    def partial_fit(self, X: Any, y: Any, **fit_params: Any) -> MLPRegressor:
        """One epoch over (X, y), continuing from the current weights and optimizer.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
        y : array_like, shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : None
            Keyword-only; only None is accepted (densa does not support sample weights).

        Returns
        -------
        self
        """
        self._refuse_fit_params("partial_fit", fit_params)
        self._fit(X, y, incremental=True)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predicted values, shape (n_samples,) for one target, else (n_samples, n_outputs)."""
        pred = self._raw_output(X)
        return pred.ravel() if pred.shape[1] == 1 else pred

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
