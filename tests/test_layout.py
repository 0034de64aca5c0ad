"""The package's shape: commands apart from the library, no import circle, a light config check."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from embeddinggemma import cli

PACKAGE = Path(__file__).resolve().parent.parent / "embeddinggemma"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The package modules `path` imports anywhere (functions included): `from a.b import c` counts
    a.b.c when that is a module, else a.b."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in known else node.module)
    return {name for name in found if name in known}


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(files)
    return {name: imported_modules(path, known) - {name} for name, path in files.items()}


def test_no_import_circle_among_the_package_modules():
    graph = import_graph()
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    circles = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                circles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


def test_the_library_never_imports_a_command():
    graph = import_graph()
    offenders = {name: sorted(t for t in targets if t.startswith("embeddinggemma.cli"))
                 for name, targets in graph.items() if not name.startswith(("embeddinggemma.cli",
                                                                            "embeddinggemma.__main__"))}
    assert not {k: v for k, v in offenders.items() if v}


def test_every_command_module_is_listed_and_every_listed_command_exists():
    modules = {p.stem for p in (PACKAGE / "cli").glob("*.py") if p.stem != "__init__"}
    assert modules == set(cli.COMMANDS)


def test_the_dispatcher_refuses_an_unknown_command(capsys):
    assert cli.main(["trian"]) == 2
    assert "unknown command 'trian'" in capsys.readouterr().err


@pytest.mark.parametrize("spec", ["configs/finetune.py:tiny", "configs/prefinetune.py:300m",
                                  "configs/ul2_adapt.py:tiny"])
def test_validating_a_config_loads_no_data_pipeline_checkpoint_library_or_corpus_builder(spec):
    code = ("import sys\n"
            "from embeddinggemma.training.config_files import load_config\n"
            "from embeddinggemma.training.config import validate_config\n"
            f"validate_config(load_config({spec!r}))\n"
            "heavy = ('grain', 'orbax', 'bm25s', 'tensorflow_datasets', 'embeddinggemma.data.corpus.build',"
            " 'embeddinggemma.data.pipeline', 'embeddinggemma.checkpoint.loading')\n"
            "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=PACKAGE.parent, check=True)
    assert result.stdout.strip() == "[]"
