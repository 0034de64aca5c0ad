"""Run checkpoints: the train state and the data-iterator state in `DIR/checkpoints/<step>`.

Orbax writes each checkpoint under a temporary name and renames it when every file is written, so
a run killed while saving leaves a `<step>.orbax-checkpoint-tmp-*` directory that is never taken
for a checkpoint and is removed on the next start. The restart resumes from the latest complete
step. The data-iterator state is the same on every host (the stream is a function of the step;
see data/pipeline.py), so the primary host's JSON copy serves all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from embeddinggemma.atomic import check_target, commit_partial, new_partial
from embeddinggemma.checkpoint.orbax_io import CHECKPOINTS_DIR, METADATA_FILE, write_orbax_metadata
from embeddinggemma.model import EmbedderConfig
from embeddinggemma.training.state import ENCODER

EXPORT_DIR = "export"


class RunCheckpoints:
    """Saves and restores `{"state", "data"}` items every `checkpoint.every_steps` steps."""

    def __init__(self, workdir: str | Path, cfg: ml_collections.ConfigDict):
        self.directory = Path(workdir).absolute() / CHECKPOINTS_DIR
        self.every_steps = cfg.every_steps
        options = ocp.CheckpointManagerOptions(
            max_to_keep=cfg.keep, save_interval_steps=1, create=True, cleanup_tmp_directories=True,
            enable_async_checkpointing=cfg.async_save)
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "data"))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def should_save(self, step: int, last_step: int) -> bool:
        return step % self.every_steps == 0 or step == last_step

    def save(self, step: int, state: Mapping, data_state: Mapping) -> None:
        """Starts writing (in the background when asynchronous); the state may change meanwhile."""
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(dict(data_state))))

    def restore(self, step: int, abstract_state: Mapping) -> tuple[dict, dict]:
        """(state with the shardings of `abstract_state`, data-iterator state) of a saved step."""
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
        return restored["state"], restored["data"]

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
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
    return check_target(Path(workdir).absolute() / EXPORT_DIR, marker, "a run's export")


def _shared_partial(target: Path) -> Path:
    """A partial directory for `target`, made by process 0; every process gets its path."""
    name = new_partial(target).name.encode() if jax.process_index() == 0 else b""
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
    partial = _shared_partial(out)
    tree = jax.tree.map(np.asarray, host_params(params))
    checkpointer = ocp.StandardCheckpointer()  # every process takes part; the primary one writes
    checkpointer.save(partial / "params", tree)
    checkpointer.wait_until_finished()
    if jax.process_index() == 0:
        write_metadata(partial)
        commit_partial(partial, out)
    multihost_utils.sync_global_devices("export_params:done")
    return out


def export_params(workdir: str | Path, config: EmbedderConfig, params: Mapping, tokenizer_model: str | Path,
                  prompts: Mapping[str, str]) -> Path:
    """`DIR/export`: the encoder's parameters in the layout `Embedder.load` and souping read
    (see `export_tree`)."""
    return export_tree(workdir, params[ENCODER], METADATA_FILE,
                       lambda directory: write_orbax_metadata(directory, config, tokenizer_model, prompts))
