"""sgd_step and adam_step on bad or unusual input, on both backends: the same outcome.

docs/robustness.md, kernel level: ``grad`` is only read, so a strided, Fortran-ordered,
unaligned or byte-swapped one is converted once (the update equals that from the
ordinary array); theta and the optimizer state are updated in place, so they must be
writable, C-contiguous, aligned float32/float64 arrays in native byte order, or the call
raises, naming the argument, and writes nothing (an update of a converted copy would be
lost). Every array shares one dtype (else a TypeError listing each one's). No two of
the arrays may share memory (theta and the state are written while grad is read): a
ValueError naming both, where the backends used to compute different numbers. The
coefficients are refused as ``densa.SGD`` / ``densa.Adam`` refuse them, with their
words after ``sgd_step: `` / ``adam_step: ``: lr a finite number > 0; momentum, beta1,
beta2 in [0, 1); eps a finite number > 0; weight_decay a finite number >= 0; bools,
text, arrays with dimensions and other non-numbers are TypeErrors (a NumPy scalar or a
0-d array is a number). Every refusal comes before anything is written. The native
backend never shows pybind11's "incompatible function arguments" dump.
"""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction

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


def assert_unchanged(args, before, key):
    """Each array of ``before`` (a snapshot) still holds the same bytes: NaN stays NaN
    and -0.0 stays -0.0, which assert_array_equal would not tell apart."""
    for name, saved in before.items():
        assert args[name].tobytes() == saved.tobytes(), f"{key}: {name} written"


def one_buffer(args, *names, overlap=0):
    """Put ``names`` (arrays of one size and dtype) into consecutive C-contiguous slices
    of one buffer, each starting ``overlap`` elements before the previous one ends: 0
    gives separate slices (legitimate input), > 0 overlapping ones."""
    first = args[names[0]]
    step = SIZE - overlap
    buf = np.zeros(step * (len(names) - 1) + SIZE, first.dtype)
    for i, name in enumerate(names):
        view = buf[i * step : i * step + SIZE].reshape(args[name].shape)
        view[...] = args[name]
        args[name] = view


def through_memoryviews(args, *names):
    """Put ``names`` into one buffer, overlapping, each reached through its own memoryview
    (np.frombuffer): their bases are two different memoryviews, yet they share memory."""
    raw = np.zeros(SIZE + 1, args[names[0]].dtype)
    for i, name in enumerate(names):
        view = np.frombuffer(memoryview(raw), raw.dtype, SIZE, i * raw.itemsize)
        view[...] = args[name].reshape(-1)
        args[name] = view.reshape(args[name].shape)
    assert args[names[0]].base is not args[names[1]].base


