"""Numerical helpers shared by the model and the losses (jax only)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def l2_normalize(x: jax.Array) -> jax.Array:
    """Unit-length float32 rows of [..., D].

    An all-zero row (a padding example) stays zero with a zero gradient, where dividing by
    `linalg.norm` would give NaN gradients that leak through any later masking.
    """
    x = x.astype(jnp.float32)
    squared_norm = jnp.sum(x * x, axis=-1, keepdims=True)
    return x * jax.lax.rsqrt(jnp.maximum(squared_norm, 1e-24))


def truncate_embeddings(x: jax.Array, dim: int) -> jax.Array:
    """Matryoshka: [..., D] -> [..., dim] float32, the first `dim` coordinates re-normalised."""
    if not 1 <= dim <= x.shape[-1]:
        raise ValueError(f"dim={dim} is outside 1..{x.shape[-1]} (the embedding width).")
    return l2_normalize(x[..., :dim])


def masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of `values` where `mask` is True (same shapes); 0 when nothing is selected."""
    total = jnp.sum(jnp.where(mask, values, 0.0))
    return total / jnp.maximum(jnp.sum(mask), 1)
