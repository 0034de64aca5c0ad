"""Run checkpoints: the train state and the data-iterator state in `DIR/checkpoints/<step>`.

Orbax writes each checkpoint under a temporary name and renames it when every file is written, so
a run killed while saving leaves a `<step>.orbax-checkpoint-tmp-*` directory that is never taken
for a checkpoint and is removed on the next start. The restart resumes from the latest complete
step. The data-iterator state is the same on every host (the stream is a function of the step;
see data/pipeline.py), so the primary host's JSON copy serves all.

A checkpoint that cannot be read (a truncated or missing file, missing or garbled metadata) is
named in one line and moved to `DIR/checkpoints-damaged/`, and the run resumes from the newest one
that reads. A background save that fails is noticed at the next step (`check`): the run stops,
the failed step's temporary directory is removed, the earlier checkpoints stay as they were.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from embeddinggemma.atomic import check_target, commit_partial, new_partial, remove_tree
from embeddinggemma.checkpoint.orbax_io import CHECKPOINTS_DIR, METADATA_FILE, write_orbax_metadata
from embeddinggemma.errors import CheckpointError
from embeddinggemma.model import EmbedderConfig
from embeddinggemma.paths import AnyPath, absolute, as_path, is_url
from embeddinggemma.training.state import ENCODER

DAMAGED_DIR = "checkpoints-damaged"
EXPORT_DIR = "export"

logger = logging.getLogger(__name__)

# Failures to write a checkpoint that the user can fix (exit status 2): a full disk or quota, no
# permission, a read-only filesystem. TensorStore reports them as "[os_error_code='28']".
_USER_FIXABLE = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS}


class _WithoutTraceback(logging.Filter):
    """Orbax logs a failed background save from several threads, each with its traceback; the run
    reports the failure once itself (CheckpointError, or the error raised), so Orbax's records keep
    their message only."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "orbax" in record.pathname:
            record.exc_info = record.exc_text = None
        return True


_ORBAX_LOG = logging.getLogger("absl")  # Orbax logs through absl's logger


def _one_line(error: BaseException, limit: int = 200) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text[:limit]}{'...' if len(text) > limit else ''}"


def user_fixable(error: BaseException) -> bool:
    """Whether `error` comes from a full disk or quota, a missing permission or a read-only filesystem."""
    return _os_errno(error) in _USER_FIXABLE


def _os_errno(error: BaseException) -> int | None:
    """The OS error number behind `error` (itself, its causes, or TensorStore's message), if any."""
    while error is not None:
        if isinstance(error, OSError) and error.errno:
            return error.errno
        found = re.search(r"os_error_code='(\d+)'", str(error))
        if found:
            return int(found.group(1))
        error = error.__cause__ or error.__context__
    return None


def saved_steps(workdir: str | Path) -> list[int]:
    """The steps of the complete checkpoints in `DIR/checkpoints`, oldest first (in a bucket, where
    Orbax writes a step in place, those it committed: see `ocp.utils.is_checkpoint_finalized`)."""
    directory = as_path(workdir) / CHECKPOINTS_DIR
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir()
                  if p.name.isdigit() and ocp.utils.is_checkpoint_finalized(p))


