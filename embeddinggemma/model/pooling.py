"""Pooling of hidden states [B, T, D] into one vector per sequence [B, D], in float32."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from embeddinggemma.model.layers import logical_param


def mean_pool(hidden: jax.Array, input_mask: jax.Array) -> jax.Array:
    """Mean over real tokens (prompt, BOS and EOS included). [B, T, D], [B, T] -> [B, D]."""
    weights = input_mask.astype(jnp.float32)
    total = jnp.einsum("BTD,BT->BD", hidden.astype(jnp.float32), weights)
    return total / jnp.maximum(weights.sum(axis=1, keepdims=True), 1.0)


def first_token_pool(hidden: jax.Array, input_mask: jax.Array) -> jax.Array:
    """The first position (BOS). [B, T, D] -> [B, D]."""
    del input_mask
    return hidden[:, 0].astype(jnp.float32)


def last_token_pool(hidden: jax.Array, input_mask: jax.Array) -> jax.Array:
    """The last real token (EOS under right padding). [B, T, D] -> [B, D]."""
    last = jnp.maximum(input_mask.sum(axis=1) - 1, 0)
    return jnp.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0].astype(jnp.float32)


class AttentionPool(nn.Module):
    """A learned query scores each real token; the softmax-weighted sum is the pooled vector."""

    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, hidden: jax.Array, input_mask: jax.Array) -> jax.Array:
        query = logical_param(self, "query", (hidden.shape[-1],), ("embed",), self.param_dtype)
        hidden = hidden.astype(jnp.float32)
        scores = jnp.einsum("BTD,D->BT", hidden, query.astype(jnp.float32))
        scores = jnp.where(input_mask, scores, jnp.finfo(jnp.float32).min)
        return jnp.einsum("BT,BTD->BD", jax.nn.softmax(scores, axis=-1), hidden)


FIXED_POOLING = {"mean": mean_pool, "first": first_token_pool, "last": last_token_pool}
