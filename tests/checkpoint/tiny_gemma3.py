"""A tiny random Gemma 3 decoder in transformers (torch) and the same weights written as GGUF the way
llama.cpp's converter writes them, for tests of the importers against an independent forward pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SENTENCEPIECE_SPACE = "\u2581"
WINDOW = 4  # short, so a 16-token sequence crosses it
LOCAL_BASE, GLOBAL_BASE = 10_000.0, 1_000_000.0


def hf_tiny_decoder(vocab_size: int, seed: int = 0):
    """A Gemma3ForCausalLM with 6 layers (five local, one global), random weights and norms."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    config = Gemma3TextConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64,
                              num_hidden_layers=6, num_attention_heads=2, num_key_value_heads=1,
                              head_dim=16, query_pre_attn_scalar=16, sliding_window=WINDOW,
                              max_position_embeddings=64, initializer_range=0.2)
    torch.manual_seed(seed)
    model = Gemma3ForCausalLM(config).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, w in model.named_parameters():
            if name.endswith("norm.weight"):  # random, so a mix-up of norms shows in the output
                w.copy_(torch.randn(w.shape, generator=generator) * 0.3)
    return model


def write_gguf(path: Path, model, pieces: list[str], *, embedding_q8_0: bool = True,
               extra_metadata=None, skip_metadata: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Writes `model` as llama.cpp would: GGUF names, +1.0 on every `*norm.weight`, pieces with
    U+2581 as a space, the embedding Q8_0-quantised. Returns the float32 tensors under Hugging
    Face names as they are after dequantisation (what a correct reader must reproduce)."""
    import gguf

    from embeddinggemma.checkpoint.gguf_gemma3 import _GLOBAL_NAMES, _LAYER_NAMES

    c = model.config
    to_gguf = {hf: g for g, hf in _GLOBAL_NAMES.items()}
    for i in range(c.num_hidden_layers):
        to_gguf.update({f"layers.{i}.{hf}": f"blk.{i}.{g}" for g, hf in _LAYER_NAMES.items()})
    writer = gguf.GGUFWriter(str(path), "gemma3")
    metadata = {
        "context_length": lambda: writer.add_context_length(c.max_position_embeddings),
        "embedding_length": lambda: writer.add_embedding_length(c.hidden_size),
        "block_count": lambda: writer.add_block_count(c.num_hidden_layers),
        "feed_forward_length": lambda: writer.add_feed_forward_length(c.intermediate_size),
        "attention.head_count": lambda: writer.add_head_count(c.num_attention_heads),
        "attention.head_count_kv": lambda: writer.add_head_count_kv(c.num_key_value_heads),
        "attention.key_length": lambda: writer.add_key_length(c.head_dim),
        "attention.value_length": lambda: writer.add_value_length(c.head_dim),
        "attention.layer_norm_rms_epsilon": lambda: writer.add_layer_norm_rms_eps(c.rms_norm_eps),
        "rope.freq_base": lambda: writer.add_rope_freq_base(GLOBAL_BASE),
        "attention.sliding_window": lambda: writer.add_sliding_window(c.sliding_window),
    }
    for key, add in metadata.items():
        if key not in skip_metadata:
            add()
    for add in extra_metadata or ():
        add(writer)
    writer.add_token_list([p.replace(SENTENCEPIECE_SPACE, " ") for p in pieces])
    writer.add_bos_token_id(2)
    writer.add_eos_token_id(1)
    writer.add_pad_token_id(0)
    expected = {}
    for name, w in model.model.state_dict().items():
        w = w.detach().numpy().astype(np.float32)
        if name.endswith("norm.weight"):
            writer.add_tensor(to_gguf[name], w + 1.0)
            w = (w + 1.0) - 1.0  # float32 rounding of the round trip, which any reader sees
        elif name == "embed_tokens.weight" and embedding_q8_0:
            quantised = gguf.quants.quantize(w, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(to_gguf[name], quantised, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            w = gguf.quants.dequantize(quantised, gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(to_gguf[name], w)
        expected[name] = w
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return expected


def load_into(model, tensors: dict[str, np.ndarray]):
    """`model` with its decoder weights replaced by `tensors` (Hugging Face names)."""
    import torch

    with torch.no_grad():
        for name, w in model.model.state_dict().items():
            w.copy_(torch.from_numpy(tensors[name]))
    return model
