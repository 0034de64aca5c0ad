"""Training losses: pure, jit-compatible functions of embeddings and masks, or of a decoder's
logits and targets (the UL2 denoising loss), jax and numpy only.

The embedding losses return (scalar loss, dict of scalar metrics) and compute similarities in
float32; training/objective.LOSS_TERMS maps config weights to them.
"""

from embeddinggemma.losses.contrastive import contrastive_loss
from embeddinggemma.losses.denoising import chunked_target_statistics, target_statistics
from embeddinggemma.losses.distillation import DISTANCES, distillation_loss, embedding_distillation_loss
from embeddinggemma.losses.matryoshka import matryoshka_loss
from embeddinggemma.losses.spread_out import spread_out_loss

__all__ = [
    "DISTANCES",
    "chunked_target_statistics",
    "contrastive_loss",
    "distillation_loss",
    "embedding_distillation_loss",
    "matryoshka_loss",
    "spread_out_loss",
    "target_statistics",
]
