"""Orbax and sentence-transformers directories: round trips and errors that name the problem."""

import json

import jax
import numpy as np
import pytest

from embeddinggemma.checkpoint.loading import load_checkpoint
from embeddinggemma.checkpoint.orbax_io import save_orbax
from embeddinggemma.checkpoint.sentence_transformers import (
    EXPORT_METADATA_FILE,
    export_sentence_transformers,
)
from embeddinggemma.prompts import DEFAULT_PROMPTS


def _assert_same(a, b):
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(a), jax.device_get(b))


@pytest.fixture
def st_dir(tmp_path, tiny_config, tiny_params, tiny_tokenizer_path):
    return export_sentence_transformers(tmp_path / "st", tiny_config, tiny_params,
                                        tiny_tokenizer_path, {"query": "q: ", "document": "d: "})


def test_sentence_transformers_round_trip(st_dir, tiny_config, tiny_params):
    assert tiny_config.matryoshka_dims == (64, 32, 16)  # not a guess from the width
    loaded = load_checkpoint(st_dir)
    assert loaded.config == tiny_config
    _assert_same(loaded.params, tiny_params)
    assert loaded.prompts == {"query": "q: ", "document": "d: "}


def test_a_directory_we_did_not_write_loads_as_the_release_does(st_dir, tiny_config):
    (st_dir / EXPORT_METADATA_FILE).unlink()
    loaded = load_checkpoint(st_dir)
    # The release states no Matryoshka dims: the paper's, within the output width.
    assert loaded.config == tiny_config.replace(matryoshka_dims=(64,))
    assert loaded.prompts["query"] == "q: "
    assert loaded.prompts["STS"] == DEFAULT_PROMPTS["STS"]  # defaults fill what the file lacks


def test_orbax_round_trip(tmp_path, tiny_config, tiny_params, tiny_tokenizer_path):
    save_orbax(tmp_path / "ckpt", tiny_config, tiny_params, tiny_tokenizer_path, DEFAULT_PROMPTS)
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert loaded.config == tiny_config
    _assert_same(loaded.params, tiny_params)
    assert loaded.prompts == DEFAULT_PROMPTS
    with pytest.raises(FileExistsError, match="already holds .*overwrite=True"):
        save_orbax(tmp_path / "ckpt", tiny_config, tiny_params, tiny_tokenizer_path, {})


def test_missing_files_are_named(st_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="not found: .*nowhere"):
        load_checkpoint(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="neither an Orbax checkpoint"):
        load_checkpoint(tmp_path / "empty")
    (st_dir / "3_Dense" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="3_Dense/model.safetensors"):
        load_checkpoint(st_dir)


def test_mismatched_config_names_the_tensors(st_dir):
    config = json.loads((st_dir / "config.json").read_text())
    config["intermediate_size"] = 96
    (st_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"mlp.gate_proj.weight has shape \[128, 64\], expected \[96, 64\]"):
        load_checkpoint(st_dir)


@pytest.mark.parametrize("value", [False, None])
def test_a_causal_encoder_config_is_refused(st_dir, value):
    config = json.loads((st_dir / "config.json").read_text())
    assert config["use_bidirectional_attention"] is True  # as exported
    config["use_bidirectional_attention"] = value
    (st_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"st/config.json: use_bidirectional_attention is (False|None)"):
        load_checkpoint(st_dir)


def test_unsupported_head_is_refused(st_dir):
    dense = st_dir / "2_Dense" / "config.json"
    dense.write_text(json.dumps({**json.loads(dense.read_text()), "bias": True}))
    with pytest.raises(ValueError, match="2_Dense/config.json: only bias-free"):
        load_checkpoint(st_dir)


def test_a_plain_hugging_face_gemma3_directory_is_named(st_dir, tmp_path):
    decoder = tmp_path / "gemma-3-decoder"
    decoder.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.model"):
        (decoder / name).write_bytes((st_dir / name).read_bytes())
    with pytest.raises(ValueError, match=r"gemma-3-decoder is a Hugging Face Gemma 3 checkpoint .*no "
                                         r"modules.json.*a decoder, not an embedding model"):
        load_checkpoint(decoder)


@pytest.mark.parametrize("content, message", [
    ("{not json", r"embeddinggemma.json: invalid JSON at line 1"),
    ('{"format_version": 1, "prompts": {}}', r"embeddinggemma.json: .*'config'"),
    ('{"format_version": 1, "config": {"transformer": {}}, "prompts": {}}',
     r"embeddinggemma.json: .*config"),
    ('{"format_version": 1, "config": CONFIG, "prompts": {"query": 5}}', r"embeddinggemma.json: .*prompts"),
])
def test_a_corrupt_orbax_metadata_file_is_named(tmp_path, tiny_config, tiny_params, tiny_tokenizer_path,
                                                content, message):
    ckpt = save_orbax(tmp_path / "ckpt", tiny_config, tiny_params, tiny_tokenizer_path, DEFAULT_PROMPTS)
    config = json.loads((ckpt / "embeddinggemma.json").read_text())["config"]
    (ckpt / "embeddinggemma.json").write_text(content.replace("CONFIG", json.dumps(config)))
    with pytest.raises(ValueError, match=message):
        load_checkpoint(ckpt)


@pytest.mark.parametrize("name", ["modules.json", "config.json", "1_Pooling/config.json",
                                  "config_sentence_transformers.json", EXPORT_METADATA_FILE])
def test_a_corrupt_sentence_transformers_file_is_named(st_dir, name):
    (st_dir / name).write_text('{"truncated": ')
    with pytest.raises(ValueError, match=rf"{name}: invalid JSON at line 1"):
        load_checkpoint(st_dir)


def test_export_metadata_out_of_range_is_named(st_dir):
    metadata = {"format_version": 1, "matryoshka_dims": [64, 999]}
    (st_dir / EXPORT_METADATA_FILE).write_text(json.dumps(metadata))
    with pytest.raises(ValueError, match=rf"{EXPORT_METADATA_FILE}: matryoshka_dims \[64, 999\] is not "
                                         r"a list of widths in 1..64"):
        load_checkpoint(st_dir)
