"""``fit``: early stopping, continued training, history, divergence and concurrent calls."""

from __future__ import annotations

import copy
import gc
import pickle
import re
import threading
import weakref

import numpy as np
import pytest

import densa
from network_cases import BACKENDS, make_data, make_net, max_rel_diff, optimizer_state, params

OPTIMIZERS = {
    "sgd-momentum": lambda: densa.SGD(lr=0.05, momentum=0.9),
    "adam": lambda: densa.Adam(lr=0.01),
}


def _classification(n=120, seed=0):
    X, y = make_data("labels", n, 4, 3, seed=seed)
    return X, y


# ----- early stopping ---------------------------------------------------------------------
def _noisy_rule(n, noise, seed):
    """Labels from a fixed linear rule, a fraction ``noise`` of them replaced at random."""
    A = np.random.default_rng(0).standard_normal((4, 3))
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    y = np.argmax(X @ A, axis=1)
    flip = rng.random(n) < noise
    y[flip] = rng.integers(0, 3, int(flip.sum()))
    return X, y


def _overfitting_run(restore_best=True, backend="native", patience=3):
    """48 training samples, 30% of their labels noise, and a 64-64 network: it soon
    memorizes the noise, and the loss on 200 clean validation samples turns up (at epoch 3
    with this seed)."""
    X, y = _noisy_rule(48, 0.3, seed=1)
    Xv, yv = _noisy_rule(200, 0.0, seed=2)
    net = make_net("softmax_cross_entropy", sizes=(4, 64, 64, 3), backend=backend, seed=0)
    history = net.fit(
        X,
        y,
        epochs=200,
        batch_size=16,
        optimizer=densa.Adam(lr=0.01),
        validation_data=(Xv, yv),
        early_stopping=densa.EarlyStopping(patience=patience, restore_best=restore_best),
        progress=False,
    )
    return net, history, (Xv, yv)


@pytest.mark.parametrize("backend", BACKENDS)
def test_early_stopping_stops_and_restores_the_best_parameters(backend):
    net, history, (Xv, yv) = _overfitting_run(backend=backend)
    assert history.stopped_early
    assert len(history) < 200
    best = history.best_epoch
    assert best == int(np.argmin(history.val_loss))
    assert best > 0  # so that restoring matters
    # It tolerates `patience` (3) epochs without improvement and stops at the next one.
    assert len(history) == best + 1 + 3 + 1
    assert min(history.val_loss[best + 1 :]) >= history.val_loss[best]
    # The parameters are the best epoch's: the validation loss evaluates to its record.
    assert net.evaluate(Xv, yv)["loss"] == pytest.approx(history.val_loss[best], rel=1e-12)
    assert net.evaluate(Xv, yv)["loss"] < history.val_loss[-1]


def test_early_stopping_without_restore_keeps_the_last_parameters():
    net, history, (Xv, yv) = _overfitting_run(restore_best=False)
    assert history.stopped_early
    assert net.evaluate(Xv, yv)["loss"] == pytest.approx(history.val_loss[-1], rel=1e-12)
    assert history.val_loss[-1] > history.val_loss[history.best_epoch]


def test_early_stopping_restores_exactly_the_snapshot_of_the_best_epoch():
    """min_delta larger than any improvement: only epoch 0 counts as best, so the network
    must end exactly as a network trained for one epoch."""
    X, y = make_data("real", 64, 4, 3)
    net = make_net("mse", seed=4)
    history = net.fit(
        X,
        y,
        epochs=50,
        batch_size=16,
        optimizer=densa.SGD(lr=0.05, momentum=0.9),
        shuffle=False,
        early_stopping=densa.EarlyStopping(patience=3, min_delta=1e9, monitor="loss"),
        progress=False,
    )
    assert history.stopped_early
    assert history.best_epoch == 0
    assert len(history) == 1 + 3 + 1
    one_epoch = make_net("mse", seed=4)
    one_epoch.fit(
        X,
        y,
        epochs=1,
        batch_size=16,
        optimizer=densa.SGD(lr=0.05, momentum=0.9),
        shuffle=False,
        progress=False,
    )
    for a, b in zip(params(net), params(one_epoch)):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_as_patience_and_on_training_loss():
    X, y = make_data("real", 64, 4, 3)
    net = make_net("mse", seed=0)
    # An int is the patience; without validation data the training loss is watched, and
    # a steadily decreasing loss never stops training.
    history = net.fit(
        X, y, epochs=8, early_stopping=2, optimizer=densa.SGD(lr=0.01), progress=False
    )
    assert not history.stopped_early
    assert len(history) == 8
    assert history.best_epoch == 7
    assert all(b < a for a, b in zip(history.loss, history.loss[1:]))
    with pytest.raises(ValueError, match="early stopping on val_loss needs validation data"):
        net.fit(
            X, y, epochs=2, early_stopping=densa.EarlyStopping(monitor="val_loss"), progress=False
        )
    with pytest.raises(ValueError, match="patience must be >= 0"):
        densa.EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match="min_delta must be a finite number >= 0"):
        densa.EarlyStopping(min_delta=float("nan"))


