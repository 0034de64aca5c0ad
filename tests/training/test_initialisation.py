"""model.init: the choices, and a run started from a decoder checkpoint."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from embeddinggemma.checkpoint.decoders import save_decoder
from embeddinggemma.checkpoint.orbax_io import load_orbax_params
from embeddinggemma.errors import ConfigError
from embeddinggemma.model import init_params, tiny
from embeddinggemma.training.config import base_config
from embeddinggemma.training.embedding_config import init_choice, model_config
from embeddinggemma.training.initialisation import check_init_params, load_initial_encoder
from tests.training.conftest import run


def _model(init: str, checkpoint: str):
    config = base_config()
    config.model.init, config.model.init_checkpoint = init, checkpoint
    return config.model


@pytest.mark.parametrize("init,checkpoint,want", [
    ("", "", "random"), ("", "/ckpt", "embedder"), ("decoder", "/ckpt", "decoder"),
    ("embedder", "/ckpt", "embedder"), ("random", "", "random")])
def test_the_choice_and_its_default(init, checkpoint, want):
    assert init_choice(_model(init, checkpoint)) == want


@pytest.mark.parametrize("init,checkpoint,message", [
    ("decoder", "", "model.init='decoder' needs model.init_checkpoint"),
    ("random", "/ckpt", "model.init='random' but model.init_checkpoint='/ckpt'"),
    ("encoder", "/ckpt", "model.init='encoder'; choose one of random, embedder, decoder")])
def test_inconsistent_choices_are_named(init, checkpoint, message):
    with pytest.raises(ConfigError, match=message):
        init_choice(_model(init, checkpoint))


def _decoder_params(config, seed: int) -> dict:
    params = jax.device_get(init_params(config, jax.random.PRNGKey(seed)))["transformer"]
    rng = np.random.default_rng(seed)  # norms start at zero: random ones make a copy visible
    return jax.tree_util.tree_map_with_path(
        lambda path, x: rng.normal(0, 0.3, x.shape).astype(np.float32) if path[-1].key == "scale" else x,
        params)


@pytest.mark.slow  # the train command in a subprocess (one simulated device): about a minute
def test_a_run_from_a_decoder_starts_from_its_weights_with_a_fresh_head(tmp_path, train_command,
                                                                         tiny_tokenizer_path):
    decoder = _decoder_params(tiny(), seed=7)
    save_decoder(tmp_path / "decoder", tiny().transformer, decoder, tiny_tokenizer_path)
    # A zero learning rate keeps the first step's parameters: the export holds them.
    result = run(train_command(tmp_path / "run", "--config.model.init=decoder",
                               f"--config.model.init_checkpoint={tmp_path / 'decoder'}",
                               "--config.optimizer.learning_rate=0", "--config.optimizer.warmup_steps=1",
                               "--config.eval.every_steps=0", steps=2))
    assert result.returncode == 0, result.stderr[-3000:]
    exported = jax.device_get(load_orbax_params(tmp_path / "run" / "export"))
    flat_decoder = jax.tree_util.tree_leaves_with_path(decoder)
    flat_encoder = jax.tree_util.tree_leaves_with_path(exported["transformer"])
    assert [p for p, _ in flat_encoder] == [p for p, _ in flat_decoder]
    for (path, got), (_, want) in zip(flat_encoder, flat_decoder, strict=True):
        np.testing.assert_array_equal(got, want, err_msg=jax.tree_util.keystr(path))
    assert np.abs(exported["projection_0"]).max() > 0  # the head was initialised, not loaded
    assert (tmp_path / "run" / "export" / "tokenizer.model").read_bytes() == tiny_tokenizer_path.read_bytes()


def test_a_decoder_of_another_width_is_named(tiny_tokenizer_path):
    # What the loop checks before the first step: the start's subtrees against the model's shapes.
    wide = tiny(embed_dim=96)
    start = {"transformer": jax.eval_shape(lambda: _decoder_params(wide, seed=1))}
    model = jax.eval_shape(lambda: init_params(tiny(), jax.random.PRNGKey(0)))
    config = _model("decoder", "/decoders/wide")
    with pytest.raises(ConfigError, match=r"does not fit the configured model \(model.init='decoder'") as e:
        check_init_params(start, model, config)
    assert "['transformer']['embedding']: checkpoint (512, 96) vs model (512, 64)" in str(e.value)
    assert "projection" not in str(e.value)  # the head is the model's own, not expected from a decoder


def test_keep_layers_cuts_the_preset_and_the_start_alike(tmp_path, tiny_tokenizer_path):
    decoder = _decoder_params(tiny(), seed=3)
    save_decoder(tmp_path / "decoder", tiny().transformer, decoder, tiny_tokenizer_path)
    config = base_config()
    config.model.init, config.model.init_checkpoint = "decoder", str(tmp_path / "decoder")
    config.model.keep_layers = 2
    config.loss.matryoshka_dims = (64, 32)
    model = model_config(config)
    assert model.transformer.num_layers == 2
    assert model.transformer.layer_types == tiny().transformer.layer_types[:2]
    start = load_initial_encoder(config)
    abstract = jax.eval_shape(lambda: init_params(model, jax.random.PRNGKey(0)))
    check_init_params(start.params, abstract, config.model)  # the cut start fits the cut model
    for got, want in zip(jax.tree.leaves(start.params["transformer"]["layers"]),
                         jax.tree.leaves(decoder["layers"]), strict=True):
        np.testing.assert_array_equal(got, want[:2])
    np.testing.assert_array_equal(start.params["transformer"]["embedding"], decoder["embedding"])


def test_keep_layers_beyond_the_preset_is_named():
    config = base_config()
    config.model.preset, config.model.keep_layers = "gemma3_270m", 19
    config.loss.matryoshka_dims = (640, 128)
    want = r"model.keep_layers=19 is outside 1..18 \(model.preset='gemma3_270m'\)"
    with pytest.raises(ConfigError, match=want):
        model_config(config)
