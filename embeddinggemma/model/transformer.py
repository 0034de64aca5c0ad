"""The Gemma 3 transformer stack: scaled token embeddings, scanned blocks, final norm; optionally
a cross-attention sublayer in every block (the decoder half of an encoder-decoder)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from embeddinggemma.model.attention import Attention, rope_tables
from embeddinggemma.model.config import GLOBAL, LOCAL, RuntimeConfig, TransformerConfig
from embeddinggemma.model.layers import LAYERS, RESIDUAL, FeedForward, RMSNorm, TokenEmbedding, constrain
from embeddinggemma.model.masks import ByLayerType, LayerMasks

CROSS = "cross"  # the broadcast tables' entry for cross-attention: encoder outputs and mask
# RuntimeConfig.remat -> what jax.checkpoint keeps; "matmuls" keeps products with a weight matrix
# (no batch dimension), not the attention's batched score and value products.
REMAT_POLICY = {"matmuls": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
                "full": jax.checkpoint_policies.nothing_saveable}


class Block(nn.Module):
    """`h = x + post_attn_norm(attn(pre_attn_norm(x)))`, then `h + post_ffw_norm(mlp(pre_ffw_norm(h)))`.

    With `cross_attention`, between the two: `h + post_cross_attn_norm(cross_attn(pre_cross_attn_norm(h),
    encoder outputs))`, global over the encoder's unmasked outputs whatever the layer type.
    Written for `nn.scan`: the carry is the residual stream, the scanned input says whether this
    layer is global, and the masks and rotary tables of both layer types (and the encoder
    outputs with the cross-attention mask) are broadcast.
    """

    config: TransformerConfig
    runtime: RuntimeConfig
    cross_attention: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, is_global: jax.Array, tables: dict) -> tuple[jax.Array, None]:
        c, r = self.config, self.runtime
        norm = lambda name: RMSNorm(c.norm_eps, "embed", r.weight_dtype, name=name)  # noqa: E731
        pick = lambda key: jnp.where(is_global, tables[GLOBAL][key], tables[LOCAL][key])  # noqa: E731
        attention = lambda name: Attention(c.num_heads, c.num_kv_heads, c.head_dim, c.embed_dim,  # noqa: E731
                                           c.query_pre_attn_scalar, c.norm_eps, r.compute_dtype,
                                           r.weight_dtype, name=name)
        local_mask, global_mask = tables[LOCAL]["mask"], tables[GLOBAL]["mask"]
        both_arrays = isinstance(local_mask, jax.Array) and isinstance(global_mask, jax.Array)
        mask = pick("mask") if both_arrays else ByLayerType(is_global, global_mask, local_mask)
        x = constrain(x, RESIDUAL)
        attended = attention("attn")(norm("pre_attn_norm")(x), pick("sin"), pick("cos"), mask)
        x = x + norm("post_attn_norm")(attended)
        if self.cross_attention:
            cross = tables[CROSS]
            attended = attention("cross_attn")(norm("pre_cross_attn_norm")(x), None, None, cross["mask"],
                                               cross["memory"])
            x = x + norm("post_cross_attn_norm")(attended)
        mlp = FeedForward(c.embed_dim, c.mlp_dim, r.compute_dtype, r.weight_dtype, name="mlp")
        x = x + norm("post_ffw_norm")(mlp(norm("pre_ffw_norm")(x)))
        return constrain(x, RESIDUAL), None


class Transformer(nn.Module):
    """Token ids [B, T] -> hidden states [B, T, D]; masks and positions are call-time inputs.

    The masks decide what it is: `masks.encoder_masks` make a bidirectional encoder,
    `masks.decoder_masks` a causal decoder, whose `logits` come from the tied token embedding.
    `cross_attention` adds the sublayer that attends to an encoder's outputs (the decoder of an
    encoder-decoder); it is a property of this module, not of the architecture config, so the
    encoder and decoder halves share one `TransformerConfig` with the decoder-only model they
    start from. `shared_embedding` is a token table owned by a parent module (an encoder-decoder's
    one table for both halves); without it the table is this module's own, at `embedding`.
    """

    config: TransformerConfig
    runtime: RuntimeConfig = RuntimeConfig()
    cross_attention: bool = False
    shared_embedding: TokenEmbedding | None = None

    def setup(self):
        c, r = self.config, self.runtime
        if self.shared_embedding is None:
            # Sharing this module's scope keeps the table at `transformer/embedding`, where
            # checkpoints already written have it.
            self.token_embedding = TokenEmbedding(c.vocab_size, c.embed_dim, r.compute_dtype, r.weight_dtype)
            nn.share_scope(self, self.token_embedding)
        block = (Block if r.remat == "none"
                 else nn.remat(Block, prevent_cse=False, policy=REMAT_POLICY[r.remat]))
        self.layers = nn.scan(
            block,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=(0, nn.broadcast),
            length=c.num_layers,
            metadata_params={nn.PARTITION_NAME: LAYERS},
        )(c, r, self.cross_attention)
        self.final_norm = RMSNorm(c.norm_eps, "embed", r.weight_dtype)

    @property
    def _embedding(self) -> TokenEmbedding:
        return self.token_embedding if self.shared_embedding is None else self.shared_embedding

    def __call__(self, tokens: jax.Array, masks: LayerMasks,
                 positions: jax.Array | None = None, encoded: jax.Array | None = None,
                 cross_mask: jax.Array | None = None) -> jax.Array:
        """
        Args:
          tokens: [B, T] int token ids.
          masks: one mask per layer type (`LOCAL`, `GLOBAL`): a [B, T, T] bool array, True where
            query i may attend to key j, or for LOCAL a `masks.BandMask`, or a kernel's
            `masks.KernelMask` (`masks.layer_paths` says which); built by
            `masks.encoder_masks` or `masks.decoder_masks`.
          positions: [B, T] int rotary positions; defaults to 0..T-1 (right padding).
          encoded: [B, S, D] encoder outputs, with `cross_attention` only.
          cross_mask: [B, T, S] bool, True where decoder query i may attend to encoder output j
            (`masks.cross_attention_mask`), with `cross_attention` only.

        Returns:
          [B, T, D] final hidden states, in the run-time compute dtype.
        """
        c = self.config
        missing = [kind for kind in (LOCAL, GLOBAL) if kind not in masks]
        if missing:
            raise ValueError(f"masks lacks the layer types {missing}; build them with "
                             "masks.encoder_masks or masks.decoder_masks.")
        if self.cross_attention != (encoded is not None and cross_mask is not None):
            raise ValueError("A transformer with cross_attention takes `encoded` and `cross_mask`; "
                             "one without takes neither.")
        if positions is None:
            positions = jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)
        x = constrain(self._embedding.encode(tokens), RESIDUAL)
        tables = {}
        for kind, base in ((LOCAL, c.local_rope_base), (GLOBAL, c.global_rope_base)):
            sin, cos = rope_tables(positions, c.head_dim, base)
            tables[kind] = {"sin": sin, "cos": cos, "mask": masks[kind]}
        if self.cross_attention:
            tables[CROSS] = {"memory": encoded, "mask": cross_mask}
        is_global = jnp.array([t == GLOBAL for t in c.layer_types])
        x, _ = self.layers(x, is_global, tables)
        return self.final_norm(x)

    def logits(self, hidden: jax.Array) -> jax.Array:
        """[B, T, D] final hidden states -> [B, T, V] float32 logits through the tied embedding."""
        return self._embedding.decode(hidden)