# ----- continued training -----------------------------------------------------------------
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
@pytest.mark.parametrize("backend", BACKENDS)
def test_two_fits_continue_like_one(backend, opt_name, shuffle):
    X, y = _classification()
    kw = {"batch_size": 16, "shuffle": shuffle, "progress": False}
    split = make_net("softmax_cross_entropy", backend=backend)
    opt = OPTIMIZERS[opt_name]()
    h1 = split.fit(X, y, epochs=3, optimizer=opt, **kw)
    h2 = split.fit(X, y, epochs=3, optimizer=opt, **kw)  # the same object: state kept
    whole = make_net("softmax_cross_entropy", backend=backend)
    h = whole.fit(X, y, epochs=6, optimizer=OPTIMIZERS[opt_name](), **kw)
    # float64; bitwise except for the native Adam step's ulp-level dependence on memory
    # alignment (see test_native_adam_step_does_not_depend_on_alignment).
    assert max_rel_diff(params(split), params(whole)) <= 1e-12
    assert max_rel_diff(optimizer_state(opt), optimizer_state(whole.optimizer)) <= 1e-12
    np.testing.assert_allclose(h1.loss + h2.loss, h.loss, rtol=1e-12)
    if opt.kind == "adam":
        assert int(opt.step[0]) == 6 * 8  # 120 samples / 16 → 8 batches per epoch


def _assert_as_one_fit(net, X, y, opt_name, epochs, kw):
    """net's parameters are those of one fit of `epochs` epochs from a fresh optimizer."""
    whole = make_net("softmax_cross_entropy")
    whole.fit(X, y, epochs=epochs, optimizer=OPTIMIZERS[opt_name](), **kw)
    assert max_rel_diff(params(net), params(whole)) <= 1e-12


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_fit_without_optimizer_continues_with_the_networks_own(opt_name):
    X, y = _classification()
    kw = {"batch_size": 16, "shuffle": False, "progress": False}
    net = make_net("softmax_cross_entropy")
    opt = OPTIMIZERS[opt_name]()
    net.fit(X, y, epochs=2, optimizer=opt, **kw)
    net.fit(X, y, epochs=2, **kw)
    assert net.optimizer is opt
    _assert_as_one_fit(net, X, y, opt_name, 4, kw)


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_a_fresh_optimizer_starts_from_zero_state(opt_name):
    X, y = _classification()
    kw = {"batch_size": 16, "shuffle": False, "progress": False}
    net = make_net("softmax_cross_entropy")
    net.fit(X, y, epochs=3, optimizer=OPTIMIZERS[opt_name](), **kw)
    after_first = params(net)
    fresh = OPTIMIZERS[opt_name]()
    net.fit(X, y, epochs=3, optimizer=fresh, **kw)
    assert net.optimizer is fresh
    # The same as starting a new network, from the same parameters, with a new optimizer...
    restart = make_net("softmax_cross_entropy")
    for layer, (W, b) in zip(restart.layers, zip(after_first[::2], after_first[1::2])):
        layer.W, layer.b = W, b
    restart.fit(X, y, epochs=3, optimizer=OPTIMIZERS[opt_name](), **kw)
    assert max_rel_diff(params(net), params(restart)) <= 1e-12
    if fresh.kind == "adam":
        assert int(fresh.step[0]) == 3 * 8
    # ...and not the same as continuing with the kept state.
    whole = make_net("softmax_cross_entropy")
    whole.fit(X, y, epochs=6, optimizer=OPTIMIZERS[opt_name](), **kw)
    assert max_rel_diff(params(net), params(whole)) > 1e-3


