"""Backpropagation through whole networks: finite differences, the derivation's identities,
native against reference, and ``densa.check_gradients`` itself."""

from __future__ import annotations

import numpy as np
import pytest

import densa
from densa import gradcheck
from densa.reference import activation, loss_backward
from network_cases import BACKENDS, LOSS_CASES, make_data, make_net, params

# ≥ 3 layers, and between them every activation family: saturating, relu-like, smooth.
ARCHITECTURES = (
    ((5, 8, 7, 6, 3), ("tanh", "relu", "sigmoid", "identity")),
    ((5, 9, 6, 3), ("gelu", "elu", "identity")),
    ((5, 7, 7, 3), ("softplus", "leaky_relu", "identity")),
)


def _case(loss, kind, arch, dtype="float64", backend="native", n=24, seed=0):
    sizes, acts = arch
    net = make_net(loss, sizes=sizes, activations=acts, dtype=dtype, backend=backend, seed=seed)
    X, y = make_data(kind, n, sizes[0], sizes[-1], seed=seed + 1)
    return net, X, y


def _loss64(net, X, T, Ws, bs):
    """J in float64 with the given parameters, by the reference (independent of gradcheck)."""
    y = X
    for W, b, layer in zip(Ws, bs, net.layers):
        _, y = densa.reference.dense_forward(W, b, y, layer.activation)
    return densa.reference.loss_forward(net.loss, y, T)


# ----- finite differences -----------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("loss", "kind"), LOSS_CASES)
@pytest.mark.parametrize("arch", ARCHITECTURES, ids=["tanh-relu-sigmoid", "gelu-elu", "softplus"])
def test_check_gradients_passes_for_every_loss(backend, loss, kind, arch):
    net, X, y = _case(loss, kind, arch, backend=backend)
    report = densa.check_gradients(net, X, y)
    assert isinstance(report, densa.GradientReport)
    assert len(report) == len(net.layers)
    # float64 central differences with eps=1e-6 are good to ~1e-9 relative (gradcheck's
    # comment); 1e-7 is 100x tighter than the default verdict and still has margin.
    assert report.max_rel < 1e-7, str(report)
    assert report.ok, str(report)
    for j, layer in enumerate(net.layers):
        assert report[j].dW.checked == report[j].dW.total == layer.W.size
        assert report[j].db.checked == report[j].db.total == layer.b.size


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("loss", "kind"), LOSS_CASES)
def test_gradients_match_finite_differences_directly(backend, loss, kind):
    """Without check_gradients: perturb each parameter of a float64 network and difference
    J computed by the reference, then compare with net.gradients (the active backend)."""
    net, X, y = _case(loss, kind, ARCHITECTURES[0], backend=backend)
    Xa, T = net._prepare_xy(X, y)
    Ws = [layer.W.copy() for layer in net.layers]
    bs = [layer.b.copy() for layer in net.layers]
    grads = net.gradients(X, y)
    eps = 1e-6
    for j in range(len(net.layers)):
        for name, theta in (("dW", Ws[j]), ("db", bs[j])):
            numeric = np.empty(theta.size)
            flat = theta.reshape(-1)
            for i in range(theta.size):
                orig = flat[i]
                flat[i] = orig + eps
                plus = _loss64(net, Xa, T, Ws, bs)
                flat[i] = orig - eps
                minus = _loss64(net, Xa, T, Ws, bs)
                flat[i] = orig
                numeric[i] = (plus - minus) / (2 * eps)
            analytic = grads[j][name].reshape(-1)
            scale = np.max(np.abs(numeric))
            assert scale > 1e-6, f"layer {j} {name}: a vanishing gradient checks nothing"
            np.testing.assert_allclose(
                analytic, numeric, rtol=0, atol=1e-7 * scale, err_msg=f"layer {j} {name}"
            )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("loss", "kind"), LOSS_CASES)
def test_check_gradients_on_float32_networks(backend, loss, kind):
    """A float32 network is checked against float64 differences of its own function, so
    the only error left is the float32 rounding of backpropagation itself."""
    net, X, y = _case(loss, kind, ARCHITECTURES[1], dtype="float32", backend=backend)
    report = densa.check_gradients(net, X, y)
    assert report.dtype == "float32"
    assert report.ok, str(report)
    # Well above float64's ~1e-9 (float32 rounding is visible) and well below 1e-4.
    assert 1e-9 < report.max_rel < 1e-5, str(report)


