"""Embedding distillation: pull the student's embeddings onto a frozen teacher's."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp

from embeddinggemma.numerics import l2_normalize, masked_mean
from embeddinggemma.schema import ROLES


def _euclidean(difference: jax.Array) -> jax.Array:
    """[B, D] -> [B] norms, with gradient 0 (not NaN) where the difference is exactly zero."""
    squared = jnp.sum(difference**2, axis=-1)
    nonzero = squared > 0
    return jnp.where(nonzero, jnp.sqrt(jnp.where(nonzero, squared, 1.0)), 0.0)


# Per-row distance between unit-length student and teacher rows: [B, D] x [B, D] -> [B].
DISTANCES: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "cosine": lambda s, t: 1.0 - jnp.sum(s * t, axis=-1),
    "l2": lambda s, t: _euclidean(s - t),
    "squared_l2": lambda s, t: jnp.sum((s - t) ** 2, axis=-1),
}


def distillation_loss(
    student: jax.Array,
    teacher: jax.Array,
    distance: str = "cosine",
    example_mask: jax.Array | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Mean distance between L2-normalised student and teacher rows; the teacher is a constant.

    The paper does not name the distance: "cosine" is 1 - cos, "l2" the Euclidean distance
    (EmbedDistill's choice) and "squared_l2" its square, all on unit vectors.

    Args:
      student: [B, D] student embeddings, already mapped to the teacher's width D.
      teacher: [B, D] teacher embeddings; no gradient flows into them.
      distance: one of DISTANCES.
      example_mask: [B] bool; the mean is over valid rows. None means all valid.

    Returns:
      (scalar loss, {"loss"}).
    """
    if distance not in DISTANCES:
        raise ValueError(f"Unknown distillation distance {distance!r}; choose one of {tuple(DISTANCES)}.")
    valid = jnp.ones(student.shape[0], bool) if example_mask is None else example_mask.astype(bool)
    per_row = DISTANCES[distance](l2_normalize(student), l2_normalize(jax.lax.stop_gradient(teacher)))
    loss = masked_mean(per_row, valid)
    return loss, {"loss": loss}


def embedding_distillation_loss(
    student: Mapping[str, jax.Array | None],
    teacher: Mapping[str, jax.Array | None],
    distance: str = "cosine",
    example_mask: jax.Array | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """L_D = L_D^q + L_D^p+ + L_D^p-: `distillation_loss` summed over the roles both embed.

    Args:
      student, teacher: dicts of [B, D] embeddings keyed by role (schema.ROLES: query, positive,
        negative); a role counts when both hold a non-None array (a batch without hard negatives
        just omits it).
      distance, example_mask: as in `distillation_loss`.

    Returns:
      (scalar sum, metrics): "{key}/loss" for each counted key and "loss", the sum.
    """
    keys = [k for k in ROLES if student.get(k) is not None and teacher.get(k) is not None]
    if not keys:
        raise ValueError(f"Student and teacher share none of the roles {ROLES}.")
    total = jnp.zeros((), jnp.float32)
    metrics = {}
    for key in keys:
        loss, _ = distillation_loss(student[key], teacher[key], distance, example_mask)
        total = total + loss
        metrics[f"{key}/loss"] = loss
    metrics["loss"] = total
    return total, metrics