def test_optimizer_reset_forgets_state():
    X, y = _classification()
    kw = {"batch_size": 16, "shuffle": False, "progress": False}
    net = make_net("softmax_cross_entropy")
    opt = densa.Adam(lr=0.01)
    net.fit(X, y, epochs=2, optimizer=opt, **kw)
    assert int(opt.step[0]) == 16
    assert np.any(opt.state_W[0][0] != 0)
    opt.reset()
    net.fit(X, y, epochs=1, optimizer=opt, **kw)
    assert int(opt.step[0]) == 8


def test_optimizer_by_name_is_a_new_default_optimizer():
    X, y = _classification()
    net = make_net("softmax_cross_entropy")
    net.fit(X, y, epochs=1, optimizer="adam", progress=False)
    assert isinstance(net.optimizer, densa.Adam)
    assert net.optimizer.lr == 1e-3
    with pytest.raises(ValueError, match="optimizer: unknown name 'rmsprop'"):
        net.fit(X, y, epochs=1, optimizer="rmsprop", progress=False)
    with pytest.raises(TypeError, match=r"optimizer must be densa\.SGD, densa\.Adam or a name"):
        net.fit(X, y, epochs=1, optimizer=0.1, progress=False)


# ----- an optimizer's state belongs to one network ------------------------------------------
_KW = {"batch_size": 16, "shuffle": False, "progress": False}
_ANOTHER = r"holds its (momentum|moments and step count) from training another network"


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_an_optimizer_holding_another_networks_state_is_refused(opt_name):
    X, y = _classification()
    opt = OPTIMIZERS[opt_name]()
    a = make_net("softmax_cross_entropy")
    a.fit(X, y, epochs=2, optimizer=opt, **_KW)
    b = make_net("softmax_cross_entropy")
    before = params(b)
    with pytest.raises(ValueError, match=_ANOTHER) as info:
        b.fit(X, y, epochs=2, optimizer=opt, **_KW)
    message = str(info.value)
    assert f"densa.{opt!r} for the same settings with fresh state" in message
    assert "copy.deepcopy(optimizer) for a copy of this state" in message
    # Refused before anything changed: b, and the state a continues from.
    assert max_rel_diff(params(b), before) == 0
    assert b.optimizer is None
    assert b.history is None
    # Through net.optimizer too (no optimizer given): named as such.
    b.optimizer = a.optimizer
    with pytest.raises(ValueError, match=r"net\.optimizer holds its"):
        b.fit(X, y, epochs=1, **_KW)
    # a continues with its own, as if it had trained for 4 epochs at once.
    a.fit(X, y, epochs=2, optimizer=opt, **_KW)
    _assert_as_one_fit(a, X, y, opt_name, 4, _KW)


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_a_copy_of_an_optimizer_is_adopted_by_the_network_it_trains(opt_name):
    X, y = _classification()
    a = make_net("softmax_cross_entropy")
    a.fit(X, y, epochs=2, optimizer=OPTIMIZERS[opt_name](), **_KW)
    b = make_net("softmax_cross_entropy")
    for la, lb in zip(a.layers, b.layers):
        lb.W, lb.b = la.W, la.b
    state = copy.deepcopy(a.optimizer)
    b.fit(X, y, epochs=2, optimizer=state, **_KW)  # continues from a copy of a's state
    a.fit(X, y, epochs=2, **_KW)
    assert max_rel_diff(params(a), params(b)) <= 1e-12
    assert b.optimizer is state
    assert a.optimizer is not state
    with pytest.raises(ValueError, match=_ANOTHER):  # the copy is b's now
        a.fit(X, y, epochs=1, optimizer=state, **_KW)


def test_an_optimizer_without_state_may_train_any_network():
    X, y = _classification()
    plain = densa.SGD(lr=0.05)  # no momentum: no state to carry over
    make_net("softmax_cross_entropy").fit(X, y, epochs=1, optimizer=plain, **_KW)
    make_net("softmax_cross_entropy").fit(X, y, epochs=1, optimizer=plain, **_KW)
    adam = densa.Adam(lr=0.01)
    make_net("softmax_cross_entropy").fit(X, y, epochs=1, optimizer=adam, **_KW)
    adam.reset()  # forgotten: a new start, on any network
    other = make_net("softmax_cross_entropy")
    other.fit(X, y, epochs=1, optimizer=adam, **_KW)
    assert int(adam.step[0]) == 8
    assert other.optimizer is adam


