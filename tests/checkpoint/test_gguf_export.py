"""GGUF export: read back by the `gguf` package, every tensor dequantises to the checkpoint's (f32
exactly, f16 rounded, q8_0/q4_0 to this codebase's fake-quantised weights), metadata and vocabulary
as llama.cpp's gemma-embedding reads them, and refusals that leave nothing."""

import gguf
import jax
import numpy as np
import pytest
import sentencepiece as spm

from embeddinggemma.checkpoint.gguf_export import ARCHITECTURE, EXPORT_KEY, check_exportable, export_gguf
from embeddinggemma.checkpoint.hf_gemma3 import transformer_to_hf
from embeddinggemma.checkpoint.orbax_io import save_orbax
from embeddinggemma.cli.export import main
from embeddinggemma.model.config import layer_pattern
from embeddinggemma.model.layout import embedder_layout
from embeddinggemma.quantization import quantize_params


@pytest.fixture(scope="module")
def config(tiny_config):
    """The tiny model as llama.cpp assumes it: five local layers per global, scale 1/sqrt(head_dim)."""
    t = tiny_config.transformer
    return tiny_config.replace(layer_types=layer_pattern(t.num_layers, 5),
                               query_pre_attn_scalar=float(t.head_dim))


def _fields(reader) -> dict:
    return {name: field.contents() for name, field in reader.fields.items()}


def _expected(config, params) -> dict[str, np.ndarray]:
    """GGUF name -> float32 tensor, computed through the Hugging Face mapping and numpy here."""
    mapping = {"embed_tokens.weight": "token_embd.weight", "norm.weight": "output_norm.weight"}
    layer = {"input_layernorm": "attn_norm", "post_attention_layernorm": "post_attention_norm",
             "pre_feedforward_layernorm": "ffn_norm", "post_feedforward_layernorm": "post_ffw_norm",
             "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
             "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down"}
    out = {}
    for hf, w in transformer_to_hf(jax.device_get(params["transformer"]), config.transformer).items():
        if hf in mapping:
            name = mapping[hf]
        else:
            _, i, rest = hf.split(".", 2)
            name = f"blk.{i}.{layer[rest.removesuffix('.weight')]}.weight"
        out[name] = w + 1.0 if name.endswith("norm.weight") else w
    out["dense_2.weight"] = np.asarray(params["projection_0"]).T
    out["dense_3.weight"] = np.asarray(params["projection_1"]).T
    return out


@pytest.mark.parametrize("gguf_type", ["f32", "f16", "q8_0", "q4_0"])
def test_every_tensor_reads_back_as_the_checkpoint_computes(tmp_path, config, tiny_params,
                                                             tiny_tokenizer_path, gguf_type):
    path = export_gguf(tmp_path / "m.gguf", config, tiny_params, tiny_tokenizer_path, gguf_type)
    reader = gguf.GGUFReader(path)
    scheme = {"q8_0": "int8-block", "q4_0": "int4-block"}.get(gguf_type)
    params = tiny_params if scheme is None else quantize_params(tiny_params, scheme, embedder_layout(config))
    expected = _expected(config, params)
    assert sorted(t.name for t in reader.tensors) == sorted(expected)
    for tensor in reader.tensors:
        got = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        want = expected[tensor.name].astype(np.float32)
        if want.ndim == 1:
            assert tensor.tensor_type == gguf.GGMLQuantizationType.F32, tensor.name
        else:
            assert tensor.tensor_type == gguf.GGMLQuantizationType[gguf_type.upper()], tensor.name
            if gguf_type == "f16":
                want = want.astype(np.float16).astype(np.float32)
        np.testing.assert_array_equal(got.reshape(want.shape), want, err_msg=tensor.name)


