"""Training losses: pure, jit-compatible functions of embeddings and masks (jax and numpy only).

Each returns (scalar loss, dict of scalar metrics) and computes similarities in float32.
"""

from embeddinggemma.losses.contrastive import contrastive_loss
from embeddinggemma.losses.distillation import DISTANCES, distillation_loss, embedding_distillation_loss
from embeddinggemma.losses.matryoshka import matryoshka_loss
from embeddinggemma.losses.spread_out import spread_out_loss

__all__ = [
    "DISTANCES",
    "contrastive_loss",
    "distillation_loss",
    "embedding_distillation_loss",
    "matryoshka_loss",
    "spread_out_loss",
]
