"""The encoder-decoder against the float64 numpy reference (both halves padded), its sensitivity to
the masks, its initialisation from a decoder, and its parameters' layout."""

import flax.linen as nn
import jax
import numpy as np
import pytest

from embeddinggemma.checkpoint.hf_gemma3 import transformer_to_hf
from embeddinggemma.model import Transformer, tiny
from embeddinggemma.model.config import GLOBAL, LOCAL
from embeddinggemma.model.encoder_decoder import (
    CROSS_FROM_SELF,
    EncoderDecoder,
    encoder_transformer_params,
    from_decoder,
    init_params,
)
from embeddinggemma.model.layout import param_layouts
from embeddinggemma.model.masks import (
    attention_mask,
    cross_attention_mask,
    decoder_masks,
    encoder_masks,
    local_max_distance,
    padding_mask,
)
from tests.model import numpy_reference

CONFIG = tiny().transformer  # window 8: bidirectional radius 4, causal 0 <= i - j < 8
RNG = np.random.default_rng(7)
# Encoder and decoder lengths around the window and past it, padded to different widths.
ENCODER_LENGTHS, DECODER_LENGTHS = [3, 17, 9], [13, 2, 10]
_CROSS_NAMES = {"self_attn": "cross_attn", "input_layernorm": "pre_cross_attn_layernorm",
                "post_attention_layernorm": "post_cross_attn_layernorm"}


def _randomised(params):
    """Random norm scales (they start at zero), so a mixed-up norm shows in the output."""
    params = jax.device_get(params)
    return jax.tree_util.tree_map_with_path(
        lambda path, x: RNG.normal(0.0, 0.3, x.shape).astype(np.float32)
        if path[-1].key == "scale" else x, params)


def _batch(lengths, width):
    rows = [RNG.integers(3, CONFIG.vocab_size, size=n) for n in lengths]
    tokens = np.zeros((len(rows), width), np.int32)
    for i, row in enumerate(rows):
        tokens[i, : len(row)] = row
    return rows, tokens


def _hf(params, stack):
    """Hugging Face-named tensors of one half; the decoder's cross-attention under T5Gemma's names."""
    tree = {"embedding": params["embedding"], **params[stack]}
    hf = transformer_to_hf(tree, CONFIG)
    if stack == "decoder":
        layers = tree["layers"]
        as_self = {**tree, "layers": {**layers, **{own: layers[cross]
                                                   for cross, own in CROSS_FROM_SELF.items()}}}
        for name, w in transformer_to_hf(as_self, CONFIG).items():
            for ours, theirs in _CROSS_NAMES.items():
                if f".{ours}." in name:
                    hf[name.replace(f".{ours}.", f".{theirs}.")] = w
    return hf


def _reference(params, encoder_rows, decoder_rows):
    encoder_w, decoder_w = _hf(params, "encoder"), _hf(params, "decoder")
    return [numpy_reference.encoder_decoder_logits(encoder_w, decoder_w, CONFIG, e, d)
            for e, d in zip(encoder_rows, decoder_rows, strict=True)]


def _forward(module, encoder_tokens, decoder_tokens, encoder_layer_masks, cross):
    """The encoder-decoder's forward pass with the masks given (to perturb them)."""
    encoded = module.encoder(encoder_tokens, encoder_layer_masks)
    decoder_mask = padding_mask(decoder_tokens, CONFIG.pad_id)
    hidden = module.decoder(decoder_tokens, decoder_masks(decoder_mask, CONFIG), encoded=encoded,
                            cross_mask=cross)
    return module.token_embedding.decode(hidden)


@pytest.fixture(scope="module")
def params():
    return _randomised(nn_unbox(init_params(CONFIG, jax.random.PRNGKey(0))))


def _assert_matches(got, want_rows, decoder_rows):
    for i, (want, row) in enumerate(zip(want_rows, decoder_rows, strict=True)):
        np.testing.assert_allclose(got[i, : len(row)], want, atol=2e-4, rtol=1e-4)


def _max_error(got, want_rows, decoder_rows):
    return max(np.abs(got[i, : len(row)] - want).max()
               for i, (want, row) in enumerate(zip(want_rows, decoder_rows, strict=True)))


def test_logits_match_the_numpy_reference_with_both_halves_padded(params):
    encoder_rows, encoder_tokens = _batch(ENCODER_LENGTHS, 24)
    decoder_rows, decoder_tokens = _batch(DECODER_LENGTHS, 16)
    got = np.asarray(EncoderDecoder(CONFIG).apply({"params": params}, encoder_tokens, decoder_tokens))
    assert got.shape == (3, 16, CONFIG.vocab_size) and got.dtype == np.float32
    _assert_matches(got, _reference(params, encoder_rows, decoder_rows), decoder_rows)


