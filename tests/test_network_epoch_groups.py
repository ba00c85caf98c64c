"""``fit`` runs several short epochs in one trainer call when nothing happens between
them (no validation, callback, early stopping or progress bar). It must train exactly as
epoch-by-epoch training: the same parameters bit for bit, the same history, the same
generator state afterwards, and the same report when training diverges."""

from __future__ import annotations

import numpy as np
import pytest

import densa
from densa.network import Network
from network_cases import BACKENDS, make_data, make_net, optimizer_state, params


@pytest.fixture
def group_calls(monkeypatch):
    """How many epoch groups fit ran (a list that grows by the group sizes)."""
    calls: list[int] = []
    original = Network._fit_epoch_group
    # The ordinary path's groups: a fit short enough would otherwise be one native call
    # (Network._fit_once, tests/test_fit_once.py).
    monkeypatch.setattr(Network, "_fit_once", lambda self, *args: False)

    def spy(self, trainer, Xa, T, batch_size, group, *rest):
        calls.append(group)
        return original(self, trainer, Xa, T, batch_size, group, *rest)

    monkeypatch.setattr(Network, "_fit_epoch_group", spy)
    return calls


def _fit_twice(backend, dtype, shuffle, epochs, lr=0.05, X=None, y=None):
    """The same fit, grouped (plain) and epoch by epoch (a no-op on_epoch_end)."""
    if X is None:
        X, y = make_data("labels", 90, 4, 3, seed=1)
    nets = {}
    outcome = {}
    for mode in ("grouped", "one by one"):
        net = make_net("softmax_cross_entropy", dtype=dtype, backend=backend, seed=3)
        callback = None if mode == "grouped" else (lambda epoch, logs: None)
        try:
            net.fit(
                X,
                y,
                epochs=epochs,
                batch_size=16,
                optimizer=densa.SGD(lr=lr, momentum=0.9),
                shuffle=shuffle,
                progress=False,
                on_epoch_end=callback,
            )
            outcome[mode] = None
        except densa.TrainingDivergedError as exc:
            outcome[mode] = (str(exc), exc.epoch, exc.batch)
        nets[mode] = net
    return nets, outcome


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("backend", BACKENDS)
def test_grouped_epochs_train_exactly_as_one_by_one(backend, dtype, shuffle, group_calls):
    nets, outcome = _fit_twice(backend, dtype, shuffle, epochs=25)
    assert outcome == {"grouped": None, "one by one": None}
    # Grouping did happen (from the first epoch on, sized by the assumed costs, then by
    # the epochs' times), and only without the callback.
    assert group_calls
    assert sum(group_calls) <= 25
    a, b = nets["grouped"], nets["one by one"]
    for p, q in zip(
        params(a) + optimizer_state(a.optimizer), params(b) + optimizer_state(b.optimizer)
    ):
        np.testing.assert_array_equal(p, q)
    assert a.history.loss == b.history.loss
    assert len(a.history.seconds) == len(b.history.seconds) == 25
    assert all(s > 0 for s in a.history.seconds)
    # The generator stands where epoch-by-epoch training left it.
    assert a.rng.bit_generator.state == b.rng.bit_generator.state


@pytest.mark.parametrize("backend", BACKENDS)
def test_divergence_inside_a_group_is_reported_as_one_by_one(backend, group_calls):
    """A learning rate too large: training diverges a few epochs in (with these data
    and sample orders, on both backends), inside a group. Both ways name the same epoch
    and batch, keep the same parameters and history, and leave the generator in the
    same state."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((90, 4))
    y = rng.integers(0, 3, 90)
    nets, outcome = _fit_twice(backend, "float32", True, epochs=400, lr=50.0, X=X, y=y)
    assert outcome["grouped"] is not None, "expected this learning rate to diverge"
    assert outcome["grouped"] == outcome["one by one"]
    assert outcome["grouped"][1] > 2  # past the first epochs: inside a group
    assert group_calls
    a, b = nets["grouped"], nets["one by one"]
    for p, q in zip(params(a), params(b)):
        np.testing.assert_array_equal(p, q)
    assert a.history.loss == b.history.loss
    assert a.rng.bit_generator.state == b.rng.bit_generator.state


@pytest.mark.parametrize("first_group", [True, False], ids=["first group", "later group"])
def test_an_interrupt_inside_a_group_goes_back_to_where_the_group_started(monkeypatch, first_group):
    """Under a SIGINT handler that raises at once (fit keeps Python's own handler from
    doing so), KeyboardInterrupt can arrive inside the trainer call. The group's epochs
    are then in no history: fit puts back the parameters, optimizer state and generator
    of the group's start, so that what remains is consistent: no epoch when the group
    was the fit's first call, one completed epoch when the first epoch ran alone."""
    import densa._pacing
    from densa.reference.training import Trainer

    if not first_group:  # the first epoch runs alone, then the group
        monkeypatch.setattr(densa._pacing, "first_group", lambda *args: 1)

    original = Trainer.run_epochs

    def interrupted(self, X, T, orders, batch_size):
        original(self, X, T, orders[:2], batch_size)  # two epochs trained, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "run_epochs", interrupted)
    X, y = make_data("labels", 90, 4, 3, seed=1)
    net = make_net("softmax_cross_entropy", backend="reference", seed=3)
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, epochs=20, batch_size=16, optimizer=densa.SGD(0.05, momentum=0.9))
    once = make_net("softmax_cross_entropy", backend="reference", seed=3)
    done = 0 if first_group else 1
    once.fit(X, y, epochs=done, batch_size=16, optimizer=densa.SGD(0.05, momentum=0.9))
    assert len(net.history.loss) == len(net.history.seconds) == done
    assert net.history.loss == once.history.loss
    for p, q in zip(
        params(net) + optimizer_state(net.optimizer), params(once) + optimizer_state(once.optimizer)
    ):
        np.testing.assert_array_equal(p, q)
    assert net.rng.bit_generator.state == once.rng.bit_generator.state


