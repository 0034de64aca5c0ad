"""One run directory, one writer: a run holds an flock on its work directory for its whole life.

The directory itself is locked (no lock file that a kill could leave behind): the kernel releases
the lock when the process ends, however it ends. Who holds it is written to `DIR/run.lock` (pid,
host, start time) for the message a second process gets. In a multi-process run only process 0,
the one that writes the directory's files, takes the lock (see `training.loop`).

A work directory in a bucket (`gs://...`) cannot be locked: object storage has no flock, and a lock
object (created only if absent) would outlive a killed run and refuse its resume. Nothing here holds
it: whoever launches runs keeps one run (one pod job) per bucket work directory. `DIR/run.lock`
still names the latest process to start there.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
from pathlib import Path

from embeddinggemma.atomic import atomic_write, try_lock_directory
from embeddinggemma.errors import WorkdirInUseError
from embeddinggemma.paths import AnyPath, as_path, is_url

HOLDER_FILE = "run.lock"


class RunLock:
    """The held lock of a work directory; `release()` (or the process's end) frees it."""

    def __init__(self, workdir: AnyPath, descriptor: int | None):
        self.workdir = workdir
        self._descriptor: int | None = descriptor

    def record_holder(self) -> None:
        """Writes this process into `DIR/run.lock` (call once the directory is a run's)."""
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
        atomic_write(self.workdir / HOLDER_FILE, json.dumps(holder) + "\n")

    def release(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None


def _holder(workdir: AnyPath) -> str:
    try:
        h = json.loads((workdir / HOLDER_FILE).read_text())
        return f"pid {h['pid']} on {h['host']}, started {h['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that is starting"


def lock_workdir(workdir: str | Path) -> RunLock:
    """Takes the lock of the existing directory `workdir` at once, or refuses; a directory in a
    bucket is not locked (see the module's docstring).

    Raises:
      WorkdirInUseError naming the holder when another process has it.
    """
    workdir = as_path(workdir)
    if is_url(workdir):
        return RunLock(workdir, None)
    descriptor = try_lock_directory(workdir)
    if descriptor is None:
        raise WorkdirInUseError(f"{workdir} is in use by another run ({_holder(workdir)}); one process "
                                "at a time works in a run directory.")
    return RunLock(workdir, descriptor)


__all__ = ["HOLDER_FILE", "RunLock", "lock_workdir"]
