"""The encoder-decoder (T5Gemma-style, balanced): two stacks of one transformer architecture.

The encoder is a `Transformer` run with bidirectional masks (local layers see |i - j| <= the
radius, `masks.encoder_masks`); the decoder is a `Transformer` with causal self-attention
(`masks.decoder_masks`) and a cross-attention sublayer over the encoder's outputs. Both read one
token table, which also gives the decoder's logits (tied). Parameters:

    embedding                [V, D]  the shared table
    encoder/{layers, final_norm}     a decoder-only model's stack
    decoder/{layers, final_norm}     the same, each block with cross_attn, pre_cross_attn_norm and
                                     post_cross_attn_norm besides

`from_decoder` starts one from a decoder-only model's parameters, as T5Gemma does.
"""

from __future__ import annotations

from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from embeddinggemma.model.config import RuntimeConfig, TransformerConfig
from embeddinggemma.model.layers import TokenEmbedding
from embeddinggemma.model.masks import (
    cross_attention_mask,
    decoder_masks,
    encoder_masks,
    padding_mask,
    runtime_mask_options,
)
from embeddinggemma.model.transformer import Transformer

EMBEDDING, ENCODER, DECODER = "embedding", "encoder", "decoder"
# Each decoder block's cross-attention sublayer -> the self-attention part it starts as a copy of.
CROSS_FROM_SELF = {"cross_attn": "attn", "pre_cross_attn_norm": "pre_attn_norm",
                   "post_cross_attn_norm": "post_attn_norm"}


class EncoderDecoder(nn.Module):
    """(encoder tokens [B, S], decoder tokens [B, T]) -> decoder logits [B, T, V] float32.

    Both inputs are right-padded with the pad id. The decoder's tokens are its inputs (the
    targets shifted right, starting with BOS); logit t predicts the token after decoder token t.
    """

    config: TransformerConfig
    runtime: RuntimeConfig = RuntimeConfig()

    def setup(self):
        c, r = self.config, self.runtime
        self.token_embedding = TokenEmbedding(c.vocab_size, c.embed_dim, r.compute_dtype, r.weight_dtype)
        nn.share_scope(self, self.token_embedding)  # the table at `embedding`, as in a Transformer
        self.encoder = Transformer(c, r, shared_embedding=self.token_embedding)
        self.decoder = Transformer(c, r, cross_attention=True, shared_embedding=self.token_embedding)

    def encode(self, encoder_tokens: jax.Array) -> jax.Array:
        """[B, S] token ids -> [B, S] encoder outputs [B, S, D] (bidirectional)."""
        mask = padding_mask(encoder_tokens, self.config.pad_id)
        masks = encoder_masks(mask, self.config, **runtime_mask_options(self.runtime))
        return self.encoder(encoder_tokens, masks)

    def decoder_hidden(self, encoder_tokens: jax.Array, decoder_tokens: jax.Array) -> jax.Array:
        """The decoder's final hidden states [B, T, D] (what `logits` turns into predictions)."""
        c = self.config
        encoded = self.encode(encoder_tokens)
        decoder_mask = padding_mask(decoder_tokens, c.pad_id)
        cross = cross_attention_mask(decoder_mask, padding_mask(encoder_tokens, c.pad_id))
        masks = decoder_masks(decoder_mask, c, **runtime_mask_options(self.runtime))
        return self.decoder(decoder_tokens, masks, encoded=encoded, cross_mask=cross)

    def logits(self, hidden: jax.Array) -> jax.Array:
        """[B, T, D] decoder hidden states -> [B, T, V] float32 logits through the shared table."""
        return self.token_embedding.decode(hidden)

    def __call__(self, encoder_tokens: jax.Array, decoder_tokens: jax.Array) -> jax.Array:
        return self.logits(self.decoder_hidden(encoder_tokens, decoder_tokens))


def from_decoder(transformer_params: Mapping) -> dict:
    """Encoder-decoder parameters from a decoder-only `Transformer`'s (`embedding`, `layers`,
    `final_norm`): the encoder and the decoder are copies of its stack, the table is shared, and
    each decoder block's cross-attention starts as a copy of the same block's self-attention
    (query, key, value, out and the QK-norms), its pre and post norms as copies of the
    self-attention's pre and post norms. Works on arrays or on `jax.eval_shape` structs.
    """
    stack = {k: v for k, v in transformer_params.items() if k != EMBEDDING}
    layers = dict(stack["layers"])
    missing = sorted(set(CROSS_FROM_SELF.values()) - set(layers))
    if missing:
        raise ValueError(f"The decoder's layers lack {missing}: not a Transformer's parameters.")
    decoder_layers = {**layers, **{cross: layers[own] for cross, own in CROSS_FROM_SELF.items()}}
    copy = lambda tree: jax.tree.map(lambda x: x.copy() if isinstance(x, np.ndarray | jax.Array) else x,  # noqa: E731
                                     tree)
    return {EMBEDDING: transformer_params[EMBEDDING], ENCODER: copy(stack),
            DECODER: copy({**stack, "layers": decoder_layers})}


def encoder_transformer_params(params: Mapping) -> dict:
    """The encoder half as a `Transformer`'s parameters (`embedding`, `layers`, `final_norm`): the
    tree an embedding model holds under `transformer`."""
    return {EMBEDDING: params[EMBEDDING], **params[ENCODER]}


def init_params(config: TransformerConfig, rng: jax.Array, runtime: RuntimeConfig = RuntimeConfig()) -> dict:
    """Freshly initialised parameters, boxed with their logical axis names."""
    tokens = jnp.ones((1, 4), jnp.int32)
    return EncoderDecoder(config, runtime).init(rng, tokens, tokens)["params"]
