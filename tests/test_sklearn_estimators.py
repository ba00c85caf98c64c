"""densa.sklearn.MLPClassifier / MLPRegressor: scikit-learn's own estimator checks, the
same training as scikit-learn's MLP where the semantics agree, and the ways
scikit-learn users scale out (pickle, GridSearchCV with n_jobs, joblib on Dask)."""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", minversion="1.6")

from sklearn import neural_network as sknn  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits, load_iris, make_regression  # noqa: E402
from sklearn.ensemble import BaggingClassifier  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402
from sklearn.utils.validation import has_fit_parameter  # noqa: E402

from densa.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

# Small and quick: the checks fit these dozens of times. learning_rate_init is raised so
# that check_classifiers_train / check_regressors_train reach their accuracy thresholds
# within max_iter epochs.
_SMALL = dict(hidden_layer_sizes=(8,), max_iter=60, learning_rate_init=0.02, random_state=0)


# The checks fit with max_iter small on purpose, so ConvergenceWarning is expected there.
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks([MLPClassifier(**_SMALL), MLPRegressor(**_SMALL)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_import_densa_does_not_import_sklearn():
    code = "import sys, densa; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


# ----- the same training as scikit-learn's MLP --------------------------------------------------
@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _fit_both(kind, X, y, **params):
    ours = getattr(sys.modules["densa.sklearn"], kind)(**params)
    theirs = getattr(sknn, kind)(**params)
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        ours.fit(X, y)
    with pytest.warns(ConvergenceWarning):
        theirs.fit(X, y)
    return ours, theirs


_SAME_AS_SKLEARN = dict(
    hidden_layer_sizes=(7, 5),
    random_state=3,
    shuffle=False,
    batch_size=32,
    max_iter=12,
    alpha=0.0,
    solver="sgd",
)


@pytest.mark.parametrize(
    ("kind", "target", "params"),
    [
        ("MLPClassifier", "multiclass", dict(learning_rate_init=0.05)),
        ("MLPClassifier", "binary", dict(learning_rate_init=0.05, activation="logistic")),
        (
            "MLPClassifier",
            "multiclass",
            dict(learning_rate_init=0.05, momentum=0.0, learning_rate="invscaling", power_t=0.1),
        ),
        ("MLPRegressor", "multioutput", dict(learning_rate_init=0.01, activation="tanh")),
    ],
)
def test_sgd_training_equals_sklearn(iris, kind, target, params):
    # Same initial weights from random_state, same batches (shuffle=False), same SGD with
    # Nesterov momentum: the same parameters after every epoch, to rounding.
    X, y = iris
    if target == "binary":
        y = y == 1
    elif target == "multioutput":
        X, y = make_regression(120, 5, n_targets=3, noise=1.0, random_state=0)
        y = y / y.std()
    ours, theirs = _fit_both(kind, X, y, **_SAME_AS_SKLEARN, **params)
    assert ours.n_iter_ == theirs.n_iter_ == 12
    assert ours.out_activation_ == theirs.out_activation_
    assert ours.n_layers_ == theirs.n_layers_
    assert ours.n_outputs_ == theirs.n_outputs_
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-9, atol=1e-12)


def test_adam_training_close_to_sklearn(iris):
    # Adam differs only in where epsilon enters (module doc): close, not equal.
    X, y = iris
    ours, theirs = _fit_both(
        "MLPClassifier", X, y, **{**_SAME_AS_SKLEARN, "solver": "adam"}, learning_rate_init=0.01
    )
    for a, b in zip(ours.coefs_, theirs.coefs_):
        np.testing.assert_allclose(a, b, atol=1e-4)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-4)


def test_alpha_penalises_the_weights_only(iris):
    # One full-batch SGD step without momentum: scikit-learn's L2 term (alpha/n)·W moves
    # the weights, and the intercepts take the plain gradient step, as in scikit-learn.
    X, y = iris
    params = dict(
        _SAME_AS_SKLEARN,
        max_iter=1,
        batch_size=len(X),
        alpha=3.0,
        learning_rate_init=0.1,
        momentum=0.0,
    )
    ours, theirs = _fit_both("MLPClassifier", X, y, **params)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    no_alpha, _ = _fit_both("MLPClassifier", X, y, **dict(params, alpha=0.0))
    for a, b in zip(ours.coefs_, no_alpha.coefs_):
        assert np.abs(a - b).max() > 1e-3  # the penalty did move the weights


