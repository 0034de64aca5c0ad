"""The denoising loss against numpy's cross-entropy of the same logits, and its chunked form (the
logits a few decoder positions at a time) against the whole: equal loss and gradients."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from embeddinggemma.checkpoint.encoder_decoder import SEQ2SEQ
from embeddinggemma.model import tiny
from embeddinggemma.model.encoder_decoder import EncoderDecoder, init_params
from embeddinggemma.training.denoising import denoising_objective

PAD = 0


@pytest.fixture(scope="module")
def setup():
    config = tiny().transformer
    params = jax.device_get(init_params(config, jax.random.PRNGKey(3)))
    rng = np.random.default_rng(0)
    targets = rng.integers(4, config.vocab_size, size=(3, 11))
    targets[0, 7:] = PAD  # a short example: pad targets count for nothing
    batch = {"encoder_tokens": rng.integers(4, config.vocab_size, size=(3, 9)).astype(np.int32),
             "decoder_tokens": np.concatenate([np.full((3, 1), 2), targets[:, :-1]], 1).astype(np.int32),
             "targets": targets.astype(np.int32)}
    return EncoderDecoder(config), {SEQ2SEQ: params}, batch


def test_the_loss_is_the_mean_cross_entropy_of_the_target_tokens(setup):
    model, params, batch = setup
    logits = np.asarray(model.apply({"params": params[SEQ2SEQ]}, batch["encoder_tokens"],
                                    batch["decoder_tokens"]), np.float64)
    shifted = logits - logits.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, batch["targets"][..., None], -1)[..., 0]
    weight = batch["targets"] != PAD
    loss, metrics = denoising_objective(model, PAD)(params, batch)
    np.testing.assert_allclose(float(loss), (nll * weight).sum() / weight.sum(), rtol=1e-5)
    assert float(metrics["denoising/target_tokens"]) == weight.sum()


def test_chunked_logits_give_the_same_loss_and_gradients(setup, chunk=4):  # 11 positions: 3 chunks, padded
    model, params, batch = setup
    whole = jax.jit(jax.value_and_grad(denoising_objective(model, PAD), has_aux=True))
    chunked = jax.jit(jax.value_and_grad(denoising_objective(model, PAD, logits_chunk=chunk), has_aux=True))
    (loss, metrics), grads = whole(params, batch)
    (loss_c, metrics_c), grads_c = chunked(params, batch)
    np.testing.assert_allclose(float(loss_c), float(loss), rtol=1e-6)
    for key in metrics:
        np.testing.assert_allclose(float(metrics_c[key]), float(metrics[key]), rtol=1e-6)
    chunked_leaves = jax.tree.leaves(grads_c)
    for (path, g), g_c in zip(jax.tree_util.tree_leaves_with_path(grads), chunked_leaves, strict=True):
        np.testing.assert_allclose(np.asarray(g_c), np.asarray(g), rtol=2e-5, atol=1e-7,
                                   err_msg=jax.tree_util.keystr(path))
