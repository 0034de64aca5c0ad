"""The training loop: config + work directory -> a run that can be killed and resumed.

    DIR/config.json             the resolved config (rewritten at every start)
    DIR/checkpoints/<step>/     train state + data-iterator state (see checkpoints.py)
    DIR/metrics.jsonl, eval.jsonl, tensorboard/   (see metrics.py)
    DIR/export/                 the final encoder parameters, loadable by `Embedder.load`

A start finds the latest complete checkpoint and goes on from it with the same batches, so a
killed run that is restarted computes exactly what an uninterrupted run computes. DIR must be
absent, empty or a run directory (it holds config.json); anything else is refused untouched.

The mesh, optimiser, state and step come from `training.trainer.assemble_trainer`; this module
adds what is around them: inputs, checkpoints, metrics, progress and periodic evaluation.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import flax.linen as nn
import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils
from tqdm.auto import tqdm

from embeddinggemma.data.config import with_corpus_datasets
from embeddinggemma.data.pipeline import make_train_iterator
from embeddinggemma.prompts import DEFAULT_PROMPTS
from embeddinggemma.schema import ROLES
from embeddinggemma.tokenizer import Tokenizer
from embeddinggemma.training.checkpoints import (
    RunCheckpoints,
    abstract_like,
    check_export_target,
    export_params,
)
from embeddinggemma.training.config import ConfigError, model_config, validate_config, write_config
from embeddinggemma.training.heldout import HeldoutRetrieval
from embeddinggemma.training.initialisation import (
    InitialEncoder,
    check_init_params,
    initialise_state,
    load_initial_encoder,
)
from embeddinggemma.training.inputs import corpus_tokenizer, ensure_corpus, heldout_datasets
from embeddinggemma.training.metrics import MetricsWriter
from embeddinggemma.training.state import ENCODER
from embeddinggemma.training.step import Objective, ParamTransform
from embeddinggemma.training.trainer import assemble_trainer

logger = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names the step and the terms."""


class InputError(ValueError):
    """A run's input (corpus, teacher embeddings, checkpoint, tokenizer) that cannot be used."""


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


def _first_process_first(name: str, prepare):
    """Runs `prepare` on process 0, then on the others: on a shared filesystem they find what process
    0 made (a corpus, a tokenizer) instead of racing to write it; on their own disks they make it."""
    if jax.process_index() == 0:
        result = prepare()
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(f"prepare:{name}")
    if jax.process_index() != 0:
        result = prepare()
    return result


def _resolve_inputs(config: ml_collections.ConfigDict
                    ) -> tuple[ml_collections.ConfigDict, Path, dict, InitialEncoder | None]:
    """(data config with the corpus's datasets, tokenizer path, prompts, the start's parameters)."""
    data_cfg = config.data
    if data_cfg.corpus:
        data_cfg = ml_collections.ConfigDict(data_cfg.to_dict())
        data_cfg.corpus = str(_first_process_first("corpus", lambda: ensure_corpus(data_cfg.corpus)))
        data_cfg = with_corpus_datasets(data_cfg)
    init = load_initial_encoder(config)
    prompts = dict(init.prompts) if init and init.prompts is not None else dict(DEFAULT_PROMPTS)
    if config.model.tokenizer:
        tokenizer = Path(config.model.tokenizer).expanduser()
    elif init and init.tokenizer_path is not None:
        tokenizer = init.tokenizer_path
    elif data_cfg.corpus:
        vocab_size = model_config(config).transformer.vocab_size
        tokenizer = _first_process_first("tokenizer", lambda: corpus_tokenizer(data_cfg.corpus, vocab_size))
    else:
        raise ConfigError("No tokenizer: set model.tokenizer, model.init_checkpoint or data.corpus.")
    return data_cfg, tokenizer, prompts, init


def _non_finite_terms(metrics: Mapping[str, float]) -> list[str]:
    return [k for k, v in metrics.items() if not np.isfinite(v) and k != "loss"]


