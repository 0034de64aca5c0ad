"""ONNX export: ONNX Runtime runs every type of the tiny model as the JAX model computes (f16 with
its matrices rounded, q8/q4 with this codebase's fake-quantised weights), a quantised checkpoint
ships its own codes, transformers.js in Node tokenises and embeds as ONNX Runtime and SentencePiece
do, refusals leave nothing; and (release) the released model's export against the golden vectors."""

import json
import shutil
import subprocess
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed (pip install -e '.[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install -e '.[onnx]')")

from embeddinggemma.checkpoint.onnx_export import (  # noqa: E402
    MODEL_FILES,
    OUTPUTS,
    export_onnx,
)
from embeddinggemma.checkpoint.orbax_io import save_orbax  # noqa: E402
from embeddinggemma.cli.export import main  # noqa: E402
from embeddinggemma.model import EmbeddingModel  # noqa: E402
from embeddinggemma.model.layout import embedder_layout  # noqa: E402
from embeddinggemma.model.masks import encoder_masks, padding_mask  # noqa: E402
from embeddinggemma.model.transformer import Transformer  # noqa: E402
from embeddinggemma.quantization import quantize_params, store_params, unpack_int4  # noqa: E402
from embeddinggemma.tokenizer import Tokenizer  # noqa: E402

PROMPTS = {"query": "task: search result | query: ", "document": "title: none | text: "}
JS_DIR = Path(__file__).parents[1] / "js"
# Prompted texts in several scripts (Latin, Cyrillic, CJK, Arabic, Devanagari, Greek).
TEXTS = [PROMPTS["query"] + "Which planet is known as the Red Planet?",
         PROMPTS["document"] + "Москва — столица России, крупнейший город страны.",
         PROMPTS["query"] + "東京は日本の首都です。",
         PROMPTS["document"] + "القاهرة هي عاصمة مصر وأكبر مدنها.",
         PROMPTS["query"] + "नई दिल्ली भारत की राजधानी है।",
         PROMPTS["document"] + "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας."]


@pytest.fixture(scope="module")
def orbax_dir(tmp_path_factory, tiny_config, tiny_params, tiny_tokenizer_path):
    return save_orbax(tmp_path_factory.mktemp("onnx") / "orbax", tiny_config, tiny_params,
                      tiny_tokenizer_path, PROMPTS)


def _session(directory: Path, onnx_type: str):
    return ort.InferenceSession(str(directory / "onnx" / MODEL_FILES[onnx_type]),
                                providers=["CPUExecutionProvider"])


def _batch(tokenizer_path, texts, max_length=128):
    """Right-padded ids and mask, int64 [B, T], as a tokenizer with padding gives them."""
    ids = Tokenizer(tokenizer_path).encode(texts, max_length)
    width = max(map(len, ids))
    padded = np.array([row + [0] * (width - len(row)) for row in ids], np.int64)
    return padded, (padded != 0).astype(np.int64)


def _reference_params(params, config, onnx_type):
    """The weights each type should compute with, made here by the quantiser and numpy."""
    if onnx_type in ("q8", "q4"):
        return quantize_params(params, {"q8": "int8-block", "q4": "int4-block"}[onnx_type],
                               embedder_layout(config))
    if onnx_type == "f16":  # matrices rounded to float16; norm vectors stay float32
        return jax.tree.map(lambda w, layout: w if layout.is_vector
                            else np.asarray(w).astype(np.float16).astype(np.float32),
                            dict(params), dict(embedder_layout(config)))
    return params


@pytest.mark.parametrize("onnx_type", ["f32", "f16", "q8", "q4"])
def test_onnx_runtime_embeds_as_the_jax_model(orbax_dir, tmp_path, tiny_config, tiny_params,
                                              tiny_tokenizer_path, onnx_type):
    out = tmp_path / "onnx"
    assert main(["--checkpoint", str(orbax_dir), "--out", str(out), "--format", "onnx",
                 "--onnx-type", onnx_type]) == 0
    session = _session(out, onnx_type)
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask"]
    assert [o.name for o in session.get_outputs()] == list(OUTPUTS)
    # Lengths on both sides of the local window (8 tokens: 4 each way), one batch, right-padded.
    texts = ["a", "the licence " * 2, "You may convey verbatim copies of the Program's source code " * 2]
    ids, mask = _batch(tiny_tokenizer_path, texts)
    assert ids.shape[1] > 2 * tiny_config.transformer.sliding_window
    hidden, embeddings = session.run(None, {"input_ids": ids, "attention_mask": mask})

    params = _reference_params(tiny_params, tiny_config, onnx_type)
    expected = np.asarray(EmbeddingModel(tiny_config).apply({"params": params}, jnp.asarray(ids, jnp.int32)))
    assert embeddings.shape == expected.shape == (3, tiny_config.projection_dims[-1])
    np.testing.assert_allclose(embeddings, expected, atol=2e-6)
    tokens = jnp.asarray(ids, jnp.int32)
    masks = encoder_masks(padding_mask(tokens, tiny_config.transformer.pad_id), tiny_config.transformer)
    expected_hidden = Transformer(tiny_config.transformer).apply({"params": params["transformer"]}, tokens,
                                                                 masks)
    real = mask.astype(bool)
    np.testing.assert_allclose(hidden[real], np.asarray(expected_hidden)[real], atol=2e-5, rtol=1e-5)

    config = json.loads((out / "config.json").read_text())
    js_dtype = {"f32": "fp32", "f16": "fp16"}.get(onnx_type, onnx_type)
    assert config["transformers.js_config"]["dtype"] == js_dtype
    st_config = json.loads((out / "config_sentence_transformers.json").read_text())
    assert st_config["prompts"] == PROMPTS
    assert st_config["matryoshka_dims"] == list(tiny_config.matryoshka_dims)
    assert sorted(p.name for p in (out / "onnx").iterdir()) == [MODEL_FILES[onnx_type]]


def _initializers(model_path: Path) -> dict[str, np.ndarray]:
    model = onnx.load(str(model_path))
    return {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}


@pytest.mark.parametrize("scheme,onnx_type", [("int8-block", "q8"), ("int4-block", "q4")])
def test_a_quantised_checkpoint_ships_its_own_codes(tmp_path, tiny_config, tiny_params, tiny_tokenizer_path,
                                                    scheme, onnx_type):
    stored = store_params(tiny_params, scheme, embedder_layout(tiny_config))
    checkpoint = save_orbax(tmp_path / "quantised", tiny_config, tiny_params, tiny_tokenizer_path, PROMPTS,
                            quantization=scheme)
    out = tmp_path / "onnx"
    assert main(["--checkpoint", str(checkpoint), "--out", str(out), "--format", "onnx",
                 "--onnx-type", onnx_type]) == 0
    found = _initializers(out / "onnx" / MODEL_FILES[onnx_type])
    bits = 4 if onnx_type == "q4" else 8

    def signed(name: str, rows: int) -> np.ndarray:
        data = next(v for k, v in found.items() if k.startswith(name)).reshape(rows, -1)
        if bits == 8:
            return data.astype(np.int16) - 128
        return np.stack([data & 0x0F, data >> 4], axis=-1).reshape(rows, -1).astype(np.int16) - 8

    def codes(leaf) -> np.ndarray:
        c = unpack_int4(leaf["codes"]) if bits == 4 else np.asarray(leaf["codes"])
        return c.astype(np.int16)

    table = stored["transformer"]["embedding"]
    vocab = tiny_config.transformer.vocab_size
    np.testing.assert_array_equal(signed("embedding_q", vocab), codes(table).reshape(vocab, -1))
    np.testing.assert_array_equal(next(v for k, v in found.items() if k.startswith("embedding_scales")),
                                  np.asarray(table["scales"], np.float32))
    # The first layer's query [D, N, H] contracts D: one row of blocks per (head, head_dim).
    query = jax.tree.map(lambda x: x[0], stored["transformer"]["layers"]["attn"]["query"])
    rows = query["scales"].shape[0] * query["scales"].shape[1]
    np.testing.assert_array_equal(signed("query_q", rows), codes(query).reshape(rows, -1))
    # Onto the other grid it would carry both rounding errors: refused, nothing written.
    other = {"q8": "q4", "q4": "q8"}[onnx_type]
    assert main(["--checkpoint", str(checkpoint), "--out", str(tmp_path / "other"), "--format", "onnx",
                 "--onnx-type", other]) == 2
    assert not (tmp_path / "other").exists()


def test_out_is_refused_unless_ours_and_overwrite(orbax_dir, tmp_path, capsys):
    users = tmp_path / "mine"
    users.mkdir()
    (users / "notes.txt").write_text("keep")
    args = ["--checkpoint", str(orbax_dir), "--format", "onnx", "--onnx-type", "q4"]
    assert main(args + ["--out", str(users), "--overwrite"]) == 2
    assert "holds no" in capsys.readouterr().err
    assert sorted(p.name for p in users.iterdir()) == ["notes.txt"]

    out = tmp_path / "onnx"
    assert main(args + ["--out", str(out)]) == 0
    assert main(["--checkpoint", str(orbax_dir), "--format", "onnx", "--out", str(out)]) == 2
    assert "already holds" in capsys.readouterr().err
    assert (out / "onnx" / MODEL_FILES["q4"]).is_file()
    assert main(["--checkpoint", str(orbax_dir), "--format", "onnx", "--out", str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in (out / "onnx").iterdir()) == [MODEL_FILES["f32"]]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("change,message", [({"onnx_type": "q2"}, "Unknown ONNX type"),
                                            ({"pooling": "attention"}, "pools by")])
def test_bad_inputs_write_nothing(tmp_path, tiny_config, tiny_params, tiny_tokenizer_path, change, message):
    config = tiny_config.replace(pooling=change.get("pooling", tiny_config.pooling))
    params = dict(tiny_params)
    if config.pooling == "attention":
        params["attention_pool"] = {"query": np.zeros(tiny_config.transformer.embed_dim, np.float32)}
    with pytest.raises(ValueError, match=message):
        export_onnx(tmp_path / "out", config, params, tiny_tokenizer_path, PROMPTS,
                    onnx_type=change.get("onnx_type", "f32"))
    assert list(tmp_path.iterdir()) == []


def _node_or_skip() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed; transformers.js cannot be checked")
    if not (JS_DIR / "node_modules" / "@huggingface" / "transformers").is_dir():
        pytest.fail(f"transformers.js is not installed under {JS_DIR}: run `make js-deps`", pytrace=False)
    return node


def run_transformers_js(directory: Path, texts: list[str], tmp_path: Path) -> dict:
    """tests/js/embed.mjs on an export: ids, sentence_embedding, the pipeline's mean_pooled."""
    node = _node_or_skip()
    texts_file = tmp_path / "texts.json"
    texts_file.write_text(json.dumps(texts, ensure_ascii=False))
    done = subprocess.run([node, str(JS_DIR / "embed.mjs"), str(directory), str(texts_file)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_against_onnx_runtime(directory: Path, onnx_type: str, tokenizer_path: Path, texts: list[str],
                               js: dict, max_length: int) -> float:
    """Asserts transformers.js's ids equal SentencePiece's and its vectors ONNX Runtime's; returns
    the largest absolute difference of the sentence embeddings."""
    assert js["ids"] == Tokenizer(tokenizer_path).encode(texts, max_length)
    ids, mask = _batch(tokenizer_path, texts, max_length)
    hidden, embeddings = _session(directory, onnx_type).run(None, {"input_ids": ids, "attention_mask": mask})
    np.testing.assert_allclose(np.array(js["sentence_embedding"]), embeddings, atol=1e-5)
    weights = mask[..., None].astype(np.float32)
    mean = (hidden * weights).sum(1) / weights.sum(1)
    np.testing.assert_allclose(np.array(js["mean_pooled"]), mean, atol=1e-4, rtol=1e-4)
    return float(np.abs(np.array(js["sentence_embedding"]) - embeddings).max())


@pytest.mark.slow
@pytest.mark.parametrize("onnx_type", ["f32", "f16", "q8", "q4"])
def test_transformers_js_tokenises_and_embeds_as_onnx_runtime(orbax_dir, tmp_path, tiny_tokenizer_path,
                                                              onnx_type):
    _node_or_skip()
    out = tmp_path / "onnx-export"
    assert main(["--checkpoint", str(orbax_dir), "--out", str(out), "--format", "onnx",
                 "--onnx-type", onnx_type]) == 0
    js = run_transformers_js(out, TEXTS, tmp_path)
    check_against_onnx_runtime(out, onnx_type, tiny_tokenizer_path, TEXTS, js, max_length=128)


def test_a_matrix_off_the_block_grid_is_refused_by_name(tmp_path, tiny_config, tiny_tokenizer_path):
    """A feed-forward width of 48 is not a multiple of the 32-value blocks: q4 refuses, naming it."""
    from embeddinggemma.model import init_params

    config = tiny_config.replace(mlp_dim=48)
    params = jax.device_get(init_params(config, jax.random.PRNGKey(0)))
    with pytest.raises(ValueError, match="down: .*not a multiple of the block of 32.*--onnx-type q4"):
        export_onnx(tmp_path / "out", config, params, tiny_tokenizer_path, PROMPTS, onnx_type="q4")
    assert list(tmp_path.iterdir()) == []
    assert export_onnx(tmp_path / "out", config, params, tiny_tokenizer_path, PROMPTS, "f32").is_dir()
