"""The embedding stage (pre-finetuning, finetuning): the configured contrastive objective over the
encoder, the mixture of pair datasets, held-out retrieval nDCG@10 and the encoder's export."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from embeddinggemma.data.pipeline import make_train_iterator
from embeddinggemma.errors import ConfigError
from embeddinggemma.paths import as_path
from embeddinggemma.prompts import DEFAULT_PROMPTS
from embeddinggemma.schema import ROLES
from embeddinggemma.tokenizer import Tokenizer
from embeddinggemma.training.checkpoints import check_export_target, export_params
from embeddinggemma.training.embedding_config import model_config
from embeddinggemma.training.heldout import HeldoutRetrieval
from embeddinggemma.training.initialisation import check_init_params, load_initial_encoder
from embeddinggemma.training.inputs import (
    corpus_tokenizer,
    heldout_datasets,
    init_teacher_datasets,
    record_run_inputs,
    resolve_corpus,
)
from embeddinggemma.training.stage import DataStream, Evaluator, Stage, first_process_first
from embeddinggemma.training.state import ENCODER
from embeddinggemma.training.step import Objective, ParamTransform
from embeddinggemma.training.trainer import Trainer, assemble_trainer


class EmbeddingStage(Stage):
    """`objective` and `param_transform` go to `assemble_trainer` (default: the configured
    embedding objective, untransformed parameters)."""

    name = "train"
    headline_metric = "eval/ndcg_at_10"

    def __init__(self, config: ml_collections.ConfigDict, objective: Objective | None = None,
                 param_transform: ParamTransform | None = None):
        super().__init__(config)
        self.objective, self.param_transform = objective, param_transform

    def check_export_target(self, workdir: Path) -> None:
        check_export_target(workdir)

    def prepare(self, workdir: Path) -> None:
        config = self.config
        self.data_cfg = resolve_corpus(config.data)
        if config.loss.teacher_is_init:
            self.data_cfg = first_process_first(
                "teacher", lambda: init_teacher_datasets(config, self.data_cfg, workdir))
        init = load_initial_encoder(config)
        self.prompts = dict(init.prompts) if init and init.prompts is not None else dict(DEFAULT_PROMPTS)
        if config.model.tokenizer:
            self.tokenizer_path = as_path(config.model.tokenizer).expanduser()
        elif init and init.tokenizer_path is not None:
            self.tokenizer_path = init.tokenizer_path
        elif self.data_cfg.corpus:
            vocab_size = model_config(config).transformer.vocab_size
            self.tokenizer_path = first_process_first(
                "tokenizer", lambda: corpus_tokenizer(self.data_cfg.corpus, vocab_size))
        else:
            raise ConfigError("No tokenizer: set model.tokenizer, model.init_checkpoint or data.corpus.")
        self.init_params = init.params if init else None
        self.tokenizer = Tokenizer(self.tokenizer_path)
        if jax.process_index() == 0:
            record_run_inputs(workdir, self.tokenizer_path, self.prompts)

    def assemble(self) -> Trainer:
        config = self.config
        trainer = assemble_trainer(config, objective=self.objective, param_transform=self.param_transform)
        if self.init_params is not None:  # before the tokenizer's check: this error names every parameter
            abstract = nn.unbox(jax.eval_shape(trainer.init_boxed, jax.random.PRNGKey(0)))[ENCODER]
            check_init_params(self.init_params, abstract, config.model)
        vocab_size = trainer.model_config.transformer.vocab_size
        if self.tokenizer.vocab_size > vocab_size:
            raise ConfigError(f"The tokenizer {self.tokenizer_path} has {self.tokenizer.vocab_size} pieces, "
                              f"more than model.preset={config.model.preset!r}'s vocabulary of {vocab_size}.")
        return trainer

    def initial_params(self, trainer: Trainer, state: Mapping) -> Mapping | None:
        if self.init_params is None:
            return None
        params = jax.device_get(dict(state["params"]))
        # A start may bring only some subtrees (a decoder: `transformer`); the rest stay as initialised.
        return {**params, ENCODER: {**params[ENCODER], **self.init_params}}

    def train_iterator(self, trainer: Trainer) -> DataStream:
        t = self.config.train
        return make_train_iterator(self.data_cfg, self.tokenizer, batch_size=t.batch_size,
                                   max_query_length=t.max_query_length,
                                   max_document_length=t.max_document_length, hard_negatives=t.hard_negatives,
                                   seed=self.config.seed, process_index=jax.process_index(),
                                   process_count=jax.process_count())

    def evaluator(self, trainer: Trainer) -> Evaluator | None:
        config, t = self.config, self.config.train
        if not (config.eval.every_steps and self.data_cfg.corpus):
            return None
        heldout = HeldoutRetrieval(self.data_cfg, heldout_datasets(self.data_cfg), self.tokenizer,
                                   max_query_length=t.max_query_length,
                                   max_document_length=t.max_document_length,
                                   max_queries=config.eval.max_queries, batch_size=config.eval.batch_size)
        return lambda params: heldout.evaluate(lambda tokens: np.asarray(trainer.embed(params, tokens)))

    def tokens(self, local_batch: Mapping[str, np.ndarray]) -> int:
        return sum(int((local_batch[k] != self.tokenizer.pad_id).sum()) for k in ROLES if k in local_batch)

    def export(self, workdir: Path, trainer: Trainer, params: Mapping) -> Path:
        return export_params(workdir, trainer.model_config, params, self.tokenizer_path, self.prompts)
