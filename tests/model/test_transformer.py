"""The Flax model against the independent numpy reference, on the tiny preset."""

import jax
import numpy as np
import pytest

from embeddinggemma.checkpoint.hf_gemma3 import transformer_to_hf
from embeddinggemma.model import EmbeddingModel, RuntimeConfig, Transformer, init_params, tiny
from embeddinggemma.model.masks import BandMask, decoder_masks, encoder_masks, padding_mask
from tests.model import numpy_reference

RNG = np.random.default_rng(1)
# Lengths around the tiny window radius (4) and well past it.
LENGTHS = [1, 3, 5, 9, 17, 24]


def _batch(lengths, vocab, width):
    rows = [RNG.integers(3, vocab, size=n) for n in lengths]
    tokens = np.zeros((len(rows), width), np.int32)
    for i, row in enumerate(rows):
        tokens[i, : len(row)] = row
    return rows, tokens


def _dense(params, config):
    return [np.asarray(params[f"projection_{i}"]).T for i in range(len(config.projection_dims))]


def test_embeddings_match_numpy_reference_under_padding(tiny_config, tiny_params):
    rows, tokens = _batch(LENGTHS, tiny_config.transformer.vocab_size, 32)
    got = np.asarray(EmbeddingModel(tiny_config).apply({"params": tiny_params}, tokens))
    hf = transformer_to_hf(tiny_params["transformer"], tiny_config.transformer)
    for row, vector in zip(rows, got, strict=True):
        want = numpy_reference.embed(hf, _dense(tiny_params, tiny_config), tiny_config.transformer, row)
        np.testing.assert_allclose(vector, want, atol=2e-5)


