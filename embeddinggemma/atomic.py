"""Writing files and directories so that a failure or a kill never leaves half of one, and so that
nothing a user put on disk is ever deleted.

A builder (corpus, evaluation suite, export, checkpoint) marks what it writes with a file of its
own, its *marker* (a manifest, a metadata file). It may write into a directory only when that
directory is absent, empty, or holds its marker: anything else belongs to somebody else and is an
error that names the directory and the marker expected, raised before any work is done.

A directory is built in a hidden sibling (`.NAME.partial-XXXX`, itself marked as ours) and renamed
into place at the end; a directory it replaces is moved aside first and removed only after the
rename. Sibling partials left by a killed builder are recognised by their mark and removed.

In a bucket (`gs://...`, see paths.py) there is no rename, atomic or not: a directory is written in
place and committed by its marker, written last. The build first marks the target as a partial
(`.embeddinggemma-partial`), removes the old marker (from then on a reader finds no finished
directory there, never half of one), then the rest of the old content, writes the new one and its
marker, and removes the partial mark. A kill leaves the target marked partial, which the next build
recognises as its own. Unlike a local rebuild, the old directory is gone once a rebuild starts. A
file is one object, written in one upload that appears whole or not at all.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from embeddinggemma.errors import NotOurDirectoryError
from embeddinggemma.paths import AnyPath, as_path, is_url, resolved

PARTIAL_MARK = ".embeddinggemma-partial"


def check_target(target: str | Path, marker: str, what: str) -> AnyPath:
    """`target` as a path (paths.as_path), if a builder of `what`, marking its output with `marker`,
    may write it. In a bucket, a target marked partial by a killed build is ours too.

    Raises:
      NotOurDirectoryError when `target` is a file, or a non-empty directory without `marker`.
    """
    target = as_path(target).expanduser()
    if (not is_url(target) and target.is_symlink()) or (target.exists() and not target.is_dir()):
        raise NotOurDirectoryError(f"{target} is not a directory; expected {what} there.")
    ours = (target / marker).is_file() or (is_url(target) and (target / PARTIAL_MARK).is_file())
    if target.is_dir() and any(target.iterdir()) and not ours:
        raise NotOurDirectoryError(
            f"{target} is not empty and holds no {marker}, so it is not {what}; nothing was "
            f"changed. Choose an absent or empty directory, or remove it yourself.")
    return target


def refuse_own_input(source: str | Path, target: str | Path) -> None:
    """For a command that reads `source` (--checkpoint) and writes `target` (--out): raises
    NotOurDirectoryError, whatever leave to replace it has, when `target` is `source`, lies inside
    it or holds it (paths resolved: `..` and symbolic links followed), so that writing it cannot
    destroy its own input."""
    source, target = resolved(source), resolved(target)
    relation = ("is" if target == source else "is inside" if source in target.parents else
                "holds" if target in source.parents else None)
    if relation is not None:
        raise NotOurDirectoryError(f"--out {target} {relation} the input --checkpoint {source}; "
                                   "nothing was changed. Choose an --out outside it.")


def refuse_replacing(target: str | Path, marker: str, what: str) -> None:
    """For a builder called without leave to replace its own output: raises FileExistsError when
    `target` already holds a finished `what` (its `marker`)."""
    target = as_path(target).expanduser()
    if (target / marker).is_file():
        raise FileExistsError(f"{target} already holds {what} ({marker}); nothing was changed. Pass "
                              "overwrite=True (--force) to rebuild it.")


def remove_stale_partials(target: AnyPath) -> None:
    """Removes the marked partial siblings of `target` that a killed builder left."""
    for partial in target.parent.glob(f".{target.name}.partial-*"):
        if (partial / PARTIAL_MARK).is_file():
            remove_tree(partial)


def remove_tree(directory: AnyPath) -> None:
    """Removes `directory` and what it holds, if it is there (a bucket prefix included); errors
    are ignored, as by `shutil.rmtree(ignore_errors=True)`."""
    if is_url(directory):
        with contextlib.suppress(OSError):
            directory.rmtree(missing_ok=True)
    else:
        shutil.rmtree(directory, ignore_errors=True)


def current_umask() -> int:
    """The process's umask, read without changing it where Linux states it (/proc/self/status); a
    set-and-restore elsewhere."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    umask = os.umask(0o077)
    os.umask(umask)
    return umask