# ----- the derivation's quantities --------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("loss", "kind"), LOSS_CASES)
def test_gradients_shapes_and_derivation_identities(backend, loss, kind):
    sizes, acts = ARCHITECTURES[0]
    n = 11
    net, X, y = _case(loss, kind, ARCHITECTURES[0], backend=backend, n=n)
    before = params(net)
    grads = net.gradients(X, y)
    assert len(grads) == len(net.layers)
    Xa, T = net._prepare_xy(X, y)
    for j, (g, layer) in enumerate(zip(grads, net.layers)):
        m_in, m_out = sizes[j], sizes[j + 1]
        expected = {
            "last_input": (n, m_in),
            "z": (n, m_out),
            "dy": (n, m_out),
            "dz": (n, m_out),
            "dW": (m_out, m_in),
            "db": (m_out,),
            "dx": (n, m_in),
        }
        for name, shape in expected.items():
            assert g[name].shape == shape, f"layer {j} {name}"
            assert g[name].dtype == np.float64, f"layer {j} {name}"
            assert getattr(g, name) is g[name]
        f = activation(acts[j])
        tol = {"rtol": 1e-12, "atol": 1e-15}
        # z_j = W y_{j-1} + b, dz_j = dy_j ⊙ f'(z_j), dW = dzᵀ·y_{j-1} (rows are samples),
        # db = Σ_samples dz, dx = dz·W.
        np.testing.assert_allclose(g.z, g.last_input @ layer.W.T + layer.b, **tol)
        np.testing.assert_allclose(g.dz, g.dy * f.df(g.z), **tol)
        np.testing.assert_allclose(g.dW, g.dz.T @ g.last_input, **tol)
        np.testing.assert_allclose(g.db, g.dz.sum(axis=0), **tol)
        np.testing.assert_allclose(g.dx, g.dz @ layer.W, **tol)
        if j > 0:  # the layer's input is the previous layer's output, f(z_{j-1})
            np.testing.assert_allclose(g.last_input, activation(acts[j - 1]).f(grads[j - 1].z))
            # dy_{j-1} = dx_{j-1}: what layer j sends down is what layer j-1 receives
            np.testing.assert_array_equal(grads[j - 1].dy, g.dx)
    np.testing.assert_array_equal(grads[0].last_input, Xa)
    # The output layer's dy is the cost gradient dJ/dy_K.
    out = activation(acts[-1]).f(grads[-1].z)
    _, dy_K = loss_backward(loss, out, T)
    np.testing.assert_allclose(grads[-1].dy, dy_K, rtol=1e-12, atol=1e-16)
    # Inspection does not train.
    for a, b in zip(params(net), before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("loss", "kind"), LOSS_CASES)
def test_native_and_reference_gradients_agree(dtype, loss, kind):
    net, X, y = _case(loss, kind, ARCHITECTURES[1], dtype=dtype, n=32)
    native = net.gradients(X, y)
    net.backend = "reference"
    ref = net.gradients(X, y)
    # Same formulas in a different summation order and with different exp/tanh code:
    # float64 agrees to ~1e-15, float32 to a few ulp of each tensor's scale.
    rtol = 1e-11 if dtype == "float64" else 1e-4
    for j, (a, b) in enumerate(zip(native, ref)):
        for name in ("last_input", "z", "dy", "dz", "dW", "db", "dx"):
            assert a[name].dtype == b[name].dtype == np.dtype(dtype)
            scale = float(np.max(np.abs(b[name])))
            np.testing.assert_allclose(
                a[name], b[name], rtol=0, atol=rtol * scale, err_msg=f"layer {j} {name}"
            )


def test_loss_from_gradients_path_equals_evaluate():
    net, X, y = _case("softmax_cross_entropy", "labels", ARCHITECTURES[0])
    Xa, T = net._prepare_xy(X, y)
    value, _ = densa.inspection.gradients(net, Xa, T)
    assert value == pytest.approx(net.evaluate(X, y)["loss"], rel=1e-13)
    assert value == pytest.approx(net.loss_value(X, y), rel=1e-13)


