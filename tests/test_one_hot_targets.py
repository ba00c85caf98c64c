"""Class labels as one-hot rows on the native backend (cpp/densa/targets.hpp).

``losses.encode_targets`` builds the rows in one native pass when the backend offers
``_one_hot`` (the native one does), and with NumPy otherwise. The two must give the same
array for every integer label type, and the same error, with the same message, for a
label out of range.
"""

from __future__ import annotations

import numpy as np
import pytest

import densa
from densa import _core, losses, native

LABEL_TYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


@pytest.mark.parametrize("label_type", LABEL_TYPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_native_rows_equal_numpys(label_type, dtype):
    labels = (np.random.default_rng(3).integers(0, 7, 50)).astype(label_type)
    labels[[0, -1]] = [0, 6]  # both ends of the range
    for y in (labels, labels[::2]):  # contiguous, and a strided view
        want = losses.encode_targets("softmax_cross_entropy", y, 7, len(y), dtype)
        got = losses.encode_targets(
            "softmax_cross_entropy", y, 7, len(y), dtype, one_hot=native._one_hot
        )
        assert got.dtype == want.dtype == np.dtype(dtype)
        assert got.flags.c_contiguous
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(np.argmax(got, axis=1), y)


@pytest.mark.parametrize(
    "bad",
    [
        np.array([0, 1, 7], np.int64),  # past the last class, after good rows
        np.array([0, -1, 2], np.int64),
        np.array([0, 1, 2**64 - 1], np.uint64),  # wraps negative as int64
    ],
)
def test_out_of_range_labels_get_numpys_message(bad):
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 7\)") as without:
        losses.encode_targets("softmax_cross_entropy", bad, 7, 3, np.float32)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 7\)") as with_native:
        losses.encode_targets(
            "softmax_cross_entropy", bad, 7, 3, np.float32, one_hot=native._one_hot
        )
    assert str(with_native.value) == str(without.value)


def test_the_kernel_refuses_what_it_cannot_read():
    with pytest.raises(TypeError, match="int64"):
        _core.one_hot(np.zeros(3, np.float64), 2, np.dtype(np.float32))
    with pytest.raises(TypeError, match="1-D"):
        _core.one_hot(np.zeros((3, 1), np.int64), 2, np.dtype(np.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        _core.one_hot(np.zeros(3, np.int64), 2, np.dtype(np.int32))
    with pytest.raises(ValueError, match="positive"):
        _core.one_hot(np.zeros(3, np.int64), 0, np.dtype(np.float32))
    assert _core.one_hot(np.array([0, 2], np.int64), 2, np.dtype(np.float32)) is None


def test_both_backends_train_on_the_same_targets():
    """A fit from labels on each backend sees the same one-hot rows: the same loss."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((40, 6)).astype(np.float32)
    y = rng.integers(0, 3, 40).astype(np.int32)
    nets = {}
    for backend in ("native", "reference"):
        net = densa.Network(
            [densa.Dense(6, 3, "identity")],
            loss="softmax_cross_entropy",
            dtype="float32",
            backend=backend,
            seed=0,
        )
        nets[backend] = net.evaluate(X, y)["loss"]
    assert nets["native"] == pytest.approx(nets["reference"], rel=1e-6)
