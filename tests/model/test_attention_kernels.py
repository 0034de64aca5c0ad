"""The attention kernels against the dense einsum path: splash attention in Pallas interpret mode
(its TPU kernel, run on the CPU), the cuDNN call with XLA's implementation of the same call, and
the choice of implementation per platform and layer kind."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from embeddinggemma.model import EmbeddingModel, RuntimeConfig, embeddinggemma_300m, tiny
from embeddinggemma.model.attention import _dense
from embeddinggemma.model.attention_kernels import cudnn, splash, splash_block
from embeddinggemma.model.config import CUDNN, EINSUM, SPLASH
from embeddinggemma.model.encoder_decoder import EncoderDecoder
from embeddinggemma.model.encoder_decoder import init_params as init_encoder_decoder
from embeddinggemma.model.masks import (
    BANDED,
    CROSS_ATTENTION,
    DECODER_GLOBAL,
    DECODER_LOCAL,
    DENSE,
    ENCODER_GLOBAL,
    ENCODER_LOCAL,
    KernelMask,
    attention_paths,
    encoder_masks,
    padding_mask,
)

RNG = np.random.default_rng(11)
# 300 tokens: padded to 384 inside the splash wrapper (3 blocks of 128), so windows of radius 100
# cross block edges; the second row is padded from 170 on.
LENGTHS = (300, 170)
RADIUS = 100
# (bidirectional or causal, window radius or None for a global layer)
MASKS = [(False, RADIUS), (False, None), (True, RADIUS), (True, None)]
MASK_IDS = ["encoder-local", "encoder-global", "decoder-local", "decoder-global"]


def _inputs(kv_heads, groups, head_dim=16):
    """Scaled queries [B, K, G, T, H], keys and values [B, K, T, H], key_mask [B, T], and loss
    weights on the real query positions only (a padded query's output is discarded downstream and
    differs between paths)."""
    B, T = len(LENGTHS), max(LENGTHS)
    q, k, v = (jnp.asarray(RNG.standard_normal(shape), jnp.float32)
               for shape in [(B, kv_heads, groups, T, head_dim)] + [(B, kv_heads, T, head_dim)] * 2)
    key_mask = jnp.asarray(np.arange(T)[None, :] < np.array(LENGTHS)[:, None])
    weights = jnp.asarray(RNG.standard_normal(q.shape), jnp.float32) * key_mask[:, None, None, :, None]
    return q, k, v, key_mask, weights


def _check_against_dense(attend, q, k, v, key_mask, weights, causal, max_distance, atol=2e-5):
    """`attend(q, k, v)` against the dense path over the same mask: outputs on real positions and
    the gradients of a weighted sum with respect to q, k and v."""
    dense_mask = KernelMask(key_mask, max_distance, causal, SPLASH).dense()
    dense = lambda q, k, v: _dense(q, k, v, dense_mask)  # noqa: E731
    real = np.asarray(weights != 0)
    np.testing.assert_allclose(np.asarray(attend(q, k, v))[real], np.asarray(dense(q, k, v))[real], atol=atol)
    loss = lambda f: lambda q, k, v: (f(q, k, v) * weights).sum()  # noqa: E731
    got = jax.grad(loss(attend), argnums=(0, 1, 2))(q, k, v)
    want = jax.grad(loss(dense), argnums=(0, 1, 2))(q, k, v)
    for name, g, w in zip("qkv", got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=atol * float(np.abs(w).max()) + atol, err_msg=name)


def test_splash_blocks_cover_the_padded_length():
    assert [splash_block(n) for n in (1, 128, 300, 512, 640, 2048)] == [128, 128, 128, 512, 128, 512]


@pytest.mark.parametrize("causal, max_distance", MASKS, ids=MASK_IDS)
def test_splash_matches_dense_multi_query(causal, max_distance):
    """One key/value head for three query heads, as the 300m model has."""
    q, k, v, key_mask, weights = _inputs(kv_heads=1, groups=3)
    attend = lambda q, k, v: splash(q, k, v, key_mask, causal=causal, max_distance=max_distance,  # noqa: E731
                                    interpret=True)
    _check_against_dense(jax.jit(attend), q, k, v, key_mask, weights, causal, max_distance)


def test_splash_matches_dense_grouped_heads():
    """Two key/value heads of two query heads each (the kernel is mapped over the K heads)."""
    q, k, v, key_mask, weights = _inputs(kv_heads=2, groups=2)
    attend = lambda q, k, v: splash(q, k, v, key_mask, causal=False, max_distance=RADIUS,  # noqa: E731
                                    interpret=True)
    _check_against_dense(jax.jit(attend), q, k, v, key_mask, weights, False, RADIUS)


@pytest.mark.parametrize("causal, max_distance", [m for m in MASKS if m != (False, RADIUS)],
                         ids=[i for i, m in zip(MASK_IDS, MASKS, strict=True) if m != (False, RADIUS)])
def test_cudnn_call_matches_dense(causal, max_distance):
    """The cuDNN path's call with XLA's implementation: padding as sequence lengths, grouped heads."""
    q, k, v, key_mask, weights = _inputs(kv_heads=2, groups=2)
    attend = lambda q, k, v: cudnn(q, k, v, key_mask, causal=causal, max_distance=max_distance,  # noqa: E731
                                   implementation="xla")
    _check_against_dense(jax.jit(attend), q, k, v, key_mask, weights, causal, max_distance)


def test_cudnn_refuses_a_bidirectional_window():
    q, k, v, key_mask, _ = _inputs(kv_heads=1, groups=1)
    with pytest.raises(ValueError, match="causal windows only"):
        cudnn(q, k, v, key_mask, causal=False, max_distance=RADIUS, implementation="xla")


def test_the_implementation_follows_the_platform():
    f32, bf16 = RuntimeConfig(), RuntimeConfig(dtype="bfloat16", param_dtype="bfloat16")
    platforms = ("tpu", "gpu", "cuda", "cpu")
    assert [f32.attention_kernel(p) for p in platforms] == [SPLASH, EINSUM, EINSUM, EINSUM]
    assert [bf16.attention_kernel(p) for p in platforms] == [SPLASH, CUDNN, CUDNN, EINSUM]
    assert RuntimeConfig(attention="einsum").attention_kernel("tpu") == EINSUM
    assert RuntimeConfig(attention="splash").attention_kernel("cpu") == SPLASH
    # Unnamed, the platform is the mesh's in context (the trainer traces under its mesh), else
    # the default backend's.
    assert RuntimeConfig().attention_kernel() == EINSUM
    tpu = jax.sharding.AbstractDevice(device_kind="TPU v5 lite", num_cores=None, platform="tpu")
    with jax.sharding.use_abstract_mesh(jax.sharding.AbstractMesh((1,), ("data",), abstract_device=tpu)):
        assert RuntimeConfig().attention_kernel() == SPLASH
    with pytest.raises(ValueError, match="attention='cudnn' needs dtype='bfloat16'"):
        RuntimeConfig(attention="cudnn")
    with pytest.raises(ValueError, match="attention='flash' is not one of"):
        RuntimeConfig(attention="flash")


def test_attention_paths_per_layer_kind():
    """The 300m model (bidirectional radius 256, causal window 511) on each platform."""
    config = embeddinggemma_300m().transformer
    bf16 = RuntimeConfig(dtype="bfloat16", param_dtype="bfloat16")
    kinds = (ENCODER_LOCAL, ENCODER_GLOBAL, DECODER_LOCAL, DECODER_GLOBAL, CROSS_ATTENTION)
    paths = lambda runtime, length, platform: [attention_paths(runtime, config, length, platform)[kind]  # noqa: E731
                                               for kind in kinds]
    assert paths(bf16, 512, "tpu") == [SPLASH, SPLASH, SPLASH, SPLASH, DENSE]
    assert paths(bf16, 512, "gpu") == [DENSE, CUDNN, CUDNN, CUDNN, DENSE]
    assert paths(bf16, 2048, "gpu") == [BANDED, CUDNN, CUDNN, CUDNN, DENSE]
    assert paths(RuntimeConfig(), 2048, "cpu") == [BANDED, DENSE, BANDED, DENSE, DENSE]
    assert paths(RuntimeConfig(local_attention="dense"), 2048, "cpu") == [DENSE, DENSE, DENSE, DENSE, DENSE]


def test_cpu_masks_are_unchanged_by_default():
    """On the CPU "auto" keeps the einsum paths: plain arrays, no kernel masks."""
    config = tiny().transformer
    masks = encoder_masks(padding_mask(jnp.ones((1, 8), jnp.int32)), config,
                          kernel=RuntimeConfig().attention_kernel("cpu"))
    assert all(isinstance(m, jax.Array) for m in masks.values())


def _tokens(lengths, width, vocab):
    tokens = np.zeros((len(lengths), width), np.int32)
    for i, n in enumerate(lengths):
        tokens[i, :n] = RNG.integers(3, vocab, size=n)
    return tokens


SPLASH_RUNTIME = RuntimeConfig(attention="splash", interpret=True)


@pytest.mark.slow
def test_embedder_through_splash_matches_the_default_path(tiny_config, tiny_params):
    """The whole embedding model with every self-attention layer on the splash kernel: embeddings
    and parameter gradients (through the scanned, rematerialised blocks) as the einsum paths'."""
    tokens = _tokens([37, 11, 2], 40, tiny_config.transformer.vocab_size)
    direction = jnp.asarray(RNG.standard_normal((3, tiny_config.output_dim)), jnp.float32)
    results = {}
    for name, runtime in (("default", RuntimeConfig(remat="full")),
                          ("splash", RuntimeConfig(remat="full", attention="splash", interpret=True))):
        model = EmbeddingModel(tiny_config, runtime)
        loss = lambda p, m=model: (m.apply({"params": p}, tokens) * direction).sum()  # noqa: E731
        results[name] = jax.jit(jax.value_and_grad(loss))(tiny_params)
    (loss, grads), (splash_loss, splash_grads) = results["default"], results["splash"]
    np.testing.assert_allclose(splash_loss, loss, rtol=1e-5)
    for (path, want), got in zip(jax.tree_util.tree_leaves_with_path(grads), jax.tree.leaves(splash_grads),
                                 strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * float(np.abs(want).max()),
                                   err_msg=jax.tree_util.keystr(path))


