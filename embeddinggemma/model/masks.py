"""Attention masks as explicit inputs: True where query i may attend to key j.

The same transformer is an encoder or a decoder depending on the masks it is given: one mask per
layer type (`LOCAL`, `GLOBAL`). This module is the one owner of window semantics: a config states
Gemma 3's `sliding_window` (a window length); a mask is built from `max_distance`, the largest
|i - j| a query attends over, which `local_max_distance` derives for each direction.

A mask is a dense [B, T, S] bool array, or, for a local layer over a long input, a `BandMask`: the
padding mask and the window, from which attention computes only the band of scores near the
diagonal (attention.py), so the local layers' cost grows linearly in length instead of as T^2; or,
for an attention kernel (splash on TPU, cuDNN on GPU: `RuntimeConfig.attention_kernel`), a
`KernelMask`, the same parts handed to the kernel. `layer_paths` decides which a layer gets and
`attention_paths` reports it.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import struct

from embeddinggemma.model.config import CUDNN, EINSUM, GLOBAL, LOCAL, SPLASH, RuntimeConfig, TransformerConfig

# The paths a layer's attention takes (`layer_paths`): the einsum paths, or a kernel's name.
DENSE, BANDED = "dense", "banded"
# The layer kinds `attention_paths` reports on.
ENCODER_LOCAL, ENCODER_GLOBAL = "encoder_local", "encoder_global"
DECODER_LOCAL, DECODER_GLOBAL = "decoder_local", "decoder_global"
CROSS_ATTENTION = "cross"


@struct.dataclass
class BandMask:
    """A local layer's mask kept as its parts: keys with |i - j| <= max_distance (and j <= i when
    causal) that are real tokens. Attention splits the sequence into blocks of `block` positions, so
    each query block sees only the keys of its own block and of `reach` blocks on each side (before
    it only, when causal)."""

    key_mask: jax.Array  # [B, T] bool, True on real tokens
    max_distance: int = struct.field(pytree_node=False)
    causal: bool = struct.field(pytree_node=False)
    block: int = struct.field(pytree_node=False)

    @property
    def reach(self) -> int:
        """Neighbour blocks on each side that hold keys within the window."""
        return band_reach(self.max_distance, self.block)

    def dense(self) -> jax.Array:
        """The same mask as a [B, T, T] array."""
        return attention_mask(self.key_mask, causal=self.causal, max_distance=self.max_distance)


@struct.dataclass
class KernelMask:
    """A layer's mask for an attention kernel (`attention_kernels.py`), kept as its parts: real keys
    (`key_mask`), with |i - j| <= max_distance for a local layer (None: global), j <= i when
    causal. `kernel` names the kernel (SPLASH or CUDNN); `interpret` runs a Pallas kernel in
    interpret mode (any platform, slowly)."""

    key_mask: jax.Array  # [B, T] bool, True on real tokens
    max_distance: int | None = struct.field(pytree_node=False)
    causal: bool = struct.field(pytree_node=False)
    kernel: str = struct.field(pytree_node=False)
    interpret: bool = struct.field(pytree_node=False, default=False)

    def dense(self) -> jax.Array:
        """The same mask as a [B, T, T] array."""
        return attention_mask(self.key_mask, causal=self.causal, max_distance=self.max_distance)


@struct.dataclass
class ByLayerType:
    """Inside the scanned blocks: the global mask where `is_global`, else the local one (used where
    either is not a plain array, so that the layer types cannot be picked with `jnp.where`)."""

    is_global: jax.Array  # bool scalar
    global_mask: jax.Array | KernelMask
    local_mask: jax.Array | BandMask | KernelMask


Mask = jax.Array | BandMask | KernelMask | ByLayerType
LayerMasks = dict[str, jax.Array | BandMask | KernelMask]

# Windows narrower than this make many small products, slower on CPU than the dense scores they save.
MIN_BAND_RADIUS = 64
# Blocks of about radius / BLOCKS_PER_RADIUS: a query block of W sees (2 reach + 1) W keys where
# 2 radius + W are in its window, so smaller blocks compute fewer scores outside the band but make
# more, smaller products (measured: bench/README.md, long inputs).
BLOCKS_PER_RADIUS = 2
# The banded path is chosen where it computes at most this fraction of the dense T x T scores
# (measured: bench/README.md, long inputs).
BAND_MAX_COST_FRACTION = 0.5


def band_block(max_distance: int) -> int:
    """The block length for a window: about `max_distance / BLOCKS_PER_RADIUS`, a multiple of 8."""
    return 8 * math.ceil(math.ceil(max(max_distance, 1) / BLOCKS_PER_RADIUS) / 8)


def band_reach(max_distance: int, block: int) -> int:
    """How many blocks on each side of a query's block hold keys within `max_distance` of it."""
    return math.ceil(max_distance / block)


def use_band(length: int, max_distance: int, *, causal: bool) -> bool:
    """Whether banded attention is the cheaper way to compute a local layer over `length` tokens."""
    block = band_block(max_distance)
    reach = band_reach(max_distance, block)
    neighbours = reach + 1 if causal else 2 * reach + 1
    padded = block * math.ceil(length / block)
    return (max_distance >= MIN_BAND_RADIUS
            and neighbours * block * padded <= BAND_MAX_COST_FRACTION * length * length)


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