def test_an_optimizer_does_not_keep_its_network_alive():
    X, y = _classification()
    opt = densa.Adam(lr=0.01)
    net = make_net("softmax_cross_entropy")
    net.fit(X, y, epochs=1, optimizer=opt, **_KW)
    alive = weakref.ref(net)
    del net
    gc.collect()
    assert alive() is None
    # Its state is still another network's.
    with pytest.raises(ValueError, match=_ANOTHER + r" \(since deleted\)"):
        make_net("softmax_cross_entropy").fit(X, y, epochs=1, optimizer=opt, **_KW)


def _saved_and_loaded(net, path):
    net.save(path / "net.npz")
    return densa.Network.load(path / "net.npz")


@pytest.mark.parametrize(
    "duplicate",
    [
        lambda net, path: pickle.loads(pickle.dumps(net)),
        lambda net, path: copy.deepcopy(net),
        _saved_and_loaded,
    ],
    ids=["pickle", "deepcopy", "save-load"],
)
def test_a_copied_network_continues_with_its_own_optimizer(duplicate, tmp_path):
    X, y = _classification()
    net = make_net("softmax_cross_entropy")
    net.fit(X, y, epochs=2, optimizer=densa.Adam(lr=0.01), **_KW)
    twin = duplicate(net, tmp_path)
    assert twin.optimizer is not net.optimizer
    twin.fit(X, y, epochs=2, **_KW)
    net.fit(X, y, epochs=2, **_KW)
    # Bit for bit: pickles and model files hold the parameters and state exactly.
    assert max_rel_diff(params(twin), params(net)) == 0
    assert max_rel_diff(optimizer_state(twin.optimizer), optimizer_state(net.optimizer)) == 0
    with pytest.raises(ValueError, match=_ANOTHER):
        net.fit(X, y, epochs=1, optimizer=twin.optimizer, **_KW)


def test_a_loaded_optimizer_belongs_to_the_loaded_network(tmp_path):
    # Even before the loaded network trains: load marks the state as its own.
    X, y = _classification()
    net = make_net("softmax_cross_entropy")
    net.fit(X, y, epochs=1, optimizer=densa.Adam(lr=0.01), **_KW)
    loaded = _saved_and_loaded(net, tmp_path)
    other = make_net("softmax_cross_entropy")
    with pytest.raises(ValueError, match=_ANOTHER):
        other.fit(X, y, epochs=1, optimizer=loaded.optimizer, **_KW)


# ----- history ----------------------------------------------------------------------------
def test_history_with_validation_data():
    X, y = _classification()
    Xv, yv = _classification(n=40, seed=3)
    net = make_net("softmax_cross_entropy")
    seen = []
    history = net.fit(
        X,
        y,
        epochs=4,
        validation_data=(Xv, yv),
        progress=False,
        on_epoch_end=lambda epoch, logs: seen.append((epoch, logs)),
    )
    assert history is net.history
    assert len(history) == history.epochs == 4
    for key in ("loss", "val_loss", "val_accuracy", "seconds"):
        assert len(history[key]) == 4, key
    assert all(s > 0 for s in history.seconds)
    assert all(np.isfinite(history.loss))
    assert all(0.0 <= a <= 1.0 for a in history.val_accuracy)
    # The last validation entries are those of the final parameters.
    scores = net.evaluate(Xv, yv)
    assert history.val_loss[-1] == pytest.approx(scores["loss"], rel=1e-12)
    assert history.val_accuracy[-1] == scores["accuracy"]
    assert [e for e, _ in seen] == [0, 1, 2, 3]
    assert seen[2][1]["val_loss"] == history.val_loss[2]
    assert set(seen[0][1]) == {"loss", "val_loss", "val_accuracy", "seconds"}
    assert not history.stopped_early
    assert history.best_epoch is None


def _split_and_explicit(n, fraction, n_kept, seed, epochs, batch_size):
    """The same network fitted with ``validation_split=fraction`` and with the last
    ``n - n_kept`` rows given as ``validation_data``: (X, y, split, its history,
    explicit, its history)."""
    X, y = _classification(n=n)
    kw = {"epochs": epochs, "batch_size": batch_size, "optimizer": None, "progress": False}
    split = make_net("softmax_cross_entropy", seed=seed)
    h_split = split.fit(X, y, validation_split=fraction, **kw)
    explicit = make_net("softmax_cross_entropy", seed=seed)
    held_out = (X[n_kept:], y[n_kept:])
    h_explicit = explicit.fit(X[:n_kept], y[:n_kept], validation_data=held_out, **kw)
    return X, y, split, h_split, explicit, h_explicit