@pytest.mark.parametrize("banded, window", [(False, 8), (True, 8), (True, 40)],
                         ids=["dense", "banded", "banded-reach-2"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_hidden_states_match_reference_in_both_directions(bidirectional, banded, window):
    """Banded, window 8: local layers on blocks of 8, each seeing one block on either side, five
    blocks over 37 tokens. Window 40: blocks of 16 (24 when causal), each seeing two on either side."""
    config = tiny(sliding_window=window).transformer
    params = jax.device_get(init_params(tiny(), jax.random.PRNGKey(3)))["transformer"]
    rows, tokens = _batch([37, 11, 2], config.vocab_size, 40)
    build = encoder_masks if bidirectional else decoder_masks
    masks = build(padding_mask(tokens, config.pad_id), config, banded=banded)
    assert isinstance(masks["local"], BandMask) == banded
    assert not banded or masks["local"].reach == {8: 1, 40: 2}[window]
    hidden = np.asarray(Transformer(config).apply({"params": params}, tokens, masks))
    hf = transformer_to_hf(params, config)
    for i, row in enumerate(rows):
        want = numpy_reference.hidden_states(hf, config, row, bidirectional)
        np.testing.assert_allclose(hidden[i, : len(row)], want, atol=5e-5, rtol=1e-4)


def test_causal_prefix_is_unaffected_by_later_tokens():
    config = tiny().transformer
    params = jax.device_get(init_params(tiny(), jax.random.PRNGKey(4)))["transformer"]
    _, tokens = _batch([16, 16], config.vocab_size, 16)
    tokens[1, :8] = tokens[0, :8]
    masks = decoder_masks(tokens != 0, config)
    hidden = np.asarray(Transformer(config).apply({"params": params}, tokens, masks))
    np.testing.assert_allclose(hidden[0, :8], hidden[1, :8], atol=1e-6)
    assert np.abs(hidden[0, 8:] - hidden[1, 8:]).max() > 1e-3


def test_decoder_logits_come_from_the_tied_embedding():
    config = tiny().transformer
    params = jax.device_get(init_params(tiny(), jax.random.PRNGKey(5)))["transformer"]
    _, tokens = _batch([6, 9], config.vocab_size, 12)
    model = Transformer(config)
    masks = decoder_masks(padding_mask(tokens, config.pad_id), config)
    hidden = model.apply({"params": params}, tokens, masks)
    logits = np.asarray(model.apply({"params": params}, hidden, method=Transformer.logits))
    assert logits.shape == (2, 12, config.vocab_size) and logits.dtype == np.float32
    table = np.asarray(params["embedding"], np.float64)
    want = np.einsum("btd,vd->btv", np.asarray(hidden, np.float64), table)
    np.testing.assert_allclose(logits, want, rtol=1e-4, atol=1e-4)
    # Tied: the logits add no parameter, and the table keeps the path checkpoints have it at.
    assert set(params) == {"embedding", "layers", "final_norm"}


@pytest.mark.parametrize("pooling", ["mean", "first", "last", "attention"])
def test_every_pooling_is_invariant_to_extra_padding(pooling):
    config = tiny(pooling=pooling)
    params = init_params(config, jax.random.PRNGKey(2))
    _, tokens = _batch([5, 12], config.transformer.vocab_size, 16)
    wider = np.pad(tokens, ((0, 0), (0, 16)))
    model = EmbeddingModel(config)
    a = np.asarray(model.apply({"params": params}, tokens))
    b = np.asarray(model.apply({"params": params}, wider))
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(a, axis=-1), 1.0, atol=1e-6)


def test_bfloat16_model_stays_close_to_float32(tiny_config, tiny_params):
    _, tokens = _batch(LENGTHS, tiny_config.transformer.vocab_size, 32)
    f32 = np.asarray(EmbeddingModel(tiny_config).apply({"params": tiny_params}, tokens))
    bf16_runtime = RuntimeConfig(dtype="bfloat16", param_dtype="bfloat16")
    bf16_params = jax.tree.map(lambda x: x.astype("bfloat16"), tiny_params)
    bf16 = np.asarray(EmbeddingModel(tiny_config, bf16_runtime).apply({"params": bf16_params}, tokens))
    assert bf16.dtype == np.float32
    cosine = (f32 * bf16).sum(-1)
    assert cosine.min() > 0.99
    assert np.abs(f32 - bf16).max() > 0  # really computed in bfloat16


@pytest.mark.parametrize("window", [8, 40])
def test_banded_local_layers_give_the_dense_gradients(window):
    """Training takes the banded path on long inputs: its gradients must be the dense path's
    (which the reference test above checks), padding and the band's edges included."""
    config = tiny(sliding_window=window).transformer
    params = jax.device_get(init_params(tiny(), jax.random.PRNGKey(5)))["transformer"]
    _, tokens = _batch([37, 14], config.vocab_size, 40)
    # Real positions only: a padded query far from any real key sees nothing, and its (discarded)
    # output is the mean of whichever keys each path computes.
    weights = RNG.standard_normal((2, 40, config.embed_dim)).astype(np.float32) * (tokens != 0)[..., None]
    grads = {}
    for banded in (False, True):
        masks = encoder_masks(padding_mask(tokens, config.pad_id), config, banded=banded)
        loss = lambda p, m=masks: (Transformer(config).apply({"params": p}, tokens, m) * weights).sum()  # noqa: E731
        grads[banded] = jax.grad(loss)(params)
    for (path, dense), banded in zip(jax.tree_util.tree_leaves_with_path(grads[False]),
                                     jax.tree.leaves(grads[True]), strict=True):
        # Entries of a leaf reach a few hundred; float32 sums in another order leave about 1e-6 of
        # that scale on entries that cancel to near zero, so the bound is relative to the leaf.
        np.testing.assert_allclose(banded, dense, rtol=1e-4, atol=1e-5 * float(np.abs(dense).max()),
                                   err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize("dtype,tolerance", [(np.float32, 1e-5), (jax.numpy.bfloat16, 2e-2)])
def test_attention_gradients_match_autodiff_of_plain_softmax(dtype, tolerance):
    """The attention's softmax keeps only its probabilities for the backward pass (its own VJP):
    its gradients must be those JAX derives for a plain masked softmax in float32, padding (a
    fully masked query row) included."""
    from embeddinggemma.model.attention import attend
    from embeddinggemma.model.masks import attention_mask

    jnp = jax.numpy
    B, K, G, T, H = 2, 2, 2, 12, 8
    q, k, v = (RNG.standard_normal(shape).astype(np.float32)
               for shape in ((B, K, G, T, H), (B, K, T, H), (B, K, T, H)))
    mask = attention_mask(jnp.asarray(np.arange(T)[None, :] < np.array([[12], [0]])), causal=False)
    mask = mask.at[0].set(attention_mask(jnp.asarray(np.arange(T)[None, :] < 7), causal=False)[0])
    weights = RNG.standard_normal((B, K, G, T, H)).astype(np.float32)

    def reference(q, k, v):
        logits = jnp.einsum("BKGTH,BKSH->BKGTS", q, k)
        logits = jnp.where(mask[:, None, None], logits, jnp.finfo(jnp.float32).min)
        return (jnp.einsum("BKGTS,BKSH->BKGTH", jax.nn.softmax(logits, axis=-1), v) * weights).sum()

    def ours(q, k, v):
        return (attend(q.astype(dtype), k.astype(dtype), v.astype(dtype), mask).astype(jnp.float32)
                * weights).sum()

    expected = jax.grad(reference, argnums=(0, 1, 2))(q, k, v)
    got = jax.grad(ours, argnums=(0, 1, 2))(q, k, v)
    for name, e, g in zip("qkv", expected, got, strict=True):
        np.testing.assert_allclose(np.asarray(g, np.float32), e, rtol=tolerance,
                                   atol=tolerance * float(np.abs(e).max()), err_msg=name)
