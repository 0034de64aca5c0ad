"""Spread-out loss: the second-moment global orthogonal regulariser."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from embeddinggemma.numerics import l2_normalize, masked_mean


def _mean_squared_off_diagonal_similarity(x: jax.Array, valid: jax.Array) -> jax.Array:
    """[B, D] unit rows, [B] bool -> mean over valid pairs i != j of (x_i . x_j)^2; 0 below 2 rows."""
    similarity = jnp.einsum("id,jd->ij", x, x, precision="highest")
    pairs = valid[:, None] & valid[None, :] & ~jnp.eye(x.shape[0], dtype=bool)
    return masked_mean(similarity**2, pairs)


def spread_out_loss(
    query: jax.Array,
    positive: jax.Array,
    example_mask: jax.Array | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """mean_{i != j} (q_i . q_j)^2 + mean_{i != j} (p_i . p_j)^2 on L2-normalised embeddings.

    Pushes unrelated embeddings towards orthogonal, spreading them over the sphere (independent
    uniform unit vectors in D dims have E[(x_i . x_j)^2] = 1/D).

    Args:
      query, positive: [B, D] embeddings (any length, any float dtype; normalised here in float32).
      example_mask: [B] bool; only pairs of valid examples count. None means all valid.

    Returns:
      (scalar loss, metrics): "loss", "query_term", "positive_term".
    """
    valid = jnp.ones(query.shape[0], bool) if example_mask is None else example_mask.astype(bool)
    query_term = _mean_squared_off_diagonal_similarity(l2_normalize(query), valid)
    positive_term = _mean_squared_off_diagonal_similarity(l2_normalize(positive), valid)
    loss = query_term + positive_term
    return loss, {"loss": loss, "query_term": query_term, "positive_term": positive_term}