def test_history_with_validation_split_holds_out_the_last_rows():
    X, y, split, h_split, explicit, h_explicit = _split_and_explicit(100, 0.2, 80, 9, 3, 10)
    assert len(h_split.val_loss) == len(h_split.val_accuracy) == 3
    assert h_split.loss == h_explicit.loss
    assert h_split.val_loss == h_explicit.val_loss
    assert h_split.val_accuracy == h_explicit.val_accuracy
    for a, b in zip(params(split), params(explicit)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="validation_split must lie in"):
        split.fit(X, y, validation_split=1.0, progress=False)
    with pytest.raises(ValueError, match="not both"):
        split.fit(X, y, validation_split=0.2, validation_data=(X, y), progress=False)


def test_history_for_regression_has_no_accuracy():
    X, y = make_data("real", 50, 4, 3)
    history = make_net("mse").fit(X, y, epochs=2, validation_split=0.2, progress=False)
    assert len(history.val_loss) == 2
    assert history.val_accuracy == []
    assert history["val_accuracy"] == []


def test_zero_epochs_changes_nothing():
    X, y = _classification()
    net = make_net("softmax_cross_entropy")
    before = params(net)
    history = net.fit(X, y, epochs=0, progress=False)
    assert len(history) == 0
    for a, b in zip(params(net), before):
        np.testing.assert_array_equal(a, b)


# ----- divergence -------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_floating_point_errors_turned_on_still_give_training_diverged_and_inf_outputs(backend):
    # A user who made NumPy raise on overflow (np.errstate(all="raise")) still gets fit's
    # own error, and predict's inf: the reference kernels compute with NumPy's warnings
    # off (reference/_quiet.py; network._backend_quiet adds the same around them), the
    # native backend computes nothing in NumPy there.
    X, y = make_data("real", 64, 4, 3)
    net = make_net("mse", dtype="float32", backend=backend)
    with np.errstate(all="raise"):
        with pytest.raises(densa.TrainingDivergedError):
            net.fit(
                100 * X,
                y,
                epochs=5,
                batch_size=8,
                optimizer=densa.SGD(lr=1e3),
                shuffle=False,
                progress=False,
            )
        for layer in net.layers:
            layer.W[...] = 1e30  # finite, but every output overflows float32
        out = net.predict_raw(X)
    assert np.isinf(out).any()


@pytest.mark.parametrize("backend", BACKENDS)
def test_absurd_learning_rate_raises_training_diverged(backend):
    X, y = make_data("real", 64, 4, 3)
    X = 100 * X
    net = make_net("mse", dtype="float32", backend=backend)
    with pytest.raises(densa.TrainingDivergedError, match=r"epoch 1, batch (\d+) of 8") as info:
        net.fit(
            X, y, epochs=5, batch_size=8, optimizer=densa.SGD(lr=1e3), shuffle=False, progress=False
        )
    assert isinstance(info.value, FloatingPointError)
    assert "try a smaller learning rate)" in str(info.value)
    assert "check_finite" not in str(info.value)  # the data was checked
    for p in params(net):
        assert np.all(np.isfinite(p))
    # "The parameters are those before that batch": the same as training on the batches
    # before it only.
    bad = int(re.search(r"batch (\d+) of", str(info.value)).group(1))
    assert bad >= 2
    before = make_net("mse", dtype="float32", backend=backend)
    before.fit(
        X[: 8 * (bad - 1)],
        y[: 8 * (bad - 1)],
        epochs=1,
        batch_size=8,
        optimizer=densa.SGD(lr=1e3),
        shuffle=False,
        progress=False,
    )
    for a, b in zip(params(net), params(before)):
        np.testing.assert_array_equal(a, b)
    # No stale state: no epoch completed, and fit can be called again (no lock is left
    # held); at these parameters the loss on the data is already inf in float32.
    assert len(net.history) == 0
    with pytest.raises(densa.TrainingDivergedError, match="epoch 1, batch 1 of 1"):
        net.fit(X[:8], y[:8], epochs=1, batch_size=8, progress=False)