def test_metadata_and_vocabulary_are_llama_cpps(tmp_path, config, tiny_params, tiny_tokenizer_path):
    path = export_gguf(tmp_path / "m.gguf", config, tiny_params, tiny_tokenizer_path, "q8_0")
    fields = _fields(gguf.GGUFReader(path))
    t, arch = config.transformer, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.GEMMA_EMBEDDING]
    assert ARCHITECTURE == arch and fields["general.architecture"] == arch
    keys = gguf.Keys.LLM
    assert fields[keys.POOLING_TYPE.format(arch=arch)] == gguf.PoolingType.MEAN
    assert fields[keys.EMBEDDING_LENGTH.format(arch=arch)] == t.embed_dim
    assert fields[keys.BLOCK_COUNT.format(arch=arch)] == t.num_layers
    assert fields[keys.FEED_FORWARD_LENGTH.format(arch=arch)] == t.mlp_dim
    assert fields[keys.CONTEXT_LENGTH.format(arch=arch)] == t.max_length
    assert fields[gguf.Keys.Attention.HEAD_COUNT.format(arch=arch)] == t.num_heads
    assert fields[gguf.Keys.Attention.HEAD_COUNT_KV.format(arch=arch)] == t.num_kv_heads
    assert fields[gguf.Keys.Attention.KEY_LENGTH.format(arch=arch)] == t.head_dim
    assert fields[gguf.Keys.Attention.SLIDING_WINDOW.format(arch=arch)] == t.sliding_window
    assert fields[gguf.Keys.Rope.FREQ_BASE.format(arch=arch)] == pytest.approx(t.global_rope_base)
    assert fields[gguf.Keys.Attention.LAYERNORM_RMS_EPS.format(arch=arch)] == pytest.approx(t.norm_eps)
    assert fields["general.file_type"] == gguf.LlamaFileType.MOSTLY_Q8_0
    dims = (t.embed_dim, *config.projection_dims)
    for i, dense in enumerate(["dense_2", "dense_3"]):
        assert fields[keys.DENSE_FEAT_IN_SIZE.format(arch=arch, dense=dense)] == dims[i]
        assert fields[keys.DENSE_FEAT_OUT_SIZE.format(arch=arch, dense=dense)] == dims[i + 1]
    tok = gguf.Keys.Tokenizer
    sp = spm.SentencePieceProcessor(model_file=str(tiny_tokenizer_path))
    pieces = [sp.id_to_piece(i) for i in range(sp.vocab_size())]
    assert fields[tok.MODEL] == "llama"
    assert fields[tok.LIST][:len(pieces)] == pieces
    assert fields[tok.LIST][len(pieces):] == [f"[PAD{i}]" for i in range(len(pieces), t.vocab_size)]
    np.testing.assert_allclose(fields[tok.SCORES][:len(pieces)],
                               [sp.get_score(i) for i in range(sp.vocab_size())])
    types = fields[tok.TOKEN_TYPE]
    assert types[sp.unk_id()] == gguf.TokenType.UNKNOWN and types[t.bos_id] == gguf.TokenType.CONTROL
    assert types[len(pieces)] == gguf.TokenType.UNUSED
    assert (fields[tok.BOS_ID], fields[tok.EOS_ID], fields[tok.PAD_ID], fields[tok.UNK_ID]) == \
        (sp.bos_id(), sp.eos_id(), sp.pad_id(), sp.unk_id())
    assert fields[tok.ADD_BOS] is True and fields[tok.ADD_EOS] is True
    assert fields[EXPORT_KEY] == 1


def test_models_llama_cpp_would_run_differently_are_refused(tiny_config):
    with pytest.raises(ValueError, match="layer_types"):
        check_exportable(tiny_config)  # two local layers per global
    with pytest.raises(ValueError, match="query_pre_attn_scalar"):
        check_exportable(tiny_config.replace(layer_types=layer_pattern(3, 5)))  # 256, head_dim 16
    with pytest.raises(ValueError, match="pooling"):
        check_exportable(tiny_config.replace(layer_types=layer_pattern(3, 5), query_pre_attn_scalar=16.0,
                                             pooling="attention"))