@pytest.mark.slow
def test_encoder_decoder_through_splash_matches_the_default_path():
    """Both halves on splash (bidirectional and causal masks; cross-attention stays dense)."""
    config = tiny().transformer
    params = init_encoder_decoder(config, jax.random.PRNGKey(2))
    encoder_tokens = _tokens([17, 9], 20, config.vocab_size)
    decoder_tokens = _tokens([13, 2], 16, config.vocab_size)
    logits = {name: np.asarray(jax.jit(EncoderDecoder(config, runtime).apply)(
        {"params": params}, encoder_tokens, decoder_tokens))
        for name, runtime in (("default", RuntimeConfig()), ("splash", SPLASH_RUNTIME))}
    real = decoder_tokens != 0
    np.testing.assert_allclose(logits["splash"][real], logits["default"][real], atol=2e-5, rtol=1e-5)


@pytest.mark.slow
def test_splash_runs_per_batch_shard_under_a_mesh():
    """Under a mesh and logical rules (as the trainer traces the model) the kernel runs per device
    on its batch shard (shard_map), with the same result."""
    q, k, v, key_mask, weights = _inputs(kv_heads=1, groups=2)
    mesh = Mesh(np.asarray(jax.devices()[:2]), ("data",))

    def attend(q, k, v):
        with jax.sharding.use_abstract_mesh(mesh.abstract_mesh), nn.logical_axis_rules([("batch", "data")]):
            return splash(q, k, v, key_mask, causal=True, max_distance=RADIUS, interpret=True)

    batch = NamedSharding(mesh, PartitionSpec("data"))
    sharded = jax.jit(attend, in_shardings=(batch,) * 3)
    assert "shard_map" in str(jax.make_jaxpr(attend)(q, k, v))
    _check_against_dense(sharded, q, k, v, key_mask, weights, True, RADIUS)
