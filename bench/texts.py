"""Real, deterministic benchmark texts gathered from files already on this machine.

Queries are one-line descriptions: the `Summary:` field of installed packages' METADATA, then the
first sentence of numpy docstrings. Documents are longer: the description bodies of the same
METADATA files (cut to a cycle of lengths; some exceed 512 tokens, so truncation is exercised)
and numpy docstrings without their signature line or examples section (tens to hundreds of
tokens). Sources are listed in sorted order and picked at evenly spaced positions, so the same
environment gives the same texts.
"""

from __future__ import annotations

import hashlib
import inspect
import re
import sysconfig
from pathlib import Path

import numpy as np

# README bodies are cut to these character budgets in turn (about 100 to 1500 tokens), so that
# documents span short to truncated instead of nearly all hitting 512 tokens; 6000 characters
# also spares the tokenizers 100k-character READMEs whose tail would be cut anyway.
DOCUMENT_CHAR_BUDGETS = (400, 1000, 2500, 6000)
MIN_DOCUMENT_CHARS = 200
MIN_QUERY_WORDS = 3

_SIGNATURE_LINE = re.compile(r"^[\w.]+\(.*\)\s*$")
_EXAMPLES_HEADER = re.compile(r"\n\s*Examples\n\s*-{3,}\n")


def site_packages() -> Path:
    """The site-packages directory of the running interpreter (the project's venv)."""
    return Path(sysconfig.get_paths()["purelib"])


def _read_metadata(path: Path) -> tuple[str, str]:
    """(summary, description body) of one METADATA file; the body follows the first blank line."""
    text = path.read_text(encoding="utf-8", errors="replace")
    header, _, body = text.partition("\n\n")
    summary = ""
    for line in header.splitlines():
        if line.startswith("Summary:"):
            summary = line[len("Summary:"):].strip()
            break
    return summary, body.strip()


def package_metadata(root: Path | None = None) -> list[tuple[str, str, str]]:
    """(distribution, summary, body) of every `*.dist-info/METADATA` under `root`, sorted."""
    root = site_packages() if root is None else root
    out = []
    for path in sorted(root.glob("*.dist-info/METADATA")):
        summary, body = _read_metadata(path)
        out.append((path.parent.name, summary, body))
    return out


def numpy_docstrings() -> list[tuple[str, str]]:
    """(name, docstring) of numpy's public callables, sorted by name, aliases dropped."""
    seen: set[str] = set()
    out = []
    for name in sorted(n for n in dir(np) if not n.startswith("_")):
        obj = getattr(np, name)
        doc = inspect.getdoc(obj) if callable(obj) else None
        if doc and doc not in seen:
            seen.add(doc)
            out.append((name, doc))
    return out


def _without_signature(doc: str) -> str:
    # ufunc docstrings open with a signature line, which is not prose.
    first, _, rest = doc.partition("\n")
    return rest.strip() if _SIGNATURE_LINE.match(first) else doc


def docstring_summary(doc: str) -> str:
    """The first paragraph of a docstring, on one line."""
    return " ".join(_without_signature(doc).split("\n\n")[0].split())


def docstring_document(doc: str) -> str:
    """A docstring without its signature line and examples section."""
    return _EXAMPLES_HEADER.split(_without_signature(doc))[0].strip()


def cut_at_word(text: str, max_chars: int) -> str:
    """`text` cut to at most `max_chars`, at a whitespace boundary where there is one."""
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    return head.rsplit(maxsplit=1)[0] if " " in head or "\n" in head else head


def evenly_spaced(items: list, n: int) -> list:
    """`n` items at evenly spaced positions of `items` (all of them if there are fewer)."""
    if n >= len(items):
        return list(items)
    return [items[i * len(items) // n] for i in range(n)]


def gather_texts(n_queries: int = 128, n_documents: int = 128) -> tuple[list[str], list[str]]:
    """(queries, documents): half of each from package METADATA, half from numpy docstrings.

    Raises ValueError if this machine holds too few usable texts.
    """
    metadata = package_metadata()
    docstrings = numpy_docstrings()

    summaries = list(dict.fromkeys(s for _, s, _ in metadata if len(s.split()) >= MIN_QUERY_WORDS))
    doc_summaries = list(dict.fromkeys(
        s for _, d in docstrings if len((s := docstring_summary(d)).split()) >= MIN_QUERY_WORDS))
    bodies = [b for _, _, b in metadata if len(b) >= MIN_DOCUMENT_CHARS]
    doc_bodies = [d for _, doc in docstrings
                  if len(d := docstring_document(doc)) >= MIN_DOCUMENT_CHARS // 4]

    half_q, half_d = n_queries // 2, n_documents // 2
    queries = evenly_spaced(summaries, half_q) + evenly_spaced(doc_summaries, n_queries - half_q)
    readmes = [cut_at_word(b, DOCUMENT_CHAR_BUDGETS[i % len(DOCUMENT_CHAR_BUDGETS)])
               for i, b in enumerate(evenly_spaced(bodies, half_d))]
    documents = readmes + evenly_spaced(doc_bodies, n_documents - half_d)
    if len(queries) < n_queries or len(documents) < n_documents:
        raise ValueError(f"found only {len(queries)} queries and {len(documents)} documents; "
                         f"wanted {n_queries} and {n_documents}")
    return queries, documents


def texts_digest(queries: list[str], documents: list[str]) -> str:
    """A short sha256 of the text set, to tell whether two result files measured the same texts."""
    digest = hashlib.sha256()
    for text in (*queries, "\0", *documents):
        digest.update(text.encode("utf-8") + b"\0")
    return digest.hexdigest()[:16]