@pytest.mark.parametrize("alpha", [1e-4, 0.1, 1.0])
@pytest.mark.parametrize("solver_kw", [{"momentum": 0.9}, {"nesterovs_momentum": False}])
def test_alpha_trains_to_sklearns_weights(iris, alpha, solver_kw):
    # scikit-learn's definition, each batch's own size included: 150 samples in batches
    # of 32 leave a last batch of 22, which scikit-learn penalises by alpha/22.
    X, y = iris
    params = dict(_SAME_AS_SKLEARN, alpha=alpha, learning_rate_init=0.05, **solver_kw)
    ours, theirs = _fit_both("MLPClassifier", X, y, **params)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    # The loss too, each batch's penalty with that batch's weights (epoch-end weights
    # were off by 1e-5 relative at alpha 1e-4, 1e-2 at alpha 1).
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)


@pytest.mark.parametrize("alpha", [0.1, 1.0])
def test_alpha_in_a_multioutput_regressors_loss_curve(alpha):
    # scikit-learn averages the squared error over the outputs but not the penalty:
    # densa rescales only the data term of its loss.
    X, y = make_regression(120, 5, n_targets=3, noise=1.0, random_state=0)
    params = dict(_SAME_AS_SKLEARN, alpha=alpha, learning_rate_init=0.01, activation="tanh")
    ours, theirs = _fit_both("MLPRegressor", X, y / y.std(), **params)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)


def test_early_stopping_matches_sklearn_and_keeps_best(iris):
    X, y = iris
    params = dict(
        _SAME_AS_SKLEARN,
        max_iter=200,
        early_stopping=True,
        n_iter_no_change=3,
        learning_rate_init=0.05,
    )
    ours = MLPClassifier(**params).fit(X, y)
    theirs = sknn.MLPClassifier(**params).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_ < 200
    assert ours.validation_scores_ == pytest.approx(theirs.validation_scores_)
    assert ours.best_validation_score_ == max(ours.validation_scores_)
    assert ours.best_loss_ is None
    for a, b in zip(ours.coefs_, theirs.coefs_):  # both restored the best epoch's weights
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_accuracy_comparable_to_sklearn_on_digits():
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    Xtr, Xte, ytr, yte = train_test_split(X, y, random_state=0, stratify=y)
    params = dict(hidden_layer_sizes=(64,), max_iter=40, random_state=0)
    with pytest.warns(ConvergenceWarning):
        ours = MLPClassifier(**params, dtype="float32").fit(Xtr, ytr)
    with pytest.warns(ConvergenceWarning):
        theirs = sknn.MLPClassifier(**params).fit(Xtr, ytr)
    ours_acc, theirs_acc = ours.score(Xte, yte), theirs.score(Xte, yte)
    assert ours_acc > 0.93
    assert ours_acc >= theirs_acc - 0.02, (ours_acc, theirs_acc)


# ----- behaviour of our own -------------------------------------------------------------------
def test_stops_when_loss_stops_improving_by_tol(iris):
    X, y = iris
    # No epoch can lower the loss by 10: the first sets best_loss_, each later one counts,
    # and training stops once the count exceeds n_iter_no_change (scikit-learn's rule).
    params = dict(hidden_layer_sizes=(4,), tol=10.0, n_iter_no_change=3, max_iter=50)
    clf = MLPClassifier(**params, random_state=0).fit(X, y)
    assert clf.n_iter_ == 5
    assert len(clf.loss_curve_) == 5
    assert clf.best_loss_ == min(clf.loss_curve_)
    assert sknn.MLPClassifier(**params, random_state=0).fit(X, y).n_iter_ == 5