def layer_paths(kernel: str, length: int, local_distance: int, *, causal: bool,
                banded: bool | None) -> dict[str, str]:
    """How each layer type ({LOCAL, GLOBAL}) computes attention over `length` tokens: DENSE,
    BANDED, SPLASH or CUDNN, for an implementation `kernel` (`RuntimeConfig.attention_kernel`).

    Splash takes every self-attention layer. cuDNN takes global layers and causal local ones; its
    windows are causal only, so bidirectional local layers keep the einsum paths, as the einsum
    implementation's layers do: global dense, local banded where `banded` (None: where `use_band`
    finds it cheaper for this length), else dense.
    """
    if kernel == SPLASH:
        return {LOCAL: SPLASH, GLOBAL: SPLASH}
    if kernel not in (EINSUM, CUDNN):
        raise ValueError(f"Unknown attention kernel {kernel!r}; one of {(EINSUM, SPLASH, CUDNN)}.")
    if banded is None:
        banded = use_band(length, local_distance, causal=causal)
    local = BANDED if banded else DENSE
    if kernel == CUDNN:
        return {LOCAL: CUDNN if causal else local, GLOBAL: CUDNN}
    return {LOCAL: local, GLOBAL: DENSE}


def attention_paths(runtime: RuntimeConfig, config: TransformerConfig, length: int,
                    platform: str | None = None) -> dict[str, str]:
    """What each kind of attention layer computes with, for inputs of `length` tokens in programs
    compiled for `platform` (None: the default backend's): {ENCODER_LOCAL, ENCODER_GLOBAL,
    DECODER_LOCAL, DECODER_GLOBAL, CROSS_ATTENTION} -> DENSE, BANDED, SPLASH or CUDNN.
    Cross-attention (an encoder-decoder's) is always DENSE: a [B, T, S] mask over the encoder's
    outputs, which no kernel here takes."""
    kernel = runtime.attention_kernel(platform)
    paths = {}
    for causal, local_kind, global_kind in ((False, ENCODER_LOCAL, ENCODER_GLOBAL),
                                            (True, DECODER_LOCAL, DECODER_GLOBAL)):
        local = local_max_distance(config.sliding_window, causal=causal)
        chosen = layer_paths(kernel, length, local, causal=causal, banded=runtime.banded)
        paths.update({local_kind: chosen[LOCAL], global_kind: chosen[GLOBAL]})
    return {**paths, CROSS_ATTENTION: DENSE}


def _layer_mask(path: str, input_mask: jax.Array, max_distance: int | None, causal: bool,
                interpret: bool) -> jax.Array | BandMask | KernelMask:
    if path == DENSE:
        return attention_mask(input_mask, causal=causal, max_distance=max_distance)
    if path == BANDED:
        return BandMask(input_mask, max_distance, causal, band_block(max_distance))
    return KernelMask(input_mask, max_distance, causal, path, interpret)


def _layer_masks(input_mask: jax.Array, config: TransformerConfig, causal: bool,
                 banded: bool | None, kernel: str, interpret: bool) -> LayerMasks:
    local = local_max_distance(config.sliding_window, causal=causal)
    paths = layer_paths(kernel, input_mask.shape[-1], local, causal=causal, banded=banded)
    return {LOCAL: _layer_mask(paths[LOCAL], input_mask, local, causal, interpret),
            GLOBAL: _layer_mask(paths[GLOBAL], input_mask, None, causal, interpret)}


def encoder_masks(input_mask: jax.Array, config: TransformerConfig, *, banded: bool | None = None,
                  kernel: str = EINSUM, interpret: bool = False) -> LayerMasks:
    """Bidirectional masks per layer type from a [B, T] padding mask: [B, T, T] arrays, the local
    one a `BandMask` where `banded` (None: where `use_band` finds it cheaper for this length), or
    `KernelMask`s where `kernel` (`RuntimeConfig.attention_kernel`) takes the layer (`layer_paths`).
    `interpret` runs a Pallas kernel in interpret mode."""
    return _layer_masks(input_mask, config, causal=False, banded=banded, kernel=kernel, interpret=interpret)


def decoder_masks(input_mask: jax.Array, config: TransformerConfig, *, banded: bool | None = None,
                  kernel: str = EINSUM, interpret: bool = False) -> LayerMasks:
    """Causal masks per layer type, as `encoder_masks`; local layers see 0 <= i - j < sliding_window."""
    return _layer_masks(input_mask, config, causal=True, banded=banded, kernel=kernel, interpret=interpret)


def runtime_mask_options(runtime: RuntimeConfig) -> dict:
    """The keyword arguments of `encoder_masks` and `decoder_masks` that a RuntimeConfig sets."""
    return {"banded": runtime.banded, "kernel": runtime.attention_kernel(), "interpret": runtime.interpret}


def cross_attention_mask(decoder_input_mask: jax.Array, encoder_input_mask: jax.Array) -> jax.Array:
    """[B, T] decoder and [B, S] encoder padding masks -> [B, T, S]: every decoder query sees every
    real encoder output (cross-attention is global); padded encoder positions are hidden."""
    B, T = decoder_input_mask.shape
    return jnp.broadcast_to(encoder_input_mask[:, None, :], (B, T, encoder_input_mask.shape[-1]))
