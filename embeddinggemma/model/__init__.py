"""Pure Flax model code: imports jax, flax and numpy only."""

from embeddinggemma.model.config import (
    EmbedderConfig,
    RuntimeConfig,
    TransformerConfig,
    embeddinggemma_300m,
    get_preset,
    tiny,
)
from embeddinggemma.model.embedder import EmbeddingModel, init_params, l2_normalize, truncate_embeddings
from embeddinggemma.model.transformer import Transformer

__all__ = [
    "EmbedderConfig",
    "EmbeddingModel",
    "RuntimeConfig",
    "Transformer",
    "TransformerConfig",
    "embeddinggemma_300m",
    "get_preset",
    "init_params",
    "l2_normalize",
    "tiny",
    "truncate_embeddings",
]
