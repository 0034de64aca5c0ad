"""Sources reserved for held-out evaluation (shared/DATA.md), never read to build training data:
CPython's standard library, man pages, the glib20 translation catalogs and Debian's package index.

Every reader of the corpus builder asks `reserved_reason(path)` before opening a file.
"""

from __future__ import annotations

import glob
import sysconfig
from functools import cache
from pathlib import Path

# Third-party packages live inside a Python's lib directory but are not its standard library.
_PACKAGE_DIRS = frozenset({"site-packages", "dist-packages"})
_DEBIAN_INDEX = (Path("/var/lib/dpkg"), Path("/var/lib/apt"), Path("/var/cache/apt"))


@cache
def _stdlib_roots() -> tuple[Path, ...]:
    paths = sysconfig.get_paths()
    found = {paths["stdlib"], paths["platstdlib"], *glob.glob("/usr/lib/python3*"),
             *glob.glob("/usr/local/lib/python3*")}
    return tuple(sorted(Path(p).resolve() for p in found))


def _reason(path: Path) -> str | None:
    for root in _stdlib_roots():
        if path.is_relative_to(root) and not _PACKAGE_DIRS & set(path.relative_to(root).parts):
            return "CPython standard library"
    parts = path.parts
    if any(a == "share" and b == "man" for a, b in zip(parts, parts[1:], strict=False)):
        return "man pages"
    if path.name.startswith("glib20."):
        return "glib20 translation catalog"
    if any(path.is_relative_to(root) for root in _DEBIAN_INDEX):
        return "Debian package index"
    return None


def reserved_reason(path: str | Path) -> str | None:
    """Why `path` must not be read for training, or None if it may be. Both the path as given and
    the file it links to are checked."""
    path = Path(path).absolute()
    return _reason(path) or _reason(path.resolve())