def interleaved_grad(args):
    """A strided grad in rows 0 and 2 of a buffer whose row 1 is theta: the byte range of
    grad spans theta, but no element of one is an element of the other."""
    buf = np.zeros((3, SIZE), args["theta"].dtype)
    buf[1] = args["theta"].reshape(-1)
    buf[::2, : SIZE // 2] = args["grad"].reshape(2, SIZE // 2)
    theta, grad = buf[1].reshape(SHAPE), buf[::2, : SIZE // 2]
    assert np.may_share_memory(theta, grad)
    assert not np.shares_memory(theta, grad)
    args.update(theta=theta, grad=grad)


def straddling_grad(args):
    """A strided grad (every other element of a buffer) that holds theta's even entries."""
    buf = np.zeros(2 * SIZE, args["theta"].dtype)
    buf[:SIZE] = args["theta"].reshape(-1)
    args.update(theta=buf[:SIZE].reshape(SHAPE), grad=buf[::2])


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
    "zero_d_lr": ("both", lambda a: a.update(lr=np.array(a["lr"]))),
    "zero_d_weight_decay": ("both", lambda a: a.update(weight_decay=np.array(a["weight_decay"]))),
    "numpy_scalar_momentum": ("sgd", lambda a: a.update(momentum=np.float64(a["momentum"]))),
    "zero_d_beta1": ("adam", lambda a: a.update(beta1=np.array(a["beta1"]))),
    "numpy_scalar_eps": ("adam", lambda a: a.update(eps=np.float64(a["eps"]))),
    "longdouble_beta2": ("adam", lambda a: a.update(beta2=np.longdouble(a["beta2"]))),
    # Arrays of one buffer that do not overlap: not refused (see "share memory" below).
    "state_in_one_buffer": ("sgd", lambda a: one_buffer(a, "theta", "velocity")),
    "all_in_one_buffer": ("adam", lambda a: one_buffer(a, "theta", "grad", "m", "v")),
    "grad_interleaved_with_theta": ("both", interleaved_grad),
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
    # arrays that share memory: theta and the state are written while grad is read, and
    # the backends read and write in different orders (they gave different numbers)
    "theta_is_grad": (
        "both",
        lambda a: a.update(grad=a["theta"]),
        ValueError,
        ("_step: theta and grad share memory", "each needs its own array", "grad would change"),
    ),
    "theta_grad_velocity_one_array": (
        "sgd",
        lambda a: a.update(grad=a["theta"], velocity=a["theta"], nesterov=False),
        ValueError,
        ("sgd_step: theta and grad share memory",),
    ),
    "theta_is_velocity": (
        "sgd",
        lambda a: a.update(velocity=a["theta"]),
        ValueError,
        ("sgd_step: theta and velocity share memory", "each needs its own array"),
    ),
    "grad_is_velocity": (
        "sgd",
        lambda a: a.update(grad=a["velocity"]),
        ValueError,
        ("sgd_step: grad and velocity share memory",),
    ),
    "velocity_view_of_theta": (
        "sgd",
        lambda a: a.update(velocity=a["theta"].reshape(-1)),
        ValueError,
        ("sgd_step: theta and velocity share memory",),
    ),
    "theta_velocity_overlap": (
        "sgd",
        lambda a: one_buffer(a, "theta", "velocity", overlap=1),
        ValueError,
        ("sgd_step: theta and velocity share memory",),
    ),
    "grad_velocity_overlap": (
        "sgd",
        lambda a: one_buffer(a, "grad", "velocity", overlap=3),
        ValueError,
        ("sgd_step: grad and velocity share memory",),
    ),
    "grad_straddles_theta": (
        "both",
        straddling_grad,
        ValueError,
        ("_step: theta and grad share memory",),
    ),
    "m_is_v": (
        "adam",
        lambda a: a.update(v=a["m"]),
        ValueError,
        ("adam_step: m and v share memory; each needs its own array",),
    ),
    "theta_is_m": (
        "adam",
        lambda a: a.update(m=a["theta"]),
        ValueError,
        ("adam_step: theta and m share memory",),
    ),
    "theta_is_v": (
        "adam",
        lambda a: a.update(v=a["theta"]),
        ValueError,
        ("adam_step: theta and v share memory",),
    ),
    "grad_is_m": (
        "adam",
        lambda a: a.update(grad=a["m"]),
        ValueError,
        ("adam_step: grad and m share memory", "grad would change"),
    ),
    "grad_is_v": (
        "adam",
        lambda a: a.update(grad=a["v"]),
        ValueError,
        ("adam_step: grad and v share memory",),
    ),
    "v_view_of_m": (
        "adam",
        lambda a: a.update(v=a["m"][...]),  # a view: another object, the same memory
        ValueError,
        ("adam_step: m and v share memory",),
    ),
    "m_v_overlap": (
        "adam",
        lambda a: one_buffer(a, "m", "v", overlap=SIZE - 1),
        ValueError,
        ("adam_step: m and v share memory",),
    ),
    "m_v_through_memoryviews": (
        "adam",
        lambda a: through_memoryviews(a, "m", "v"),
        ValueError,
        ("adam_step: m and v share memory",),
    ),
    "theta_velocity_through_memoryviews": (
        "sgd",
        lambda a: through_memoryviews(a, "theta", "velocity"),
        ValueError,
        ("sgd_step: theta and velocity share memory",),
    ),
    "theta_m_v_overlap": (
        "adam",
        lambda a: one_buffer(a, "theta", "m", "v", overlap=2),
        ValueError,
        ("adam_step: theta and m share memory",),
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
        assert_unchanged(args, before, key)


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
@pytest.mark.parametrize("momentum", [0.0, -0.0, 0, np.float64(0.0)])
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


@dtypes
@pytest.mark.parametrize("unused", ["theta", "grad"])
def test_an_unused_velocity_may_share_memory(unused, dtype):
    # Without momentum the velocity is neither read nor written, so it is not checked
    # against theta and grad either: the plain step, on both backends.
    results = {}
    for key, backend in BACKENDS.items():
        args = sgd_args(dtype)
        plain = {**args, "theta": args["theta"].copy(), "momentum": 0.0, "velocity": None}
        backend.sgd_step(**plain)
        args.update(momentum=0.0, velocity=args[unused])
        backend.sgd_step(**args)
        np.testing.assert_array_equal(args["theta"], plain["theta"])
        results[key] = args["theta"]
    assert_matches(results["native"], results["reference"], "theta")


# ----- hyperparameters ----------------------------------------------------------------------
# Refused as densa.SGD / densa.Adam refuse them, with their words after "sgd_step: " /
# "adam_step: ", by both backends alike (the same message), before anything is written.
# (name, value, exception, fragment of the message after "<kind>_step: <name> ")

NAN, INF = float("nan"), float("inf")
NOT_POSITIVE = "must be a finite number > 0, got"  # lr
NOT_A_FRACTION = "must lie in [0.0, 1.0), got"  # momentum, beta1, beta2
NEGATIVE = "must be a finite number >= 0.0, got"  # weight_decay, eps
NOT_A_NUMBER = "must be a number, got"

_OUT_OF_RANGE = {
    "lr": [NAN, INF, -INF, -1.0, 0.0, -0.0, 10**400, np.float32(NAN), np.array(-1.0)],
    "momentum": [1.0, 2.0, -0.5, NAN, INF, np.float64(1.0), np.array(NAN)],
    "beta1": [1.0, 1.5, -0.1, NAN, -INF, np.float32(1.0)],
    "beta2": [1.0, 2.0, -1e-300, NAN, INF, np.array(1.0)],
    "eps": [-1.0, -1e-300, NAN, INF, -INF, np.float64(NAN)],
    "weight_decay": [-1.0, -1e-300, NAN, INF, np.float32(-0.5), np.array(INF)],
}
_MESSAGES = {
    "lr": NOT_POSITIVE,
    "momentum": NOT_A_FRACTION,
    "beta1": NOT_A_FRACTION,
    "beta2": NOT_A_FRACTION,
    "eps": NEGATIVE,
    "weight_decay": NEGATIVE,
}
_NOT_NUMBERS = [
    "0.05",
    None,
    1j,
    True,  # densa.SGD refuses bools: True is no learning rate
    np.bool_(False),
    np.array(True),
    [0.05],  # a list, or an array with dimensions: one coefficient per element is
    (0.05,),  # not what either backend computes
    np.array([0.05]),
    np.full(SHAPE, 0.05),
    Fraction(1, 20),  # float() takes them; densa.SGD does not
    Decimal("0.05"),
]
KIND_OF = {"momentum": "sgd", "beta1": "adam", "beta2": "adam", "eps": "adam"}

COEFFICIENTS_REFUSED = [
    *(
        pytest.param(kind, name, value, ValueError, _MESSAGES[name], id=f"{kind}-{name}-{i}")
        for name, values in _OUT_OF_RANGE.items()
        for kind in ([KIND_OF[name]] if name in KIND_OF else ["sgd", "adam"])
        for i, value in enumerate(values)
    ),
    pytest.param(
        "adam", "eps", 0.0, ValueError, "must be > 0 (it keeps the update", id="adam-eps-zero"
    ),
    pytest.param(
        "adam", "eps", -0.0, ValueError, "must be > 0 (it keeps the update", id="adam-eps-neg0"
    ),
    *(
        pytest.param(kind, name, value, TypeError, NOT_A_NUMBER, id=f"{kind}-{name}-type{i}")
        for kind, names in (
            ("sgd", ("lr", "momentum", "weight_decay")),
            ("adam", ("lr", "beta1", "beta2", "eps", "weight_decay")),
        )
        for name in names
        for i, value in enumerate(_NOT_NUMBERS)
    ),
]


@dtypes
@pytest.mark.parametrize(("kind", "name", "value", "exc", "message"), COEFFICIENTS_REFUSED)
def test_a_coefficient_out_of_range_or_not_a_number_is_refused(
    kind, name, value, exc, message, dtype
):
    # SGD twice when the coefficient is not momentum: with momentum (the velocity would
    # be updated first) and without (no velocity, the native fast path's other branch).
    variants = [{}] if kind == "adam" or name == "momentum" else [{}, {"momentum": 0.0}]
    for variant in variants:
        messages = {}
        for key, backend in BACKENDS.items():
            args = {**KINDS[kind](dtype), **variant, name: value}
            before = snapshot(kind, args)
            with _raises(exc, f"{kind}_step: {name} {message}") as info:
                call(backend, kind, args)
            assert type(info.value) is exc, f"{key}: {type(info.value).__name__}"
            assert_unchanged(args, before, key)
            messages[key] = str(info.value)
        assert messages["native"] == messages["reference"]


# Accepted at the edge of each range: both backends compute the same update (within the
# usual tolerance; the values stay finite).
EDGES = [
    ("sgd", {"momentum": 0.0}),
    ("sgd", {"momentum": 0.0, "velocity": None, "nesterov": False}),
    ("sgd", {"momentum": float(np.nextafter(1.0, 0.0))}),
    ("sgd", {"weight_decay": 0.0}),
    ("sgd", {"weight_decay": 0}),  # an int
    ("sgd", {"lr": 1e30}),  # huge but finite, in float32 too
    ("sgd", {"lr": 5e-324}),  # the smallest positive float
    ("sgd", {"lr": 1, "momentum": 0, "weight_decay": 0}),  # ints
    ("sgd", {"lr": np.float32(0.25), "momentum": np.float16(0.5)}),
    ("adam", {"beta1": 0.0}),
    ("adam", {"beta2": 0.0}),
    ("adam", {"beta1": 0.0, "beta2": 0.0}),
    ("adam", {"beta1": float(np.nextafter(1.0, 0.0)), "step": 1}),
    ("adam", {"beta2": float(np.nextafter(1.0, 0.0)), "step": 1}),
    ("adam", {"eps": 5e-324}),  # tiny positive (0 once rounded to float32: v > 0 here)
    ("adam", {"eps": 1e30}),  # huge: the step all but vanishes (within float32's range,
    # as every value here: beyond it, NumPy warns of the overflow, as all reference kernels)
    ("adam", {"weight_decay": 0.0}),
    ("adam", {"lr": 1e30}),
    ("adam", {"lr": 1e30, "weight_decay": 0.0}),
    ("adam", {"lr": 1, "beta1": 0, "beta2": 0, "weight_decay": 0}),  # ints
]


@dtypes
@pytest.mark.parametrize(
    ("kind", "edit"), [pytest.param(k, e, id=f"{k}-{i}") for i, (k, e) in enumerate(EDGES)]
)
def test_coefficients_at_the_edge_of_their_range_are_accepted(kind, edit, dtype):
    results = {}
    for key, backend in BACKENDS.items():
        args = {**KINDS[kind](dtype), **edit}
        error, after = outcome(backend, kind, args)
        assert error is None, f"{key}: {type(error).__name__}: {error}"
        results[key] = after
    for name, array in results["native"].items():
        assert np.isfinite(array).all(), name
        assert_matches(array, results["reference"][name], name)


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