# ----- check_gradients as a tool ----------------------------------------------------------
def test_check_gradients_catches_a_wrong_gradient(monkeypatch):
    net, X, y = _case("mse", "real", ARCHITECTURES[0])
    true_gradients = gradcheck.inspection.gradients
    largest = np.max(np.abs(net.gradients(X, y)[1].dW))

    def off_by_one_percent(net_, X_, T_):
        value, grads = true_gradients(net_, X_, T_)
        g = grads[1]
        grads[1] = densa.LayerGradients(**{**dict(g), "dW": g.dW * 1.01})
        return value, grads

    monkeypatch.setattr(gradcheck.inspection, "gradients", off_by_one_percent)
    report = densa.check_gradients(net, X, y)
    assert not report.ok
    assert not report[1].ok
    assert not report[1].dW.ok
    assert report[1].db.ok
    assert report[0].ok
    assert report[2].ok
    j, name, worst = report.worst
    assert (j, name) == (1, "dW")
    # A 1% error is a 1% relative error (within the finite differences' 1e-9).
    assert worst.max_rel == pytest.approx(0.01, rel=1e-3)
    assert worst.max_abs == pytest.approx(0.01 * largest, rel=1e-6)
    assert "NO" in str(report)
    assert "FAILED" in str(report)


def test_check_gradients_report_is_indexable_and_prints_a_table():
    net, X, y = _case("binary_cross_entropy", "binary", ARCHITECTURES[0])
    report = densa.check_gradients(net, X, y)
    assert [lc.index for lc in report] == list(range(len(net.layers)))
    assert report[-1] is report[len(net.layers) - 1]
    for lc in report:
        assert lc["dW"] is lc.dW
        assert lc["db"] is lc.db
        for q in (lc.dW, lc.db):
            assert 0 <= q.max_abs <= q.max_rel * q.scale * (1 + 1e-12)
    with pytest.raises(KeyError, match="dz"):
        report[0]["dz"]
    assert report.loss == pytest.approx(net.evaluate(X, y)["loss"], rel=1e-13)
    text = str(report)
    lines = text.splitlines()
    # A title, rules, a header, two rows per layer, a verdict.
    assert len(lines) == 1 + 3 + 2 * len(net.layers) + 1 + 1
    header = next(line for line in lines if "max abs err" in line)
    rows = [line for line in lines if line.split()[:1] and line.split()[0].isdigit()]
    assert len(rows) == 2 * len(net.layers)
    # Errors align right under their headings, as 9-character numbers ("1.234e-09").
    for heading in ("max abs err", "max rel err"):
        end = header.index(heading) + len(heading)
        for r in rows:
            assert float(r[end - 9 : end]) >= 0, (heading, r)
            assert r[end] == " ", (heading, r)
    for lc, layer in zip(report, net.layers):
        assert repr(layer) in text
        assert f"{lc.dW.max_rel:.3e}" in text
        assert f"{lc.db.max_abs:.3e}" in text
    assert "all within tolerance" in lines[-1]


