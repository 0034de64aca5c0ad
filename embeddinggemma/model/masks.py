"""Attention masks as explicit boolean inputs: True where query i may attend to key j.

The same transformer is an encoder or a decoder depending on the masks it is given: one [B, T, S]
mask per layer type (`LOCAL`, `GLOBAL`). This module is the one owner of window semantics: a
config states Gemma 3's `sliding_window` (a window length); a mask is built from `max_distance`,
the largest |i - j| a query attends over, which `local_max_distance` derives for each direction.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from embeddinggemma.model.config import GLOBAL, LOCAL, TransformerConfig

LayerMasks = dict[str, jax.Array]


def padding_mask(tokens: jax.Array, pad_id: int = 0) -> jax.Array:
    """[B, T] int -> [B, T] bool, True on real (non-pad) tokens."""
    return tokens != pad_id


def attention_mask(input_mask: jax.Array, *, causal: bool,
                   max_distance: int | None = None) -> jax.Array:
    """Builds a [B, T, T] mask from a [B, T] padding mask.

    Args:
      input_mask: [B, T] bool, True on real tokens. Padded keys are never attended to.
      causal: keys j <= i only; otherwise every query sees keys on both sides.
      max_distance: None for a global layer; for a local layer, keys with |i - j| <= max_distance.
    """
    T = input_mask.shape[-1]
    i = jnp.arange(T)[:, None]
    j = jnp.arange(T)[None, :]
    allowed = j <= i if causal else jnp.ones((T, T), dtype=bool)
    if max_distance is not None:
        allowed &= jnp.abs(i - j) <= max_distance
    return allowed[None, :, :] & input_mask[:, None, :]


def local_max_distance(sliding_window: int, *, causal: bool) -> int:
    """The largest |i - j| a local layer attends over, from Gemma 3's window length.

    Causal: the window holds the query and the `sliding_window - 1` keys before it.
    Bidirectional: the reference's rule |i - j| < sliding_window // 2 + 1, so `sliding_window // 2`
    on each side (256 for the released model's 512).
    """
    return sliding_window - 1 if causal else sliding_window // 2


def _layer_masks(input_mask: jax.Array, config: TransformerConfig, causal: bool) -> LayerMasks:
    local = local_max_distance(config.sliding_window, causal=causal)
    return {LOCAL: attention_mask(input_mask, causal=causal, max_distance=local),
            GLOBAL: attention_mask(input_mask, causal=causal)}


def encoder_masks(input_mask: jax.Array, config: TransformerConfig) -> LayerMasks:
    """Bidirectional masks per layer type, each [B, T, T], from a [B, T] padding mask."""
    return _layer_masks(input_mask, config, causal=False)


def decoder_masks(input_mask: jax.Array, config: TransformerConfig) -> LayerMasks:
    """Causal masks per layer type, each [B, T, T]; local layers see 0 <= i - j < sliding_window."""
    return _layer_masks(input_mask, config, causal=True)


def cross_attention_mask(decoder_input_mask: jax.Array, encoder_input_mask: jax.Array) -> jax.Array:
    """[B, T] decoder and [B, S] encoder padding masks -> [B, T, S]: every decoder query sees every
    real encoder output (cross-attention is global); padded encoder positions are hidden."""
    B, T = decoder_input_mask.shape
    return jnp.broadcast_to(encoder_input_mask[:, None, :], (B, T, encoder_input_mask.shape[-1]))
