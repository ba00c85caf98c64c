"""Losses and optimizer steps: native against the reference, the loss gradients against
finite differences, and the losses at logits of ±1e4 (finite, at their known values).
"""

from __future__ import annotations

import numpy as np
import pytest

from densa import _core, native, reference
from helpers import BACKENDS, DTYPES, assert_matches

LOSSES = ("mse", "softmax_cross_entropy", "binary_cross_entropy")

backends = pytest.mark.parametrize("backend", list(BACKENDS.values()), ids=list(BACKENDS))
dtypes = pytest.mark.parametrize("dtype", DTYPES)


def _targets(rng, name, n, m, dtype, soft=False):
    """Targets of the kind each loss is meant for: one-hot rows for softmax
    cross-entropy, 0/1 entries for binary cross-entropy (or probabilities when soft)."""
    if name == "mse":
        t = rng.standard_normal((n, m))
    elif name == "softmax_cross_entropy":
        t = rng.dirichlet(np.ones(m), size=n) if soft else np.eye(m)[rng.integers(0, m, n)]
    else:
        t = rng.uniform(size=(n, m)) if soft else rng.integers(0, 2, (n, m)).astype(float)
    return t.astype(dtype)


def _shape(seed):
    rng = np.random.default_rng(seed)
    return int(rng.integers(1, 40)), int(rng.integers(1, 12))


SHAPES = [pytest.param(_shape(s), id=f"seed{s}") for s in range(4)] + [
    pytest.param((1, 5), id="N=1"),
    pytest.param((9, 1), id="m=1"),
    pytest.param((300, 10), id="N=300"),
]


@dtypes
@pytest.mark.parametrize("name", LOSSES)
def test_dy_of_a_sample_does_not_depend_on_its_batch(name, dtype):
    # The softmax works on groups of samples, one SIMD lane each, the last group through
    # a padded copy (loss.hpp); every sample must still get the same bits at any place in
    # a group, in the last one, and from a misaligned copy.
    rng = np.random.default_rng(7)
    n, m = 37, 10  # full groups (of 2 to 16 samples, by ISA and dtype) and a partial one
    out = (3 * rng.standard_normal((n, m))).astype(dtype)
    t = _targets(rng, name, n, m, dtype)
    _, dy = native.loss_backward(name, out, t)
    for j in (0, 5, 15, 16, 31, 36):
        # dy carries the batch's 1/N: compare with a batch of the same N, every sample
        # of which is sample j.
        tiled = np.repeat(out[j : j + 1], n, axis=0), np.repeat(t[j : j + 1], n, axis=0)
        _, same_n = native.loss_backward(name, *tiled)
        for row in same_n:
            np.testing.assert_array_equal(row, dy[j], err_msg=f"sample {j} at every place")
    shifted = np.empty(out.size + 1, dtype)[1:].reshape(out.shape)  # not aligned to 64 B
    shifted[...] = out
    np.testing.assert_array_equal(native.loss_backward(name, shifted, t)[1], dy)


@pytest.mark.parametrize("shape", SHAPES)
@dtypes
@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("soft", [False, True], ids=["hard", "soft"])
def test_loss_with_a_row_per_sample_gives_the_same_bits(name, dtype, shape, soft):
    # The hidden split holds its output layer with a row per sample (loss.hpp,
    # SamplesInRows): dy must be the same bits; J too for the softmax, which runs the same
    # code on transposed copies; mse and binary cross-entropy sum J in another order.
    n, m = shape
    rng = np.random.default_rng([n, m, LOSSES.index(name), soft])
    out = (3 * rng.standard_normal((n, m))).astype(dtype)
    t = _targets(rng, name, n, m, dtype, soft=soft)
    value, dy = native.loss_backward(name, out, t)
    hook = _core._loss_backward_samples_in_rows
    value_rows, dy_rows = hook(name, np.ascontiguousarray(out.T), np.ascontiguousarray(t.T))
    assert dy_rows.shape == (m, n)
    np.testing.assert_array_equal(dy_rows.T, dy)
    if name == "softmax_cross_entropy":
        assert value_rows == value
    else:
        rtol = 1e-5 if dtype == np.float32 else 1e-13
        assert value_rows == pytest.approx(value, rel=rtol, abs=rtol)
    with pytest.raises(ValueError, match="target has shape"):
        hook(name, np.ascontiguousarray(out.T), np.zeros((m + 1, n), dtype))


