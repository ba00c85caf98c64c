"""Type stubs for densa's compiled extension modules, generated so they cannot drift.

    python tools/stubs.py           write python/densa/<module>.pyi for each extension
    python tools/stubs.py --check   regenerate into a temporary folder and compare; exit 1
                                    and print a diff when a committed stub is stale

Every extension module found in the installed ``densa`` package (``_core`` today) gets
its stub from pybind11-stubgen (the version pinned in pyproject's ``test`` extra: another
version may format the same module differently). Values of module-level constants, such
as the SIMD instruction sets a build uses, depend on the machine that compiled it, so
``name: str = '...'`` is written as ``name: str``: the stub describes types only.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.machinery
import importlib.util
import pkgutil
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = ROOT / "python" / "densa"
_CONSTANT = re.compile(r"^(\w+): (str|int|float|bool) = .*$", re.MULTILINE)


def extension_modules() -> list[str]:
    """Names (``densa._core``, ...) of the compiled modules of the installed package."""
    import densa

    names = []
    for info in pkgutil.iter_modules(densa.__path__, "densa."):
        spec = importlib.util.find_spec(info.name)
        origin = (spec.origin or "") if spec is not None else ""
        # By file name: an editable install wraps the loader of its compiled modules.
        if origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
            names.append(info.name)
    return sorted(names)


def generate(module: str, out_dir: Path) -> str:
    """The normalised stub text of ``module``, generated in ``out_dir``."""
    subprocess.run(
        [sys.executable, "-m", "pybind11_stubgen", "--exit-code", "-o", str(out_dir), module],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    text = (out_dir / Path(*module.split("."))).with_suffix(".pyi").read_text()
    return _CONSTANT.sub(r"\1: \2", text)


def committed_path(module: str) -> Path:
    return PACKAGE_DIR / (module.split(".", 1)[1].replace(".", "/") + ".pyi")


def check(modules: list[str]) -> list[str]:
    """Problems found: stale or missing stubs, and stubs that shadow a Python module."""
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        for module in modules:
            path = committed_path(module)
            fresh = generate(module, Path(tmp))
            if not path.exists():
                problems.append(f"{path.relative_to(ROOT)} is missing for {module}")
                continue
            old = path.read_text()
            if old != fresh:
                diff = difflib.unified_diff(
                    old.splitlines(keepends=True),
                    fresh.splitlines(keepends=True),
                    f"{path.relative_to(ROOT)} (committed)",
                    f"{module} (as built now)",
                )
                problems.append("".join(diff))
    for stub in PACKAGE_DIR.rglob("_*.pyi"):
        if stub.with_suffix(".py").exists():
            problems.append(
                f"{stub.relative_to(ROOT)} stands beside {stub.with_suffix('.py').name}, "
                "which type checkers would then ignore: delete the stub"
            )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    modules = extension_modules()
    if not modules:
        print("stubs: no compiled module found in the installed densa", file=sys.stderr)
        return 1
    if args.check:
        problems = check(modules)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("stubs: out of date; run `python tools/stubs.py` and commit", file=sys.stderr)
            return 1
        print(f"stubs: up to date for {', '.join(modules)}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        for module in modules:
            path = committed_path(module)
            path.write_text(generate(module, Path(tmp)))
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
