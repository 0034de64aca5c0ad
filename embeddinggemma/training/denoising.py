"""The UL2 adaptation stage: a decoder-only Gemma 3 becomes an encoder-decoder, trained to denoise.

    start        model.init_checkpoint: a decoder's weights (see `decoder_start`), copied into both
                 halves (model/encoder_decoder.from_decoder); "" = a random encoder-decoder
    data         the documents of data.corpus's train splits, denoised by ul2.denoisers (data/ul2.py)
    objective    the mean cross-entropy of the decoder's targets (`denoising/loss`), per target token
    evaluation   the same loss on the corpus's held-out splits, denoised once with a fixed seed
                 (`eval/denoising_loss`, per denoiser `eval/<name>/denoising_loss`)
    export       DIR/export: the encoder-decoder (checkpoint/encoder_decoder.py)

`load_adapted_encoder(path)` gives the encoder half of an adaptation run or export, the tree an
embedding model starts from.
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
import orbax.checkpoint as ocp

from embeddinggemma import cpu_kernels
from embeddinggemma.checkpoint.decoders import LoadedDecoder, keep_first_layers, load_decoder
from embeddinggemma.checkpoint.encoder_decoder import (
    METADATA_FILE,
    check_halves,
    is_encoder_decoder_dir,
    read_encoder_decoder_metadata,
    write_encoder_decoder_metadata,
)
from embeddinggemma.checkpoint.loading import load_checkpoint
from embeddinggemma.checkpoint.orbax_io import is_orbax_dir, restore_params_tree
from embeddinggemma.checkpoint.sentence_transformers import is_sentence_transformers_dir
from embeddinggemma.data import ul2
from embeddinggemma.data.config import corpus_datasets
from embeddinggemma.data.pipeline import read_options
from embeddinggemma.model import encoder_decoder
from embeddinggemma.model.config import TransformerConfig
from embeddinggemma.model.encoder_decoder import EncoderDecoder
from embeddinggemma.tokenizer import Tokenizer
from embeddinggemma.training.checkpoints import CHECKPOINTS_DIR, check_export_target, export_tree
from embeddinggemma.training.config import ConfigError, model_config, runtime_config
from embeddinggemma.training.inputs import HELDOUT_SPLIT, corpus_tokenizer, resolve_corpus
from embeddinggemma.training.mesh import activation_sharding, mesh_platform
from embeddinggemma.training.stage import DataStream, Evaluator, Stage, first_process_first
from embeddinggemma.training.trainer import Trainer, assemble_trainer

SEQ2SEQ = "encoder_decoder"  # the trained parameters' key in the train state


def decoder_start(path: str | Path, keep_layers: int = 0) -> LoadedDecoder:
    """Where the decoder weights of an adaptation come from (architecture, `Transformer`
    parameters, tokenizer): the one place to read them.

    A Gemma 3 decoder (GGUF, Hugging Face safetensors, our decoder layout: checkpoint/decoders), or
    one of this codebase's embedding checkpoints (Orbax or sentence-transformers: their
    `transformer` tree, used causally); cut to its first `keep_layers` layers when set
    (`model.keep_layers`, as the embedding model's start is).

    Raises:
      ConfigError naming model.keep_layers when the start has fewer layers.
    """
    path = Path(path).expanduser()
    if is_orbax_dir(path) or is_sentence_transformers_dir(path):
        loaded = load_checkpoint(path)
        decoder = LoadedDecoder(loaded.config.transformer, dict(loaded.params["transformer"]),
                                loaded.tokenizer_path)
    else:
        decoder = load_decoder(path)
    if keep_layers:
        try:
            decoder = keep_first_layers(decoder, keep_layers)
        except ValueError as e:
            raise ConfigError(f"model.{e} (model.init_checkpoint={path})") from e
    return decoder


def target_statistics(logits: jax.Array, targets: jax.Array, pad_id: int
                      ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Per example [B]: (summed negative log-likelihood, target tokens, correctly predicted tokens)
    of `targets` [B, T] under `logits` [B, T, V]; pad targets count for nothing."""
    weight = (targets != pad_id).astype(jnp.float32)
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
    correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
    return (nll * weight).sum(-1), weight.sum(-1), (correct * weight).sum(-1)


def chunked_target_statistics(logits_fn: Callable[[jax.Array], jax.Array], hidden: jax.Array,
                              targets: jax.Array, pad_id: int, chunk: int
                              ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """`target_statistics(logits_fn(hidden), targets, pad_id)` without all [B, T, V] logits at once:
    the T positions go in chunks of `chunk`, one after another, and each chunk's logits are
    recomputed in the backward pass, so memory holds [B, chunk, V] (a 262,144-piece vocabulary at
    B x T = 16 x 512 would be 8.6 GB of float32 logits, and as much again for their gradient)."""
    b, t, d = hidden.shape
    n = -(-t // chunk)
    hidden = jnp.pad(hidden, ((0, 0), (0, n * chunk - t), (0, 0)))
    targets = jnp.pad(targets, ((0, 0), (0, n * chunk - t)), constant_values=pad_id)
    hidden = hidden.reshape(b, n, chunk, d).swapaxes(0, 1)
    targets = targets.reshape(b, n, chunk).swapaxes(0, 1)

    @jax.checkpoint
    def one_chunk(args):
        h, y = args
        return target_statistics(logits_fn(h), y, pad_id)

    return tuple(s.sum(0) for s in jax.lax.map(one_chunk, (hidden, targets)))


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
    return assemble_trainer(config, objective=objective, init_params=init_boxed, devices=devices)


def heldout_sums(config: ml_collections.ConfigDict, transformer: TransformerConfig, pad_id: int,
                 num_denoisers: int, trainer: Trainer) -> Callable:
    """The held-out evaluation's program over the trainer's mesh (its activations laid out as the
    train step's): `(params, batch) -> [summed NLL, target tokens, correct tokens]`, each
    [num_denoisers] float32, summed per denoiser (`batch["denoiser"]`) over a UL2 batch
    (data/ul2.BATCH_KEYS)."""
    model = EncoderDecoder(transformer, runtime_config(config))

    @functools.partial(jax.jit, compiler_options=cpu_kernels.compiler_options(mesh_platform(trainer.mesh)))
    def sums(params, batch):
        with activation_sharding(trainer.mesh, trainer.rules):
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
        self.transformer = model_config(config).transformer
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
            self.tokenizer_path = Path(config.model.tokenizer).expanduser()
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
        names = ul2.denoiser_names(c)
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


@dataclasses.dataclass
class AdaptedEncoder:
    """The encoder half of an adapted encoder-decoder: a `Transformer`'s parameters (the tree an
    embedding model holds under `transformer`), their architecture and the tokenizer."""

    config: TransformerConfig
    params: dict
    tokenizer_path: Path


def load_adapted_encoder(path: str | Path) -> AdaptedEncoder:
    """The encoder of an adaptation run directory (its latest complete checkpoint) or of its export.

    Raises:
      FileNotFoundError or ValueError naming the directory when it is neither, or holds no
      complete checkpoint.
    """
    path = Path(path).expanduser().absolute()
    if not is_encoder_decoder_dir(path):
        raise FileNotFoundError(f"{path} is neither an adaptation run directory nor its export "
                                f"({METADATA_FILE} missing).")
    config, tokenizer_path = read_encoder_decoder_metadata(path)
    if (path / "params").is_dir():
        params = restore_params_tree(path)
    else:
        with ocp.CheckpointManager(path / CHECKPOINTS_DIR) as manager:
            step = manager.latest_step()
        if step is None:
            raise FileNotFoundError(f"{path / CHECKPOINTS_DIR} holds no complete checkpoint yet.")
        state = ocp.StandardCheckpointer().restore(path / CHECKPOINTS_DIR / str(step) / "state")
        params = state["params"][SEQ2SEQ]
    check_halves(params, path)
    return AdaptedEncoder(config, encoder_decoder.encoder_transformer_params(params), tokenizer_path)
