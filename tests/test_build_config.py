"""The per-ISA extension modules, their loader, and show_config."""

from __future__ import annotations

import io
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

import densa
from densa import _core


def _run(code, **env):
    full = {k: v for k, v in os.environ.items() if k != "DENSA_ISA"}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True)


@pytest.mark.skipif(bool(os.environ.get("DENSA_ISA")), reason="DENSA_ISA forces the pick")
def test_picks_the_highest_level_built_and_supported():
    usable = [lv for lv in _core.built_levels() if lv in _core.supported_levels()]
    assert _core.picked == usable[-1]
    assert _core.isa == _core.picked
    assert "baseline" in _core.built_levels()


def test_forcing_baseline_gives_the_same_results_closely():
    code = (
        "import numpy as np; from densa import _core, native\n"
        "rng = np.random.default_rng(0)\n"
        "W = rng.standard_normal((40, 30)); b = rng.standard_normal(40)\n"
        "x = rng.standard_normal((20, 30))\n"
        "print(_core.picked); print(repr(native.dense_forward(W, b, x, 'tanh')[1].sum()))"
    )
    out = _run(code, DENSA_ISA="baseline")
    assert out.returncode == 0, out.stderr
    picked, value = out.stdout.split()[-2:]
    assert picked == "baseline"
    rng = np.random.default_rng(0)
    W, b = rng.standard_normal((40, 30)), rng.standard_normal(40)
    x = rng.standard_normal((20, 30))
    want = np.tanh(x @ W.T + b).sum()
    assert float(value.removeprefix("np.float64(").rstrip(")")) == pytest.approx(want, rel=1e-12)


def test_unknown_level_is_refused():
    out = _run("import densa._core", DENSA_ISA="sse9")
    assert out.returncode != 0
    assert "DENSA_ISA" in out.stderr


def test_show_config_names_isa_threads_eigen_and_blas():
    buf = io.StringIO()
    densa.show_config(file=buf)
    text = buf.getvalue()
    for word in ("isa:", "threads:", "eigen:", "blas:", _core.picked, _core.eigen_version):
        assert word in text


def test_show_config_says_which_forward_product_runs():
    buf = io.StringIO()
    densa.show_config(file=buf)
    text = buf.getvalue()
    simd = {"baseline": None, "x86-64-v3": "AVX2 + FMA", "x86-64-v4": "AVX-512"}[_core.picked]
    expected = f"densa's own ({simd})" if simd else "no AVX2 + FMA"
    assert "forward: " in text
    assert expected in text
    assert densa._config.config()["forward_kernel"] is (simd is not None)
    assert densa._config.config()["forward_kernel_simd"] == simd


def test_show_config_says_where_momentum_steps_run():
    buf = io.StringIO()
    densa.show_config(file=buf)
    text = buf.getvalue()
    own = _core.picked != "baseline"
    assert "momentum: " in text
    assert ("layers of 64 Ki weights" in text) is own
    assert densa._config.config()["momentum_kernel"] is own
    # The v4 module's blocks are AVX-512 (tests/test_momentum_kernel.py holds them to the
    # AVX2 blocks' bits); show_config names what runs.
    simd = {"baseline": None, "x86-64-v3": "AVX2 + FMA", "x86-64-v4": "AVX-512"}[_core.picked]
    assert densa._config.config()["momentum_kernel_simd"] == simd
    if simd:
        assert f"momentum: densa's own ({simd})" in text


def test_show_config_says_whether_training_flushes_subnormals():
    buf = io.StringIO()
    densa.show_config(file=buf)
    text = buf.getvalue()
    flushes = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
    assert densa._config.config()["flushes_subnormals"] is flushes
    assert ("subnormals: flushed to zero while the native trainer runs" in text) is flushes
