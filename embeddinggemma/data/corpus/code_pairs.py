"""Code retrieval pairs from pinned third-party wheels: a docstring's summary -> its function.

The function's source is the document with its docstring removed (else the answer is in the
document). Public functions and methods only; test files are left out. Sources are read straight
out of the wheel files (wheels.py), never from the running environment.
"""

from __future__ import annotations

import ast
import contextlib
import sys
import textwrap
import warnings
import zipfile
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath

from embeddinggemma.data.corpus.pairs import CorpusExample, clip_text, sample_spread
from embeddinggemma.data.corpus.wheels import Wheel

TASK = "InstructionRetrieval"
# Well-documented scientific Python (import names, each read from the pinned wheel that holds it): the
# ecosystem this codebase is written in, with networkx and sympy in place of numpy and scipy, whose
# wheels differ by platform.
DEFAULT_PACKAGES = ("absl", "etils", "flax", "jax", "ml_collections", "networkx", "optax", "orbax", "sympy")
PER_FILE = 4
MIN_QUERY_WORDS = 4
MAX_QUERY_CHARS = 1000
MAX_CODE_CHARS = 4000


def _is_test(path: PurePosixPath) -> bool:
    in_test_dir = any(p in ("test", "tests", "testing") for p in path.parts)
    return in_test_dir or path.name.startswith("test_") or path.stem.endswith("_test")


def package_files(wheels: Sequence[Wheel], packages: Sequence[str]) -> dict[str, tuple[Wheel, list[str]]]:
    """Package import name -> (the first wheel holding it, its sorted non-test `.py` members).

    Raises:
      ValueError for a package of CPython's standard library (reserved for evaluation) or one that
      no wheel holds.
    """
    reserved = [p for p in packages if p in sys.stdlib_module_names]
    if reserved:
        raise ValueError(f"Packages {reserved} are reserved: CPython standard library.")
    sources: dict[str, tuple[Wheel, list[str]]] = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel.path) as archive:
            names = [PurePosixPath(n) for n in archive.namelist() if n.endswith(".py")]
        for package in set(packages) - set(sources):
            members = sorted(str(n) for n in names if n.parts[0] == package and not _is_test(n))
            if members:
                sources[package] = (wheel, members)
    missing = [p for p in packages if p not in sources]
    if missing:
        raise ValueError(f"Packages {missing} are in none of the wheels {[w.path.name for w in wheels]}.")
    return {p: sources[p] for p in packages}


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


def source_pairs(source: bytes, relative: str) -> list[CorpusExample]:
    """The pairs of one source file's bytes, ids prefixed by `relative` and unique (none when unparsable)."""
    try:
        text = source.decode("utf-8")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes and the like in third-party code
            tree = ast.parse(text)
    except (UnicodeDecodeError, SyntaxError, ValueError):
        return []
    lines = text.splitlines()
    pairs, seen = [], Counter()
    for name, node in _functions(tree.body):
        docstring = ast.get_docstring(node)
        if not docstring or node.name.startswith("_") or _is_stub(node):
            continue
        query = clip_text(_summary(docstring), MAX_QUERY_CHARS)
        if len(query.split()) < MIN_QUERY_WORDS:
            continue
        code = clip_text(_code_without_docstring(lines, node), MAX_CODE_CHARS)
        # A property's getter and setter share one qualified name: the later pairs get "#2", "#3".
        seen[name] += 1
        qualified = name if seen[name] == 1 else f"{name}#{seen[name]}"
        pairs.append(CorpusExample(id=f"{relative}:{qualified}", task=TASK, query=query, positive=code))
    return pairs


def file_pairs(path: Path, root: Path) -> list[CorpusExample]:
    """The pairs of a source file on disk, ids prefixed by its path relative to `root`."""
    try:
        source = path.read_bytes()
    except OSError:
        return []
    return source_pairs(source, path.relative_to(root).as_posix())


def code_pairs(wheels: Sequence[Wheel], packages: Sequence[str] = DEFAULT_PACKAGES, *, seed: int,
               max_pairs: int) -> tuple[list[CorpusExample], dict]:
    """(pairs sorted by id, provenance). Docstrings and functions are each used once."""
    files = package_files(wheels, packages)
    groups = [(wheel, member) for wheel, members in files.values() for member in members]
    with contextlib.ExitStack() as stack:
        archives = {w.path: stack.enter_context(zipfile.ZipFile(w.path)) for w, _ in files.values()}
        pairs = sample_spread(groups, lambda g: source_pairs(archives[g[0].path].read(g[1]), g[1]), seed=seed,
                              max_pairs=max_pairs, per_group=PER_FILE, unique=("query", "positive"))
    return pairs, {"packages": {p: f"{w.name}=={w.version}" for p, (w, _) in files.items()},
                   "files": sum(len(members) for _, members in files.values())}
