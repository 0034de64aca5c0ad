"""The training loop: config + work directory -> a run that can be killed and resumed.

    DIR/config.json             the resolved config (rewritten at every start)
    DIR/checkpoints/<step>/     train state + data-iterator state (see checkpoints.py)
    DIR/metrics.jsonl, eval.jsonl, tensorboard/   (see metrics.py)
    DIR/export/                 the final encoder parameters, loadable by `Embedder.load`

A start finds the latest complete checkpoint and goes on from it with the same batches, so a
killed run that is restarted computes exactly what an uninterrupted run computes.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from pathlib import Path

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from embeddinggemma.checkpoint.loading import load_checkpoint
from embeddinggemma.data.config import with_corpus_datasets
from embeddinggemma.data.pipeline import make_train_iterator
from embeddinggemma.model import EmbedderConfig, EmbeddingModel
from embeddinggemma.model import init_params as init_params_of
from embeddinggemma.prompts import DEFAULT_PROMPTS
from embeddinggemma.tokenizer import Tokenizer
from embeddinggemma.training.checkpoints import RunCheckpoints, abstract_like, export_params
from embeddinggemma.training.config import model_config, runtime_config, validate_config, write_config
from embeddinggemma.training.heldout import HeldoutRetrieval
from embeddinggemma.training.inputs import corpus_tokenizer, ensure_corpus, heldout_datasets
from embeddinggemma.training.mesh import batch_sharding, make_mesh
from embeddinggemma.training.metrics import MetricsWriter
from embeddinggemma.training.optimizer import make_optimizer
from embeddinggemma.training.state import ENCODER, create_train_state, train_params_layout
from embeddinggemma.training.step import make_train_step

logger = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names the step and the terms."""


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
                    ) -> tuple[ml_collections.ConfigDict, Path, dict, dict | None]:
    """(data config with the corpus's datasets, tokenizer path, prompts, init checkpoint params)."""
    data_cfg = config.data
    if data_cfg.corpus:
        data_cfg = ml_collections.ConfigDict(data_cfg.to_dict())
        data_cfg.corpus = str(_first_process_first("corpus", lambda: ensure_corpus(data_cfg.corpus)))
        data_cfg = with_corpus_datasets(data_cfg)
    init = load_checkpoint(config.model.init_checkpoint) if config.model.init_checkpoint else None
    prompts = dict(init.prompts) if init else dict(DEFAULT_PROMPTS)
    if config.model.tokenizer:
        tokenizer = Path(config.model.tokenizer).expanduser()
    elif init:
        tokenizer = init.tokenizer_path
    elif data_cfg.corpus:
        vocab_size = model_config(config).transformer.vocab_size
        tokenizer = _first_process_first("tokenizer", lambda: corpus_tokenizer(data_cfg.corpus, vocab_size))
    else:
        raise ValueError("No tokenizer: set model.tokenizer, model.init_checkpoint or data.corpus.")
    return data_cfg, tokenizer, prompts, (init.params if init else None)


def _check_init_params(checkpoint_params: Mapping, model_params: Mapping, path: str) -> None:
    """Raises one error naming every parameter whose presence or shape differs."""
    flat_ckpt = {jax.tree_util.keystr(k): v.shape
                 for k, v in jax.tree_util.tree_flatten_with_path(checkpoint_params)[0]}
    flat_model = {jax.tree_util.keystr(k): v.shape
                  for k, v in jax.tree_util.tree_flatten_with_path(model_params)[0]}
    problems = [f"{k}: checkpoint {flat_ckpt[k]} vs model {flat_model[k]}"
                for k in sorted(flat_ckpt.keys() & flat_model.keys()) if flat_ckpt[k] != flat_model[k]]
    problems += [f"{k}: missing from the checkpoint" for k in sorted(flat_model.keys() - flat_ckpt.keys())]
    problems += [f"{k}: not in the model" for k in sorted(flat_ckpt.keys() - flat_model.keys())]
    if problems:
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        shown = "\n  ".join(problems[:20]) + more
        raise ValueError(f"model.init_checkpoint={path} does not fit the configured model "
                         f"(model.preset and friends):\n  {shown}")


def _initialise_from(state: dict, shardings: Mapping, tx, checkpoint_params: Mapping) -> dict:
    """The state with the checkpoint's encoder parameters (shapes checked) and a fresh optimizer state."""
    encoder = jax.tree.map(lambda x, ref, s: jax.device_put(np.asarray(x).astype(ref.dtype), s),
                           checkpoint_params, state["params"][ENCODER], shardings["params"][ENCODER])
    params = {**state["params"], ENCODER: encoder}
    opt_state = jax.jit(tx.init, out_shardings=shardings["opt_state"])(params)
    return {"step": state["step"], "params": params, "opt_state": opt_state}


