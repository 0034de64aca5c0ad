"""embeddinggemma: a JAX/Flax reproduction of the EmbeddingGemma recipe."""

from embeddinggemma.api import Embedder

__all__ = ["Embedder"]