@pytest.mark.parametrize("shape", SHAPES)
@dtypes
@pytest.mark.parametrize("name", LOSSES)
def test_loss_matches_reference(name, dtype, shape):
    n, m = shape
    rng = np.random.default_rng([n, m, LOSSES.index(name)])
    out = (2 * rng.standard_normal((n, m))).astype(dtype)
    t = _targets(rng, name, n, m, dtype)
    value_n = native.loss_forward(name, out, t)
    value_r = reference.loss_forward(name, out, t)
    assert isinstance(value_n, float)
    # J sums n·m terms (in the loss's own dtype), then divides by n.
    assert_matches(value_n, value_r, "J", reduction=n * m, tol_dtype=dtype)
    (value_bn, dy_n), (value_br, dy_r) = (
        native.loss_backward(name, out, t),
        reference.loss_backward(name, out, t),
    )
    assert value_bn == value_n  # the fused value is the forward's
    assert_matches(value_bn, value_br, "J", reduction=n * m, tol_dtype=dtype)
    # dy is element-wise but for softmax's normaliser, a sum over the m outputs.
    assert_matches(dy_n, dy_r, "dy", reduction=m)


@dtypes
@backends
def test_losses_at_huge_logits(backend, dtype):
    # Logits of ±1e4 overflow a naive exp in both dtypes; the stable forms stay exact.
    out = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], dtype=dtype)
    # softmax CE, one-hot: row 0 targets class 1: lse = 1e4, J₀ = 1e4 − (−1e4) = 2e4;
    # row 1 targets class 2: lse = 1e4 + ln 2, J₁ = ln 2. J = (2e4 + ln 2) / 2.
    t = np.array([[0, 1, 0], [0, 0, 1]], dtype=dtype)
    value, dy = backend.loss_backward("softmax_cross_entropy", out, t)
    np.testing.assert_allclose(value, (2e4 + np.log(2)) / 2, rtol=4 * np.finfo(dtype).eps)
    # dy = (softmax − t) / N: softmax rows are [1, 0, 0] and [0, ½, ½].
    expected = np.array([[1, -1, 0], [0, 0.5, -0.5]], dtype=dtype) / 2
    assert_matches(dy, expected, "dy (softmax_cross_entropy)")
    # bce, per entry max(z, 0) − z t + log1p(exp(−|z|)): z = 1e4 costs 1e4 when t = 0 and
    # nothing when t = 1; z = −1e4 the reverse; z = 0 costs ln 2 either way.
    t = np.array([[0, 1, 1], [0, 1, 0]], dtype=dtype)
    value, dy = backend.loss_backward("binary_cross_entropy", out, t)
    np.testing.assert_allclose(
        value, (1e4 + 1e4 + np.log(2) + 0 + 0 + 1e4) / 2, rtol=4 * np.finfo(dtype).eps
    )
    expected = (np.array([[1, 0, 0.5], [0, 1, 1]], dtype=dtype) - t) / 2  # (sigmoid(z) − t)/N
    assert_matches(dy, expected, "dy (binary_cross_entropy)")
    # mse at 1e4: ½ Σ (y − t)² / N, 1e8-sized terms, still far from float32's limit.
    value, dy = backend.loss_backward("mse", out, np.zeros_like(out))
    np.testing.assert_allclose(value, 5 * 1e8 / 2 / 2, rtol=4 * np.finfo(dtype).eps)
    assert_matches(dy, out / 2, "dy (mse)")


