"""The UL2 adaptation stage: a decoder-only Gemma 3 becomes an encoder-decoder, trained to denoise.

    start        model.init_checkpoint: a decoder's weights (checkpoint/encoder_decoder.decoder_start),
                 copied into both halves (model/encoder_decoder.from_decoder); "" = a random
                 encoder-decoder
    data         the documents of data.corpus's train splits, denoised by ul2.denoisers (data/ul2.py)
    objective    the mean cross-entropy of the decoder's targets (`denoising/loss`), per target token
    evaluation   the same loss on the corpus's held-out splits, denoised once with a fixed seed
                 (`eval/denoising_loss`, per denoiser `eval/<name>/denoising_loss`)
    export       DIR/export: the encoder-decoder (checkpoint/encoder_decoder.py)

`checkpoint.encoder_decoder.load_adapted_encoder(path)` gives the encoder half of an adaptation run
or export, the tree an embedding model starts from.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from embeddinggemma import cpu_kernels
from embeddinggemma.checkpoint.encoder_decoder import (
    METADATA_FILE,
    SEQ2SEQ,
    decoder_start,
    write_encoder_decoder_metadata,
)
from embeddinggemma.data import ul2
from embeddinggemma.data.config import corpus_datasets
from embeddinggemma.data.pipeline import read_options
from embeddinggemma.data.ul2_config import denoiser_names
from embeddinggemma.errors import ConfigError
from embeddinggemma.losses.denoising import chunked_target_statistics, target_statistics
from embeddinggemma.model import encoder_decoder
from embeddinggemma.model.config import TransformerConfig
from embeddinggemma.model.encoder_decoder import EncoderDecoder
from embeddinggemma.paths import as_path
from embeddinggemma.tokenizer import Tokenizer
from embeddinggemma.training.checkpoints import check_export_target, export_tree
from embeddinggemma.training.config import preset_config, runtime_config
from embeddinggemma.training.denoising_config import transformer_config
from embeddinggemma.training.inputs import HELDOUT_SPLIT, corpus_tokenizer, resolve_corpus
from embeddinggemma.training.mesh import mesh_platform, tracing_under
from embeddinggemma.training.stage import DataStream, Evaluator, Stage, first_process_first
from embeddinggemma.training.trainer import Trainer, assemble_trainer


def batch_statistics(model: EncoderDecoder, params: Mapping, batch: Mapping[str, jax.Array], pad_id: int,
                     logits_chunk: int = 0) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Per example [B]: (summed NLL, target tokens, correct tokens) of a UL2 batch under the
    encoder-decoder's `params`, the logits `logits_chunk` decoder positions at a time (0 = all)."""
    variables = {"params": params}
    hidden = model.apply(variables, batch["encoder_tokens"], batch["decoder_tokens"],
                         method=EncoderDecoder.decoder_hidden)
    logits_fn = lambda h: model.apply(variables, h, method=EncoderDecoder.logits)
    if logits_chunk and logits_chunk < hidden.shape[1]:
        return chunked_target_statistics(logits_fn, hidden, batch["targets"], pad_id, logits_chunk)
    return target_statistics(logits_fn(hidden), batch["targets"], pad_id)


def denoising_objective(model: EncoderDecoder, pad_id: int, logits_chunk: int = 0):
    """`(params, batch) -> (loss, metrics)`: the mean target-token cross-entropy of a UL2 batch
    (data/ul2.BATCH_KEYS), with `denoising/loss`, `denoising/accuracy` and
    `denoising/target_tokens`; the logits `logits_chunk` decoder positions at a time (0 = all)."""

    def objective(params, batch):
        nll, tokens, correct = batch_statistics(model, params[SEQ2SEQ], batch, pad_id, logits_chunk)
        count = jnp.maximum(tokens.sum(), 1.0)
        loss = nll.sum() / count
        return loss, {"denoising/loss": loss, "denoising/accuracy": correct.sum() / count,
                      "denoising/target_tokens": tokens.sum()}

    return objective


def denoising_trainer(config: ml_collections.ConfigDict, transformer: TransformerConfig, pad_id: int,
                      devices: Sequence[jax.Device] | None = None) -> Trainer:
    """The adaptation's trainer over `devices` (default: all): the encoder-decoder of `transformer`
    (both halves), random parameters under `SEQ2SEQ`, the denoising objective of `pad_id`."""
    model = EncoderDecoder(transformer, runtime_config(config))

    def init_boxed(rng):
        tokens = jnp.ones((1, 4), jnp.int32)
        return {SEQ2SEQ: model.init(rng, tokens, tokens)["params"]}

    objective = denoising_objective(model, pad_id, config.ul2.logits_chunk)
    return assemble_trainer(config, architecture=preset_config(config), objective=objective,
                            init_params=init_boxed, devices=devices)


def heldout_sums(config: ml_collections.ConfigDict, transformer: TransformerConfig, pad_id: int,
                 num_denoisers: int, trainer: Trainer) -> Callable:
    """The held-out evaluation's program over the trainer's mesh (traced as the train step is):
    `(params, batch) -> [summed NLL, target tokens, correct tokens]`, each [num_denoisers] float32,
    summed per denoiser (`batch["denoiser"]`) over a UL2 batch (data/ul2.BATCH_KEYS)."""
    model = EncoderDecoder(transformer, runtime_config(config))

    @functools.partial(jax.jit, compiler_options=cpu_kernels.compiler_options(mesh_platform(trainer.mesh)))
    def sums(params, batch):
        with tracing_under(trainer.mesh, trainer.rules):
            per_example = batch_statistics(model, params[SEQ2SEQ], batch, pad_id, config.ul2.logits_chunk)
        return [jax.ops.segment_sum(x, batch["denoiser"], num_denoisers) for x in per_example]

    return sums


