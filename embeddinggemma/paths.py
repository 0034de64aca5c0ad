"""One place that turns what a user typed into a path: a local path (`pathlib.Path`) or an object
storage URL such as `gs://bucket/runs` (`etils.epath.Path`, the type Orbax takes; reads and writes
go through fsspec, gcsfs for `gs://`).

Both types share the pathlib methods this package uses (`/`, `name`, `parent`, `exists`, `is_file`,
`iterdir`, `glob`, `read_bytes`, `write_text`, `mkdir`, `open`), so the code that reads and writes a
run is written once. What differs is said where it matters:
  - `pathlib.Path("gs://b/x")` would collapse the `//` into `gs:/b/x`, and `.absolute()` or
    `.resolve()` of an epath URL prefixes the current directory: use `as_path` and `absolute`.
  - object storage has no directories (a prefix exists while an object lies under it), no atomic
    rename and no locks: see `atomic.py` and `training/run_lock.py`.

Setting `STORAGE_EMULATOR_HOST` (gcsfs, google-cloud-storage) and `TENSORSTORE_GCS_HTTP_URL`
(TensorStore, under Orbax) to a GCS emulator's address points every client at it; the tests do so.
"""

from __future__ import annotations

import glob
import os
import pathlib
import re
from typing import TypeAlias

import fsspec.config
from etils import epath

# gcsfs caches directory listings and never sees what another process (another host of the run)
# wrote meanwhile: off, unless the user's fsspec configuration says otherwise.
fsspec.config.conf.setdefault("gcs", {}).setdefault("use_listings_cache", False)

# What a function of this package takes and returns as a path: local or in a bucket.
AnyPath: TypeAlias = pathlib.Path | epath.Path

_URL = re.compile(r"^[a-z][a-z0-9+.-]*://")


def is_url(path: str | os.PathLike) -> bool:
    """Whether `path` names an object in a bucket (`gs://...`, `s3://...`), not a local file."""
    return bool(_URL.match(os.fspath(path)))


def as_path(path: str | os.PathLike) -> AnyPath:
    """`path` as an `epath.Path` when it is a URL (`gs://b/x` keeps its `//`), else as a
    `pathlib.Path` (unchanged: `~` is not expanded here)."""
    if not is_url(path):
        return pathlib.Path(path)
    return path if isinstance(path, epath.Path) else epath.Path(os.fspath(path))


def absolute(path: str | os.PathLike) -> AnyPath:
    """A local `path` with `~` expanded and made absolute; a URL as it is."""
    path = as_path(path)
    return path if is_url(path) else path.expanduser().absolute()


def files_under(directory: AnyPath) -> list[AnyPath]:
    """The files in `directory` and below it, in no set order (epath refuses `rglob` on a bucket)."""
    if not is_url(directory):
        return [f for f in directory.rglob("*") if f.is_file()]
    return [f for p in directory.iterdir() for f in (files_under(p) if p.is_dir() else [p])]


def glob_files(pattern: str | os.PathLike) -> list[AnyPath]:
    """What a glob `pattern` (`*`, `?`, `[...]` in any component; local `~` expanded) matches,
    sorted by name; in a bucket, the files under the prefix named by the components before the
    first with a wildcard."""
    pattern = os.fspath(pattern)
    if not is_url(pattern):
        return [pathlib.Path(p) for p in sorted(glob.glob(os.path.expanduser(pattern)))]
    scheme, _, rest = pattern.partition("://")
    parts = rest.split("/")
    fixed = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    if fixed == len(parts):
        return [as_path(pattern)] if as_path(pattern).is_file() else []
    base = as_path(f"{scheme}://{'/'.join(parts[:fixed])}")
    return sorted((p for p in base.glob("/".join(parts[fixed:])) if p.is_file()), key=str)


def resolved(path: str | os.PathLike) -> AnyPath:
    """A local `path` with `~` expanded, absolute, its symbolic links followed; a URL as it is."""
    path = as_path(path)
    return path if is_url(path) else path.expanduser().resolve()


def file_stat(path: AnyPath) -> tuple[int, int]:
    """(size in bytes, modification time in nanoseconds) of the file `path` (in a bucket, epath's
    stat gives whole seconds)."""
    if is_url(path):
        stat = path.stat()
        return stat.length, stat.mtime * 10**9
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


__all__ = ["AnyPath", "absolute", "as_path", "file_stat", "files_under", "glob_files", "is_url", "resolved"]