@pytest.mark.parametrize("shape", [(37, 10), (300, 7), (1, 3), (5, 1)], ids=str)
@dtypes
def test_softmax_targets_that_do_not_sum_to_one_match_the_reference(dtype, shape):
    """Softmax CE weighs softmax by each row's Σ_k t_k: dy = (softmax·Σt − t)/N, both layouts."""
    # One-hot and Dirichlet rows sum to 1, where Σt drops out of dy; here rows sum to
    # anything: weights in [0, 2), a zero row (sample weight 0), a doubled one-hot row.
    # Shapes: full SIMD groups and a padded last one, > 256 samples (transposed in
    # chunks), one sample, one class.
    n, m = shape
    rng = np.random.default_rng([n, m, 17])
    out = (2 * rng.standard_normal((n, m))).astype(dtype)
    t = rng.uniform(0.0, 2.0, (n, m))
    t[n // 2] = 0.0
    t[-1] = 0.0
    t[-1, m // 2] = 2.0
    t = t.astype(dtype)
    assert not np.allclose(t.sum(axis=1), 1.0)
    name = "softmax_cross_entropy"
    value_r, dy_r = reference.loss_backward(name, out, t)
    value_n, dy_n = native.loss_backward(name, out, t)
    assert_matches(value_n, value_r, "J", reduction=n * m, tol_dtype=dtype)
    assert_matches(dy_n, dy_r, "dy", reduction=m)
    # The hidden split's layout, a row per sample (loss.hpp, SamplesInRows).
    hook = _core._loss_backward_samples_in_rows
    value_rows, dy_rows = hook(name, np.ascontiguousarray(out.T), np.ascontiguousarray(t.T))
    assert_matches(value_rows, value_r, "J, a row per sample", reduction=n * m, tol_dtype=dtype)
    assert_matches(dy_rows.T, dy_r, "dy, a row per sample", reduction=m)


@dtypes
@pytest.mark.parametrize("name", LOSSES)
def test_losses_finite_and_matching_at_mixed_huge_logits(name, dtype):
    rng = np.random.default_rng(5)
    out = rng.choice(np.array([-1e4, -30.0, 0.0, 30.0, 1e4]), size=(40, 6)).astype(dtype)
    t = _targets(rng, name, 40, 6, dtype)
    results = {}
    for key, backend in BACKENDS.items():
        value, dy = backend.loss_backward(name, out, t)
        assert np.isfinite(value), key
        assert np.all(np.isfinite(dy)), key
        results[key] = (value, dy)
    assert_matches(
        results["native"][0], results["reference"][0], "J", reduction=240, tol_dtype=dtype
    )
    assert_matches(results["native"][1], results["reference"][1], "dy", reduction=6)


@pytest.mark.parametrize("soft", [False, True], ids=["hard", "soft"])
@pytest.mark.parametrize("name", LOSSES)
def test_loss_gradient_matches_finite_differences(name, soft):
    rng = np.random.default_rng(11)
    out = rng.standard_normal((6, 4))
    t = _targets(rng, name, 6, 4, np.float64, soft=soft)
    _, dy = reference.loss_backward(name, out, t)
    h = 1e-6
    numeric = np.empty_like(out)
    for i in np.ndindex(out.shape):
        saved = out[i]
        out[i] = saved + h
        up = reference.loss_forward(name, out, t)
        out[i] = saved - h
        down = reference.loss_forward(name, out, t)
        out[i] = saved
        numeric[i] = (up - down) / (2 * h)
    # Central differences: h² truncation ~1e-12 plus eps·|J|/h ~1e-10 of rounding.
    np.testing.assert_allclose(dy, numeric, rtol=1e-6, atol=1e-8, err_msg=f"dy of {name}")
    # and the native gradient is that same gradient
    assert_matches(native.loss_backward(name, out, t)[1], dy, "dy", reduction=4)


# -- optimizers -----------------------------------------------------------------------

SGD_CONFIGS = {
    "plain": (0.0, False, 0.0),
    "momentum": (0.9, False, 0.0),
    "nesterov": (0.9, True, 0.0),
    "plain+wd": (0.0, False, 1e-2),
    "momentum+wd": (0.8, False, 5e-2),
    "nesterov+wd": (0.9, True, 1e-2),
}

STEPS = 6


def _param_and_grads(rng, shape, dtype):
    theta = rng.standard_normal(shape).astype(dtype)
    grads = [rng.standard_normal(shape).astype(dtype) for _ in range(STEPS)]
    return theta, grads


@pytest.mark.parametrize("shape", [(7, 5), (5,)], ids=["W", "b"])
@dtypes
@pytest.mark.parametrize("config", list(SGD_CONFIGS))
def test_sgd_matches_reference(config, dtype, shape):
    momentum, nesterov, wd = SGD_CONFIGS[config]
    theta, grads = _param_and_grads(np.random.default_rng(len(config)), shape, dtype)
    start = theta.copy()
    state = {
        key: (theta.copy(), np.zeros_like(theta) if momentum > 0 else None) for key in BACKENDS
    }
    for step, g in enumerate(grads):
        for key, backend in BACKENDS.items():
            p, v = state[key]
            backend.sgd_step(p, g, v, 0.05, momentum, nesterov, wd)
        p_n, v_n = state["native"]
        p_r, v_r = state["reference"]
        # Element-wise updates: a few roundings per step, accumulated over the steps.
        assert_matches(p_n, p_r, f"theta after step {step + 1}")
        if momentum > 0:
            assert_matches(v_n, v_r, f"velocity after step {step + 1}")
    assert not np.allclose(state["native"][0], start)  # the steps did move theta


@pytest.mark.parametrize("shape", [(7, 5), (5,)], ids=["W", "b"])
@dtypes
@pytest.mark.parametrize("wd", [0.0, 1e-2], ids=["adam", "adamw"])
def test_adam_matches_reference(wd, dtype, shape):
    theta, grads = _param_and_grads(np.random.default_rng(3), shape, dtype)
    start = theta.copy()
    state = {key: (theta.copy(), np.zeros_like(theta), np.zeros_like(theta)) for key in BACKENDS}
    for step, g in enumerate(grads, start=1):
        for key, backend in BACKENDS.items():
            p, m, v = state[key]
            backend.adam_step(p, g, m, v, step, 1e-2, 0.9, 0.99, 1e-8, wd)
        for i, name in enumerate(("theta", "m", "v")):
            assert_matches(state["native"][i], state["reference"][i], f"{name} after step {step}")
    assert not np.allclose(state["native"][0], start)
