"""Multi-query / grouped-query attention with QK-norm: self-attention with rotary position
embeddings, or cross-attention from a decoder's queries to an encoder's outputs (no rotary)."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from embeddinggemma.model.attention_kernels import kernel_attention
from embeddinggemma.model.layers import RESIDUAL, RMSNorm, constrain, logical_param
from embeddinggemma.model.masks import BandMask, ByLayerType, KernelMask, Mask


def rope_tables(positions: jax.Array, head_dim: int, base: float) -> tuple[jax.Array, jax.Array]:
    """[B, T] positions -> (sin, cos), each [B, T, H/2], computed in float32."""
    fraction = 2.0 * jnp.arange(head_dim // 2, dtype=jnp.float32) / head_dim
    inv_freq = 1.0 / (base ** fraction)
    angles = positions.astype(jnp.float32)[..., None] * inv_freq
    return jnp.sin(angles), jnp.cos(angles)


@functools.partial(jax.checkpoint, prevent_cse=False)
def apply_rope(x: jax.Array, sin: jax.Array, cos: jax.Array) -> jax.Array:
    """Rotates [B, T, N, H] by position; the two halves of H form the rotated pairs."""
    first, second = jnp.split(x, 2, axis=-1)
    sin = sin[:, :, None, :].astype(x.dtype)
    cos = cos[:, :, None, :].astype(x.dtype)
    return jnp.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1)


class Attention(nn.Module):
    """Attention from [B, T, D] queries; queries grouped onto K shared key/value heads.

    Self-attention (keys and values from the same [B, T, D]) rotates queries and keys by position.
    Cross-attention (keys and values from `memory`, an encoder's [B, S, D] outputs) rotates
    neither, as T5Gemma does: decoder and encoder positions count along different sequences, so
    their difference carries no meaning; each decoder query sees every unmasked encoder output.
    """

    num_heads: int
    num_kv_heads: int
    head_dim: int
    embed_dim: int
    query_pre_attn_scalar: float
    norm_eps: float = 1e-6
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, sin: jax.Array | None, cos: jax.Array | None, mask: Mask,
                 memory: jax.Array | None = None) -> jax.Array:
        """x [B, T, D], sin/cos [B, T, H/2] (None for cross-attention), mask [B, T, S] bool (or a
        banded local mask or a kernel's mask, masks.py), memory [B, S, D] for cross-attention
        (None: self-attention, S = T) -> [B, T, D]."""
        if (memory is None) != (sin is not None and cos is not None):
            raise ValueError("Self-attention takes rotary tables and no memory; cross-attention "
                             "takes a memory and no rotary tables.")
        N, K, H, D = self.num_heads, self.num_kv_heads, self.head_dim, self.embed_dim
        w_q = logical_param(self, "query", (D, N, H), ("embed", "heads", "head_dim"), self.param_dtype)
        w_k = logical_param(self, "key", (D, K, H), ("embed", "kv_heads", "head_dim"), self.param_dtype)
        w_v = logical_param(self, "value", (D, K, H), ("embed", "kv_heads", "head_dim"), self.param_dtype)
        w_o = logical_param(self, "out", (N, H, D), ("heads", "head_dim", "embed"), self.param_dtype)
        x = x.astype(self.dtype)
        source = x if memory is None else memory.astype(self.dtype)
        q = jnp.einsum("BTD,DNH->BTNH", x, w_q.astype(self.dtype))
        # Keys and values of the same source in one product (as the feed-forward's gate and up).
        kv = jnp.einsum("BSD,DGKH->BSGKH", source, jnp.stack([w_k, w_v], axis=1).astype(self.dtype))
        k, v = kv[:, :, 0], kv[:, :, 1]

        # QK-norm over the head dimension, before the rotation.
        q = RMSNorm(self.norm_eps, "head_dim", self.param_dtype, name="query_norm")(q)
        k = RMSNorm(self.norm_eps, "head_dim", self.param_dtype, name="key_norm")(k)
        if memory is None:
            q, k = apply_rope(q, sin, cos), apply_rope(k, sin, cos)
        q = q * jnp.asarray(self.query_pre_attn_scalar ** -0.5, self.dtype)

        # The N query heads form K groups of G = N / K sharing one key/value head.
        B, T = q.shape[0], q.shape[1]
        q = q.reshape(B, T, K, N // K, H).transpose(0, 2, 3, 1, 4)  # [B, K, G, T, H]
        k, v = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)  # [B, K, S, H]
        encoded = attend(q, k, v, mask)  # [B, K, G, T, H]
        encoded = encoded.transpose(0, 3, 1, 2, 4).reshape(B, T, N, H)
        return constrain(jnp.einsum("BTNH,NHD->BTD", encoded, w_o.astype(self.dtype)), RESIDUAL)


def attend(q: jax.Array, k: jax.Array, v: jax.Array, mask: Mask) -> jax.Array:
    """q [B, K, G, T, H] (scaled), k and v [B, K, S, H] -> [B, K, G, T, H] by the mask's kind."""
    if isinstance(mask, ByLayerType):
        # One scanned block serves both layer types; the condition runs only the taken branch.
        return jax.lax.cond(mask.is_global, lambda: attend(q, k, v, mask.global_mask),
                            lambda: attend(q, k, v, mask.local_mask))
    if isinstance(mask, BandMask):
        return _banded(q, k, v, mask)
    if isinstance(mask, KernelMask):
        return kernel_attention(q, k, v, mask)
    return _dense(q, k, v, mask)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _softmax(logits: jax.Array, mask: jax.Array, dtype: jnp.dtype) -> jax.Array:
    """Softmax over the last axis of the allowed scores, in float32, returned in `dtype`."""
    # A finite minimum (not -inf) keeps fully masked rows (padding) from producing NaN.
    logits = jnp.where(mask, logits.astype(jnp.float32), jnp.finfo(jnp.float32).min)
    return jax.nn.softmax(logits, axis=-1).astype(dtype)


# The backward pass keeps only the probabilities, in `dtype` (the value product keeps them too),
# where differentiating the forward would keep the float32 scores and probabilities besides: two
# to four times the bytes of the largest values of a layer. Masked scores get no gradient, as there.
def _softmax_forward(logits, mask, dtype):
    probs = _softmax(logits, mask, dtype)
    return probs, (probs, mask)


def _softmax_backward(dtype, saved, cotangent):
    probs, mask = saved
    p, g = probs.astype(jnp.float32), cotangent.astype(jnp.float32)
    grad = p * (g - jnp.sum(p * g, axis=-1, keepdims=True))
    return jnp.where(mask, grad, 0.0).astype(dtype), None


_softmax.defvjp(_softmax_forward, _softmax_backward)


def _dense(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
    """Every query against every key, masked by a [B, T, S] array."""
    # Each group's queries are laid end to end on one axis X = G * T, so the score and value
    # products are single large matrix products per (B, K) (faster on CPU than keeping G apart).
    B, K, G, T, H = q.shape
    S = k.shape[2]
    logits = jnp.einsum("BKXH,BKSH->BKXS", q.reshape(B, K, G * T, H), k).reshape(B, K, G, T, S)
    probs = _softmax(logits, mask[:, None, None, :, :], v.dtype).reshape(B, K, G * T, S)
    return jnp.einsum("BKXS,BKSH->BKXH", probs, v).reshape(B, K, G, T, H)


def _neighbour_blocks(x: jax.Array, block: int, offsets: tuple[int, ...]) -> jax.Array:
    """[B, ..., T, F] -> [B, ..., nb, len(offsets) * block, F]: for each block of `block` positions,
    the positions of the blocks at `offsets` from it laid end to end, zero beyond either end."""
    T = x.shape[-2]
    nb = -(-T // block)
    reach = max(-min(offsets), max(offsets))
    pad = [(0, 0)] * x.ndim
    pad[-2] = (reach * block, block * (nb + reach) - T)  # `reach` zero blocks before, and after
    blocks = jnp.pad(x, pad).reshape(*x.shape[:-2], nb + 2 * reach, block, x.shape[-1])
    return jnp.concatenate([blocks[..., reach + o:reach + o + nb, :, :] for o in offsets], axis=-2)


def _banded(q: jax.Array, k: jax.Array, v: jax.Array, mask: BandMask) -> jax.Array:
    """Each block of queries against the keys of its own and neighbouring blocks only.

    Every key within the window of a query in block b lies in blocks b - reach .. b + reach
    (b - reach .. b when causal), so the scores outside those blocks, which the mask would zero
    anyway, are never computed. The band's edges are masked exactly.
    """
    B, K, G, T, H = q.shape
    W = mask.block
    R = mask.reach
    offsets = tuple(range(-R, 1 if mask.causal else R + 1))
    nb, S = -(-T // W), len(offsets) * W
    q = jnp.pad(q, ((0, 0), (0, 0), (0, 0), (0, nb * W - T), (0, 0)))
    q = q.reshape(B, K, G, nb, W, H).transpose(0, 1, 3, 2, 4, 5).reshape(B, K, nb, G * W, H)
    keys, values = _neighbour_blocks(k, W, offsets), _neighbour_blocks(v, W, offsets)  # [B, K, nb, S, H]
    real = _neighbour_blocks(mask.key_mask[..., None], W, offsets)[..., 0]  # [B, nb, S], False off the ends
    # Query w of a block and key s of its neighbourhood are R W + w - s positions apart (i - j).
    distance = R * W + jnp.arange(W)[:, None] - jnp.arange(S)[None, :]
    in_window = distance <= mask.max_distance
    in_window &= (distance >= 0) if mask.causal else (distance >= -mask.max_distance)
    allowed = in_window[None, None] & real[:, :, None, :]  # [B, nb, W, S]
    logits = jnp.einsum("BKnXH,BKnSH->BKnXS", q, keys).reshape(B, K, nb, G, W, S)
    probs = _softmax(logits, allowed[:, None, :, None], v.dtype).reshape(B, K, nb, G * W, S)
    encoded = jnp.einsum("BKnXS,BKnSH->BKnXH", probs, values).reshape(B, K, nb, G, W, H)
    return encoded.transpose(0, 1, 3, 2, 4, 5).reshape(B, K, G, nb * W, H)[:, :, :, :T]