def test_convergence_warning_names_max_iter(iris):
    X, y = iris
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(3\)"):
        MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, y)


def test_partial_fit_continues_and_needs_classes_first(iris):
    X, y = iris
    clf = MLPClassifier(hidden_layer_sizes=(8,), learning_rate_init=0.05, random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    clf.partial_fit(X[:50], y[:50], classes=np.unique(y))  # one class seen, three known
    assert list(clf.classes_) == [0, 1, 2]
    for _ in range(20):
        clf.partial_fit(X, y)
    assert clf.n_iter_ == 1  # per call, as in scikit-learn
    assert clf.t_ == 50 + 20 * len(X)
    assert len(clf.loss_curve_) == 21
    assert clf.loss_curve_[-1] < clf.loss_curve_[1] / 2
    with pytest.raises(ValueError, match="classes not in"):
        clf.partial_fit(X[:3], np.array([0, 1, 7]))
    with pytest.raises(ValueError, match="early_stopping"):
        MLPRegressor(early_stopping=True).partial_fit(X, y.astype(float))


def test_warm_start_continues_from_the_weights(iris):
    X, y = iris
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, warm_start=True, random_state=0)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    W = clf.coefs_[0].copy()
    net = clf.network_
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    assert clf.network_ is net
    assert len(clf.loss_curve_) == 10
    assert not np.array_equal(clf.coefs_[0], W)
    with pytest.raises(ValueError, match="same classes"):
        clf.fit(X[y < 2], y[y < 2])


def test_targets_binary_multiclass_multilabel_and_strings(iris):
    X, y = iris
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = MLPClassifier(
        hidden_layer_sizes=(8,), max_iter=200, learning_rate_init=0.05, random_state=0, tol=1e-3
    ).fit(X, names)
    assert clf.out_activation_ == "softmax"
    assert clf.coefs_[-1].shape == (8, 3)
    proba = clf.predict_proba(X)
    assert proba.shape == (150, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert set(clf.predict(X)) <= set(names)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(proba))
    assert clf.score(X, names) > 0.9

    binary = MLPClassifier(
        hidden_layer_sizes=(8,), max_iter=200, learning_rate_init=0.05, random_state=0, tol=1e-3
    ).fit(X, y == 2)
    assert binary.out_activation_ == "logistic"
    assert binary.n_outputs_ == 1
    p = binary.predict_proba(X)
    assert p.shape == (150, 2)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_array_equal(binary.predict(X), p[:, 1] > 0.5)

    Y = np.column_stack([y == 0, y == 2, X[:, 0] > 0]).astype(int)
    multi = MLPClassifier(
        hidden_layer_sizes=(16,), max_iter=300, learning_rate_init=0.05, random_state=0, tol=1e-3
    ).fit(X, Y)
    assert multi.out_activation_ == "logistic"
    assert multi.n_outputs_ == 3
    assert multi.predict(X).shape == (150, 3)
    np.testing.assert_array_equal(multi.predict(X), (multi.predict_proba(X) > 0.5).astype(int))
    assert multi.score(X, Y) > 0.8  # subset accuracy


def test_coefs_are_views_in_sklearn_orientation(iris):
    X, y = iris
    clf = MLPClassifier(hidden_layer_sizes=(6,), max_iter=20, random_state=0, tol=1.0).fit(X, y)
    net = clf.network_
    assert [c.shape for c in clf.coefs_] == [(4, 6), (6, 3)]
    assert [layer.W.shape for layer in net.layers] == [(6, 4), (3, 6)]
    assert clf.n_features_in_ == 4
    before = clf.predict_proba(X)
    clf.coefs_[1][...] = 0.0  # writes into the network: every class equally likely
    clf.intercepts_[1][...] = 0.0
    assert np.all(net.layers[1].W == 0)
    np.testing.assert_allclose(clf.predict_proba(X), 1 / 3)
    assert not np.allclose(before, 1 / 3)


