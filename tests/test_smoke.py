import numpy as np

from densa import native, reference


def test_native_matches_reference_on_one_layer():
    rng = np.random.default_rng(0)
    W, b, x = rng.standard_normal((4, 3)), rng.standard_normal(4), rng.standard_normal((5, 3))
    z_n, y_n = native.dense_forward(W, b, x, "tanh")
    z_r, y_r = reference.dense_forward(W, b, x, "tanh")
    np.testing.assert_allclose(y_n, y_r, rtol=1e-12, atol=1e-14)
