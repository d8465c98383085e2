"""Every labsat module imports on its own, as the first labsat module of a fresh interpreter.

An import cycle is invisible when a test happens to import the modules in a lucky order; it only
breaks when a user's first import is the wrong module. Importing each module alone finds those cycles.

A new interpreter per module would spend most of its time importing torch again. So one fresh
interpreter (this file run as a script) first loads every third-party and standard module that
labsat's modules load (found in a throwaway child), with no labsat module loaded, then forks one child
per labsat module: each child starts from that state, so the module under test is the first labsat
module it imports, exactly as in ``python -c "import labsat.X"``.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import pkgutil
import subprocess
import sys
import traceback
from pathlib import Path

_TIMEOUT_S = 60.0
"""Per module: an import that takes longer is reported as hanging."""

_WORKERS = 2


def _all_modules() -> list[str]:
    """Every module and package under labsat, by dotted name."""
    import labsat  # here, not at the top: the runner below must start with no labsat module loaded

    names = ["labsat"]
    for info in pkgutil.walk_packages(labsat.__path__, prefix="labsat."):
        names.append(info.name)
    return sorted(names)


def _run_alone(names: list[str], package_root: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """Import each of ``names`` alone (see the module docstring); the error line of each that fails."""
    done = subprocess.run(
        [sys.executable, __file__, str(package_root), *names],
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_S * len(names) / _WORKERS + 120,
        env=env,
    )
    if done.returncode not in (0, 1):
        raise AssertionError(f"the import runner failed (exit {done.returncode}):\n{done.stderr}")
    failures = {}
    for line in done.stdout.splitlines():
        name, _, error = line.partition("\t")
        failures[name] = error
    return failures


def test_walk_finds_the_package_tree() -> None:
    names = _all_modules()
    assert "labsat.twin" in names
    assert "labsat.calibration.runner" in names
    assert "labsat.simulators.emulators.tcp" in names


def test_every_module_imports_alone() -> None:
    names = _all_modules()
    failures = _run_alone(names, Path(__file__).resolve().parents[1] / "labsat")
    assert not failures, "modules that fail to import alone:\n" + "\n".join(
        f"  {name}: {error}" for name, error in sorted(failures.items())
    )


def test_an_order_dependent_cycle_is_caught(tmp_path: Path) -> None:
    """``b`` imports fine first (and then ``a`` is already loaded); ``a`` first breaks on the cycle."""
    package = tmp_path / "cyclic"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("import cyclic.b\n\nVALUE = 1\n")
    (package / "b.py").write_text("from cyclic.a import VALUE\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}

    failures = _run_alone(["cyclic.b", "cyclic.a"], package, env)

    assert set(failures) == {"cyclic.a"}
    assert "VALUE" in failures["cyclic.a"] and "partially initialized" in failures["cyclic.a"]


# -- the runner: `python tests/test_imports.py PACKAGE_DIR MODULE...` ----------------------------------


def _dependencies(package: str, names: list[str]) -> list[str]:
    """In a throwaway child: import all of ``names``; every module outside ``package`` that loaded, in order."""
    for name in names:
        try:
            importlib.import_module(name)
        except BaseException:
            continue  # reported when the module is imported alone
    return [name for name in sys.modules if name.split(".")[0] != package]


def _import_one(name: str) -> str | None:
    """In a forked child: import ``name``; the last line of the error if it fails."""
    try:
        importlib.import_module(name)
    except BaseException:  # any failure, SystemExit included, is the module's failure to import
        lines = traceback.format_exc().strip().splitlines()
        return lines[-1]
    return None


def _main(package_root: Path, names: list[str]) -> int:
    package = package_root.name
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        dependencies = pool.apply(_dependencies, (package, names))
    for dependency in dependencies:
        try:
            importlib.import_module(dependency)
        except BaseException:
            continue  # a module that needs it reports the failure itself
    loaded = sorted(name for name in sys.modules if name.split(".")[0] == package)
    if loaded:
        print(f"a dependency imported {loaded[0]} before any test", file=sys.stderr)
        return 2
    # One fresh fork per module: nothing a previous import left behind is visible to the next.
    context = multiprocessing.get_context("fork")
    with context.Pool(_WORKERS, maxtasksperchild=1) as pool:
        pending = [(name, pool.apply_async(_import_one, (name,))) for name in names]
        failed = 0
        for name, result in pending:
            try:
                error = result.get(_TIMEOUT_S)
            except multiprocessing.TimeoutError:
                error = f"still importing after {_TIMEOUT_S:.0f} s"
            if error is not None:
                failed += 1
                print(f"{name}\t{error}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(_main(Path(sys.argv[1]), sys.argv[2:]))
