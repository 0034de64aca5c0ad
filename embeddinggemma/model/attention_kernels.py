"""Attention through platform kernels: Pallas splash attention (TPU) and cuDNN's flash attention
(GPU, through `jax.nn.dot_product_attention`).

Both take what the einsum paths of attention.py take, scaled queries grouped onto their key/value
heads, and a layer's mask as its parts (`masks.KernelMask`); which layers take which kernel is
decided in masks.py (`layer_paths`) from `RuntimeConfig.attention_kernel`.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec

from embeddinggemma.model.config import CUDNN, SPLASH
from embeddinggemma.model.masks import KernelMask

# Splash attention's query and key blocks must be multiples of the TPU's 128 lanes. Sequences are
# padded to a multiple of 128 and split into the largest of these blocks that divides them.
SPLASH_LANES = 128
SPLASH_BLOCKS = (512, 256, 128)


def kernel_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: KernelMask) -> jax.Array:
    """q [B, K, G, T, H] (scaled), k and v [B, K, T, H] -> [B, K, G, T, H] through `mask.kernel`."""
    if mask.kernel == SPLASH:
        return splash(q, k, v, mask.key_mask, causal=mask.causal, max_distance=mask.max_distance,
                      interpret=mask.interpret)
    if mask.kernel == CUDNN:
        return cudnn(q, k, v, mask.key_mask, causal=mask.causal, max_distance=mask.max_distance)
    raise ValueError(f"KernelMask.kernel={mask.kernel!r} is not {SPLASH!r} or {CUDNN!r}.")


def splash_block(length: int) -> int:
    """The query and key block of splash attention over `length` tokens (padded to a multiple of
    `SPLASH_LANES`): the largest of `SPLASH_BLOCKS` that divides the padded length."""
    padded = SPLASH_LANES * math.ceil(length / SPLASH_LANES)
    return next(block for block in SPLASH_BLOCKS if padded % block == 0)


def _splash_static_mask(length: int, causal: bool, max_distance: int | None):
    """The [T, T] position mask: a window |i - j| <= max_distance (i - j in 0..max_distance when
    causal), or every key (those at j <= i when causal) for a global layer."""
    from jax.experimental.pallas.ops.tpu import splash_attention  # see `splash`

    shape = (length, length)
    if max_distance is None:
        return splash_attention.CausalMask(shape) if causal else splash_attention.FullMask(shape)
    return splash_attention.LocalMask(shape, (max_distance, 0 if causal else max_distance), offset=0)


def splash(q: jax.Array, k: jax.Array, v: jax.Array, key_mask: jax.Array, *, causal: bool,
           max_distance: int | None, interpret: bool = False) -> jax.Array:
    """Self-attention by Pallas splash attention: q [B, K, G, T, H] (scaled), k and v [B, K, T, H],
    key_mask [B, T] bool (True on real tokens) -> [B, K, G, T, H].

    Keys are limited to the window |i - j| <= max_distance (None: global), to j <= i when
    `causal`, and to real tokens by segment ids: real tokens are segment 1, padding segment 0.
    The sequence is padded to a multiple of `SPLASH_LANES` with more segment-0 positions and the
    result cut back to T. A padded query sees padded keys only (at least itself, so no row is
    empty); its output is discarded by everything downstream, as the dense path's is.
    The kernel is the multi-query one (one key/value head for G query heads), mapped over the
    batch and the K key/value heads. `interpret` runs it in Pallas interpret mode (any platform).
    Under a mesh (`jax.sharding.use_abstract_mesh`) it runs per device on the batch shard that
    flax's logical rules (`nn.logical_axis_rules`) give the `batch` axis: a Mosaic kernel is not
    partitioned by XLA, which refuses it on more than one device.
    """
    # Imported here: Pallas's import costs every command ~0.2 s, and only TPU runs need it.
    from jax.experimental.pallas.ops.tpu import splash_attention

    B, K, G, T, H = q.shape
    block = splash_block(T)
    padded = SPLASH_LANES * math.ceil(T / SPLASH_LANES)
    pad = lambda x: jnp.pad(x, [(0, 0)] * (x.ndim - 2) + [(0, padded - T), (0, 0)])  # noqa: E731
    q, k, v = pad(q), pad(k), pad(v)
    segments = jnp.pad(key_mask.astype(jnp.int32), ((0, 0), (0, padded - T)))
    static = _splash_static_mask(padded, causal, max_distance)
    sizes = splash_attention.BlockSizes(block_q=block, block_kv=block, block_kv_compute=block,
                                        block_q_dkv=block, block_kv_dkv=block, block_kv_dkv_compute=block,
                                        use_fused_bwd_kernel=True)
    kernel = splash_attention.make_splash_mqa_single_device(
        splash_attention.MultiHeadMask([static] * G), block_sizes=sizes, interpret=interpret)

    def one_head(q, k, v, segment_ids):  # [G, P, H], [P, H], [P, H], [P]
        return kernel(q, k, v, segment_ids=splash_attention.SegmentIds(segment_ids, segment_ids))

    per_example = jax.vmap(one_head, in_axes=(0, 0, 0, None))  # over the K key/value heads
    out = _per_batch_shard(jax.vmap(per_example))(q, k, v, segments)  # over the batch
    return out[..., :T, :]


def _per_batch_shard(f):
    """`f`, of arrays with a leading batch axis, run on each device's batch shard when a mesh is
    set; unchanged without one."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        return f
    batch = nn.logical_to_mesh_axes(("batch",))  # None (replicated) without logical rules
    spec = PartitionSpec(batch[0] if batch else None)
    return jax.shard_map(f, mesh=mesh, in_specs=spec, out_specs=spec, check_vma=False)


def cudnn(q: jax.Array, k: jax.Array, v: jax.Array, key_mask: jax.Array, *, causal: bool,
          max_distance: int | None, implementation: str | None = "cudnn") -> jax.Array:
    """Self-attention by `jax.nn.dot_product_attention`: q [B, K, G, T, H] (scaled), k and v
    [B, K, T, H], key_mask [B, T] bool -> [B, K, G, T, H].

    Padding is given to the kernel as sequence lengths, the count of real tokens in each row, so
    the inputs must be right-padded (as the model's are: positions count from the first token).
    Windows are causal only (i - j in 0..max_distance); cuDNN has no bidirectional window.
    `implementation` is the call's ("cudnn"; "xla" computes the same on any platform).
    Outputs at padded query positions are not the dense path's and are discarded downstream.
    """
    if max_distance is not None and not causal:
        raise ValueError("cuDNN attention has causal windows only; a bidirectional local layer "
                         "takes the einsum paths (masks.layer_paths).")
    B, K, G, T, H = q.shape
    lengths = key_mask.sum(axis=-1, dtype=jnp.int32)
    # jax's grouped heads are K-major: query head n uses key/value head n // G, as ours.
    query = q.transpose(0, 3, 1, 2, 4).reshape(B, T, K * G, H)
    key, value = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)  # [B, T, K, H]
    out = jax.nn.dot_product_attention(
        query, key, value, scale=1.0, is_causal=causal, query_seq_lengths=lengths,
        key_value_seq_lengths=lengths, local_window_size=None if max_distance is None else (max_distance, 0),
        implementation=implementation)
    return out.reshape(B, T, K, G, H).transpose(0, 2, 3, 1, 4)
