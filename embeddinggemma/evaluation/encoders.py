"""The suite's view of a checkpoint: `Embedder` with a fixed context length, dtype and quantisation."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from embeddinggemma.api import Embedder
from embeddinggemma.checkpoint.orbax_io import is_orbax_dir, read_orbax_metadata
from embeddinggemma.model.layout import embedder_layout
from embeddinggemma.paths import as_path, file_stat, files_under, resolved
from embeddinggemma.prompts import load_prompts
from embeddinggemma.quantization import SCHEMES, quantize_params

# The paper evaluates most MTEB tasks with 512 tokens of context.
DEFAULT_MAX_LENGTH = 512


def checkpoint_fingerprint(path: str | Path) -> str:
    """A cheap identity of a checkpoint directory: its files' names, sizes and modification times."""
    path = resolved(path)
    entries = sorted((str(f.relative_to(path)), *file_stat(f)) for f in files_under(path))
    return hashlib.sha256(repr((str(path), entries)).encode()).hexdigest()[:16]


class EmbedderEncoder:
    """Encodes with an Embedder, loaded on first use (a fully cached evaluation never loads it);
    `identity` keys the embedding cache."""

    def __init__(
        self,
        checkpoint: str | Path,
        *,
        dtype: str = "float32",
        quant: str | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        batch_size: int = 32,
    ):
        self.checkpoint = as_path(checkpoint).expanduser()
        self.dtype, self.quant, self.max_length, self.batch_size = dtype, quant, max_length, batch_size
        if quant and quant not in SCHEMES:
            raise ValueError(f"Unknown quantisation scheme {quant!r}; choose one of {', '.join(SCHEMES)}.")
        self.identity = f"{checkpoint_fingerprint(self.checkpoint)}|{dtype}|{quant or 'none'}|{max_length}"
        if is_orbax_dir(self.checkpoint):
            config, self.prompts = read_orbax_metadata(self.checkpoint)
            self.dims = tuple(config.matryoshka_dims)
        else:
            self.prompts, self.dims = load_prompts(self.checkpoint), None
        self._embedder: Embedder | None = None

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            embedder = Embedder.load(self.checkpoint, dtype=self.dtype)
            if self.quant:
                embedder = Embedder(
                    embedder.config,
                    quantize_params(embedder.params, self.quant, embedder_layout(embedder.config)),
                    embedder.tokenizer.model_path,
                    embedder.prompts,
                    embedder.runtime,
                )
            self._embedder = embedder
        return self._embedder

    def default_dims(self) -> tuple[int, ...]:
        """The checkpoint's Matryoshka dimensions."""
        return self.dims or tuple(self.embedder.config.matryoshka_dims)

    def encode(self, texts: Sequence[str], prompt_name: str | None) -> np.ndarray:
        return self.embedder.encode(
            list(texts), prompt_name=prompt_name, max_length=self.max_length, batch_size=self.batch_size
        )
