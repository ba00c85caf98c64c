"""The documentation cannot drift from the code.

* docs/backprop.md: every python block followed by a ``text`` block is run, and its
  output must be the text block, character for character; every block that starts
  with a file path (``# python/...`` or ``// cpp/...``) quotes that file: its lines must
  still be in it, together and in order, except where an elision line (``// ...``)
  says lines were left out.
* README.md: every python block runs.
* examples/quickstart.py runs and learns what it says it learns.
"""

from __future__ import annotations

import contextlib
import io
import re
import runpy
from pathlib import Path

import pytest

from densa import native as _native  # noqa: F401  (imported before stdout is redirected)

ROOT = Path(__file__).resolve().parent.parent
BACKPROP = ROOT / "docs" / "backprop.md"
README = ROOT / "README.md"

_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)


def blocks(path: Path) -> list[tuple[str, str]]:
    """(language, body) of every fenced block, in order."""
    return [(m.group(1), m.group(2)) for m in _BLOCK.finditer(path.read_text(encoding="utf-8"))]


def run_snippet(code: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<doc snippet>", "exec"), {"__name__": "__doc_snippet__"})
    return out.getvalue()


def examples_with_output(path: Path) -> list[tuple[str, str]]:
    found = blocks(path)
    return [
        (code, expected)
        for (lang, code), (next_lang, expected) in zip(found, found[1:])
        if lang == "python" and next_lang == "text"
    ]


def quotations(path: Path) -> list[tuple[str, list[str]]]:
    """(source file, quoted lines) of every block whose first line names a file."""
    out = []
    for lang, body in blocks(path):
        first, *rest = body.splitlines() or [""]
        m = re.fullmatch(r"(?:#|//) ((?:python|cpp)/\S+\.(?:py|hpp|cpp))", first.strip())
        if lang in ("python", "cpp") and m:
            out.append((m.group(1), [line for line in rest if line.strip()]))
    return out


def _normalized(line: str) -> str:
    return " ".join(line.split())


def test_backprop_doc_has_a_runnable_example_and_quotes():
    assert len(examples_with_output(BACKPROP)) >= 1
    assert len(quotations(BACKPROP)) >= 20


@pytest.mark.parametrize("index", range(len(examples_with_output(BACKPROP))))
def test_backprop_example_prints_what_the_doc_shows(index):
    code, expected = examples_with_output(BACKPROP)[index]
    printed = run_snippet(code)
    assert printed.rstrip() == expected.rstrip()


@pytest.mark.parametrize(
    ("source", "lines"),
    quotations(BACKPROP),
    ids=[f"{s}:{i}" for i, (s, _) in enumerate(quotations(BACKPROP))],
)
def test_backprop_quotes_are_in_the_source(source, lines):
    path = ROOT / source
    assert path.is_file(), f"docs/backprop.md quotes {source}, which does not exist"
    have = [_normalized(line) for line in path.read_text(encoding="utf-8").splitlines()]
    have = [line for line in have if line]
    for line in lines:
        if not _is_elision(line):
            assert _normalized(line) in have, f"{source} no longer contains: {line.strip()}"
    # Each run of quoted lines between elisions ("// ..." or "# ...") is contiguous in the
    # source, and the runs come in the source's order: a quote cannot splice lines from
    # different places into code that is not there.
    start = 0
    for run in _runs(lines):
        at = _find_run(have, run, start)
        assert at >= 0, f"{source} has these lines, but not together in this order: {run}"
        start = at + len(run)


def _is_elision(line: str) -> bool:
    return _normalized(line) in ("// ...", "# ...", "...")


def _runs(lines: list[str]) -> list[list[str]]:
    runs: list[list[str]] = [[]]
    for line in lines:
        if _is_elision(line):
            runs.append([])
        else:
            runs[-1].append(_normalized(line))
    return [run for run in runs if run]


def _find_run(have: list[str], run: list[str], start: int) -> int:
    for i in range(start, len(have) - len(run) + 1):
        if have[i : i + len(run)] == run:
            return i
    return -1


def test_a_spliced_quote_is_caught():
    # The check above would have passed the optimizer quote that spliced Adam's chunk
    # lines onto SGD's update: every line existed, in two different functions.
    have = ["auto& p = c[0];", "const auto& g = c[1];", "x();", "p -= lr * g;"]
    assert _find_run(have, ["auto& p = c[0];", "const auto& g = c[1];", "p -= lr * g;"], 0) < 0
    assert _find_run(have, ["const auto& g = c[1];", "x();"], 0) == 1
    assert _runs(["a", "// ...", "b", "c"]) == [["a"], ["b", "c"]]


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the quickstart saves a model file in the current directory
    code = [body for lang, body in blocks(README) if lang == "python"]
    assert code, "README.md has no python example"
    for body in code:
        run_snippet(body)
    assert (tmp_path / "spirals.npz").is_file()


def test_readme_gives_the_two_first_commands():
    text = README.read_text(encoding="utf-8")
    assert "pip install . && python -m densa" in text
    assert 'pip install ".[test]" && python -m pytest' in text
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^python -m pytest$", ci, re.M), ".ci/run must run the README's command"


def test_quickstart_example_learns():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        runpy.run_path(str(ROOT / "examples" / "quickstart.py"), run_name="__main__")
    accuracy = float(re.search(r"test accuracy: ([0-9.]+)", out.getvalue()).group(1))
    assert accuracy >= 0.95
    assert "reloaded predictions identical: True" in out.getvalue()
