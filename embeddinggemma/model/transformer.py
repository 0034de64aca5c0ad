"""The Gemma 3 transformer stack: scaled token embeddings, scanned blocks, final norm."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from embeddinggemma.model.attention import Attention, rope_tables
from embeddinggemma.model.config import GLOBAL, TransformerConfig
from embeddinggemma.model.layers import FeedForward, RMSNorm, logical_param
from embeddinggemma.model.masks import attention_mask


class Block(nn.Module):
    """`h = x + post_attn_norm(attn(pre_attn_norm(x)))`, then `h + post_ffw_norm(mlp(pre_ffw_norm(h)))`.

    Written for `nn.scan`: the carry is the residual stream, the scanned input says whether this
    layer is global, and the masks and rotary tables of both layer types are broadcast.
    """

    config: TransformerConfig

    @nn.compact
    def __call__(self, x: jax.Array, is_global: jax.Array, tables: dict) -> tuple[jax.Array, None]:
        c = self.config
        norm = lambda name: RMSNorm(c.norm_eps, "embed", c.weight_dtype, name=name)  # noqa: E731
        pick = lambda key: jnp.where(is_global, tables["global"][key], tables["local"][key])  # noqa: E731
        attn = Attention(c.num_heads, c.num_kv_heads, c.head_dim, c.embed_dim,
                         c.query_pre_attn_scalar, c.norm_eps, c.compute_dtype, c.weight_dtype,
                         name="attn")
        attended = attn(norm("pre_attn_norm")(x), pick("sin"), pick("cos"), pick("mask"))
        x = x + norm("post_attn_norm")(attended)
        mlp = FeedForward(c.embed_dim, c.mlp_dim, c.compute_dtype, c.weight_dtype, name="mlp")
        x = x + norm("post_ffw_norm")(mlp(norm("pre_ffw_norm")(x)))
        return x, None


class Transformer(nn.Module):
    """Token ids [B, T] -> hidden states [B, T, D]. Masks and positions are explicit inputs."""

    config: TransformerConfig

    @nn.compact
    def __call__(self, tokens: jax.Array, input_mask: jax.Array,
                 positions: jax.Array | None = None) -> jax.Array:
        """
        Args:
          tokens: [B, T] int token ids.
          input_mask: [B, T] bool, True on real tokens (padding is never attended to).
          positions: [B, T] int rotary positions; defaults to 0..T-1 (right padding).
        """
        c = self.config
        if positions is None:
            positions = jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)
        table = logical_param(self, "embedding", (c.vocab_size, c.embed_dim), ("vocab", "embed"),
                              c.weight_dtype)
        # The scale is rounded to the parameter dtype first, as the reference does.
        scale = jnp.asarray(c.embed_dim ** 0.5, c.weight_dtype)
        x = (jnp.take(table, tokens, axis=0) * scale).astype(c.compute_dtype)

        window = c.local_window_radius if c.bidirectional else c.sliding_window - 1
        tables = {}
        for kind, base, layer_window in (("local", c.local_rope_base, window),
                                         ("global", c.global_rope_base, None)):
            sin, cos = rope_tables(positions, c.head_dim, base)
            mask = attention_mask(input_mask, bidirectional=c.bidirectional, window=layer_window)
            tables[kind] = {"sin": sin, "cos": cos, "mask": mask}

        is_global = jnp.array([t == GLOBAL for t in c.layer_types])
        block = nn.remat(Block, prevent_cse=False) if c.remat else Block
        blocks = nn.scan(
            block,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=(0, nn.broadcast),
            length=c.num_layers,
            metadata_params={nn.PARTITION_NAME: "layers"},
        )(c, name="layers")
        x, _ = blocks(x, is_global, tables)
        return RMSNorm(c.norm_eps, "embed", c.weight_dtype, name="final_norm")(x)
