"""The GGUF importer against transformers' Gemma 3 on the same tiny weights, and each of llama.cpp's
conventions on its own."""

import dataclasses

import numpy as np
import pytest

from embeddinggemma.checkpoint.decoders import load_decoder
from embeddinggemma.checkpoint.gguf_gemma3 import read_gguf
from embeddinggemma.checkpoint.vocabulary import read_model_proto
from embeddinggemma.evaluation.perplexity import decoder_hidden, decoder_logits
from embeddinggemma.model.config import GLOBAL, LOCAL
from tests.checkpoint.tiny_gemma3 import (
    GLOBAL_BASE,
    LOCAL_BASE,
    WINDOW,
    hf_tiny_decoder,
    load_into,
    write_gguf,
)

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def pieces(tiny_tokenizer_path):
    return [p.piece for p in read_model_proto(tiny_tokenizer_path).pieces]


@pytest.fixture(scope="module")
def hf_model(pieces):
    return hf_tiny_decoder(len(pieces))


@pytest.fixture(scope="module")
def written(tmp_path_factory, hf_model, pieces):
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    expected = write_gguf(path, hf_model, pieces)
    return path, expected


@pytest.fixture(scope="module")
def decoder(written, tiny_tokenizer_path):
    return load_decoder(written[0], tiny_tokenizer_path)


def test_logits_match_transformers_on_the_same_weights(decoder, written, hf_model):
    # 16 tokens cross the local window of 4, so the window, both RoPE bases and the layer pattern
    # all show in the output; the reference runs on the dequantised embedding, as ours does.
    reference = load_into(hf_model, written[1])
    tokens = np.random.default_rng(1).integers(4, decoder.config.vocab_size, size=(2, 16))
    tokens[:, 0] = 2
    with torch.no_grad():
        want = reference(torch.from_numpy(tokens)).logits.numpy()
    got = np.asarray(decoder_logits(decoder, decoder_hidden(decoder, tokens)))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_norm_weights_lose_the_one_llama_cpp_adds(decoder, written):
    expected = written[1]
    np.testing.assert_array_equal(decoder.params["final_norm"]["scale"], expected["norm.weight"])
    np.testing.assert_array_equal(decoder.params["layers"]["attn"]["query_norm"]["scale"][2],
                                  expected["layers.2.self_attn.q_norm.weight"])


def test_query_and_key_are_not_permuted(decoder, written):
    # Ours is [D, N, H]: the transposed [N * H, D] Hugging Face matrix, rows in their stored order.
    c = decoder.config
    q = written[1]["layers.1.self_attn.q_proj.weight"]
    k = written[1]["layers.1.self_attn.k_proj.weight"]
    np.testing.assert_array_equal(decoder.params["layers"]["attn"]["query"][1],
                                  q.T.reshape(c.embed_dim, c.num_heads, c.head_dim))
    np.testing.assert_array_equal(decoder.params["layers"]["attn"]["key"][1],
                                  k.T.reshape(c.embed_dim, c.num_kv_heads, c.head_dim))


def test_embedding_is_read_unscaled(decoder, written):
    np.testing.assert_array_equal(decoder.params["embedding"], written[1]["embed_tokens.weight"])


def test_ffn_norm_is_the_pre_feed_forward_norm(decoder, written):
    layers = decoder.params["layers"]
    np.testing.assert_array_equal(layers["pre_ffw_norm"]["scale"][3],
                                  written[1]["layers.3.pre_feedforward_layernorm.weight"])
    np.testing.assert_array_equal(layers["post_ffw_norm"]["scale"][3],
                                  written[1]["layers.3.post_feedforward_layernorm.weight"])


def test_rope_bases_window_and_pattern(decoder):
    c = decoder.config
    assert (c.local_rope_base, c.global_rope_base) == (LOCAL_BASE, GLOBAL_BASE)
    assert c.sliding_window == WINDOW
    assert c.layer_types == (LOCAL,) * 5 + (GLOBAL,)
    assert c.query_pre_attn_scalar == c.head_dim


def test_a_stated_local_rope_base_is_used(tmp_path, hf_model, pieces):
    path = tmp_path / "swa.gguf"
    write_gguf(path, hf_model, pieces, extra_metadata=[lambda w: w.add_rope_freq_base_swa(5000.0)])
    assert read_gguf(path)[0].local_rope_base == 5000.0


def test_vocabulary_length_is_checked_against_the_embedding_rows(tmp_path, hf_model, pieces):
    path = tmp_path / "short.gguf"
    write_gguf(path, hf_model, pieces[:-1])
    want = rf"{len(pieces) - 1} pieces but token_embd.weight has {len(pieces)} rows"
    with pytest.raises(ValueError, match=want):
        read_gguf(path)


