"""The committed stubs of the compiled modules match what the build exposes
(tools/stubs.py), and the package ships them with its py.typed marker."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from helpers import load_script

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "stubs.py"


def test_package_is_marked_typed_and_has_core_stub():
    package = resources.files("densa")
    assert package.joinpath("py.typed").is_file()
    assert package.joinpath("_core_baseline.pyi").is_file()


def test_committed_stubs_match_the_built_extension():
    pytest.importorskip("pybind11_stubgen")
    proc = subprocess.run(
        [sys.executable, str(TOOL), "--check"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "up to date for densa._core_baseline" in proc.stdout


def test_check_reports_a_stale_stub_with_a_diff(tmp_path, monkeypatch):
    pytest.importorskip("pybind11_stubgen")
    tool = load_script("tools/stubs.py", "densa_stub_tool")
    stale = (ROOT / "python" / "densa" / "_core_baseline.pyi").read_text()
    stale = stale.replace("def dense_forward(", "def dense_forward_old(", 1)
    (tmp_path / "_core_baseline.pyi").write_text(stale)
    monkeypatch.setattr(tool, "PACKAGE_DIR", tmp_path)
    monkeypatch.setattr(tool, "ROOT", tmp_path.parent)
    problems = tool.check(["densa._core_baseline"])
    assert len(problems) == 1
    assert "-def dense_forward_old(" in problems[0]
    assert "+def dense_forward(" in problems[0]


def test_every_instruction_set_build_must_expose_the_baseline_api(monkeypatch):
    # One committed stub stands for all levels, so a level whose API differs is an error.
    tool = load_script("tools/stubs.py", "densa_stub_tool")
    stubs = {"densa._core_baseline": "def f() -> int: ...\n", "densa._core_x86_64_v3": "x: int\n"}
    monkeypatch.setattr(tool, "generate", lambda module, out_dir: stubs[module])
    monkeypatch.setattr(tool, "committed_path", lambda module: tool.PACKAGE_DIR / "none.pyi")
    problems = tool.check(list(stubs))
    assert any(
        p.startswith("densa._core_x86_64_v3 exposes another API than densa._core_baseline")
        and "+x: int" in p
        for p in problems
    ), problems
    assert tool.stub_owner("densa._core_x86_64_v3", list(stubs)) == "densa._core_baseline"
    assert tool.stub_owner("densa._other", list(stubs)) == "densa._other"


def test_check_refuses_a_stub_that_shadows_python_source(tmp_path, monkeypatch):
    tool = load_script("tools/stubs.py", "densa_stub_tool")
    (tmp_path / "_thing.py").write_text("x = 1\n")
    (tmp_path / "_thing.pyi").write_text("x: int\n")
    monkeypatch.setattr(tool, "PACKAGE_DIR", tmp_path)
    monkeypatch.setattr(tool, "ROOT", tmp_path.parent)
    problems = tool.check([])
    assert problems == [
        f"{tmp_path.name}/_thing.pyi stands beside _thing.py, which type "
        "checkers would then ignore: delete the stub"
    ]


def test_constant_values_are_dropped_from_stubs():
    tool = load_script("tools/stubs.py", "densa_stub_tool")
    text = (
        "eigen_version: str = '3.4.1'\nsimd: str = 'AVX2, FMA'\nn: int = 3\ndef f() -> int: ...\n"
    )
    assert tool._CONSTANT.sub(r"\1: \2", text) == (
        "eigen_version: str\nsimd: str\nn: int\ndef f() -> int: ...\n"
    )
