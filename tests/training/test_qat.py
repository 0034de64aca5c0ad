"""Quantisation-aware training (`quant.scheme`): every gradient path, on a mesh, computes the
straight-through gradient, i.e. the plain gradient evaluated at the fake-quantised weights."""

import jax
import numpy as np
import pytest

from embeddinggemma.errors import ConfigError
from embeddinggemma.model.layout import embedder_layout
from embeddinggemma.quantization import quantize_params
from embeddinggemma.training.config import validate_config
from embeddinggemma.training.embedding_config import model_config
from embeddinggemma.training.state import ENCODER
from embeddinggemma.training.trainer import assemble_trainer
from tests.training.test_step import (
    _assert_close,
    _batch,
    _config,
    _loss_and_grads,
    _reference_loss_and_grads,
    _setup,
)

SCHEME = "int4-block"


def _qat_config(**train):
    config = _config(**train)
    config.quant.scheme = SCHEME
    return config


@pytest.fixture(scope="module")
def at_quantised_weights():
    """The plain loss and gradients of the objective at the quantised encoder weights, computed
    without training/step.py or the trainer's transform; and the float parameters."""
    config = _config()
    _, state = _setup(config, (1, 1, 1))
    params = jax.device_get(state["params"])
    return jax.device_get(_reference_loss_and_grads(config, _quantized(config, params), _batch())), params


def _quantized(config, params):
    layout = embedder_layout(model_config(config))
    return {**params, ENCODER: quantize_params(params[ENCODER], SCHEME, layout)}


# The plain path on 8 devices runs in CI; the other paths each compile the model again (slow).
@pytest.mark.parametrize("train,mesh_shape", [
    ({}, (8, 1, 1)), pytest.param({"grad_cache_chunk_size": 4}, (4, 2, 1), marks=pytest.mark.slow)])
def test_gradients_are_the_plain_gradients_at_the_quantised_weights(at_quantised_weights, train, mesh_shape):
    want, _ = at_quantised_weights
    _assert_close(_loss_and_grads(_qat_config(**train), mesh_shape, _batch()), want)


@pytest.mark.slow
def test_accumulation_averages_the_straight_through_gradients_of_micro_batches(at_quantised_weights):
    _, params = at_quantised_weights
    config = _config()
    quantized = _quantized(config, params)
    batch = _batch()
    # Micro-batch m holds examples m, m + 2, m + 4, ... (strided, see split_examples).
    halves = [jax.device_get(_reference_loss_and_grads(config, quantized,
                                                       {k: v[m::2] for k, v in batch.items()}))
              for m in range(2)]
    want = jax.tree.map(lambda a, b: (a + b) / 2, halves[0], halves[1])
    _assert_close(_loss_and_grads(_qat_config(grad_accumulation_steps=2), (2, 2, 2), batch), want)


@pytest.mark.slow
def test_a_step_updates_float32_master_weights_off_the_grid():
    trainer, state = _setup(_qat_config(), (8, 1, 1))
    state, metrics = trainer.train_step(state, trainer.global_batch(_batch()))
    assert np.isfinite(metrics["loss"]) and metrics["grad_norm"] > 0
    params = jax.device_get(state["params"])
    assert {x.dtype for x in jax.tree.leaves(params)} == {np.dtype("float32")}
    up = params[ENCODER]["transformer"]["layers"]["mlp"]["up"]
    layout = embedder_layout(trainer.model_config)
    quantized = quantize_params(params[ENCODER], SCHEME, layout)["transformer"]["layers"]["mlp"]["up"]
    assert not np.array_equal(up, quantized)  # the master weights are not the quantised ones


def test_a_wrong_scheme_or_a_second_transform_is_named():
    config = _qat_config()
    config.quant.scheme = "int3"
    with pytest.raises(ConfigError, match="quant.scheme='int3'"):
        validate_config(config)
    with pytest.raises(ConfigError, match="quant.scheme='int4-block' makes its own parameter transform"):
        assemble_trainer(_qat_config(), param_transform=lambda p: p, devices=jax.devices()[:1])
