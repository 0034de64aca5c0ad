"""The embedding API: `Embedder.load(path).encode(texts, prompt_name=...)`."""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from embeddinggemma import cpu_kernels
from embeddinggemma.batching import bucket_batch_size, bucket_length, length_sorted_batches
from embeddinggemma.checkpoint.loading import load_checkpoint
from embeddinggemma.checkpoint.orbax_io import save_orbax
from embeddinggemma.model import EmbedderConfig, EmbeddingModel, RuntimeConfig, truncate_embeddings
from embeddinggemma.prompts import document_prompt, resolve_prompt
from embeddinggemma.tokenizer import Tokenizer, pad_batch

_DOCUMENT_PROMPT_NAMES = ("document", "Retrieval-document")
_PROGRESS_MIN_TEXTS = 256


def embed_function(config: EmbedderConfig, runtime: RuntimeConfig):
    """One jitted forward pass per architecture, run-time setting and CPU kernel choice: Embedders
    of the same model (an evaluation's checkpoints, a greedy soup's candidates) reuse each other's
    compiled programs."""
    options = cpu_kernels.compiler_options() or {}
    return _jitted_forward(config, runtime, tuple(sorted(options.items())))


@functools.cache
def _jitted_forward(config: EmbedderConfig, runtime: RuntimeConfig, options: tuple[tuple[str, str], ...]):
    model = EmbeddingModel(config, runtime)
    return jax.jit(lambda p, tokens: model.apply({"params": p}, tokens),
                   compiler_options=dict(options) or None)


class Embedder:
    """A loaded embedding model with its tokenizer and prompts."""

    def __init__(self, config: EmbedderConfig, params: Mapping, tokenizer_path: str | Path,
                 prompts: Mapping[str, str], runtime: RuntimeConfig = RuntimeConfig()):
        self.config = config
        self.runtime = runtime
        t = config.transformer
        self.tokenizer = Tokenizer(tokenizer_path, bos_id=t.bos_id, eos_id=t.eos_id, pad_id=t.pad_id)
        self.prompts = dict(prompts)
        self.params = jax.tree.map(lambda w: jnp.asarray(w, runtime.weight_dtype), params)
        self._embed = embed_function(config, runtime)

    @classmethod
    def load(cls, path: str | Path, dtype: str = "float32", local_attention: str = "auto") -> Embedder:
        """Loads an Orbax checkpoint or a sentence-transformers directory.

        `dtype` ("float32" or "bfloat16") sets both the parameters and the computation;
        `local_attention` how local layers compute (`RuntimeConfig`; "auto" picks the faster).
        """
        runtime = RuntimeConfig(dtype=dtype, param_dtype=dtype, local_attention=local_attention)
        ckpt = load_checkpoint(path)
        return cls(ckpt.config, ckpt.params, ckpt.tokenizer_path, ckpt.prompts, runtime)

    def save(self, directory: str | Path) -> Path:
        """Writes this model as an Orbax checkpoint that `Embedder.load` reads."""
        return save_orbax(directory, self.config, self.params, self.tokenizer.model_path, self.prompts)

    @property
    def dim(self) -> int:
        return self.config.output_dim

    def tokenize(self, texts: Sequence[str], prompt_name: str | None = None,
                 title: str | Sequence[str | None] | None = None,
                 max_length: int = 2048) -> list[list[int]]:
        """Token ids of each prompted text (see `encode` for the arguments)."""
        texts = _check_texts(texts)
        prefixes = self._prefixes(len(texts), prompt_name, title)
        max_length = min(max_length, self.config.transformer.max_length)
        return self.tokenizer.encode([p + t for p, t in zip(prefixes, texts, strict=True)], max_length)

    def encode(self, texts: str | Sequence[str], prompt_name: str | None = None,
               title: str | Sequence[str | None] | None = None, dim: int | None = None,
               batch_size: int = 32, max_length: int = 2048,
               show_progress: bool | None = None) -> np.ndarray:
        """Embeds texts into L2-normalised float32 vectors.

        Args:
          texts: a list of strings ([N, dim] result) or one string ([dim] result).
          prompt_name: a key of `self.prompts` (e.g. "query", "document", "STS"); None embeds
            the text as given.
          title: document title(s): one for all texts or one per text (None entries allowed);
            uses the document prompt `title: {title} | text: `.
          dim: Matryoshka dimension (1..output dim): truncate, then re-normalise.
          batch_size: texts per forward pass.
          max_length: tokens per text including BOS and EOS (capped at the model's maximum).
          show_progress: a progress bar; by default on for 256 texts or more.
        """
        single = isinstance(texts, str)
        ids = self.tokenize([texts] if single else texts, prompt_name, title, max_length)
        dim = self.dim if dim is None else dim
        if not 1 <= dim <= self.dim:
            raise ValueError(f"dim={dim} is outside 1..{self.dim}.")
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be at least 1.")
        out = np.zeros((len(ids), dim), dtype=np.float32)
        if show_progress is None:
            show_progress = len(ids) >= _PROGRESS_MIN_TEXTS
        max_length = min(max_length, self.config.transformer.max_length)
        with tqdm(total=len(ids), disable=not show_progress, unit="text", file=sys.stderr) as bar:
            for index in length_sorted_batches([len(i) for i in ids], batch_size):
                batch = [ids[i] for i in index]
                rows = bucket_batch_size(len(batch), batch_size)
                length = bucket_length(max(len(b) for b in batch), max_length)
                tokens = pad_batch(batch + [[]] * (rows - len(batch)), length,
                                   self.config.transformer.pad_id)
                embeddings = self._embed(self.params, tokens)[: len(batch)]
                out[index] = np.asarray(truncate_embeddings(embeddings, dim))
                bar.update(len(batch))
        return out[0] if single else out

    def _prefixes(self, n: int, prompt_name: str | None,
                  title: str | Sequence[str | None] | None) -> list[str]:
        if title is None:
            return [resolve_prompt(self.prompts, prompt_name)] * n
        if prompt_name not in (None, *_DOCUMENT_PROMPT_NAMES):
            raise ValueError(f"title is only used with the document prompt, not with "
                             f"prompt_name={prompt_name!r}.")
        titles = [title] * n if isinstance(title, str) else list(title)
        if len(titles) != n:
            raise ValueError(f"title has {len(titles)} entries for {n} texts.")
        for i, t in enumerate(titles):
            if t is not None and not isinstance(t, str):
                raise TypeError(f"title[{i}] is {type(t).__name__}, not str.")
        return [document_prompt(t) for t in titles]


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, (bytes, np.ndarray)) or not isinstance(texts, Sequence):
        raise TypeError(f"texts must be a list of strings, not {type(texts).__name__}.")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] is {type(t).__name__}, not str.")
    return list(texts)