def test_a_missing_field_is_named(tmp_path, hf_model, pieces):
    path = tmp_path / "nowindow.gguf"
    write_gguf(path, hf_model, pieces, skip_metadata=("attention.sliding_window",))
    with pytest.raises(ValueError, match="'gemma3.attention.sliding_window' is missing"):
        read_gguf(path)


def test_softcapping_is_refused(tmp_path, hf_model, pieces):
    path = tmp_path / "softcap.gguf"
    write_gguf(path, hf_model, pieces, extra_metadata=[lambda w: w.add_final_logit_softcapping(30.0)])
    with pytest.raises(ValueError, match="final_logit_softcapping=30.0 is not supported"):
        read_gguf(path)


def test_a_tokenizer_with_other_pieces_is_refused_naming_the_first_id(written, tmp_path,
                                                                       tiny_tokenizer_path):
    proto = read_model_proto(tiny_tokenizer_path)
    proto.pieces[57].piece = "\u2581different"
    other = tmp_path / "other.model"
    other.write_bytes(proto.SerializeToString())
    with pytest.raises(ValueError, match="differ first at id 57"):
        load_decoder(written[0], other)


def test_hugging_face_directories_single_and_sharded_load_the_same_decoder(tmp_path, decoder, written,
                                                                           hf_model, tiny_tokenizer_path):
    import shutil

    model = load_into(hf_model, written[1])
    for name, shard in (("single", "1GB"), ("sharded", "40KB")):
        model.save_pretrained(tmp_path / name, max_shard_size=shard)
        shutil.copyfile(tiny_tokenizer_path, tmp_path / name / "tokenizer.model")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    for name in ("single", "sharded"):
        loaded = load_decoder(tmp_path / name)
        assert dataclasses.replace(loaded.config, max_length=decoder.config.max_length,
                                   eos_id=decoder.config.eos_id) == decoder.config
        for got, want in zip(_leaves(loaded.params), _leaves(decoder.params), strict=True):
            np.testing.assert_array_equal(got, want)


def _leaves(tree):
    import jax

    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_the_first_layers_of_a_decoder_run_as_transformers_with_those_layers(decoder, written):
    from transformers import Gemma3ForCausalLM

    from embeddinggemma.checkpoint.decoders import keep_first_layers

    config = hf_tiny_decoder(decoder.config.vocab_size).config
    config.num_hidden_layers, config.layer_types = 3, config.layer_types[:3]
    reference = Gemma3ForCausalLM(config).eval()
    kept = {k: v for k, v in written[1].items()
            if not k.startswith("layers.") or int(k.split(".")[1]) < 3}
    load_into(reference, kept)
    tokens = np.random.default_rng(2).integers(4, decoder.config.vocab_size, size=(1, 12))
    with torch.no_grad():
        want = reference(torch.from_numpy(tokens)).logits.numpy()
    cut = keep_first_layers(decoder, 3)
    assert cut.config.layer_types == (LOCAL,) * 3
    np.testing.assert_allclose(np.asarray(decoder_logits(cut, decoder_hidden(cut, tokens))), want,
                               rtol=1e-4, atol=1e-4)


def test_a_saved_decoder_reads_back_and_scores_the_same(tmp_path, decoder, capsys):
    import json

    from embeddinggemma.checkpoint.decoders import save_decoder
    from embeddinggemma.cli import perplexity as perplexity_cli

    save_decoder(tmp_path / "saved", decoder.config, decoder.params, decoder.tokenizer_path)
    again = load_decoder(tmp_path / "saved")
    assert again.config == decoder.config
    for got, want in zip(_leaves(again.params), _leaves(decoder.params), strict=True):
        np.testing.assert_array_equal(got, want)
    text = tmp_path / "text.txt"
    text.write_text("The licensor grants you a copy of the work, with or without modifications.")
    assert perplexity_cli.main(["--checkpoint", str(tmp_path / "saved"), "--text", str(text),
                                "--max-tokens", "12"]) == 0
    printed = json.loads(capsys.readouterr().out)
    # The command's number is the mean of the per-token log-probabilities of the same tokens.
    from embeddinggemma.evaluation.perplexity import next_token_log_probs, text_tokens
    from embeddinggemma.tokenizer import Tokenizer

    ids = text_tokens(Tokenizer(decoder.tokenizer_path), text.read_text(), 12)
    assert printed["tokens"] == 12 and printed["predicted"] == 11
    assert printed["nll"] == pytest.approx(-next_token_log_probs(decoder, ids).mean(), rel=1e-6)


def test_the_perplexity_command_names_a_path_that_is_no_decoder(tmp_path, capsys):
    from embeddinggemma.cli import perplexity as perplexity_cli

    text = tmp_path / "text.txt"
    text.write_text("hello")
    assert perplexity_cli.main(["--checkpoint", str(tmp_path), "--text", str(text)]) == 2
    assert f"{tmp_path} is not a Gemma 3 decoder" in capsys.readouterr().err
