"""What a training stage brings to the one training loop (training/loop.py).

The loop owns the order of things, checkpoints, resumption, metrics, progress, the NaN stop and
the cadence of evaluation; a stage owns what differs between the embedding training and the UL2
adaptation: its inputs, its trainer (objective and parameters), its data stream, its held-out
evaluation and its export. Methods are called in this order:

    check_export_target(workdir)                  before anything is read (the writer only)
    prepare(workdir)                              inputs (corpus, tokenizer, init checkpoint)
    assemble()          -> Trainer                training/trainer.assemble_trainer, checked
    initial_params(trainer, state) -> params?     the starting values of a fresh run, or None
    train_iterator(trainer) -> iterator           local batches; get_state/set_state/last_dataset
    evaluator(trainer)  -> (params -> metrics)?   the periodic held-out evaluation, or None
    tokens(local_batch) -> int                    non-padding tokens, for tokens_per_second
    export(workdir, trainer, params) -> Path      the final parameters (when configured)
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from embeddinggemma.training.trainer import Trainer

Evaluator = Callable[[Mapping], dict[str, float]]  # trained params -> held-out metrics


class DataStream(Iterator[dict[str, np.ndarray]], abc.ABC):
    """Local batches whose position can be saved and restored (see data/pipeline.py)."""

    last_dataset: str | None

    @abc.abstractmethod
    def get_state(self) -> dict: ...

    @abc.abstractmethod
    def set_state(self, state: Mapping) -> None: ...


class Stage(abc.ABC):
    """One kind of training run over the shared loop; `config` is the run's resolved config."""

    name: str = "train"           # the progress bar's label
    headline_metric: str = ""     # the evaluation metric the command prints at the end

    def __init__(self, config: ml_collections.ConfigDict):
        self.config = config

    @abc.abstractmethod
    def check_export_target(self, workdir: Path) -> None:
        """Raises NotOurDirectoryError when the export would replace what is not an export."""

    @abc.abstractmethod
    def prepare(self, workdir: Path) -> None:
        """Reads and checks the inputs; a ValueError here is an input error (exit status 2)."""

    @abc.abstractmethod
    def assemble(self) -> Trainer:
        """The trainer, checked against the inputs (e.g. the init checkpoint's shapes)."""

    @abc.abstractmethod
    def initial_params(self, trainer: Trainer, state: Mapping) -> Mapping | None:
        """Host values for the whole of `state["params"]` in a fresh run; None keeps the random ones."""

    @abc.abstractmethod
    def train_iterator(self, trainer: Trainer) -> DataStream:
        """This host's batches from the first step (the loop restores its state on a resume)."""

    @abc.abstractmethod
    def evaluator(self, trainer: Trainer) -> Evaluator | None:
        """The periodic held-out evaluation, or None."""

    @abc.abstractmethod
    def tokens(self, local_batch: Mapping[str, np.ndarray]) -> int:
        """Non-padding tokens of this host's batch."""

    @abc.abstractmethod
    def export(self, workdir: Path, trainer: Trainer, params: Mapping) -> Path:
        """Writes the final parameters into `workdir/export` (every process takes part)."""


def start_from(state: Mapping, trainer: Trainer, params: Mapping) -> dict:
    """The state with `params` (host values, cast to the state's dtypes and placed with its
    shardings) and a fresh optimiser state."""
    shardings = trainer.state_shardings
    placed = jax.tree.map(lambda x, ref, s: jax.device_put(np.asarray(x).astype(ref.dtype), s),
                          dict(params), dict(state["params"]), shardings["params"])
    opt_state = jax.jit(trainer.tx.init, out_shardings=shardings["opt_state"])(placed)
    return {"step": state["step"], "params": placed, "opt_state": opt_state}


def first_process_first(name: str, prepare):
    """Runs `prepare` on process 0, then on the others: on a shared filesystem they find what process
    0 made (a corpus, a tokenizer) instead of racing to write it; on their own disks they make it."""
    if jax.process_index() == 0:
        result = prepare()
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(f"prepare:{name}")
    if jax.process_index() != 0:
        result = prepare()
    return result
