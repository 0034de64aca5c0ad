"""Builds the wheel, installs it (not editable) with its runtime dependencies into a fresh virtual
environment, and from a directory outside the checkout imports every module of the package and
runs every command's --help: what `pip install .` or a git URL gives a user, which the editable
install of `make` hides (a package left out of the wheel, a data file not shipped, a runtime
dependency only an extra brings).

    python scripts/check_wheel.py [--keep DIR]

Exit status 0 when everything imports and every --help exits 0; 1 otherwise, naming what failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Run inside the fresh environment: every module of the installed package, imported by name.
IMPORT_ALL = """
import importlib, pkgutil, sys
import embeddinggemma
where = embeddinggemma.__path__[0]
assert "site-packages" in where, f"embeddinggemma imported from {where}, not the installed wheel"
failed = []
names = [m.name for m in pkgutil.walk_packages(embeddinggemma.__path__, "embeddinggemma.")]
for name in ["embeddinggemma", *names]:
    if name == "embeddinggemma.__main__":
        continue  # runs the dispatcher; the --help calls exercise it
    try:
        importlib.import_module(name)
    except Exception as e:
        failed.append(f"{name}: {type(e).__name__}: {e}")
print(f"imported {len(names) + 1 - len(failed)} of {len(names) + 1} modules from {where}")
if failed:
    print("failed:\\n  " + "\\n  ".join(failed))
    sys.exit(1)
"""


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    print("+", " ".join(command), flush=True)
    return subprocess.run(command, check=True, **kwargs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, default=None,
                        help="build the environment here and keep it (default: a temporary directory)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="embeddinggemma-wheel-") as scratch:
        work = args.keep or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        dist, venv, outside = work / "dist", work / "venv", work / "elsewhere"
        outside.mkdir(exist_ok=True)
        # Built from a copy of what setup.py packages, so the build leaves no build/ or egg-info
        # in the checkout.
        source = Path(scratch) / "source"  # always fresh, whatever --keep names
        for name in ("setup.py", "pyproject.toml", "README.md"):
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
        shutil.copytree(ROOT / "embeddinggemma", source / "embeddinggemma",
                        ignore=shutil.ignore_patterns("__pycache__"))
        # Build isolation, as `pip install .` does: pyproject.toml's build requirements, not
        # whatever this environment happens to hold.
        run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)])
        wheels = sorted(dist.glob("embeddinggemma-*.whl"))
        if len(wheels) != 1:
            print(f"error: expected one embeddinggemma wheel in {dist}, found {wheels}", file=sys.stderr)
            return 1
        # The base interpreter, not this virtual environment: nothing of .venv leaks in.
        base = getattr(sys, "_base_executable", sys.executable)
        run([base, "-m", "venv", str(venv)])
        python = venv / "bin" / "python"
        run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheels[0])])
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["JAX_PLATFORMS"] = "cpu"
        failures = []
        if subprocess.run([str(python), "-c", IMPORT_ALL], cwd=outside, env=env).returncode:
            failures.append("importing the package's modules")
        commands = subprocess.run(
            [str(python), "-c", "from embeddinggemma.cli import COMMANDS; print(' '.join(COMMANDS))"],
            cwd=outside, env=env, check=True, capture_output=True, text=True).stdout.split()
        script = venv / "bin" / "embeddinggemma"
        for command in commands:
            result = subprocess.run([str(script), command, "--help"], cwd=outside, env=env,
                                    capture_output=True, text=True)
            status = "ok" if result.returncode == 0 else f"exit {result.returncode}"
            print(f"embeddinggemma {command} --help: {status}")
            if result.returncode:
                failures.append(f"`embeddinggemma {command} --help`:\n{result.stdout}{result.stderr}")
    print(f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
    if failures:
        print("error: the installed wheel fails:\n" + "\n".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
