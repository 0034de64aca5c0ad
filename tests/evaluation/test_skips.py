"""Tests that skip on a developer's machine must not skip silently where everything is installed."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def _collect_without_mteb(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    """Collects test_mteb_parity.py in a fresh interpreter where `import mteb` fails."""
    blocker = tmp_path / "blocker" / "mteb"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text(
        'raise ModuleNotFoundError("mteb is blocked by this test", name="mteb")\n')
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join([str(blocker.parent), str(ROOT)])
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-rs",
         str(ROOT / "tests" / "evaluation" / "test_mteb_parity.py")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("ci, fails", [("true", True), (None, False)])
def test_mteb_parity_fails_without_mteb_only_under_ci(tmp_path, ci, fails):
    result = _collect_without_mteb(tmp_path, ci)
    output = result.stdout + result.stderr
    assert (result.returncode not in (0, 5)) == fails, output
    assert ("mteb is blocked by this test" in output) == fails, output
