"""Attention masks as explicit boolean inputs: True where query i may attend to key j.

The same transformer is an encoder or a decoder depending on the mask it is given.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def padding_mask(tokens: jax.Array, pad_id: int = 0) -> jax.Array:
    """[B, T] int -> [B, T] bool, True on real (non-pad) tokens."""
    return tokens != pad_id


def attention_mask(input_mask: jax.Array, *, bidirectional: bool,
                   window: int | None = None) -> jax.Array:
    """Builds a [B, T, S] mask from a [B, T] padding mask.

    Args:
      input_mask: [B, T] bool, True on real tokens. Padded keys are never attended to.
      bidirectional: every query sees every real key; otherwise keys j <= i only.
      window: None for a global layer. For a local layer: bidirectional queries see keys with
        |i - j| <= window; causal queries see keys with 0 <= i - j <= window.
    """
    T = input_mask.shape[-1]
    i = jnp.arange(T)[:, None]
    j = jnp.arange(T)[None, :]
    allowed = jnp.ones((T, T), dtype=bool) if bidirectional else j <= i
    if window is not None:
        allowed &= jnp.abs(i - j) <= window
    return allowed[None, :, :] & input_mask[:, None, :]
