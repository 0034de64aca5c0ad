"""The training loop: config + work directory -> a run that can be killed and resumed.

    DIR/config.json             the resolved config (rewritten at every start that is not refused)
    DIR/run.lock                who holds the directory's lock (see run_lock.py)
    DIR/checkpoints/<step>/     train state + data-iterator state (see checkpoints.py)
    DIR/metrics.jsonl, eval.jsonl, tensorboard/   (see metrics.py)
    DIR/export/                 the final parameters (the embedding stage's: loadable by `Embedder.load`)

A start finds the latest complete checkpoint and goes on from it with the same batches, so a
killed run that is restarted computes exactly what an uninterrupted run computes. DIR must be
absent, empty or a run directory (it holds config.json); anything else is refused untouched. One
process at a time runs in DIR (run_lock.py); a resume may change only the config fields that are
safe to change (config.SAFE_ON_RESUME). SIGTERM or Ctrl-C stops the run after a step that is saved
first (preemption.py).

The mesh, optimiser, state and step come from `training.trainer.assemble_trainer`, through the
stage (training/stage.py: the embedding training by default, or the UL2 adaptation), which also
brings the inputs, the data stream, the held-out evaluation and the export; this module adds what
is around them: checkpoints, metrics, progress and the cadence of evaluation.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils
from tqdm.auto import tqdm

from embeddinggemma.errors import ConfigError, InputError, NonFiniteLossError, RunStopped
from embeddinggemma.paths import absolute
from embeddinggemma.training.checkpoints import RunCheckpoints, abstract_like, saved_steps
from embeddinggemma.training.config import (
    check_resume_config,
    check_run_directory,
    make_stage,
    validate_config,
    write_config,
)
from embeddinggemma.training.embedding_stage import EmbeddingStage
from embeddinggemma.training.mesh import check_batch_fits_mesh
from embeddinggemma.training.metrics import MetricsWriter
from embeddinggemma.training.preemption import StopSignals
from embeddinggemma.training.run_lock import RunLock, lock_workdir
from embeddinggemma.training.stage import Stage, start_from
from embeddinggemma.training.step import Objective, ParamTransform

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def _input_errors() -> Iterator[None]:
    """Reading inputs runs no JAX computation, so a ValueError there is about the inputs."""
    try:
        yield
    except ConfigError:
        raise
    except ValueError as e:
        raise InputError(str(e)) from e


@dataclasses.dataclass
class RunSummary:
    workdir: Path
    start_step: int               # the step the run resumed from (0 for a fresh run)
    last_step: int
    final_loss: float | None      # None when the run had nothing left to do
    evaluations: dict[int, dict[str, float]]  # step -> held-out metrics of this run
    export_dir: Path | None
    seconds: float


def _non_finite_terms(metrics: Mapping[str, float]) -> list[str]:
    return [k for k, v in metrics.items() if not np.isfinite(v) and k != "loss"]


def train(config: ml_collections.ConfigDict, workdir: str | Path, *, objective: Objective | None = None,
          param_transform: ParamTransform | None = None, stage: Stage | None = None) -> RunSummary:
    """Trains to `config.train.num_steps`, resuming from the latest checkpoint in `workdir`.

    `stage` defaults to the one `config.stage` names (training/config.make_stage); `objective` and
    `param_transform`, when given, go to the embedding stage (default: the configured embedding
    objective, untransformed parameters); a stage given brings its own.

    Raises:
      ConfigError, InputError, MalformedRecordError, FileNotFoundError: the config or an input.
      NotOurDirectoryError: `workdir` (or its export/) is not a run's; nothing in it was changed.
      WorkdirInUseError: another process runs in `workdir` (training/run_lock.py).
      ConfigError also when `workdir` holds a run of another config (`SAFE_ON_RESUME` aside).
      CheckpointError: no checkpoint can be read, or a save failed for lack of space or permission.
      NonFiniteLossError: the loss became NaN or infinite.
      RunStopped: SIGTERM or Ctrl-C; the checkpoint of the step it stopped after is saved.
    """
    started = time.perf_counter()
    validate_config(config)
    check_batch_fits_mesh(config, jax.device_count())  # before anything is written or built
    if objective is not None or param_transform is not None:
        if stage is not None:
            raise ValueError("objective and param_transform configure the embedding stage; a stage given "
                             "brings its own.")
        if config.stage != "embedding":
            raise ConfigError(f"stage={config.stage!r}: objective and param_transform are the embedding "
                              "stage's.")
        stage = EmbeddingStage(config, objective, param_transform)
    stage = stage or make_stage(config)
    workdir = absolute(workdir)
    with StopSignals() as stop, _held_by_this_run(config, workdir, stage):
        return _train(config, workdir, stage, stop, started)


def _claim(config: ml_collections.ConfigDict, workdir: Path, stage: Stage) -> RunLock:
    """Process 0's start: `workdir` checked and locked, the config checked against the run it resumes
    (if any) and written. A refused start leaves config.json as it was."""
    check_run_directory(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    lock = lock_workdir(workdir)
    try:
        if saved_steps(workdir):
            check_resume_config(config, workdir)
        write_config(config, workdir)
        lock.record_holder()
        if config.checkpoint.export_params:
            stage.check_export_target(workdir)
    except BaseException:
        lock.release()
        raise
    return lock


@contextlib.contextmanager
def _held_by_this_run(config: ml_collections.ConfigDict, workdir: Path, stage: Stage) -> Iterator[None]:
    """`_claim` on process 0 for the length of the block; when it raises there, every process raises,
    so none is left waiting for process 0 in a collective."""
    lock, error = None, None
    if jax.process_index() == 0:
        try:
            lock = _claim(config, workdir, stage)
        except Exception as e:  # raised below, once the others know
            error = e
    if jax.process_count() > 1 and multihost_utils.broadcast_one_to_all(np.int32(error is not None)):
        if error is None:
            raise InputError(f"Process 0 refused to start the run in {workdir}; its message says why.")
    if error is not None:
        raise error
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def _train(config: ml_collections.ConfigDict, workdir: Path, stage: Stage, stop: StopSignals,
           started: float) -> RunSummary:
    is_writer = jax.process_index() == 0
    with _input_errors():
        stage.prepare(workdir)
    trainer = stage.assemble()
    t = config.train
    state = trainer.init_state()
    with _input_errors():
        data = stage.train_iterator(trainer)

    checkpoints = RunCheckpoints(workdir, config.checkpoint)
    restored = checkpoints.restore_latest(abstract_like(state, trainer.state_shardings))
    start_step = 0
    if restored is not None:
        start_step, state, data_state = restored
        data.set_state(data_state)
        logger.warning("Resumed %s from step %d.", workdir, start_step)
    else:
        initial = stage.initial_params(trainer, state)
        if initial is not None:
            state = start_from(state, trainer, initial)

    with _input_errors():
        evaluator = stage.evaluator(trainer) if config.eval.every_steps else None
    writer = MetricsWriter(workdir, start_step, enabled=is_writer)
    evaluations: dict[int, dict[str, float]] = {}

    def evaluate(step: int) -> None:
        if evaluator is None:
            return
        metrics = evaluator(state["params"])
        evaluations[step] = metrics
        writer.write_eval(step, metrics)
        logger.warning("step %d: held-out %s %.4f", step, stage.headline_metric,
                       metrics.get(stage.headline_metric, float("nan")))

    if start_step == 0:
        evaluate(0)
    progress = tqdm(total=t.num_steps, initial=start_step, desc=stage.name, unit="step",
                    disable=not is_writer, dynamic_ncols=True)
    loss = None
    try:
        for step in range(start_step + 1, t.num_steps + 1):
            tick = time.perf_counter()
            local = next(data)
            dataset = data.last_dataset
            tokens = stage.tokens(local) * jax.process_count()
            state, metrics = trainer.train_step(state, trainer.global_batch(local))
            metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
            seconds = time.perf_counter() - tick
            loss = metrics["loss"]
            if not np.isfinite(loss):
                checkpoints.wait()
                last = checkpoints.latest_step()
                raise NonFiniteLossError(
                    f"step {step}: the loss is {loss} (dataset {dataset!r}); non-finite terms: "
                    f"{', '.join(_non_finite_terms(metrics)) or 'none (the sum overflowed)'}. "
                    f"Nothing of this step was saved; the last good checkpoint is "
                    f"{checkpoints.directory / str(last) if last else 'none'}.")
            writer.write_step(step, {"loss": loss, **{k: v for k, v in metrics.items() if k != "loss"},
                                     "dataset": dataset, "examples_per_second": t.batch_size / seconds,
                                     "tokens_per_second": tokens / seconds})
            progress.update(1)
            if step % t.log_every_steps == 0 or step == t.num_steps:
                progress.set_postfix(loss=f"{loss:.4f}", refresh=False)
            if config.eval.every_steps and (step % config.eval.every_steps == 0 or step == t.num_steps):
                evaluate(step)
            checkpoints.check()  # a failed background save stops the run now, not at the next save
            stopping = stop.reached(step)  # every step, on every process (see preemption.py)
            if stopping or checkpoints.should_save(step, t.num_steps):
                writer.flush()  # the log is never behind a checkpoint
                checkpoints.save(step, state, data.get_state())
            if stopping:
                checkpoints.wait()
                raise RunStopped(f"stopped by {stop.cause} after step {step}; its checkpoint "
                                 f"{checkpoints.directory / str(step)} is saved: run the same command "
                                 "again to resume.", step, stop.exit_status)
    finally:
        progress.close()
        checkpoints.close()
        writer.close()
    export_dir = None
    if config.checkpoint.export_params:
        export_dir = stage.export(workdir, trainer, state["params"])
    return RunSummary(workdir, start_step, t.num_steps, loss, evaluations, export_dir,
                      time.perf_counter() - started)


__all__ = ["InputError", "NonFiniteLossError", "RunStopped", "RunSummary", "train"]
