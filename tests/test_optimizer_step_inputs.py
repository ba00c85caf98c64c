"""sgd_step and adam_step on bad or unusual input, on both backends: the same outcome.

docs/robustness.md, kernel level: ``grad`` is only read, so a strided, Fortran-ordered,
unaligned or byte-swapped one is converted once (the update equals that from the
ordinary array); theta and the optimizer state are updated in place, so they must be
writable, C-contiguous, aligned float32/float64 arrays in native byte order, or the call
raises, naming the argument, and writes nothing (an update of a converted copy would be
lost). Every array shares one dtype (else a TypeError listing each one's). The native
backend never shows pybind11's "incompatible function arguments" dump.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from densa import native, reference
from helpers import assert_matches, unaligned

SHAPE = (3, 4)  # 2-D, so that a Fortran-ordered array differs from a C-ordered one
SIZE = 12
RAW = "incompatible function arguments"

BACKENDS = {"native": native, "reference": reference}
dtypes = pytest.mark.parametrize("dtype", [np.float32, np.float64])


def _raises(exc, *fragments):
    """pytest.raises whose message must contain every fragment, literally."""
    return pytest.raises(exc, match="(?s)" + "".join(f"(?=.*{re.escape(f)})" for f in fragments))


# ----- layouts of the same values ---------------------------------------------------------


def strided(a):
    out = np.repeat(a, 2, axis=-1)[..., ::2]
    assert not out.flags.c_contiguous
    return out


def fortran(a):
    out = np.asfortranarray(a)
    assert not out.flags.c_contiguous
    return out


def swapped(a):
    """The same values in the other byte order (big-endian on x86)."""
    out = a.astype(a.dtype.newbyteorder("S"))
    assert not out.dtype.isnative
    return out


def read_only(a):
    out = a.copy()
    out.flags.writeable = False
    return out


# ----- the calls --------------------------------------------------------------------------


def sgd_args(dtype):
    rng = np.random.default_rng(0)
    return {
        "theta": rng.standard_normal(SHAPE).astype(dtype),
        "grad": rng.standard_normal(SHAPE).astype(dtype),
        "velocity": (0.1 * rng.standard_normal(SHAPE)).astype(dtype),
        "lr": 0.05,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 0.01,
    }


def adam_args(dtype):
    rng = np.random.default_rng(1)
    return {
        "theta": rng.standard_normal(SHAPE).astype(dtype),
        "grad": rng.standard_normal(SHAPE).astype(dtype),
        "m": (0.1 * rng.standard_normal(SHAPE)).astype(dtype),
        "v": (0.1 * rng.standard_normal(SHAPE) ** 2).astype(dtype),
        "step": 3,
        "lr": 0.01,
        "beta1": 0.9,
        "beta2": 0.999,
        "eps": 1e-8,
        "weight_decay": 0.01,
    }


KINDS = {"sgd": sgd_args, "adam": adam_args}
IN_PLACE = {"sgd": ("theta", "velocity"), "adam": ("theta", "m", "v")}


def call(backend, kind, args):
    step = backend.sgd_step if kind == "sgd" else backend.adam_step
    return step(**args)


def outcome(backend, kind, args):
    """``(None, arrays after the call)``, or ``(exception, arrays after the call)``."""
    try:
        call(backend, kind, args)
    except Exception as exc:  # the outcome under test
        error = exc
    else:
        error = None
    return error, {name: args[name] for name in IN_PLACE[kind] if args[name] is not None}


def snapshot(kind, args):
    """Copies of the in-place arrays, for 'nothing was written' (skipping non-arrays)."""
    return {
        name: np.array(args[name], copy=True)
        for name in IN_PLACE[kind]
        if isinstance(args[name], np.ndarray)
    }


# ----- converted: the same update as from the ordinary arrays --------------------------------
# Each edit changes one argument of the well-formed call (in place on `args`).

CONVERTED = {
    "strided_grad": ("both", lambda a: a.update(grad=strided(a["grad"]))),
    "fortran_grad": ("both", lambda a: a.update(grad=fortran(a["grad"]))),
    "byteswapped_grad": ("both", lambda a: a.update(grad=swapped(a["grad"]))),
    "unaligned_grad": ("both", lambda a: a.update(grad=unaligned(a["grad"]))),
    "read_only_grad": ("both", lambda a: a.update(grad=read_only(a["grad"]))),
    "reversed_grad": ("both", lambda a: a.update(grad=a["grad"][::-1].copy()[::-1])),
    "flat_grad": ("both", lambda a: a.update(grad=a["grad"].reshape(-1))),
    # Coefficients of other types, with the same values.
    "numpy_scalar_lr": ("both", lambda a: a.update(lr=np.float64(a["lr"]))),
    "zero_d_weight_decay": ("both", lambda a: a.update(weight_decay=np.array(a["weight_decay"]))),
    "nesterov_numpy_bool": ("sgd", lambda a: a.update(nesterov=np.True_)),
    "nesterov_int": ("sgd", lambda a: a.update(nesterov=1)),
    "nesterov_truthy_string": ("sgd", lambda a: a.update(nesterov="yes")),
    "numpy_int_step": ("adam", lambda a: a.update(step=np.int64(a["step"]))),
    "numpy_uint_step": ("adam", lambda a: a.update(step=np.uint8(a["step"]))),
}


def _cases(table):
    return [
        pytest.param(kind, name, id=f"{kind}-{name}")
        for name, (applies, *_) in table.items()
        for kind in ("sgd", "adam")
        if applies in ("both", kind)
    ]


@dtypes
@pytest.mark.parametrize(("kind", "case"), _cases(CONVERTED))
def test_converted_inputs_give_the_ordinary_update(kind, case, dtype):
    expected = {}
    for key, backend in BACKENDS.items():
        args = KINDS[kind](dtype)
        call(backend, kind, args)
        expected[key] = {name: args[name] for name in IN_PLACE[kind]}
    for key, backend in BACKENDS.items():
        args = KINDS[kind](dtype)
        CONVERTED[case][1](args)
        error, after = outcome(backend, kind, args)
        assert error is None, f"{key}: {type(error).__name__}: {error}"
        for name, array in after.items():
            # The caller's own arrays were updated: the same values in another layout or
            # type give the same update, on this backend...
            assert_matches(array, expected[key][name], f"{key} {name}")
            # ... and on the other (element-wise, so the usual tolerance).
            assert_matches(array, expected["native"][name], f"{key} {name} vs native")


# ----- refused, on both backends, naming the argument; nothing written -----------------------
# (applies to, edit, exception, fragments of the message)


def _grad_of(dtype):
    return lambda a: a.update(grad=a["grad"].astype(dtype))


def _param_of(dtype):
    return lambda a: a.update(theta=a["theta"].astype(dtype), grad=a["grad"].astype(dtype))


def _other(a):
    """The other float dtype than ``a``'s."""
    return np.float64 if a.dtype == np.float32 else np.float32


