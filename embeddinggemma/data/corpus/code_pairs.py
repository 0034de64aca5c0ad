"""Code retrieval pairs from installed third-party packages: a docstring's summary -> its function.

The function's source is the document with its docstring removed (else the answer is in the
document). Public functions and methods only; test files are left out.
"""

from __future__ import annotations

import ast
import textwrap
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

from embeddinggemma.data.corpus.package_metadata import installed_versions
from embeddinggemma.data.corpus.pairs import Pair, clip_text, sample_spread
from embeddinggemma.data.corpus.reserved import reserved_reason

TASK = "InstructionRetrieval"
# Well-documented scientific Python: the ecosystem this codebase is written in.
DEFAULT_PACKAGES = ("absl", "etils", "flax", "grain", "jax", "ml_collections", "numpy", "optax", "orbax",
                    "scipy")
PER_FILE = 4
MIN_QUERY_WORDS = 4
MAX_QUERY_CHARS = 1000
MAX_CODE_CHARS = 4000


def _is_test(path: Path) -> bool:
    in_test_dir = any(p in ("test", "tests", "testing") for p in path.parts)
    return in_test_dir or path.name.startswith("test_") or path.stem.endswith("_test")


def package_files(site_dirs: Sequence[str | Path],
                  packages: Sequence[str]) -> dict[str, tuple[Path, list[Path]]]:
    """Package name -> (site directory, sorted non-test `.py` files), from the first site that has it."""
    found = {}
    for package in packages:
        for site in map(Path, site_dirs):
            root = site / package
            if root.is_dir() and reserved_reason(root) is None:
                found[package] = (site, [f for f in sorted(root.rglob("*.py"))
                                         if not _is_test(f.relative_to(site)) and reserved_reason(f) is None])
                break
        else:
            raise FileNotFoundError(f"Package {package!r} is not in {[str(s) for s in site_dirs]} "
                                    f"(or is reserved).")
    return found


Function = ast.FunctionDef | ast.AsyncFunctionDef


def _functions(body: list[ast.stmt], prefix: str = "") -> Iterator[tuple[str, Function]]:
    """(qualified name, node) of the functions defined in a module or class body, methods included."""
    for node in body:
        if isinstance(node, Function):
            yield prefix + node.name, node
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node.body, f"{prefix}{node.name}.")


def _summary(docstring: str) -> str:
    return " ".join(docstring.split("\n\n", 1)[0].split())


def _code_without_docstring(lines: list[str], node: Function) -> str:
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
    doc = node.body[0]
    kept = lines[first:doc.lineno - 1] + lines[doc.end_lineno:node.end_lineno]
    return textwrap.dedent("\n".join(kept)).strip()


def _is_stub(node: Function) -> bool:
    rest = node.body[1:]
    return all(isinstance(s, ast.Pass) or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
               for s in rest)


def file_pairs(path: Path, site: Path) -> list[Pair]:
    """The pairs of one source file (none when it cannot be read or parsed)."""
    try:
        source = path.read_text(encoding="utf-8")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes and the like in third-party code
            tree = ast.parse(source)
    except (UnicodeDecodeError, SyntaxError, ValueError):
        return []
    lines = source.splitlines()
    pairs = []
    relative = path.relative_to(site).as_posix()
    for name, node in _functions(tree.body):
        docstring = ast.get_docstring(node)
        if not docstring or node.name.startswith("_") or _is_stub(node):
            continue
        query = clip_text(_summary(docstring), MAX_QUERY_CHARS)
        if len(query.split()) < MIN_QUERY_WORDS:
            continue
        code = clip_text(_code_without_docstring(lines, node), MAX_CODE_CHARS)
        pairs.append(Pair(id=f"{relative}:{name}", task=TASK, query=query, positive=code))
    return pairs


def code_pairs(site_dirs: Sequence[str | Path], packages: Sequence[str] = DEFAULT_PACKAGES, *, seed: int,
               max_pairs: int) -> tuple[list[Pair], dict]:
    """(pairs sorted by id, provenance). Docstrings and functions are each used once."""
    files = package_files(site_dirs, packages)
    groups = [(f, site) for site, paths in files.values() for f in paths]
    pairs = sample_spread(groups, lambda g: file_pairs(*g), seed=seed, max_pairs=max_pairs,
                          per_group=PER_FILE, unique=("query", "positive"))
    versions = installed_versions(site_dirs)
    return pairs, {"packages": {p: versions.get(p, "unknown") for p in packages},
                   "files": sum(len(paths) for _, paths in files.values())}