class DenoisingStage(Stage):
    """The adapt command's stage (see the module docstring); config: configs/ul2_adapt.py."""

    name = "adapt"
    headline_metric = "eval/denoising_loss"

    def check_export_target(self, workdir: Path) -> None:
        check_export_target(workdir, METADATA_FILE)

    def prepare(self, workdir: Path) -> None:
        config = self.config
        if not config.data.corpus:
            raise ConfigError("data.corpus is empty: the adaptation reads its documents from a corpus.")
        self.data_cfg = resolve_corpus(config.data)
        self.transformer = transformer_config(config)
        start = (decoder_start(config.model.init_checkpoint, config.model.keep_layers)
                 if config.model.init_checkpoint else None)
        if start is not None and start.config != self.transformer:
            differ = [f"{f.name}: checkpoint {getattr(start.config, f.name)!r} vs model.preset "
                      f"{getattr(self.transformer, f.name)!r}" for f in dataclasses.fields(TransformerConfig)
                      if getattr(start.config, f.name) != getattr(self.transformer, f.name)]
            raise ConfigError(f"model.init_checkpoint={config.model.init_checkpoint} is another architecture "
                              f"than model.preset={config.model.preset!r}:\n  " + "\n  ".join(differ))
        self.start = start
        if config.model.tokenizer:
            self.tokenizer_path = as_path(config.model.tokenizer).expanduser()
        elif start is not None:
            self.tokenizer_path = start.tokenizer_path
        else:
            vocab_size = self.transformer.vocab_size
            self.tokenizer_path = first_process_first("tokenizer", lambda: corpus_tokenizer(
                self.data_cfg.corpus, vocab_size, gemma_reserved=True))
        self.tokenizer = Tokenizer(self.tokenizer_path)
        ul2.check_tokenizer(self.tokenizer)
        if self.tokenizer.vocab_size > self.transformer.vocab_size:
            raise ConfigError(f"The tokenizer {self.tokenizer_path} has {self.tokenizer.vocab_size} pieces, "
                              f"more than model.preset={config.model.preset!r}'s vocabulary of "
                              f"{self.transformer.vocab_size}.")
        if jax.process_index() == 0:  # the run directory describes its checkpoints' model
            write_encoder_decoder_metadata(workdir, self.transformer, self.tokenizer_path)

    def assemble(self) -> Trainer:
        return denoising_trainer(self.config, self.transformer, self.tokenizer.pad_id)

    def initial_params(self, trainer: Trainer, state: Mapping) -> Mapping | None:
        if self.start is None:
            return None
        return {SEQ2SEQ: encoder_decoder.from_decoder(self.start.params)}

    def train_iterator(self, trainer: Trainer) -> DataStream:
        t, data_cfg = self.config.train, self.data_cfg
        documents = ul2.corpus_documents(data_cfg.datasets, self.tokenizer)
        return ul2.make_ul2_iterator(documents, self.config.ul2, self.tokenizer, batch_size=t.batch_size,
                                     seed=self.config.seed, process_index=jax.process_index(),
                                     process_count=jax.process_count(), read_options=read_options(data_cfg))

    def evaluator(self, trainer: Trainer) -> Evaluator | None:
        c = self.config.ul2
        documents = ul2.corpus_documents(corpus_datasets(self.data_cfg.corpus, HELDOUT_SPLIT), self.tokenizer,
                                         limit=c.heldout_documents)
        batches = ul2.heldout_batches(documents, c, self.tokenizer, batch_size=self.config.eval.batch_size,
                                      seed=self.config.seed)
        names = denoiser_names(c)
        sums = heldout_sums(self.config, self.transformer, self.tokenizer.pad_id, len(names), trainer)

        def evaluate(params):
            # Every host passes the whole held-out batch: the global batch holds each example once
            # per host, which leaves every ratio below unchanged.
            totals = np.zeros((3, len(names)))
            for batch in batches:
                totals += np.asarray(jax.device_get(sums(params, trainer.global_batch(batch))))
            nll, tokens, correct = totals
            metrics = {"eval/denoising_loss": nll.sum() / tokens.sum(),
                       "eval/denoising_accuracy": correct.sum() / tokens.sum()}
            metrics.update({f"eval/{name}/denoising_loss": nll[i] / tokens[i]
                            for i, name in enumerate(names) if tokens[i]})
            return {k: float(v) for k, v in metrics.items()}

        return evaluate

    def tokens(self, local_batch: Mapping[str, np.ndarray]) -> int:
        pad = self.tokenizer.pad_id
        return int((local_batch["encoder_tokens"] != pad).sum() + (local_batch["targets"] != pad).sum())

    def export(self, workdir: Path, trainer: Trainer, params: Mapping) -> Path:
        return export_tree(workdir, params[SEQ2SEQ], METADATA_FILE,
                           lambda d: write_encoder_decoder_metadata(d, self.transformer, self.tokenizer_path))