REFUSED = {
    # dtypes
    "mixed_theta_grad": (
        "both",
        lambda a: a.update(grad=a["grad"].astype(_other(a["theta"]))),
        TypeError,
        ("mixed dtypes", "theta is", "grad is"),
    ),
    "mixed_theta_velocity": (
        "sgd",
        lambda a: a.update(velocity=a["velocity"].astype(_other(a["theta"]))),
        TypeError,
        ("mixed dtypes", "theta is", "velocity is"),
    ),
    "mixed_theta_m": (
        "adam",
        lambda a: a.update(m=a["m"].astype(_other(a["theta"]))),
        TypeError,
        ("mixed dtypes", "theta is", "m is"),
    ),
    "mixed_theta_v": (
        "adam",
        lambda a: a.update(v=a["v"].astype(_other(a["theta"]))),
        TypeError,
        ("mixed dtypes", "v is"),
    ),
    "float16_theta": (
        "both",
        _param_of(np.float16),
        TypeError,
        ("theta must be a float32 or float64 array", "float16"),
    ),
    "float16_grad": (
        "both",
        _grad_of(np.float16),
        TypeError,
        ("grad must be a float32 or float64 array", "float16"),
    ),
    "int_theta": (
        "both",
        _param_of(np.int64),
        TypeError,
        ("theta must be a float32 or float64 array", "int64"),
    ),
    "int_grad": (
        "both",
        _grad_of(np.int32),
        TypeError,
        ("grad must be a float32 or float64 array", "int32"),
    ),
    "complex_grad": (
        "both",
        _grad_of(np.complex128),
        TypeError,
        ("grad must be a float32 or float64 array", "complex128"),
    ),
    "int_state": (
        "adam",
        lambda a: a.update(v=a["v"].astype(np.int64)),
        TypeError,
        ("v must be a float32 or float64 array", "int64"),
    ),
    # types
    "list_theta": (
        "both",
        lambda a: a.update(theta=a["theta"].tolist()),
        TypeError,
        ("theta must be a float32 or float64 array", "list"),
    ),
    "list_grad": (
        "both",
        lambda a: a.update(grad=a["grad"].tolist()),
        TypeError,
        ("grad must be a float32 or float64 array", "list"),
    ),
    "list_velocity": (
        "sgd",
        lambda a: a.update(velocity=a["velocity"].tolist()),
        TypeError,
        ("velocity must be a float32 or float64 array", "list"),
    ),
    "none_m": (
        "adam",
        lambda a: a.update(m=None),
        ValueError,
        ("m and parameter sizes differ", "no m given"),
    ),
    # arrays updated in place: layout, byte order, alignment, writability
    "read_only_theta": (
        "both",
        lambda a: a.update(theta=read_only(a["theta"])),
        ValueError,
        ("theta is read-only",),
    ),
    "read_only_velocity": (
        "sgd",
        lambda a: a.update(velocity=read_only(a["velocity"])),
        ValueError,
        ("velocity is read-only",),
    ),
    "read_only_m": (
        "adam",
        lambda a: a.update(m=read_only(a["m"])),
        ValueError,
        ("m is read-only",),
    ),
    "strided_theta": (
        "both",
        lambda a: a.update(theta=strided(a["theta"])),
        TypeError,
        ("theta must be C-contiguous", "updated in place"),
    ),
    "fortran_theta": (
        "both",
        lambda a: a.update(theta=fortran(a["theta"])),
        TypeError,
        ("theta must be C-contiguous",),
    ),
    "fortran_velocity": (
        "sgd",
        lambda a: a.update(velocity=fortran(a["velocity"])),
        TypeError,
        ("velocity must be C-contiguous",),
    ),
    "strided_v": (
        "adam",
        lambda a: a.update(v=strided(a["v"])),
        TypeError,
        ("v must be C-contiguous",),
    ),
    "byteswapped_theta": (
        "both",
        lambda a: a.update(theta=swapped(a["theta"]), grad=swapped(a["grad"])),
        TypeError,
        ("theta must be in native byte order",),
    ),
    "byteswapped_m": (
        "adam",
        lambda a: a.update(m=swapped(a["m"])),
        TypeError,
        ("m must be in native byte order",),
    ),
    "unaligned_theta": (
        "both",
        lambda a: a.update(theta=unaligned(a["theta"])),
        TypeError,
        ("theta must be aligned",),
    ),
    "unaligned_velocity": (
        "sgd",
        lambda a: a.update(velocity=unaligned(a["velocity"])),
        TypeError,
        ("velocity must be aligned",),
    ),
    # sizes
    "grad_wrong_size": (
        "both",
        lambda a: a.update(grad=a["grad"][:-1].copy()),
        ValueError,
        ("grad has 8 entries", "the parameter 12"),
    ),
    "velocity_wrong_shape": (
        "sgd",
        lambda a: a.update(velocity=a["velocity"][:, :-1].copy()),
        ValueError,
        ("velocity and parameter sizes differ", "(9 vs 12)"),
    ),
    "velocity_missing": (
        "sgd",
        lambda a: a.update(velocity=None),
        ValueError,
        ("velocity and parameter sizes differ", "no velocity given"),
    ),
    "m_wrong_shape": (
        "adam",
        lambda a: a.update(m=np.zeros(SIZE + 1, a["m"].dtype)),
        ValueError,
        ("m and parameter sizes differ", "(13 vs 12)"),
    ),
    "v_wrong_shape": (
        "adam",
        lambda a: a.update(v=np.zeros((2, 2), a["v"].dtype)),
        ValueError,
        ("v and parameter sizes differ", "(4 vs 12)"),
    ),
    # Adam's step count
    "step_zero": ("adam", lambda a: a.update(step=0), ValueError, ("step count", "got 0")),
    "step_negative": ("adam", lambda a: a.update(step=-3), ValueError, ("step count", "got -3")),
    "step_bool": ("adam", lambda a: a.update(step=True), ValueError, ("step count", "got True")),
    "step_float": ("adam", lambda a: a.update(step=2.0), ValueError, ("step count", "got 2.0")),
    "step_none": ("adam", lambda a: a.update(step=None), ValueError, ("step count", "got None")),
}