def test_groups_hold_a_bounded_number_of_order_entries(monkeypatch, group_calls):
    """Each group holds its epochs' sample orders at once: their total is capped, so a
    fast epoch over many samples cannot make fit allocate much memory for them."""
    import densa._pacing

    monkeypatch.setattr(densa._pacing, "GROUP_ORDER_ENTRIES", 300)
    X, y = make_data("labels", 90, 4, 3, seed=1)  # 90 samples: at most 3 epochs per group
    net = make_net("softmax_cross_entropy", seed=3)
    net.fit(X, y, epochs=20, batch_size=16, optimizer=densa.SGD(0.05), progress=False)
    assert group_calls
    assert max(group_calls) == 3
    assert len(net.history.loss) == 20


def _overflow_at_epoch_3s_last_batch(net, monkeypatch):
    """Make net's trainers set W[0, 0] = inf after the last batch of epoch 3 of 5-batch
    epochs: after a group's call (which ends with epoch 3 here), or after the chunk that
    ends epoch 3."""
    make = net._backend.Trainer

    class Overflowing:
        def __init__(self, *args):
            self._trainer = make(*args)

        def run_epochs(self, *args):
            result = self._trainer.run_epochs(*args)
            net.layers[0].W[0, 0] = np.inf
            return result

        def run(self, X, T, order, batch_size, first_batch, n_batches):
            result = self._trainer.run(X, T, order, batch_size, first_batch, n_batches)
            if len(net.history.loss) == 2 and first_batch + result[2] == 5:
                net.layers[0].W[0, 0] = np.inf
            return result

        def __getattr__(self, name):
            return getattr(self._trainer, name)

    monkeypatch.setattr(net._backend, "Trainer", Overflowing)
    return make


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_overflow_at_the_last_batch_of_a_group_is_reported_as_one_by_one(backend, monkeypatch):
    """An update that overflows at the last batch of the group's last epoch is caught by
    the check after it, either way: the same epoch and batch in the report, and that
    epoch is not among the completed ones in the history. (What is put back differs: the
    copy before the group, or the one after the epoch before, as the message says.)"""
    import densa._pacing

    monkeypatch.setattr(densa._pacing, "CHUNK_SECONDS", 10.0)  # one group, whatever the load
    # The ordinary path's group (Network._fit_once's own test: tests/test_fit_once.py).
    monkeypatch.setattr(Network, "_fit_once", lambda self, *args: False)
    X, y = make_data("real", 40, 4, 3, seed=5)
    outcome = {}
    for mode in ("grouped", "one by one"):
        net = make_net("mse", backend=backend, seed=1)
        make = _overflow_at_epoch_3s_last_batch(net, monkeypatch)
        callback = None if mode == "grouped" else (lambda epoch, logs: None)
        with pytest.raises(densa.TrainingDivergedError) as info:
            net.fit(
                X,
                y,
                epochs=3,
                batch_size=8,
                optimizer=densa.SGD(0.01),
                progress=False,
                on_epoch_end=callback,
            )
        assert "the parameters became NaN or inf (an update overflowed)" in str(info.value)
        assert len(net.history.seconds) == 2
        outcome[mode] = (info.value.epoch, info.value.batch, list(net.history.loss))
        monkeypatch.setattr(net._backend, "Trainer", make)
    assert outcome["grouped"][:2] == (3, 5)
    assert outcome["grouped"] == outcome["one by one"]