def test_the_command_refuses_a_bad_type_and_files_not_its_own(tmp_path, config, tiny_params,
                                                              tiny_tokenizer_path, capsys):
    ckpt = save_orbax(tmp_path / "ckpt", config, tiny_params, tiny_tokenizer_path, {})
    out = tmp_path / "m.gguf"
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(ckpt), "--out", str(out), "--format", "gguf", "--gguf-type", "q5_k"])
    assert not out.exists()
    args = ["--checkpoint", str(ckpt), "--out", str(out), "--format", "gguf", "--gguf-type", "q4_0"]
    assert main(args) == 0
    first = out.read_bytes()
    assert main(args) == 2 and "--overwrite" in capsys.readouterr().err
    assert main([*args[:-1], "f16", "--overwrite"]) == 0 and out.read_bytes() != first
    users = tmp_path / "users.gguf"
    users.write_bytes(b"GGUF not ours")
    assert main([*args[:3], str(users), *args[4:], "--overwrite"]) == 2
    assert users.read_bytes() == b"GGUF not ours"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "m.gguf", "users.gguf"]


@pytest.mark.release
def test_the_release_exports_to_q8_0(release_dir, tmp_path):
    from embeddinggemma.checkpoint.loading import load_checkpoint
    from embeddinggemma.quantization import fake_quantize, grid_of

    out = tmp_path / "release-q8_0.gguf"
    assert main(["--checkpoint", str(release_dir), "--out", str(out), "--format", "gguf",
                 "--gguf-type", "q8_0"]) == 0
    release = load_checkpoint(release_dir)
    t = release.config.transformer
    reader = gguf.GGUFReader(out)
    by_name = {tensor.name: tensor for tensor in reader.tensors}
    per_layer = ["attn_norm", "post_attention_norm", "ffn_norm", "post_ffw_norm", "attn_q_norm",
                 "attn_k_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]
    assert sorted(by_name) == sorted(["token_embd.weight", "output_norm.weight", "dense_2.weight",
                                      "dense_3.weight"] + [f"blk.{i}.{n}.weight" for i in range(t.num_layers)
                                                           for n in per_layer])
    layout = embedder_layout(release.config)
    query = layout["transformer"]["layers"]["attn"]["query"].per_layer()
    checks = {
        "blk.5.attn_q.weight": (release.params["transformer"]["layers"]["attn"]["query"][5], query),
        "dense_2.weight": (release.params["projection_0"], layout["projection_0"]),
    }
    for name, (w, param) in checks.items():
        want = np.asarray(fake_quantize(w, grid_of("int8-block", param), param.contraction_axes))
        want = want.reshape(-1, want.shape[-1]).T if name.startswith("dense") else \
            want.reshape(want.shape[0], -1).T  # [D, heads, head_dim] -> [heads * head_dim, D]
        got = gguf.quants.dequantize(by_name[name].data, by_name[name].tensor_type)
        np.testing.assert_array_equal(got, want, err_msg=name)
    norm = by_name["output_norm.weight"]
    assert norm.tensor_type == gguf.GGMLQuantizationType.F32
    np.testing.assert_array_equal(np.asarray(norm.data),
                                  np.asarray(release.params["transformer"]["final_norm"]["scale"]) + 1.0)
    assert _fields(reader)[gguf.Keys.Tokenizer.LIST][:5] == ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]


def test_a_quantised_checkpoint_exports_only_to_its_own_grid(tmp_path, config, tiny_params,
                                                             tiny_tokenizer_path, capsys):
    """An int4 checkpoint written as q8_0 would carry int4 error under an 8-bit label."""
    int4 = save_orbax(tmp_path / "int4", config, tiny_params, tiny_tokenizer_path, {},
                      quantization="int4-block")
    args = ["--checkpoint", str(int4), "--format", "gguf", "--gguf-type"]
    assert main([*args, "q8_0", "--out", str(tmp_path / "q8.gguf")]) == 2
    err = capsys.readouterr().err
    assert "int4-block" in err and "q8_0" in err and not (tmp_path / "q8.gguf").exists()
    assert main([*args, "q4_0", "--out", str(tmp_path / "q4.gguf")]) == 0
