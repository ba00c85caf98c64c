"""Type stubs for densa's compiled extension modules, generated so they cannot drift.

    python tools/stubs.py           write python/densa/<module>.pyi
    python tools/stubs.py --check   regenerate into a temporary folder and compare; exit 1
                                    and print a diff when a committed stub is stale

Stubs come from pybind11-stubgen (the version pinned in pyproject's ``test`` extra:
another version may format the same module differently). Values of module-level
constants, such as the instruction set a build targets, depend on the machine that
compiled it, so ``name: str = '...'`` is written as ``name: str``: the stub describes
types only.

The core is built once per instruction-set level (``_core_baseline``,
``_core_x86_64_v3``, ...; ``densa._core`` picks one at import). They are one set of
bindings, so one committed stub, ``_core_baseline.pyi``, describes them all: the check
requires every other level built here to generate exactly the same stub.
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
BASELINE = "densa._core_baseline"
# pybind11-stubgen imports the module by itself; densa._core first loads the BLAS
# library (scipy-openblas32) that the extension modules link to.
_STUBGEN = (
    "import sys, densa._core, pybind11_stubgen; "
    "sys.argv = ['pybind11-stubgen', *sys.argv[1:]]; pybind11_stubgen.main()"
)


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
        [sys.executable, "-c", _STUBGEN, "--exit-code", "-o", str(out_dir), module],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    text = (out_dir / Path(*module.split("."))).with_suffix(".pyi").read_text()
    return _CONSTANT.sub(r"\1: \2", text)


def committed_path(module: str) -> Path:
    return PACKAGE_DIR / (module.split(".", 1)[1].replace(".", "/") + ".pyi")


def stub_owner(module: str, modules: list[str]) -> str:
    """The module whose committed stub describes ``module``: the baseline core for every
    instruction-set level of the core, else the module itself."""
    if module.startswith("densa._core_") and BASELINE in modules:
        return BASELINE
    return module


def check(modules: list[str]) -> list[str]:
    """Problems found: stale or missing stubs, and stubs that shadow a Python module."""
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        fresh_of: dict[str, str] = {}
        for module in modules:
            fresh_of[module] = generate(module, Path(tmp))
        for module in modules:
            fresh = fresh_of[module]
            owner = stub_owner(module, modules)
            if owner != module:
                if fresh != fresh_of[owner]:
                    diff = difflib.unified_diff(
                        fresh_of[owner].splitlines(keepends=True),
                        fresh.splitlines(keepends=True),
                        owner,
                        module,
                    )
                    problems.append(
                        f"{module} exposes another API than {owner} (one stub describes "
                        "every instruction-set build):\n" + "".join(diff)
                    )
                continue
            path = committed_path(module)
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
            if stub_owner(module, modules) != module:
                continue  # described by the baseline's stub (checked by --check)
            path = committed_path(module)
            path.write_text(generate(module, Path(tmp)))
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
