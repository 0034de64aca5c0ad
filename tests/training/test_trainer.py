"""The trainer's seams: an injected objective, a parameter transform inside the loss, the teacher
width checked against the config."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from embeddinggemma.errors import ConfigError
from embeddinggemma.model import EmbeddingModel
from embeddinggemma.schema import ROLES
from embeddinggemma.training.config import sized_config
from embeddinggemma.training.objective import objective
from embeddinggemma.training.state import DISTILLATION_PROJECTION, ENCODER
from embeddinggemma.training.trainer import assemble_trainer

B = 8


def _config(**train):
    config = sized_config("tiny")
    config.train.batch_size = B
    config.mesh.shape = (1, 1, 1)
    for key, value in train.items():
        config.train[key] = value
    return config


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    batch = {k: rng.integers(3, 512, size=(B, 10)).astype(np.int32) for k in ROLES}
    batch["query_id"] = batch["positive_id"] = np.arange(B, dtype=np.int32)
    return batch


def _round_straight_through(params):
    """Weights rounded to multiples of 1/8 in the forward pass; the identity in the backward pass."""
    return jax.tree.map(lambda p: p + jax.lax.stop_gradient(jnp.round(p * 8) / 8 - p), params)


def _assemble(config, **kwargs):
    return assemble_trainer(config, devices=jax.devices()[:1], **kwargs)


@pytest.mark.parametrize("chunk", [0, 4])
def test_a_parameter_transform_is_applied_inside_the_loss_straight_through(chunk):
    config = _config(grad_cache_chunk_size=chunk)
    trainer = _assemble(config, param_transform=_round_straight_through)
    params = jax.device_get(trainer.init_state()["params"])
    batch = _batch()
    (loss, _), grads = jax.device_get(jax.jit(trainer.loss_and_grads)(params, batch))

    # Reference: the loss at the rounded parameters and its gradient there, by hand.
    model = EmbeddingModel(trainer.model_config)
    rounded = jax.tree.map(lambda p: np.round(p * 8) / 8, params)

    def reference(p):
        embeddings = {k: model.apply({"params": p[ENCODER]}, batch[k]) for k in ROLES}
        return objective(config.loss, embeddings, batch, {})

    (want_loss, _), want_grads = jax.device_get(jax.value_and_grad(reference, has_aux=True)(rounded))
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(want_grads), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5 * max(float(np.abs(want).max()), 1e-6))
    embedded = np.asarray(trainer.embed(params, batch["query"]))
    np.testing.assert_allclose(embedded, model.apply({"params": rounded[ENCODER]}, batch["query"]), atol=1e-5)


def _mean_square_objective(params, batch):
    """An objective over the parameters themselves (as UL2's over an encoder-decoder's logits)."""
    squares = [jnp.mean(jnp.square(p)) for p in jax.tree.leaves(params)]
    loss = sum(squares) * jnp.mean(batch["weight"])
    return loss, {"squares": sum(squares)}


def test_an_objective_over_the_parameters_plugs_into_the_same_step():
    trainer = _assemble(_config(), objective=_mean_square_objective)
    state = trainer.init_state()
    params = jax.device_get(state["params"])
    batch = {"weight": np.full((B,), 2.0, np.float32)}
    state, metrics = trainer.train_step(state, trainer.global_batch(batch))
    leaves = jax.tree.leaves(params)
    want = 2.0 * sum(float(np.mean(np.square(p))) for p in leaves)
    np.testing.assert_allclose(float(metrics["loss"]), want, rtol=1e-5)
    want_norm = np.sqrt(sum(float(np.sum(np.square(4.0 * p / p.size))) for p in leaves))
    np.testing.assert_allclose(float(metrics["grad_norm"]), want_norm, rtol=1e-4)
    assert int(state["step"]) == 1


def test_gradient_caching_is_refused_for_an_objective_over_the_parameters():
    with pytest.raises(ConfigError, match="grad_cache_chunk_size > 0 needs an objective over embeddings"):
        _assemble(_config(grad_cache_chunk_size=4), objective=_mean_square_objective)


def _distillation_config(teacher_dim):
    config = _config()
    config.loss.distillation_weight = 1.0
    config.loss.teacher_dim = teacher_dim
    return config


@pytest.mark.parametrize("teacher_dim, head", [(0, {}), (32, {DISTILLATION_PROJECTION: np.zeros((64, 32))})])
def test_a_teacher_of_another_width_than_the_config_says_is_named_with_both_widths(teacher_dim, head):
    rng = np.random.default_rng(0)
    embeddings = {k: rng.normal(size=(4, 64)).astype(np.float32) for k in ("query", "positive")}
    batch = {"teacher_query": rng.normal(size=(4, 24)).astype(np.float32),
             "teacher_positive": rng.normal(size=(4, 24)).astype(np.float32)}
    width = teacher_dim or 64  # the student's width when teacher_dim is 0
    want = rf"loss.teacher_dim={teacher_dim} \(.*, {width}\) but the teacher embeddings .* are 24 wide"
    with pytest.raises(ConfigError, match=want):
        objective(_distillation_config(teacher_dim).loss, embeddings, batch, head)