# ----- concurrency ------------------------------------------------------------------------
def test_a_second_fit_while_one_runs_is_refused():
    X, y = _classification()
    net = make_net("softmax_cross_entropy", backend="reference")
    started, release = threading.Event(), threading.Event()
    errors = []

    def hold(epoch, logs):  # keeps the first fit running until the main thread has tried
        started.set()
        release.wait(timeout=30)

    def background():
        try:
            net.fit(X, y, epochs=3, progress=False, on_epoch_end=hold)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    worker = threading.Thread(target=background)
    worker.start()
    try:
        assert started.wait(timeout=30)
        with pytest.raises(RuntimeError, match="fit is already running on this network"):
            net.fit(X, y, epochs=1, progress=False)
    finally:
        release.set()
        worker.join(timeout=60)
    assert not worker.is_alive()
    assert errors == []
    assert len(net.history) == 3  # the refused call did not replace the running fit's
    net.fit(X, y, epochs=1, progress=False)  # once it is done, fit works again
    assert len(net.history) == 1


def test_fit_called_from_its_own_callback_is_refused_as_such():
    X, y = _classification()
    net = make_net("softmax_cross_entropy")

    def nested(epoch, logs):
        net.fit(X, y, epochs=1, progress=False)

    with pytest.raises(
        RuntimeError,
        match=r"fit was called again from inside fit \(e\.g\. from on_epoch_end\); a "
        "network runs one fit at a time",
    ):
        net.fit(X, y, epochs=2, progress=False, on_epoch_end=nested)
    assert len(net.history) == 1  # the outer fit's first epoch
    net.fit(X, y, epochs=1, progress=False)  # the lock was released


# ----- boundaries found by mutation testing -----------------------------------------------------
def test_a_loss_that_stays_equal_is_no_improvement_for_early_stopping():
    """Guards EarlyStopping's strict "lowers the best loss by more than min_delta" rule."""
    # lr = 1e-300 moves no parameter by even one ulp, so every epoch's loss is the same
    # number: epoch 0 sets the best, epochs 1, 2, 3 do not improve on it, and with
    # patience 2 training stops after the third of them, keeping epoch 0 as the best.
    X, y = make_data("real", 40, 4, 3)
    net = make_net("mse")
    history = net.fit(
        X,
        y,
        epochs=10,
        batch_size=8,
        optimizer=densa.SGD(lr=1e-300),
        shuffle=False,
        early_stopping=densa.EarlyStopping(patience=2, monitor="loss"),
        progress=False,
    )
    assert len(set(history.loss)) == 1  # the premise: the loss never changed
    assert history.stopped_early
    assert len(history.loss) == 4
    assert history.best_epoch == 0


def test_validation_split_holds_out_the_nearest_whole_number_of_rows():
    """Guards the size of the validation_split hold-out: 38% of 10 rows is 4 rows, not 3."""
    _, _, split, h_split, explicit, h_explicit = _split_and_explicit(10, 0.38, 6, 4, 2, 3)
    assert h_split.loss == h_explicit.loss
    assert h_split.val_loss == h_explicit.val_loss
    for a, b in zip(params(split), params(explicit)):
        np.testing.assert_array_equal(a, b)


def test_a_copied_adam_on_a_network_of_other_shapes_restarts_its_step_count():
    """Guards Optimizer.prepare: new zero state for other shapes also resets Adam's t."""
    X, y = make_data("real", 48, 4, 3)
    trained = densa.Adam(lr=0.01)
    make_net("mse").fit(X, y, epochs=3, batch_size=16, optimizer=trained, progress=False)
    assert int(trained.step[0]) == 9
    copied = copy.deepcopy(trained)  # state without an owner: adopted by the next network
    X2, y2 = make_data("real", 48, 5, 2, seed=1)
    shape = {"sizes": (5, 6, 2), "activations": ("tanh", "identity"), "backend": "reference"}
    with_copy = make_net("mse", **shape)
    with_copy.fit(X2, y2, epochs=1, batch_size=16, optimizer=copied, progress=False)
    fresh = make_net("mse", **shape)
    fresh.fit(X2, y2, epochs=1, batch_size=16, optimizer=densa.Adam(lr=0.01), progress=False)
    assert int(copied.step[0]) == 3  # three batches of 16, counted from zero
    for a, b in zip(params(with_copy), params(fresh)):
        np.testing.assert_array_equal(a, b)