class RunCheckpoints:
    """Saves and restores `{"state", "data"}` items every `checkpoint.every_steps` steps."""

    def __init__(self, workdir: str | Path, cfg: ml_collections.ConfigDict):
        self.directory = absolute(workdir) / CHECKPOINTS_DIR
        self.every_steps = cfg.every_steps
        options = ocp.CheckpointManagerOptions(
            max_to_keep=cfg.keep, save_interval_steps=1, create=True, cleanup_tmp_directories=True,
            enable_async_checkpointing=cfg.async_save)
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "data"))
        self._saving: int | None = None  # the step of the latest save started
        if not any(isinstance(f, _WithoutTraceback) for f in _ORBAX_LOG.filters):
            _ORBAX_LOG.addFilter(_WithoutTraceback())

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def restore_latest(self, abstract_state: Mapping) -> tuple[int, dict, dict] | None:
        """(step, state, data-iterator state) of the newest checkpoint that can be read; None when
        there is none. The damaged ones newer than it are logged and moved to `DIR/checkpoints-damaged`.

        Raises:
          CheckpointError when there are checkpoints and none can be read.
        """
        damaged: list[int] = []
        for step in sorted(self.manager.all_steps(), reverse=True):
            try:
                state, data = self.restore(step, abstract_state)
            except Exception as e:  # whatever a damaged file raises (TensorStore's is a bare Exception)
                logger.warning("Checkpoint %s is damaged and was not used (%s).", self.directory / str(step),
                               _one_line(e))
                damaged.append(step)
                continue
            if damaged:
                self._set_aside(damaged)
                logger.warning("Resuming from step %d, the newest intact checkpoint; the damaged ones are "
                               "kept in %s.", step, self.directory.parent / DAMAGED_DIR)
            return step, state, data
        if damaged:
            raise CheckpointError(f"No checkpoint in {self.directory} can be read (steps "
                                  f"{', '.join(map(str, damaged))} are damaged); move the directory "
                                  "away to start afresh.")
        return None

    def _set_aside(self, steps: list[int]) -> None:
        """Moves damaged checkpoints out of the manager's way: a resumed run saves those steps again."""
        if jax.process_index() == 0:
            aside = self.directory.parent / DAMAGED_DIR
            aside.mkdir(exist_ok=True)
            for step in steps:
                target, n = aside / str(step), 1
                while target.exists():
                    target, n = aside / f"{step}-{n}", n + 1
                if is_url(target):
                    (self.directory / str(step)).rename(target)
                else:
                    shutil.move(self.directory / str(step), target)
        multihost_utils.sync_global_devices("checkpoints:set_aside")
        self.manager.reload()

    def should_save(self, step: int, last_step: int) -> bool:
        return step % self.every_steps == 0 or step == last_step

    def save(self, step: int, state: Mapping, data_state: Mapping) -> None:
        """Starts writing (in the background when asynchronous); the state may change meanwhile.

        Raises:
          CheckpointError: see `check`.
        """
        self._saving = step
        with self._failed_save():
            self.manager.save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(dict(data_state))))

    def check(self) -> None:
        """Raises at once when a background save has failed.

        Raises:
          CheckpointError when it failed for a disk or permission error (the user can fix it); any
          other failure is raised as it is (a bug).
        """
        if not self.manager.is_saving_in_progress():
            with self._failed_save():
                self.manager.wait_until_finished()  # raises the failed save's error, else returns at once

    @contextlib.contextmanager
    def _failed_save(self) -> Iterator[None]:
        try:
            yield
        except Exception as e:
            # What the failed save left (Orbax's temporary directory) goes; finished checkpoints stay.
            if jax.process_index() == 0:
                for partial in self.directory.glob("*.orbax-checkpoint-tmp*"):
                    remove_tree(partial)
            if not user_fixable(e):
                raise
            last = self.manager.latest_step()
            raise CheckpointError(
                f"Saving the checkpoint of step {self._saving} in {self.directory} failed: "
                f"{os.strerror(_os_errno(e))}. The last good checkpoint is "
                f"{self.directory / str(last) if last else 'none'}.") from e

    def restore(self, step: int, abstract_state: Mapping) -> tuple[dict, dict]:
        """(state with the shardings of `abstract_state`, data-iterator state) of a saved step."""
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
        return restored["state"], restored["data"]

    def wait(self) -> None:
        """Until every save has finished and is in place.

        Raises:
          CheckpointError: see `check`.
        """
        with self._failed_save():
            self.manager.wait_until_finished()

    def close(self) -> None:
        """Waits for the saves and closes; a failed save's error was raised by `check` or `wait`."""
        with contextlib.suppress(Exception):
            self.manager.wait_until_finished()
        self.manager.close()


def abstract_like(state: Mapping, shardings: Mapping):
    """ShapeDtypeStructs with shardings: the restore target of a state shaped like `state`."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings)


def host_params(params: Mapping) -> dict:
    """The parameters as numpy arrays on every host (gathered when sharded across hosts)."""
    if jax.process_count() == 1:
        return jax.device_get(params)
    return multihost_utils.process_allgather(params, tiled=True)


def check_export_target(workdir: str | Path, marker: str = METADATA_FILE) -> Path:
    """`DIR/export`, if it is absent, empty or an export (it holds `marker`, by default the
    embedder's embeddinggemma.json).

    Raises:
      NotOurDirectoryError naming the directory otherwise: nothing in it is ever replaced.
    """
    return check_target(absolute(workdir) / EXPORT_DIR, marker, "a run's export")


def _shared_partial(target: AnyPath, marker: str) -> AnyPath:
    """A partial directory for `target` (whose finished form holds `marker`), made by process 0;
    every process gets its path."""
    name = new_partial(target, marker).name.encode() if jax.process_index() == 0 else b""
    if jax.process_count() > 1:
        padded = np.zeros(1024, np.uint8)
        padded[:len(name)] = np.frombuffer(name, np.uint8)
        name = bytes(multihost_utils.broadcast_one_to_all(padded)).rstrip(b"\0")
    return target.parent / name.decode()


def export_tree(workdir: str | Path, params: Mapping, marker: str,
                write_metadata: Callable[[Path], None]) -> Path:
    """`DIR/export`: `params` as an Orbax tree in `params/`, and what `write_metadata(directory)`
    writes beside it (the file `marker` among them).

    Every process takes part (the parameters may be sharded across hosts). Built in a partial
    directory and moved into place (embeddinggemma.atomic), so a kill never leaves half an export;
    an earlier export is replaced, a directory that is not an export is refused.

    Raises:
      NotOurDirectoryError when `DIR/export` is not an export (see `check_export_target`).
    """
    out = check_export_target(workdir, marker)
    partial = _shared_partial(out, marker)
    tree = jax.tree.map(np.asarray, host_params(params))
    try:
        checkpointer = ocp.StandardCheckpointer()  # every process takes part; the primary one writes
        checkpointer.save(partial / "params", tree)
        checkpointer.wait_until_finished()
        if jax.process_index() == 0:
            write_metadata(partial)
            commit_partial(partial, out)
    except BaseException:
        # A failed write (a full disk, say) leaves no half export; a kill is swept at the next start.
        if jax.process_index() == 0:
            remove_tree(partial)
        raise
    multihost_utils.sync_global_devices("export_params:done")
    return out


def export_params(workdir: str | Path, config: EmbedderConfig, params: Mapping, tokenizer_model: str | Path,
                  prompts: Mapping[str, str]) -> Path:
    """`DIR/export`: the encoder's parameters in the layout `Embedder.load` and souping read
    (see `export_tree`)."""
    return export_tree(workdir, params[ENCODER], METADATA_FILE,
                       lambda directory: write_orbax_metadata(directory, config, tokenizer_model, prompts))
