"""Reading a Gemma 3 decoder from a GGUF file (llama.cpp's format): architecture, weights, vocabulary.

What the file holds and how llama.cpp's converter wrote it, each convention tested:
- every tensor whose name ends in `norm.weight` was stored with 1.0 added (llama.cpp's RMSNorm
  multiplies by the weight; ours by `1 + scale`), so 1.0 is subtracted;
- Gemma's q/k projections are stored as they are (no rotary permutation, unlike llama's);
- the token embedding is stored unscaled (the sqrt(D) factor is applied at run time by both);
- `ffn_norm` is the pre-feed-forward norm, `post_ffw_norm` the post one;
- `rope.freq_base` is the global layers' base; the local base is not in the file unless a newer
  converter wrote `rope.freq_base_swa`, and is Gemma 3's 10,000 otherwise;
- the layer pattern is not in the file unless `attention.sliding_window_pattern` is: Gemma 3's five
  local layers then one global, as llama.cpp assumes;
- the vocabulary's pieces have SentencePiece's whitespace mark U+2581 written as a space;
- the attention scale is 1/sqrt(head_dim) (llama.cpp's rule for every Gemma 3 but the 27B, whose
  query_pre_attn_scalar differs and is refused here rather than guessed).
The `gguf` package dequantises every tensor type to float32; a tensor of shape [out, in] in GGUF's
numpy view is Hugging Face's layout, so `hf_gemma3` maps it to our tree.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from embeddinggemma.checkpoint.hf_gemma3 import transformer_from_hf
from embeddinggemma.model.config import GLOBAL, LOCAL, TransformerConfig, layer_pattern

ARCHITECTURE = "gemma3"
GEMMA3_LOCAL_ROPE_BASE = 10_000.0
GEMMA3_LOCAL_PER_GLOBAL = 5
SENTENCEPIECE_SPACE = "\u2581"  # SentencePiece's whitespace mark, a plain space in GGUF pieces
NORM_SHIFT = 1.0  # what llama.cpp's converter adds to every `*norm.weight` of a Gemma model

# GGUF name (after `blk.{i}.`) -> Hugging Face name (after `layers.{i}.`).
_LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "post_attention_norm.weight": "post_attention_layernorm.weight",
    "ffn_norm.weight": "pre_feedforward_layernorm.weight",
    "post_ffw_norm.weight": "post_feedforward_layernorm.weight",
    "attn_q_norm.weight": "self_attn.q_norm.weight",
    "attn_k_norm.weight": "self_attn.k_norm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
_GLOBAL_NAMES = {"token_embd.weight": "embed_tokens.weight", "output_norm.weight": "norm.weight"}
# Keys whose presence means an architecture this model does not have.
_UNSUPPORTED_KEYS = ("attn_logit_softcapping", "final_logit_softcapping", "rope.scaling.type",
                     "rope.scaling.factor")


def is_gguf_file(path: str | Path) -> bool:
    """Whether `path` is a file starting with the GGUF magic."""
    path = Path(path)
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        return f.read(4) == b"GGUF"


def _reader(path: Path):
    import gguf  # a runtime dependency, imported here so the rest of the package loads without it

    try:
        return gguf.GGUFReader(path)
    except (ValueError, OSError) as e:
        raise ValueError(f"{path}: not a readable GGUF file ({e}).") from None


def _fields(reader) -> dict[str, Any]:
    return {name: field.contents() for name, field in reader.fields.items()}


def config_from_metadata(metadata: Mapping[str, Any], embedding_rows: int,
                         source: str = "GGUF file") -> TransformerConfig:
    """A Gemma 3 `TransformerConfig` from GGUF metadata; a clear error names a missing or bad field.

    Args:
      metadata: key -> value of the GGUF header (`general.architecture`, `gemma3.*`, `tokenizer.*`).
      embedding_rows: V, the rows of `token_embd.weight` ([V, D]), checked against the vocabulary.
    """
    arch = metadata.get("general.architecture")
    if arch != ARCHITECTURE:
        raise ValueError(f"{source}: general.architecture={arch!r}, expected {ARCHITECTURE!r}.")

    def field(key: str) -> Any:
        name = f"{ARCHITECTURE}.{key}"
        if name not in metadata:
            raise ValueError(f"{source}: the metadata field {name!r} is missing.")
        return metadata[name]

    for key in _UNSUPPORTED_KEYS:
        if metadata.get(f"{ARCHITECTURE}.{key}") not in (None, "none"):
            raise ValueError(f"{source}: {ARCHITECTURE}.{key}={metadata[f'{ARCHITECTURE}.{key}']!r} "
                             "is not supported (the model has none).")
    head_dim = int(field("attention.key_length"))
    value_length = int(metadata.get(f"{ARCHITECTURE}.attention.value_length", head_dim))
    if value_length != head_dim:
        raise ValueError(f"{source}: {ARCHITECTURE}.attention.value_length={value_length} differs "
                         f"from attention.key_length={head_dim}; Gemma 3 has one head dimension.")
    num_layers = int(field("block_count"))
    pattern = metadata.get(f"{ARCHITECTURE}.attention.sliding_window_pattern")
    if pattern is None:
        layer_types = layer_pattern(num_layers, GEMMA3_LOCAL_PER_GLOBAL)
    else:
        if len(pattern) != num_layers:
            raise ValueError(f"{source}: {ARCHITECTURE}.attention.sliding_window_pattern has "
                             f"{len(pattern)} entries for block_count={num_layers}.")
        layer_types = tuple(LOCAL if sliding else GLOBAL for sliding in pattern)
    tokens = metadata.get("tokenizer.ggml.tokens")
    if tokens is None:
        raise ValueError(f"{source}: the metadata field 'tokenizer.ggml.tokens' is missing.")
    if len(tokens) != embedding_rows:
        raise ValueError(f"{source}: tokenizer.ggml.tokens holds {len(tokens)} pieces but "
                         f"token_embd.weight has {embedding_rows} rows.")
    return TransformerConfig(
        vocab_size=embedding_rows,
        embed_dim=int(field("embedding_length")),
        num_layers=num_layers,
        num_heads=int(field("attention.head_count")),
        num_kv_heads=int(field("attention.head_count_kv")),
        head_dim=head_dim,
        mlp_dim=int(field("feed_forward_length")),
        layer_types=layer_types,
        sliding_window=int(field("attention.sliding_window")),
        local_rope_base=_float32_value(metadata.get(f"{ARCHITECTURE}.rope.freq_base_swa",
                                                    GEMMA3_LOCAL_ROPE_BASE)),
        global_rope_base=_float32_value(field("rope.freq_base")),
        query_pre_attn_scalar=float(head_dim),
        norm_eps=_float32_value(field("attention.layer_norm_rms_epsilon")),
        max_length=int(field("context_length")),
        pad_id=int(metadata.get("tokenizer.ggml.padding_token_id", 0)),
        eos_id=int(metadata.get("tokenizer.ggml.eos_token_id", 1)),
        bos_id=int(metadata.get("tokenizer.ggml.bos_token_id", 2)),
    )


def _float32_value(value: float) -> float:
    """The value a float32 field stands for: its shortest round-tripping decimal (1e-06, not
    9.999999974752427e-07), so a config read from GGUF equals one written by hand."""
    return float(str(np.float32(value)))


def hf_name(gguf_name: str) -> str:
    """The Hugging Face Gemma 3 name of a GGUF tensor name; ValueError for a name it does not have."""
    if gguf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[gguf_name]
    parts = gguf_name.split(".", 2)
    if len(parts) == 3 and parts[0] == "blk" and parts[1].isdigit() and parts[2] in _LAYER_NAMES:
        return f"layers.{parts[1]}.{_LAYER_NAMES[parts[2]]}"
    raise ValueError(f"unexpected tensor {gguf_name}")


def gguf_name(hf: str) -> str:
    """The GGUF tensor name of a Hugging Face Gemma 3 name (the inverse of `hf_name`)."""
    for gguf, name in _GLOBAL_NAMES.items():
        if hf == name:
            return gguf
    parts = hf.split(".", 2)
    if len(parts) == 3 and parts[0] == "layers" and parts[1].isdigit():
        for gguf, name in _LAYER_NAMES.items():
            if parts[2] == name:
                return f"blk.{parts[1]}.{gguf}"
    raise ValueError(f"no GGUF name for the tensor {hf}")


def read_gguf(path: str | Path) -> tuple[TransformerConfig, dict, list[str]]:
    """(config, `transformer` parameter tree in float32, SentencePiece pieces) of a Gemma 3 GGUF file.

    Every tensor is dequantised (`gguf.quants.dequantize`); norms lose llama.cpp's +1.0.

    Raises:
      ValueError naming the file and the field or tensors that do not fit a Gemma 3 decoder.
    """
    import gguf

    path = Path(path)
    reader = _reader(path)
    metadata = _fields(reader)
    by_name = {t.name: t for t in reader.tensors}
    if "token_embd.weight" not in by_name:
        raise ValueError(f"{path}: the tensor token_embd.weight is missing.")
    embedding_rows = int(by_name["token_embd.weight"].shape[-1])  # GGUF lists dims innermost first
    config = config_from_metadata(metadata, embedding_rows, source=str(path))
    if "output.weight" in by_name:
        raise ValueError(f"{path}: holds an untied output.weight; Gemma 3 ties the output to "
                         "token_embd.weight.")
    tensors = {}
    for name, tensor in by_name.items():
        try:
            target = hf_name(name)
        except ValueError as e:
            raise ValueError(f"{path}: {e}.") from None
        weights = gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        if name.endswith("norm.weight"):
            weights = weights - NORM_SHIFT
        tensors[target] = weights
    params = transformer_from_hf(tensors, config, source=str(path))
    pieces = [piece.replace(" ", SENTENCEPIECE_SPACE) for piece in metadata["tokenizer.ggml.tokens"]]
    return config, params, pieces