def new_partial(target: AnyPath, marker: str | None = None) -> AnyPath:
    """A fresh, marked, hidden sibling directory of `target` to build it in, with the mode the
    umask gives a new directory (mkdtemp's 0700 would hide the finished one from other users).
    In a bucket: `target` itself, marked partial and emptied, its `marker` (when given) first (see
    the module's docstring)."""
    if is_url(target):
        return _empty_bucket_partial(target, marker)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(target)
    partial = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    os.chmod(partial, 0o777 & ~current_umask())
    (partial / PARTIAL_MARK).touch()
    return partial


def _empty_bucket_partial(target: AnyPath, marker: str | None) -> AnyPath:
    """The bucket prefix `target` marked partial, its old `marker` removed first, then the rest."""
    (target / PARTIAL_MARK).touch()
    if marker is not None:
        (target / marker).unlink(missing_ok=True)
    for item in target.iterdir():
        if item.is_dir():
            remove_tree(item)
        elif item.name != PARTIAL_MARK:
            item.unlink()
    return target


def commit_partial(partial: AnyPath, target: AnyPath) -> AnyPath:
    """Moves the finished `partial` into place as `target`, replacing what stood there (in a
    bucket, where `partial` is `target`: removes its partial mark, its marker being written).

    The caller checked `target` with `check_target` before building `partial`.
    """
    (partial / PARTIAL_MARK).unlink()
    if is_url(target):
        return target
    aside = None
    if target.exists():
        # A directory cannot be renamed over a non-empty one: move the old one aside first.
        aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        (aside / PARTIAL_MARK).touch()
        os.replace(target, aside / target.name)
    os.replace(partial, target)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    return target


@contextlib.contextmanager
def atomic_directory(target: str | Path, marker: str, what: str) -> Iterator[AnyPath]:
    """Yields a temporary directory to build `target` in; moved into place when the block ends
    without an exception, removed when it raises. Write `marker` into it before the end.

    Raises:
      NotOurDirectoryError before the block runs when `target` is not ours (see `check_target`).
      FileNotFoundError after the block when it did not write `marker`.
    """
    target = check_target(target, marker, what)
    partial = new_partial(target, marker)
    try:
        yield partial
        if not (partial / marker).is_file():
            raise FileNotFoundError(f"{what}: {marker} was not written into {partial}.")
        commit_partial(partial, target)
    except BaseException:
        if is_url(partial):  # the target itself, ours and unfinished
            remove_tree(partial)
        raise
    finally:
        if not is_url(partial) and partial.exists():
            shutil.rmtree(partial, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yields a temporary sibling of the file `path` for a writer that needs a path; renamed onto
    `path` when the block ends without an exception, removed when it raises: readers see the old
    or the new file, never half of one. For a file in a bucket the temporary file is local, and
    uploaded as one object at the end."""
    if is_url(path):
        with _uploaded_file(as_path(path)) as tmp:
            yield tmp
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp's 0600 would hide the file from other users
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _uploaded_file(path: AnyPath) -> Iterator[Path]:
    """A local temporary file, uploaded to the bucket object `path` when the block ends without
    an exception (an object appears whole when its upload ends, or not at all)."""
    with tempfile.TemporaryDirectory(prefix="embeddinggemma-upload-") as tmp:
        local = Path(tmp) / path.name
        yield local
        path.write_bytes(local.read_bytes())


def atomic_write(path: str | Path, data: bytes | str) -> AnyPath:
    """Writes a file through a temporary sibling and a rename (in a bucket, one upload): readers
    see the old or the new file."""
    data = data.encode("utf-8") if isinstance(data, str) else data
    if is_url(path):
        as_path(path).write_bytes(data)  # one object, whole or absent
        return as_path(path)
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def save_npy(path: AnyPath, array: np.ndarray) -> None:
    """Writes the numpy `array` as a .npy file, atomically: `path` keeps its old content if this fails."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    atomic_write(path, buffer.getvalue())


def try_lock_directory(directory: str | Path) -> int | None:
    """Takes an exclusive flock on the existing `directory` itself, at once: the open descriptor
    that holds it (close it to release), or None when another process holds it. Locking the
    directory, not a file in it, leaves nothing behind; the kernel frees the lock when its
    process ends, killed or not."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    return descriptor
