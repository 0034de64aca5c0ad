"""The sharded train step: the loss sees the global batch, whatever the mesh.

Loss and gradients on meshes of 8 simulated CPU devices equal the single-device values, with hard
negatives, duplicates, padding examples and distillation through a learned map all present.
"""

import jax
import numpy as np
import pytest

from embeddinggemma.model import EmbeddingModel
from embeddinggemma.training.config import base_config
from embeddinggemma.training.embedding_config import model_config
from embeddinggemma.training.mesh import batch_sharding
from embeddinggemma.training.objective import objective
from embeddinggemma.training.state import ENCODER
from embeddinggemma.training.trainer import assemble_trainer

B = 16
TEACHER_DIM = 24


def _config(**train):
    config = base_config()
    config.loss.matryoshka_dims = (64, 32, 16)
    config.loss.distillation_weight = 0.5
    config.loss.teacher_dim = TEACHER_DIM
    config.train.batch_size = B
    config.optimizer.warmup_steps = 0
    config.optimizer.learning_rate = 1e-3
    for key, value in train.items():
        config.train[key] = value
    return config


def _batch(seed=0):
    rng = np.random.default_rng(seed)

    def tokens(length):
        ids = rng.integers(3, 512, size=(B, length)).astype(np.int32)
        lengths = rng.integers(2, length + 1, size=B)
        ids[np.arange(length)[None, :] >= lengths[:, None]] = 0
        return ids

    query_id = np.arange(B, dtype=np.int32)
    positive_id = np.arange(B, dtype=np.int32) + 100
    query_id[5] = query_id[2]        # a repeated query
    positive_id[9] = positive_id[12]  # a repeated positive
    example_mask = np.ones(B, bool)
    example_mask[-1] = False          # a padding example
    teacher = lambda: rng.normal(size=(B, TEACHER_DIM)).astype(np.float32)  # noqa: E731
    return {"query": tokens(12), "positive": tokens(20), "negative": tokens(20),
            "query_id": query_id, "positive_id": positive_id, "example_mask": example_mask,
            "teacher_query": teacher(), "teacher_positive": teacher(), "teacher_negative": teacher()}


def _setup(config, mesh_shape):
    """(trainer, initial state) on a mesh of `mesh_shape` (one device for (1, 1, 1))."""
    config.mesh.shape = mesh_shape
    devices = jax.devices() if mesh_shape != (1, 1, 1) else jax.devices()[:1]
    trainer = assemble_trainer(config, devices=devices)
    return trainer, trainer.init_state(seed=0)


def _loss_and_grads(config, mesh_shape, batch):
    trainer, state = _setup(config, mesh_shape)
    fn = jax.jit(trainer.loss_and_grads, in_shardings=(trainer.state_shardings["params"],
                                                       batch_sharding(trainer.mesh, trainer.rules, 1)))
    return jax.device_get(fn(state["params"], batch))


@pytest.fixture(scope="module")
def single_device():
    return _loss_and_grads(_config(), (1, 1, 1), _batch())


def _assert_tensor_close(got, want, path=""):
    """Equal to 1e-5 of the tensor's largest entry: float32 sums taken in another order differ
    by ~1e-7 of the scale, while a wrong negative or label changes gradients at order 1."""
    scale = max(float(np.abs(want).max()), 1e-6)
    assert float(np.abs(got - want).max()) <= 1e-5 * scale, (path, np.abs(got - want).max(), scale)


def _assert_close(got, want):
    (got_loss, got_metrics), got_grads = got
    (want_loss, want_metrics), want_grads = want
    np.testing.assert_allclose(got_loss, want_loss, rtol=1e-5)
    for key in want_metrics:
        np.testing.assert_allclose(got_metrics[key], want_metrics[key], rtol=1e-5, atol=1e-6,
                                   err_msg=key)
    jax.tree_util.tree_map_with_path(
        lambda path, g, w: _assert_tensor_close(g, w, jax.tree_util.keystr(path)), got_grads, want_grads)


def test_eight_devices_are_simulated():
    assert jax.device_count() == 8