def train(config: ml_collections.ConfigDict, workdir: str | Path, *, objective: Objective | None = None,
          param_transform: ParamTransform | None = None) -> RunSummary:
    """Trains to `config.train.num_steps`, resuming from the latest checkpoint in `workdir`.

    `objective` and `param_transform` go to `assemble_trainer` (default: the configured embedding
    objective, untransformed parameters).

    Raises:
      ConfigError, InputError, MalformedRecordError, FileNotFoundError: the config or an input.
      NotOurDirectoryError: `workdir` (or its export/) is not a run's; nothing in it was changed.
      NonFiniteLossError: the loss became NaN or infinite.
    """
    started = time.perf_counter()
    validate_config(config)
    workdir = Path(workdir).expanduser().absolute()
    is_writer = jax.process_index() == 0
    if is_writer:
        write_config(config, workdir)
        if config.checkpoint.export_params:
            check_export_target(workdir)
    with _input_errors():
        data_cfg, tokenizer_path, prompts, init = _resolve_inputs(config)
        tokenizer = Tokenizer(tokenizer_path)
    trainer = assemble_trainer(config, objective=objective, param_transform=param_transform)
    model_cfg = trainer.model_config
    if init is not None:  # before the tokenizer's check: this error names every parameter
        abstract = nn.unbox(jax.eval_shape(trainer.init_boxed, jax.random.PRNGKey(0)))[ENCODER]
        check_init_params(init.params, abstract, config.model)
    if tokenizer.vocab_size > model_cfg.transformer.vocab_size:
        raise ConfigError(f"The tokenizer {tokenizer_path} has {tokenizer.vocab_size} pieces, more than "
                          f"model.preset={config.model.preset!r}'s vocabulary of "
                          f"{model_cfg.transformer.vocab_size}.")
    t = config.train
    state = trainer.init_state()
    with _input_errors():
        data = make_train_iterator(data_cfg, tokenizer, batch_size=t.batch_size,
                                   max_query_length=t.max_query_length,
                                   max_document_length=t.max_document_length, hard_negatives=t.hard_negatives,
                                   seed=config.seed, process_index=jax.process_index(),
                                   process_count=jax.process_count())

    checkpoints = RunCheckpoints(workdir, config.checkpoint)
    start_step = checkpoints.latest_step() or 0
    if start_step:
        state, data_state = checkpoints.restore(start_step, abstract_like(state, trainer.state_shardings))
        data.set_state(data_state)
        logger.warning("Resumed %s from step %d.", workdir, start_step)
    elif init is not None:
        state = initialise_state(state, trainer, init.params)

    heldout = None
    if config.eval.every_steps and data_cfg.corpus:
        with _input_errors():
            heldout = HeldoutRetrieval(data_cfg, heldout_datasets(data_cfg), tokenizer,
                                       max_query_length=t.max_query_length,
                                       max_document_length=t.max_document_length,
                                       max_queries=config.eval.max_queries, batch_size=config.eval.batch_size)
    writer = MetricsWriter(workdir, start_step, enabled=is_writer)
    evaluations: dict[int, dict[str, float]] = {}

    def evaluate(step: int) -> None:
        if heldout is None:
            return
        params = state["params"]
        metrics = heldout.evaluate(lambda tokens: np.asarray(trainer.embed(params, tokens)))
        evaluations[step] = metrics
        writer.write_eval(step, metrics)
        logger.warning("step %d: held-out nDCG@10 %.4f", step, metrics["eval/ndcg_at_10"])

    if start_step == 0:
        evaluate(0)
    progress = tqdm(total=t.num_steps, initial=start_step, desc="train", unit="step", disable=not is_writer,
                    dynamic_ncols=True)
    loss = None
    try:
        for step in range(start_step + 1, t.num_steps + 1):
            tick = time.perf_counter()
            local = next(data)
            dataset = data.last_dataset
            tokens = sum(int((local[k] != tokenizer.pad_id).sum()) for k in ROLES if k in local
                         ) * jax.process_count()
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
            if checkpoints.should_save(step, t.num_steps):
                writer.flush()  # the log is never behind a checkpoint
                checkpoints.save(step, state, data.get_state())
    finally:
        progress.close()
        checkpoints.close()
        writer.close()
    export_dir = None
    if config.checkpoint.export_params:
        export_dir = export_params(workdir, model_cfg, state["params"], tokenizer_path, prompts)
    return RunSummary(workdir, start_step, t.num_steps, loss, evaluations, export_dir,
                      time.perf_counter() - started)


__all__ = ["InputError", "NonFiniteLossError", "RunSummary", "train"]