def test_check_gradients_samples_at_most_max_entries():
    net = make_net("mse", sizes=(30, 40, 20, 2), activations=("tanh", "relu", "identity"))
    X, y = make_data("real", 16, 30, 2)
    rng_state = net.rng.bit_generator.state
    before = params(net)
    report = densa.check_gradients(net, X, y, max_entries=10, seed=3)
    for lc, layer in zip(report, net.layers):
        assert lc.dW.checked == min(10, layer.W.size)
        assert lc.dW.total == layer.W.size
        assert lc.db.checked == min(10, layer.b.size)
        assert lc.db.total == layer.b.size
    assert report.ok, str(report)
    assert "10/1200" in str(report)  # layer 0's dW: 10 of 40 x 30 entries
    # Same seed, same entries, same numbers; the network is left exactly as it was.
    again = densa.check_gradients(net, X, y, max_entries=10, seed=3)
    assert [(lc.dW, lc.db) for lc in again] == [(lc.dW, lc.db) for lc in report]
    assert net.rng.bit_generator.state == rng_state
    for a, b in zip(params(net), before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"eps": 0.0}, "eps must be a finite number > 0"),
        ({"eps": -1e-6}, "eps must be a finite number > 0"),
        ({"max_entries": 0}, "max_entries must be a positive integer"),
        ({"rtol": float("nan")}, "rtol must be a finite number > 0"),
        # Named, where NumPy would say only "expected non-negative integer".
        ({"seed": -1}, "seed must be >= 0, got -1"),
    ],
)
def test_check_gradients_refuses_bad_settings(kwargs, match):
    net, X, y = _case("mse", "real", ARCHITECTURES[0])
    with pytest.raises(ValueError, match=match):
        densa.check_gradients(net, X, y, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_entries": 2.5}, "max_entries must be a positive integer or None, got float: 2.5"),
        (
            {"seed": 1.5},
            r"seed must be None, an integer >= 0 or a numpy\.random\.Generator, got float: 1\.5",
        ),
        ({"seed": True}, "seed must be None, an integer >= 0 or a numpy.random.Generator"),
    ],
)
def test_check_gradients_refuses_settings_of_the_wrong_type(kwargs, match):
    net, X, y = _case("mse", "real", ARCHITECTURES[0])
    with pytest.raises(TypeError, match=match):
        densa.check_gradients(net, X, y, **kwargs)


def test_check_gradients_takes_a_generator_as_seed():
    net, X, y = _case("mse", "real", ARCHITECTURES[0])
    by_int = densa.check_gradients(net, X, y, max_entries=2, seed=5)
    by_generator = densa.check_gradients(net, X, y, max_entries=2, seed=np.random.default_rng(5))
    assert [(lc.dW, lc.db) for lc in by_int] == [(lc.dW, lc.db) for lc in by_generator]


def test_check_gradients_refuses_what_is_not_a_network():
    with pytest.raises(TypeError, match=r"net must be a densa\.Network, got str"):
        densa.check_gradients("net", np.zeros((2, 3)), np.zeros(2))


# ----- boundaries found by mutation testing -----------------------------------------------------
def test_check_gradients_samples_entries_from_the_whole_tensor(monkeypatch):
    """Guards max_entries' random draw: a wrong last entry is caught by some seeds, not all."""
    net, X, y = _case("mse", "real", ARCHITECTURES[0])
    true_gradients = gradcheck.inspection.gradients

    def last_entry_wrong(net_, X_, T_):
        value, grads = true_gradients(net_, X_, T_)
        g = grads[1]
        dW = g.dW.copy()
        dW[-1, -1] += 1.0  # the last of layer 1's (7, 8) entries
        grads[1] = densa.LayerGradients(**{**dict(g), "dW": dW})
        return value, grads

    monkeypatch.setattr(gradcheck.inspection, "gradients", last_entry_wrong)
    assert net.layers[1].W.shape == (7, 8)
    caught = 0
    for seed in range(12):
        report = densa.check_gradients(net, X, y, max_entries=28, seed=seed)
        assert report[1].dW.checked == 28
        if not report[1].dW.ok:
            assert report[1].dW.worst_index == (6, 7)
            caught += 1
    # Half the entries drawn per seed: P(caught) = 1/2 each time.
    assert 0 < caught < 12


def test_check_gradients_allows_for_the_rounding_of_a_large_loss():
    """Guards fd_noise: a correct backprop passes when J is large beside its gradients."""
    net, X, y = _case("mse", "real", ARCHITECTURES[0])
    y = 1e4 * (y + 1)  # J ~ 2e8: J's rounding, divided by 2ε, exceeds rtol·max|grad| alone
    report = densa.check_gradients(net, X, y)
    u64 = np.finfo(np.float64).eps / 2
    assert report.fd_noise == pytest.approx(64 * u64 * abs(report.loss) / report.eps, rel=1e-12)
    assert report.ok, str(report)
    # The premise: without fd_noise, some tensor would have failed.
    assert any(
        q.max_abs > report.atol + report.rtol * q.scale for lc in report for q in (lc.dW, lc.db)
    )
