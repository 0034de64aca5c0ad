"""The embedding model: encoder, pooling, bias-free projection, L2 normalisation."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from embeddinggemma.model.config import EmbedderConfig, RuntimeConfig
from embeddinggemma.model.layers import logical_param
from embeddinggemma.model.masks import encoder_masks, padding_mask, runtime_mask_options
from embeddinggemma.model.pooling import FIXED_POOLING, AttentionPool
from embeddinggemma.model.transformer import Transformer
from embeddinggemma.numerics import l2_normalize, truncate_embeddings

__all__ = ["EmbeddingModel", "init_params", "l2_normalize", "truncate_embeddings"]


class EmbeddingModel(nn.Module):
    """Token ids [B, T] (right-padded with the pad id) -> unit-length embeddings [B, P] float32."""

    config: EmbedderConfig
    runtime: RuntimeConfig = RuntimeConfig()

    @nn.compact
    def __call__(self, tokens: jax.Array) -> jax.Array:
        c, weight_dtype = self.config, self.runtime.weight_dtype
        input_mask = padding_mask(tokens, c.transformer.pad_id)
        transformer = Transformer(c.transformer, self.runtime, name="transformer")
        masks = encoder_masks(input_mask, c.transformer, **runtime_mask_options(self.runtime))
        hidden = transformer(tokens, masks)
        if c.pooling == "attention":
            x = AttentionPool(weight_dtype, name="attention_pool")(hidden, input_mask)
        else:
            x = FIXED_POOLING[c.pooling](hidden, input_mask)
        width = x.shape[-1]
        for i, out_dim in enumerate(c.projection_dims):
            axes = ("embed", "projection") if i % 2 == 0 else ("projection", "embed")
            w = logical_param(self, f"projection_{i}", (width, out_dim), axes, weight_dtype)
            # The head is small; keeping it in float32 costs nothing and avoids a bf16 rounding.
            x = x @ w.astype(jnp.float32)
            width = out_dim
        return l2_normalize(x)


def init_params(config: EmbedderConfig, rng: jax.Array, runtime: RuntimeConfig = RuntimeConfig()) -> dict:
    """Freshly initialised parameters in `runtime.param_dtype` (plain arrays; `model.layout`
    reads their logical axes from the boxed variables of `EmbeddingModel(config).init`)."""
    tokens = jnp.ones((1, 8), jnp.int32)
    return nn.unbox(EmbeddingModel(config, runtime).init(rng, tokens)["params"])
