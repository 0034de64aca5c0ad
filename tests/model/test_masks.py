import jax
import numpy as np
import pytest

from embeddinggemma.model import RuntimeConfig, Transformer, init_params, tiny
from embeddinggemma.model.masks import (
    BandMask,
    attention_mask,
    decoder_masks,
    encoder_masks,
    local_max_distance,
    padding_mask,
    use_band,
)


def _mask(valid, **kwargs):
    return np.asarray(attention_mask(np.array([valid], bool), **kwargs)[0]).astype(int)


def _layer_masks(build, valid, sliding_window):
    config = tiny(sliding_window=sliding_window).transformer
    masks = build(np.array([valid], bool), config)
    return {kind: np.asarray(m[0]).astype(int) for kind, m in masks.items()}


def test_padding_mask_marks_real_tokens():
    np.testing.assert_array_equal(padding_mask(np.array([[5, 7, 0, 0]]), 0), [[True, True, False, False]])


def test_bidirectional_window_is_symmetric_and_hides_padding():
    got = _mask([1, 1, 1, 1, 0], causal=False, max_distance=1)
    want = np.array([
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],
        [0, 1, 1, 1, 0],
        [0, 0, 1, 1, 0],
        [0, 0, 0, 1, 0],
    ])
    np.testing.assert_array_equal(got, want)


def test_global_bidirectional_sees_every_real_token():
    got = _mask([1, 1, 1, 0], causal=False)
    np.testing.assert_array_equal(got, np.array([[1, 1, 1, 0]] * 4))


def test_causal_window():
    got = _mask([1, 1, 1, 1], causal=True, max_distance=1)
    want = np.array([
        [1, 0, 0, 0],
        [1, 1, 0, 0],
        [0, 1, 1, 0],
        [0, 0, 1, 1],
    ])
    np.testing.assert_array_equal(got, want)


def test_window_length_becomes_a_distance_per_direction():
    # The released model's 512: 256 on each side for the encoder, the query and 511 before it causally.
    assert local_max_distance(512, causal=False) == 256
    assert local_max_distance(512, causal=True) == 511


def test_encoder_masks_of_a_window_of_four():
    masks = _layer_masks(encoder_masks, [1, 1, 1, 1, 1, 0], sliding_window=4)
    want_local = np.array([
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 1, 0],
        [0, 1, 1, 1, 1, 0],
        [0, 0, 1, 1, 1, 0],
        [0, 0, 0, 1, 1, 0],
    ])
    np.testing.assert_array_equal(masks["local"], want_local)
    np.testing.assert_array_equal(masks["global"], np.array([[1, 1, 1, 1, 1, 0]] * 6))


def test_decoder_masks_of_a_window_of_three():
    masks = _layer_masks(decoder_masks, [1, 1, 1, 1, 1, 1, 0], sliding_window=3)
    want_local = np.array([
        [1, 0, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0, 0],
        [0, 1, 1, 1, 0, 0, 0],
        [0, 0, 1, 1, 1, 0, 0],
        [0, 0, 0, 1, 1, 1, 0],
        [0, 0, 0, 0, 1, 1, 0],
    ])
    np.testing.assert_array_equal(masks["local"], want_local)
    want_global = np.tril(np.ones((7, 7), int))
    want_global[:, 6] = 0  # the padded key
    np.testing.assert_array_equal(masks["global"], want_global)


def test_transformer_names_the_missing_layer_type():
    config = tiny().transformer
    params = init_params(tiny(), jax.random.PRNGKey(0))["transformer"]
    tokens = np.ones((1, 4), np.int32)
    masks = encoder_masks(padding_mask(tokens), config)
    with pytest.raises(ValueError, match=r"masks lacks the layer types \['local'\]"):
        Transformer(config).apply({"params": params}, tokens, {"global": masks["global"]})


def test_causal_local_window_is_the_one_transformers_gives_gemma3():
    # transformers' Gemma 3 sliding window for a causal layer: kv_idx > q_idx - sliding_window.
    torch = pytest.importorskip("torch")
    masking_utils = pytest.importorskip("transformers.masking_utils")
    window, length = 4, 12
    reference = masking_utils.sliding_window_causal_mask_function(window)
    zero = torch.tensor(0)
    want = reference(zero, zero, torch.arange(length)[:, None], torch.arange(length)[None, :])
    want = want.numpy().astype(int)
    got = _layer_masks(decoder_masks, [1] * length, sliding_window=window)
    np.testing.assert_array_equal(got["local"], want)
    i, j = np.indices((length, length))
    np.testing.assert_array_equal(want, ((i - j >= 0) & (i - j < window)).astype(int))


@pytest.mark.parametrize("build, causal", [(encoder_masks, False), (decoder_masks, True)])
def test_a_banded_local_mask_holds_the_same_mask(build, causal):
    config = tiny(sliding_window=6).transformer
    valid = np.array([[1] * 19 + [0] * 3, [1] * 5 + [0] * 17], bool)
    banded, dense = build(valid, config, banded=True), build(valid, config, banded=False)
    local = banded["local"]
    assert isinstance(local, BandMask) and local.causal == causal
    assert local.max_distance == local_max_distance(6, causal=causal)
    assert local.block * local.reach >= local.max_distance > local.block * (local.reach - 1)
    np.testing.assert_array_equal(local.dense(), dense["local"])
    np.testing.assert_array_equal(banded["global"], dense["global"])


def test_band_is_chosen_for_long_inputs_of_a_wide_window_only():
    # The released model (radius 256): 2048 tokens banded, 512 dense; a tiny window never.
    assert use_band(2048, 256, causal=False) and not use_band(512, 256, causal=False)
    assert not use_band(4096, 4, causal=False)
    release_like = tiny(sliding_window=512).transformer
    assert isinstance(encoder_masks(np.ones((1, 2048), bool), release_like)["local"], BandMask)
    assert not isinstance(encoder_masks(np.ones((1, 512), bool), release_like)["local"], BandMask)


def test_an_unknown_local_attention_is_refused():
    with pytest.raises(ValueError, match="local_attention='sparse' is not one of"):
        RuntimeConfig(local_attention="sparse")