def test_a_cross_attention_mask_or_an_encoder_window_off_by_one_fails_the_reference(params):
    encoder_rows, encoder_tokens = _batch(ENCODER_LENGTHS, 24)
    decoder_rows, decoder_tokens = _batch(DECODER_LENGTHS, 16)
    want = _reference(params, encoder_rows, decoder_rows)
    encoder_mask = padding_mask(encoder_tokens, CONFIG.pad_id)
    cross = cross_attention_mask(padding_mask(decoder_tokens, CONFIG.pad_id), encoder_mask)
    radius = local_max_distance(CONFIG.sliding_window, causal=False)

    def run(layer_masks, cross_mask):
        return np.asarray(EncoderDecoder(CONFIG).apply({"params": params}, encoder_tokens, decoder_tokens,
                                                       layer_masks, cross_mask, method=_forward))

    exact = run(encoder_masks(encoder_mask, CONFIG), cross)
    _assert_matches(exact, want, decoder_rows)
    # The cross-attention hiding each sequence's last real encoder output, or also seeing one pad.
    lengths = np.array(ENCODER_LENGTHS)
    one_fewer = np.asarray(cross).copy()
    one_fewer[np.arange(3), :, lengths - 1] = False
    one_more = np.asarray(cross).copy()
    one_more[np.arange(3), :, lengths] = True
    wider = {LOCAL: attention_mask(encoder_mask, causal=False, max_distance=radius + 1),
             GLOBAL: attention_mask(encoder_mask, causal=False)}
    narrower = {**wider, LOCAL: attention_mask(encoder_mask, causal=False, max_distance=radius - 1)}
    for layer_masks, cross_mask in [(encoder_masks(encoder_mask, CONFIG), one_fewer),
                                    (encoder_masks(encoder_mask, CONFIG), one_more),
                                    (wider, cross), (narrower, cross)]:
        assert _max_error(run(layer_masks, cross_mask), want, decoder_rows) > 1e-2


def test_initialisation_from_a_decoder_copies_its_stack_and_self_attention():
    decoder_only = _randomised(nn_unbox(Transformer(CONFIG).init(
        jax.random.PRNGKey(1), np.ones((1, 4), np.int32), decoder_masks(np.ones((1, 4), bool), CONFIG))))
    params = from_decoder(decoder_only)
    fresh = jax.eval_shape(lambda: init_params(CONFIG, jax.random.PRNGKey(0)))
    assert jax.tree.structure(params) == jax.tree.structure(nn_unbox(fresh))
    assert jax.tree.map(np.shape, params) == jax.tree.map(lambda x: x.shape, nn_unbox(fresh))
    # The encoder half is the decoder-only model itself, the tree an embedding model holds.
    jax.tree.map(np.testing.assert_array_equal, encoder_transformer_params(params), decoder_only)
    layers = params["decoder"]["layers"]
    for cross, own in CROSS_FROM_SELF.items():
        jax.tree.map(np.testing.assert_array_equal, layers[cross], decoder_only["layers"][own])
    # And it computes what the reference computes with those weights.
    encoder_rows, encoder_tokens = _batch([11, 5], 12)
    decoder_rows, decoder_tokens = _batch([9, 4], 10)
    got = np.asarray(EncoderDecoder(CONFIG).apply({"params": params}, encoder_tokens, decoder_tokens))
    _assert_matches(got, _reference(params, encoder_rows, decoder_rows), decoder_rows)


def test_cross_attention_parameters_have_the_layout_of_attention():
    layouts = param_layouts(jax.eval_shape(lambda: init_params(CONFIG, jax.random.PRNGKey(0))))
    decoder = layouts["decoder"]["layers"]
    for name in ("query", "key", "value", "out"):
        cross, own = decoder["cross_attn"][name], decoder["attn"][name]
        assert cross == own and cross.is_attention
        assert cross.contraction_axes == own.contraction_axes
    for norm in ("pre_cross_attn_norm", "post_cross_attn_norm"):
        assert decoder[norm]["scale"].is_vector
    assert "cross_attn" not in layouts["encoder"]["layers"]
    assert set(layouts) == {"embedding", "encoder", "decoder"}  # one table for both halves


def nn_unbox(tree):
    return nn.unbox(tree["params"] if "params" in tree else tree)