def _global_batch(local: Mapping[str, np.ndarray], mesh, rules) -> dict[str, jax.Array]:
    """Each host's slice of the batch -> global arrays sharded over the batch axes."""
    return {k: jax.make_array_from_process_local_data(batch_sharding(mesh, rules, v.ndim), v)
            for k, v in local.items()}


def _non_finite_terms(metrics: Mapping[str, float]) -> list[str]:
    return [k for k, v in metrics.items() if not np.isfinite(v) and k != "loss"]


def train(config: ml_collections.ConfigDict, workdir: str | Path) -> RunSummary:
    """Trains to `config.train.num_steps`, resuming from the latest checkpoint in `workdir`."""
    started = time.perf_counter()
    validate_config(config)
    workdir = Path(workdir).expanduser().absolute()
    is_writer = jax.process_index() == 0
    if is_writer:
        write_config(config, workdir)
    data_cfg, tokenizer_path, prompts, init_params = _resolve_inputs(config)
    tokenizer = Tokenizer(tokenizer_path)
    model_cfg: EmbedderConfig = model_config(config)
    runtime = runtime_config(config)
    if init_params is not None:  # before the tokenizer's check: this error names every parameter
        abstract = jax.eval_shape(lambda: init_params_of(model_cfg, jax.random.PRNGKey(0), runtime))
        _check_init_params(init_params, abstract, config.model.init_checkpoint)
    if tokenizer.vocab_size > model_cfg.transformer.vocab_size:
        raise ValueError(f"The tokenizer {tokenizer_path} has {tokenizer.vocab_size} pieces, more than "
                         f"model.preset={config.model.preset!r}'s vocabulary of "
                         f"{model_cfg.transformer.vocab_size}.")
    t = config.train
    rules = config.mesh.rules
    mesh = make_mesh(config.mesh.axes, config.mesh.shape)
    tx, schedule = make_optimizer(config.optimizer, t.num_steps,
                                  train_params_layout(model_cfg, runtime, config.loss.teacher_dim))
    state, shardings = create_train_state(model_cfg, runtime, tx, mesh, rules,
                                          jax.random.PRNGKey(config.seed), config.loss.teacher_dim)
    data = make_train_iterator(data_cfg, tokenizer, batch_size=t.batch_size,
                               max_query_length=t.max_query_length, max_document_length=t.max_document_length,
                               hard_negatives=t.hard_negatives,
                               seed=config.seed, process_index=jax.process_index(),
                               process_count=jax.process_count())

    checkpoints = RunCheckpoints(workdir, config.checkpoint)
    start_step = checkpoints.latest_step() or 0
    if start_step:
        state, data_state = checkpoints.restore(start_step, abstract_like(state, shardings))
        data.set_state(data_state)
        logger.warning("Resumed %s from step %d.", workdir, start_step)
    elif init_params is not None:
        state = _initialise_from(state, shardings, tx, init_params)

    model = EmbeddingModel(model_cfg, runtime)
    replicated = NamedSharding(mesh, PartitionSpec())
    embed_jit = jax.jit(lambda p, tokens: model.apply({"params": p}, tokens), out_shardings=replicated)
    heldout = None
    if config.eval.every_steps and data_cfg.corpus:
        heldout = HeldoutRetrieval(data_cfg, heldout_datasets(data_cfg), tokenizer,
                                   max_query_length=t.max_query_length,
                                   max_document_length=t.max_document_length,
                                   max_queries=config.eval.max_queries, batch_size=config.eval.batch_size)
    writer = MetricsWriter(workdir, start_step, enabled=is_writer)
    evaluations: dict[int, dict[str, float]] = {}

    def evaluate(step: int) -> None:
        if heldout is None:
            return
        encoder = state["params"][ENCODER]
        metrics = heldout.evaluate(lambda tokens: np.asarray(embed_jit(encoder, tokens)))
        evaluations[step] = metrics
        writer.write_eval(step, metrics)
        logger.warning("step %d: held-out nDCG@10 %.4f", step, metrics["eval/ndcg_at_10"])

    if start_step == 0:
        evaluate(0)
    train_step = make_train_step(model, tx, schedule, config, mesh, shardings, rules)
    progress = tqdm(total=t.num_steps, initial=start_step, desc="train", unit="step", disable=not is_writer,
                    dynamic_ncols=True)
    loss = None
    try:
        for step in range(start_step + 1, t.num_steps + 1):
            tick = time.perf_counter()
            local = next(data)
            dataset = data.last_dataset
            tokens = sum(int((local[k] != tokenizer.pad_id).sum()) for k in ("query", "positive", "negative")
                         if k in local) * jax.process_count()
            state, metrics = train_step(state, _global_batch(local, mesh, rules))
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


__all__ = ["NonFiniteLossError", "RunSummary", "train"]