def test_coefs_and_intercepts_can_be_assigned(iris):
    # As in scikit-learn, e.g. to choose the weights a warm_start fit starts from.
    X, y = iris
    params = dict(_SAME_AS_SKLEARN, max_iter=3, learning_rate_init=0.05, warm_start=True)
    ours, theirs = _fit_both("MLPClassifier", X, y, **params)
    rng = np.random.default_rng(0)
    coefs = [rng.uniform(-1, 1, c.shape) for c in ours.coefs_]
    intercepts = [rng.uniform(-1, 1, b.shape).tolist() for b in ours.intercepts_]  # lists too
    arrays = [layer.W for layer in ours.network_.layers]
    for est in (ours, theirs):
        est.coefs_ = coefs
        est.intercepts_ = [np.asarray(b) for b in intercepts] if est is theirs else intercepts
    assert all(layer.W is W for layer, W in zip(ours.network_.layers, arrays))  # in place
    # Predictions use them: a forward pass by hand (relu, then softmax).
    h = X
    for W, b in zip(coefs[:-1], intercepts[:-1]):
        h = np.maximum(h @ W + b, 0.0)
    logits = h @ coefs[-1] + intercepts[-1]
    proba = np.exp(logits - logits.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(ours.predict_proba(X), proba, rtol=1e-12)
    # warm_start continues from them, as scikit-learn's does.
    with pytest.warns(ConvergenceWarning):
        ours.fit(X, y)
    with pytest.warns(ConvergenceWarning):
        theirs.fit(X, y)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_assigned_coefs_and_intercepts_are_checked(iris):
    X, y = iris
    clf = MLPClassifier(hidden_layer_sizes=(6,), max_iter=5, random_state=0, tol=1.0)
    with pytest.raises(
        NotFittedError, match="coefs_ can be assigned only once this MLPClassifier is fitted"
    ):
        clf.coefs_ = [np.zeros((4, 6)), np.zeros((6, 3))]
    clf.fit(X, y)
    f32 = MLPClassifier(
        hidden_layer_sizes=(6,), max_iter=5, random_state=0, tol=1.0, dtype="float32"
    )
    f32.fit(X, y).coefs_ = [np.ones((4, 6)), np.ones((6, 3), dtype=np.int64)]
    assert all(c.dtype == np.float32 and np.all(c == 1) for c in f32.coefs_)  # converted
    before = [c.copy() for c in clf.coefs_ + clf.intercepts_]
    good = np.zeros((4, 6))
    cases = [
        ("coefs_", good, TypeError, "coefs_ must be a list of arrays, one per layer, got ndarray"),
        ("coefs_", [good], ValueError, "coefs_ must hold 2 arrays, one per layer, got 1"),
        (
            "coefs_",
            [good, np.zeros((3, 6))],  # network_'s W orientation, not scikit-learn's
            ValueError,
            r"coefs_\[1\] must have shape \(6, 3\) \(n_in, n_out\), got \(3, 6\)",
        ),
        ("coefs_", [good, np.full((6, 3), np.nan)], ValueError, r"coefs_\[1\] contains NaN or inf"),
        ("coefs_", [good, np.zeros((6, 3), complex)], TypeError, r"coefs_\[1\] must hold real"),
        (
            "intercepts_",
            [np.zeros(6), np.zeros(4)],
            ValueError,
            r"intercepts_\[1\] must have shape \(3,\)",
        ),
        ("intercepts_", None, TypeError, "intercepts_ must be a list of arrays"),
    ]
    for name, value, error, match in cases:
        with pytest.raises(error, match=match):
            setattr(clf, name, value)
    with pytest.raises(ValueError, match=r"coefs_\[0\] .* beyond float32's range"):
        f32.coefs_ = [np.full((4, 6), 1e300), np.ones((6, 3))]
    # A refused list changes nothing, not even its first, valid array.
    for a, b in zip(clf.coefs_ + clf.intercepts_, before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_dtype_changed_for_warm_start_is_applied(iris):
    X, y = iris
    params = dict(
        hidden_layer_sizes=(5,), max_iter=5, random_state=0, shuffle=False, warm_start=True
    )
    clf = MLPClassifier(**params).fit(X, y)
    weights = [a.copy() for a in clf.coefs_ + clf.intercepts_]
    clf.set_params(dtype="float32")
    clf.fit(X, y)
    assert clf.network_.dtype == np.float32
    assert all(a.dtype == np.float32 for a in clf.coefs_ + clf.intercepts_)
    assert len(clf.loss_curve_) == 10  # continued
    # The same as a float32 model continuing from those weights.
    twin = MLPClassifier(**params, dtype="float32").fit(X, y)
    twin.coefs_, twin.intercepts_ = weights[:2], weights[2:]
    twin.fit(X, y)
    for a, b in zip(clf.coefs_ + clf.intercepts_, twin.coefs_ + twin.intercepts_):
        np.testing.assert_array_equal(a, b)


def test_a_dtype_changed_between_partial_fits_keeps_the_optimizer_state(iris):
    X, y = iris
    clf = MLPClassifier(hidden_layer_sizes=(5,), batch_size=50, random_state=0)
    for _ in range(3):
        clf.partial_fit(X, y, classes=[0, 1, 2])
    clf.set_params(dtype="float32").partial_fit(X, y)
    opt = clf.network_.optimizer
    assert clf.network_.dtype == np.float32
    assert opt is clf._optimizer
    assert opt.state_W[0][0].dtype == np.float32
    assert int(opt.step[0]) == 4 * 3  # Adam's steps continue: 3 batches per call
    # A pickled copy continues too, with an optimizer of its own.
    restored = pickle.loads(pickle.dumps(clf))
    restored.partial_fit(X, y)
    clf.partial_fit(X, y)
    for a, b in zip(clf.coefs_, restored.coefs_):
        np.testing.assert_array_equal(a, b)


def test_dtype_and_backend(iris):
    X, y = iris
    params = dict(hidden_layer_sizes=(5,), max_iter=20, random_state=0, tol=1.0, shuffle=False)
    f32 = MLPClassifier(**params, dtype="float32").fit(X, y)
    assert f32.network_.dtype == np.float32
    assert f32.coefs_[0].dtype == np.float32
    native = MLPClassifier(**params).fit(X, y)
    reference = MLPClassifier(**params, backend="reference").fit(X, y)
    assert reference.network_.backend == "reference"
    for a, b in zip(native.coefs_, reference.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_verbose_prints_each_epoch(iris, capsys):
    X, y = iris
    MLPClassifier(
        hidden_layer_sizes=(4,),
        max_iter=50,
        tol=10.0,
        n_iter_no_change=1,
        verbose=True,
        random_state=0,
    ).fit(X, y)
    out = capsys.readouterr().out
    assert "Iteration 1, loss = " in out
    assert "Iteration 2, loss = " in out
    assert "did not improve more than tol=10.000000 for 1 consecutive epochs. Stopping." in out


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        (dict(activation="softmax"), ValueError, "activation must be one of 'identity'"),
        (dict(solver="lbfgs"), ValueError, "lbfgs' is not available"),
        (dict(solver="rmsprop"), ValueError, "solver must be one of"),
        (
            dict(hidden_layer_sizes=(4, 0)),
            ValueError,
            r"hidden_layer_sizes must be a positive integer or a tuple/list of positive "
            r"integers, got \(4, 0\) \(hidden_layer_sizes\[1\] is 0\)",
        ),
        # A string is a sequence: refused as a whole, not for its first character.
        (
            dict(hidden_layer_sizes="10"),
            TypeError,
            r"hidden_layer_sizes must be a positive integer or a tuple/list of positive "
            r"integers, got str: '10'",
        ),
        (
            dict(hidden_layer_sizes=(10.0,)),
            TypeError,
            r"tuple/list of positive integers, got \(10.0,\) \(hidden_layer_sizes\[0\] is 10.0\)",
        ),
        (dict(alpha=-1.0), ValueError, r"alpha must lie in \[0.0, inf\]"),
        (dict(alpha="none"), TypeError, "alpha must be a real number"),
        (dict(batch_size=0), ValueError, "batch_size must be >= 1"),
        (dict(momentum=1.0), ValueError, r"momentum must lie in \[0.0, 1.0\)"),
        (dict(learning_rate_init=0.0), ValueError, "learning_rate_init must lie in"),
        (dict(early_stopping=True, validation_fraction=0.0), ValueError, "validation_fraction"),
        (dict(dtype="float16"), ValueError, "dtype must be one of 'float64', 'float32'"),
        (dict(backend="gpu"), ValueError, "backend: unknown name 'gpu'"),
        (dict(shuffle="yes"), TypeError, "shuffle must be True or False"),
        (dict(max_fun=0), ValueError, "max_fun must be >= 1"),
    ],
)
def test_bad_parameters_are_named(iris, params, error, match):
    X, y = iris
    with pytest.raises(error, match=match):
        MLPClassifier(**params).fit(X, y)


def test_activation_error_lists_each_name_once(iris):
    X, y = iris
    with pytest.raises(ValueError, match="activation must be one of") as err:
        MLPClassifier(activation="softmax").fit(X, y)
    listed = str(err.value).split("one of ", 1)[1].split(", got")[0].split(", ")
    assert len(listed) == len(set(listed))
    assert {"'identity'", "'logistic'", "'tanh'", "'relu'", "'sigmoid'", "'gelu'"} <= set(listed)


# ----- scikit-learn's parameters and fit keywords -----------------------------------------------
@pytest.mark.parametrize("kind", ["MLPClassifier", "MLPRegressor"])
def test_constructs_from_sklearn_get_params(iris, kind):
    ours_cls = getattr(sys.modules["densa.sklearn"], kind)
    theirs = getattr(sknn, kind)()
    ours = ours_cls(**theirs.get_params())
    # The same parameters and defaults as scikit-learn's, plus densa's dtype and backend.
    params = ours.get_params()
    assert params.pop("dtype") == "float64"
    assert params.pop("backend") == "native"
    assert params == theirs.get_params()
    assert ours_cls().get_params() == ours.get_params()
    assert clone(ours).get_params() == ours.get_params()
    assert ours.set_params(max_fun=7).get_params()["max_fun"] == 7  # lbfgs only: ignored
    X, y = iris
    if kind == "MLPRegressor":
        y = X[:, 0].copy()
    with pytest.warns(ConvergenceWarning):
        ours.set_params(hidden_layer_sizes=(4,), max_iter=2).fit(X, y)
    with pytest.raises(TypeError, match=rf"^{kind}\.__init__\(\) got an unexpected keyword"):
        ours_cls(hiden_layer_sizes=(4,))


@pytest.mark.parametrize("loss", ["poisson", "absolute_error"])
def test_regressor_refuses_losses_other_than_squared_error(iris, loss):
    X, _ = iris
    est = MLPRegressor(loss=loss)  # checked in fit, as scikit-learn does
    assert est.get_params()["loss"] == loss
    with pytest.raises(ValueError, match=r"loss.*'squared_error'") as err:
        est.fit(X, X[:, 0])
    assert f"{loss!r}" in str(err.value)
    with pytest.raises(
        TypeError, match=r"MLPClassifier\.__init__\(\) got an unexpected keyword argument 'loss'"
    ):
        MLPClassifier(loss="log_loss")  # scikit-learn's classifier has no loss parameter


def test_loss_squared_error_trains_as_the_default(iris):
    X, _ = iris
    y = X[:, 0] * X[:, 1]
    params = dict(hidden_layer_sizes=(6,), max_iter=8, random_state=0)
    with pytest.warns(ConvergenceWarning):
        default = MLPRegressor(**params).fit(X, y)
    with pytest.warns(ConvergenceWarning):
        squared = MLPRegressor(**params, loss="squared_error").fit(X, y)
    for a, b in zip(default.coefs_ + default.intercepts_, squared.coefs_ + squared.intercepts_):
        np.testing.assert_array_equal(a, b)
    assert squared.loss_curve_ == default.loss_curve_


@pytest.mark.parametrize("kind", ["MLPClassifier", "MLPRegressor"])
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_sample_weight_is_refused_unless_none(iris, kind, method):
    X, y = iris
    est = getattr(sys.modules["densa.sklearn"], kind)(hidden_layer_sizes=(4,), max_iter=2)
    kwargs = {"classes": np.unique(y)} if (kind, method) == ("MLPClassifier", "partial_fit") else {}
    fit = getattr(est, method)
    with pytest.raises(ValueError, match=r"sample_weight is not supported") as err:
        fit(X, y, sample_weight=np.ones(len(y)), **kwargs)
    assert str(err.value).startswith(f"{kind}.{method}()")
    assert "_BaseMLP" not in str(err.value)
    with pytest.raises(TypeError, match=rf"^{kind}\.{method}\(\) got an unexpected keyword"):
        fit(X, y, sample_weigth=None, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        assert fit(X, y, sample_weight=None, **kwargs) is est


def test_sample_weight_support_is_not_advertised(iris):
    # sample_weight is not in fit's signature, so scikit-learn's meta-estimators see that it
    # is not supported: bagging samples rows by indexing instead of passing weights.
    assert not has_fit_parameter(MLPClassifier(), "sample_weight")
    assert not has_fit_parameter(MLPRegressor(), "sample_weight")
    X, y = iris
    est = MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, learning_rate_init=0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        bagging = BaggingClassifier(est, n_estimators=2, random_state=0).fit(X, y)
    assert len(bagging.estimators_) == 2


def test_sparse_input_is_refused(iris):
    sparse = pytest.importorskip("scipy.sparse")
    X, y = iris
    with pytest.raises(TypeError, match=r"[Ss]parse"):
        MLPClassifier(max_iter=1).fit(sparse.csr_matrix(X), y)


# ----- beyond one process ---------------------------------------------------------------------
def test_pickle_round_trip_keeps_predictions_and_training(iris):
    X, y = iris
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0, tol=1.0)
    clf.fit(X, y)
    clone = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(clone.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(clone.classes_, clf.classes_)
    # The unpickled coefs_ are still views of the unpickled network: training moves both.
    W = clone.coefs_[0].copy()
    clone.partial_fit(X, y)
    assert not np.array_equal(clone.coefs_[0], W)
    np.testing.assert_array_equal(clone.coefs_[0], clone.network_.layers[0].W.T)
    np.testing.assert_array_equal(clf.coefs_[0], W)  # the original is untouched


_GRID = {"hidden_layer_sizes": [(3,), (16,)], "learning_rate_init": [0.003, 0.05]}


def _search(n_jobs=None):
    est = MLPClassifier(max_iter=30, random_state=0, tol=0.0, n_iter_no_change=1000)
    return GridSearchCV(est, _GRID, cv=3, n_jobs=n_jobs)


@pytest.fixture(scope="module")
def serial_search(iris):
    X, y = iris
    with pytest.warns(ConvergenceWarning):
        return _search().fit(X, y)


# joblib hands this test's warning filters to its worker processes, where pytest.warns
# cannot catch: ignore the ConvergenceWarning that max_iter=30 causes on purpose.
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_grid_search_in_two_processes_equals_serial(iris, serial_search):
    X, y = iris
    parallel = _search(n_jobs=2).fit(X, y)
    np.testing.assert_allclose(
        parallel.cv_results_["mean_test_score"], serial_search.cv_results_["mean_test_score"]
    )
    assert parallel.best_params_ == serial_search.best_params_
    # A learning rate of 0.003 over 30 epochs is too slow for a 3-unit network.
    assert parallel.best_params_ != {"hidden_layer_sizes": (3,), "learning_rate_init": 0.003}
    assert parallel.best_score_ > 0.8


def test_grid_search_on_a_dask_cluster_equals_serial(iris, serial_search):
    pytest.importorskip("dask")
    distributed = pytest.importorskip("distributed")
    joblib = pytest.importorskip("joblib")
    X, y = iris
    # Two worker threads: joblib runs a job sequentially, bypassing the cluster, when the
    # cluster offers only one. protocol="tcp://" keeps the real network code path while
    # processes=False avoids spawning a worker process; everything stays on loopback.
    with (
        distributed.LocalCluster(
            n_workers=1,
            threads_per_worker=2,
            processes=False,
            protocol="tcp://",
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        with (
            pytest.warns(ConvergenceWarning),
            distributed.get_task_stream(client) as tasks,
            joblib.parallel_backend("dask"),
        ):
            search = _search(n_jobs=-1).fit(X, y)
    ran = {t["key"][0] if isinstance(t["key"], tuple) else t["key"] for t in tasks.data}
    assert any("fit_and_score" in str(key) for key in ran), ran
    np.testing.assert_allclose(
        search.cv_results_["mean_test_score"], serial_search.cv_results_["mean_test_score"]
    )
    assert search.best_params_ == serial_search.best_params_


# ----- boundaries found by mutation testing -----------------------------------------------------
def _fit_both_quietly(kind, X, y, **params):
    """``kind`` fitted by densa and by scikit-learn with the same ``params``, warnings off."""
    ours = getattr(sys.modules["densa.sklearn"], kind)(**params)
    theirs = getattr(sknn, kind)(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, y)
        theirs.fit(X, y)
    return ours, theirs


def test_a_loss_equal_to_the_best_counts_as_no_worse_with_tol_zero(iris):
    """Guards _track_loss's strict "loss > best_loss_ - tol" (scikit-learn's rule)."""
    # With learning_rate_init=1e-300 no weight moves, so every epoch's loss is the same:
    # with tol=0 that is never "no improvement", and both run all max_iter epochs.
    X, y = iris
    params = dict(_SAME_AS_SKLEARN, max_iter=8, tol=0.0, n_iter_no_change=2)
    ours, theirs = _fit_both_quietly("MLPClassifier", X, y, **params, learning_rate_init=1e-300)
    assert len(set(ours.loss_curve_)) == 1  # the premise: the loss never changed
    assert ours.n_iter_ == theirs.n_iter_ == 8


def test_adaptive_learning_rate_is_divided_by_five_as_in_sklearn(iris):
    """Guards learning_rate="adaptive": lr /= 5 after each stall, stopping below 1e-6."""
    # tol=1000: no epoch ever improves enough, so every second epoch divides the rate
    # (0.01, 0.002, ... down to 6.4e-7 <= 1e-6, where training stops). Without momentum
    # the updates are scikit-learn's exactly (module doc), the changing rate included.
    X, y = iris
    params = dict(
        _SAME_AS_SKLEARN,
        max_iter=200,
        learning_rate="adaptive",
        learning_rate_init=0.01,
        momentum=0.0,
        tol=1e3,
        n_iter_no_change=1,
    )
    ours, theirs = _fit_both_quietly("MLPClassifier", X, y, **params)
    assert ours.n_iter_ == theirs.n_iter_ < 200
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_batch_size_auto_is_min_200_n_samples_as_in_sklearn():
    """Guards batch_size="auto" = min(200, n_samples): 260 samples train in batches of 200."""
    X, y = make_regression(260, 4, noise=1.0, random_state=0)
    params = dict(_SAME_AS_SKLEARN, hidden_layer_sizes=(6,), max_iter=3, learning_rate_init=0.01)
    params["batch_size"] = "auto"
    ours, theirs = _fit_both_quietly("MLPRegressor", X, y / y.std(), **params)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)


def test_a_validation_set_of_one_sample_is_refused_as_in_sklearn():
    """Guards the ValueError for early stopping's validation set of fewer than 2 samples."""
    # (A classifier's stratified split refuses one sample itself, before this check.)
    X, y = make_regression(10, 3, random_state=0)
    params = dict(early_stopping=True, validation_fraction=0.1, max_iter=5, random_state=0)
    for estimator in (MLPRegressor, sknn.MLPRegressor):
        with pytest.raises(ValueError, match="The validation set is too small"):
            estimator(**params).fit(X, y)