@dtypes
@pytest.mark.parametrize(("kind", "case"), _cases(REFUSED))
def test_both_backends_refuse_alike(kind, case, dtype):
    _, edit, exc, fragments = REFUSED[case]
    for key, backend in BACKENDS.items():
        args = KINDS[kind](dtype)
        edit(args)
        before = snapshot(kind, args)
        with _raises(exc, *fragments) as info:
            call(backend, kind, args)
        assert type(info.value) is exc, f"{key}: {type(info.value).__name__}"
        assert RAW not in str(info.value), f"{key}: {info.value}"
        for name, saved in before.items():
            np.testing.assert_array_equal(args[name], saved, err_msg=f"{key}: {name} written")


# ----- the optimizer state that a step does not use -----------------------------------------
# SGD without momentum never reads the velocity (the reference does not look at it): any
# velocity, or none, gives the plain step on both backends.

IGNORED_VELOCITY = {
    "none": lambda v: None,
    "other_dtype": lambda v: v.astype(np.float16),
    "wrong_size": lambda v: v[:1].copy(),
    "read_only": read_only,
    "fortran": fortran,
    "list": lambda v: v.tolist(),
}


@dtypes
@pytest.mark.parametrize("momentum", [0.0, -0.5, float("nan")])
@pytest.mark.parametrize("case", list(IGNORED_VELOCITY))
def test_sgd_without_momentum_ignores_the_velocity(case, momentum, dtype):
    results = {}
    for key, backend in BACKENDS.items():
        args = sgd_args(dtype)
        expected = args["theta"] - np.asarray(args["lr"], dtype) * (
            args["grad"] + np.asarray(args["weight_decay"], dtype) * args["theta"]
        )
        args.update(momentum=momentum, velocity=IGNORED_VELOCITY[case](args["velocity"]))
        velocity = args["velocity"]
        saved = np.array(velocity, copy=True) if velocity is not None else None
        backend.sgd_step(**args)
        assert_matches(args["theta"], expected, f"{key} theta")
        if saved is not None:
            np.testing.assert_array_equal(np.asarray(velocity), saved)
        results[key] = args["theta"]
    assert_matches(results["native"], results["reference"], "theta")