@pytest.mark.parametrize("mesh_shape", [(8, 1, 1), (4, 2, 1), (2, 2, 2)])
def test_sharded_loss_and_gradients_equal_single_device(single_device, mesh_shape):
    (loss, metrics), grads = single_device
    assert np.isfinite(loss) and loss > 0
    assert {"contrastive/64/loss", "contrastive/16/accuracy", "spread_out/32/loss",
            "distillation/loss"} <= set(metrics)
    _assert_close(_loss_and_grads(_config(), mesh_shape, _batch()), single_device)


def test_gradient_caching_equals_plain_gradients(single_device):
    cached = _loss_and_grads(_config(grad_cache_chunk_size=4), (1, 1, 1), _batch())
    _assert_close(cached, single_device)
    sharded = _loss_and_grads(_config(grad_cache_chunk_size=8), (8, 1, 1), _batch())
    _assert_close(sharded, single_device)


def _reference_loss_and_grads(config, params, batch):
    """jax.value_and_grad of the objective over the whole batch, written without training/step.py."""
    model = EmbeddingModel(model_config(config))

    def loss(params):
        embeddings = {k: model.apply({"params": params[ENCODER]}, batch[k])
                      for k in ("query", "positive", "negative")}
        head = {k: v for k, v in params.items() if k != ENCODER}
        return objective(config.loss, embeddings, batch, head)

    return jax.jit(jax.value_and_grad(loss, has_aux=True))(params)  # jitted: eager op-by-op is slow


def test_accumulation_averages_independent_micro_batches():
    batch = _batch()
    accumulated = _loss_and_grads(_config(grad_accumulation_steps=2), (1, 1, 1), batch)
    config = _config()
    _, state = _setup(config, (1, 1, 1))
    params = jax.device_get(state["params"])
    # Micro-batch m holds examples m, m + 2, m + 4, ... (strided, see split_examples).
    halves = [jax.device_get(_reference_loss_and_grads(config, params,
                                                       {k: v[m::2] for k, v in batch.items()}))
              for m in range(2)]
    want = jax.tree.map(lambda a, b: (a + b) / 2, halves[0], halves[1])
    _assert_close(accumulated, want)
    # Not the loss of the whole batch: each example's negatives are its micro-batch only.
    whole, _ = _reference_loss_and_grads(config, params, batch)
    assert abs(float(accumulated[0][0]) - float(whole[0])) > 1e-3


def test_train_step_updates_identically_on_every_mesh():
    results = []
    for mesh_shape in [(1, 1, 1), (4, 2, 1)]:
        config = _config()
        # Adam divides by the gradient's size: with a tiny eps an entry whose gradient is float32
        # noise could move by the whole learning rate. A larger eps keeps noise as noise.
        config.optimizer.eps = 1e-3
        trainer, state = _setup(config, mesh_shape)
        batch = trainer.global_batch(_batch())
        for _ in range(2):
            state, metrics = trainer.train_step(state, batch)
        results.append(jax.device_get((state, metrics)))
    (state_a, metrics_a), (state_b, metrics_b) = results
    assert state_a["step"] == 2 and metrics_a["grad_norm"] > 0
    np.testing.assert_allclose(metrics_a["loss"], metrics_b["loss"], rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), state_a["params"],
                 state_b["params"])


@pytest.mark.parametrize("remat", ["none", "full"])
def test_rematerialised_blocks_give_the_same_gradients(single_device, remat):
    """The reference keeps only the weight products ("matmuls", the default)."""
    config = _config()
    assert config.model.remat == "matmuls"
    config.model.remat = remat
    _assert_close(_loss_and_grads(config, (1, 1, 1), _batch()), single_device)


def test_bfloat16_compute_keeps_float32_master_parameters():
    config = _config()
    config.model.dtype = "bfloat16"
    trainer, state = _setup(config, (1, 1, 1))
    state, metrics = trainer.train_step(state, trainer.global_batch(_batch()))
    assert np.isfinite(metrics["loss"]) and metrics["grad_norm"] > 0
    assert {x.dtype for x in jax.tree.leaves(state["params"])} == {np.dtype("float32")}