# ----- hyperparameters ----------------------------------------------------------------------
# NaN coefficients are not refused at the kernel level (densa.optimizers refuses them for
# fit): both backends compute the same NaNs.

NAN_HYPER = {
    "sgd": ("lr", "momentum", "weight_decay"),
    "adam": ("lr", "beta1", "beta2", "eps", "weight_decay"),
}


@dtypes
@pytest.mark.parametrize(
    ("kind", "name"), [(k, n) for k, names in NAN_HYPER.items() for n in names]
)
def test_nan_hyperparameters_give_the_same_result(kind, name, dtype):
    results = {}
    for key, backend in BACKENDS.items():
        args = KINDS[kind](dtype)
        args[name] = float("nan")
        error, after = outcome(backend, kind, args)
        assert error is None, f"{key}: {type(error).__name__}: {error}"
        results[key] = after
    for name_, array in results["native"].items():
        assert_matches(array, results["reference"][name_], name_)  # NaN where NaN
    assert np.isnan(results["native"]["theta"]).any() or name == "momentum"


def test_huge_step_count_is_accepted_by_both():
    # Past int64 (pybind11 refuses it): beta**t is 0 in double long before.
    results = {}
    for key, backend in BACKENDS.items():
        args = adam_args(np.float64)
        args["step"] = 2**70
        call(backend, kind="adam", args=args)
        results[key] = args
    for name in IN_PLACE["adam"]:
        assert_matches(results["native"][name], results["reference"][name], name)


# A coefficient that is not a number: both backends raise TypeError. The native message
# names the argument and nothing is written; the reference has no check of its own on
# the coefficients, so it fails inside the arithmetic with NumPy's or Python's message
# (after updating the velocity, for a bad SGD lr).
BAD_HYPER = [
    ("sgd", "lr", "0.05"),
    ("sgd", "lr", None),
    ("sgd", "weight_decay", "0.01"),
    ("sgd", "momentum", "0.9"),
    ("sgd", "lr", 1j),
    ("adam", "lr", "0.01"),
    ("adam", "beta1", None),
    ("adam", "beta2", "0.999"),
    ("adam", "eps", "1e-8"),
    ("adam", "weight_decay", 0.01j),
]


@dtypes
@pytest.mark.parametrize(("kind", "name", "value"), BAD_HYPER)
def test_a_coefficient_that_is_not_a_number(kind, name, value, dtype):
    for key, backend in BACKENDS.items():
        args = KINDS[kind](dtype)
        args[name] = value
        before = snapshot(kind, args)
        with pytest.raises(TypeError) as info:
            call(backend, kind, args)
        assert RAW not in str(info.value), f"{key}: {info.value}"
        if backend is native:
            assert f"{kind}_step: {name} must be a real number" in str(info.value)
            for array, saved in before.items():
                np.testing.assert_array_equal(args[array], saved, err_msg=f"{array} written")
