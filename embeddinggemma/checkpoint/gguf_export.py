"""Writing an embedding model as one GGUF file of llama.cpp's `gemma-embedding` architecture.

What llama.cpp's converter writes for EmbeddingGemma, and so what this file holds:
- the Gemma 3 tensors under GGUF's names (`gguf_gemma3.gguf_name`), in Hugging Face's [out, in]
  layout, every `*norm.weight` with 1.0 added (llama.cpp multiplies by the weight, we by 1 + scale),
  the embedding unscaled;
- the Dense layers after pooling as `dense_2.weight` and `dense_3.weight` ([out, in], the
  sentence-transformers modules `2_Dense` and `3_Dense`), with `{arch}.dense_2_feat_in/out` and
  `dense_3_feat_in/out`; llama.cpp applies them after pooling, and L2-normalises on request;
- `{arch}.pooling_type` (mean, first = CLS, last), the Gemma 3 hyper-parameters (`rope.freq_base` is
  the global layers'), and the SentencePiece vocabulary: pieces as they are, scores, token types,
  bos/eos/unk/pad ids, add_bos and add_eos (this codebase's tokenizer adds both), no space prefix;
  rows of the embedding beyond the vocabulary get `[PAD{i}]` pieces of the unused type.
llama.cpp hard-codes for this architecture what the file cannot say: five local layers then one
global, a local rope base of 10,000, the attention scale 1/sqrt(head_dim). A model that differs is
refused rather than written into a file llama.cpp would run differently.

Types: vectors (norm scales) are float32 whatever the type, as llama.cpp keeps them; every matrix
(embedding, attention, feed-forward, Dense) is f32, f16, or quantised by this codebase's quantiser
onto Q8_0 / Q4_0 (`int8-block` / `int4-block`), so that the file dequantises exactly to the weights
this codebase's fake quantisation computes with. The blocks are written raw: Q8_0 is a float16
scale and 32 int8 codes, Q4_0 a float16 scale and 16 bytes of packed nibbles.

The file carries `embeddinggemma.export_version`: what `--overwrite` may replace.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import jax
import numpy as np

from embeddinggemma.atomic import atomic_file
from embeddinggemma.checkpoint.gguf_gemma3 import NORM_SHIFT, gguf_name, is_gguf_file
from embeddinggemma.checkpoint.hf_gemma3 import transformer_to_hf
from embeddinggemma.model.config import EmbedderConfig, layer_pattern
from embeddinggemma.paths import AnyPath, is_url
from embeddinggemma.quantization import BLOCK, Grid, pack_int4, quantize

ARCHITECTURE = "gemma-embedding"
EXPORT_KEY = "embeddinggemma.export_version"
EXPORT_VERSION = 1
GGUF_TYPES = ("f32", "f16", "q8_0", "q4_0")
# The quantisation scheme of this codebase whose grid each quantised GGUF type is.
SCHEME_OF_TYPE = {"q8_0": "int8-block", "q4_0": "int4-block"}
DENSE_NAMES = ("dense_2", "dense_3")
# What llama.cpp assumes for the architecture instead of reading it from the file.
LLAMA_CPP_LOCAL_PER_GLOBAL = 5
LLAMA_CPP_LOCAL_ROPE_BASE = 10_000.0
_POOLING_TYPES = {"mean": "MEAN", "first": "CLS", "last": "LAST"}
_GRIDS = {"q8_0": Grid(8, per_block=True), "q4_0": Grid(4, per_block=True)}


def check_gguf_type(gguf_type: str) -> str:
    """`gguf_type` if it is one of GGUF_TYPES; otherwise a ValueError that lists them."""
    if gguf_type not in GGUF_TYPES:
        raise ValueError(f"Unknown GGUF type {gguf_type!r}; choose one of {', '.join(GGUF_TYPES)}.")
    return gguf_type


def check_exportable(config: EmbedderConfig) -> None:
    """Raises ValueError naming the first field of `config` llama.cpp's `gemma-embedding` cannot run."""
    t = config.transformer
    if t.layer_types != layer_pattern(t.num_layers, LLAMA_CPP_LOCAL_PER_GLOBAL):
        raise ValueError(f"layer_types={t.layer_types}: llama.cpp's {ARCHITECTURE} assumes Gemma 3's "
                         f"{LLAMA_CPP_LOCAL_PER_GLOBAL} local layers then one global.")
    if t.local_rope_base != LLAMA_CPP_LOCAL_ROPE_BASE:
        raise ValueError(f"local_rope_base={t.local_rope_base}: llama.cpp's {ARCHITECTURE} assumes "
                         f"{LLAMA_CPP_LOCAL_ROPE_BASE:g}.")
    if t.query_pre_attn_scalar != t.head_dim:
        raise ValueError(f"query_pre_attn_scalar={t.query_pre_attn_scalar}: llama.cpp's {ARCHITECTURE} "
                         f"scales attention by 1/sqrt(head_dim={t.head_dim}).")
    if config.pooling not in _POOLING_TYPES:
        raise ValueError(f"pooling={config.pooling!r}: llama.cpp pools by {', '.join(_POOLING_TYPES)} only.")
    if len(config.projection_dims) > len(DENSE_NAMES):
        raise ValueError(f"projection_dims={config.projection_dims}: llama.cpp loads at most "
                         f"{len(DENSE_NAMES)} Dense layers.")


def gguf_float_tensors(config: EmbedderConfig, params: Mapping) -> Iterator[tuple[str, np.ndarray]]:
    """(GGUF name, float32 tensor as the file holds it) for every parameter: [out, in] matrices,
    the [V, D] embedding, norm vectors with llama.cpp's +1.0."""
    for hf, w in transformer_to_hf(params["transformer"], config.transformer).items():
        name = gguf_name(hf)
        w = np.asarray(w, np.float32)
        yield name, (w + np.float32(NORM_SHIFT) if name.endswith("norm.weight") else w)
    for i, dense in enumerate(DENSE_NAMES[:len(config.projection_dims)]):
        yield f"{dense}.weight", np.ascontiguousarray(np.asarray(params[f"projection_{i}"], np.float32).T)


def gguf_blocks(w: np.ndarray, gguf_type: str) -> np.ndarray:
    """A [rows, cols] matrix as raw GGUF blocks of `gguf_type` (q8_0 or q4_0), quantised along cols
    by this codebase's quantiser: uint8 [rows, cols / 32 * block bytes]."""
    codes, scales = jax.device_get(quantize(w, _GRIDS[gguf_type], (1,)))  # [r, n, 32], [r, n]
    payload = pack_int4(codes) if gguf_type == "q4_0" else codes
    block = np.dtype([("d", "<f2"), ("qs", payload.dtype, (payload.shape[-1],))])
    blocks = np.empty(scales.shape, block)
    blocks["d"], blocks["qs"] = scales, payload
    return blocks.view(np.uint8).reshape(w.shape[0], -1)


def _vocabulary(tokenizer_path: Path, rows: int) -> tuple[list[bytes], list[float], list[int], int]:
    """(pieces, scores, token types, unk id) as llama.cpp's converter reads a SentencePiece model,
    padded to the embedding's `rows`."""
    import gguf

    from embeddinggemma.tokenizer import load_sentencepiece

    sp = load_sentencepiece(tokenizer_path)
    if sp.vocab_size() > rows:
        raise ValueError(f"{tokenizer_path}: {sp.vocab_size()} pieces but the embedding has only "
                         f"{rows} rows.")
    kinds = gguf.TokenType
    pieces, scores, types = [], [], []
    for i in range(sp.vocab_size()):
        pieces.append(sp.id_to_piece(i).encode("utf-8"))
        scores.append(sp.get_score(i))
        types.append(kinds.UNKNOWN if sp.is_unknown(i) else kinds.CONTROL if sp.is_control(i) else
                     kinds.UNUSED if sp.is_unused(i) else kinds.BYTE if sp.is_byte(i) else kinds.NORMAL)
    for i in range(sp.vocab_size(), rows):
        pieces.append(f"[PAD{i}]".encode())
        scores.append(-10000.0)
        types.append(kinds.UNUSED)
    return pieces, scores, [int(t) for t in types], sp.unk_id()


def written_by_us(path: AnyPath) -> bool:
    """Whether `path` is a GGUF file this module wrote (it carries EXPORT_KEY); a file in a bucket
    is read through a local copy (GGUFReader maps a local file)."""
    if is_url(path):
        if not path.is_file():
            return False
        with tempfile.TemporaryDirectory(prefix="embeddinggemma-gguf-") as tmp:
            local = Path(tmp) / path.name
            local.write_bytes(path.read_bytes())
            return written_by_us(local)
    if not is_gguf_file(path):
        return False
    import gguf

    try:
        return EXPORT_KEY in gguf.GGUFReader(path).fields
    except (ValueError, OSError):
        return False


def check_gguf_out(out: AnyPath, overwrite: bool) -> None:
    """Raises (IsADirectoryError, FileExistsError) unless `out` is free for a GGUF export, or with
    `overwrite` an earlier one of ours."""
    if out.is_dir():
        raise IsADirectoryError(f"{out} is a directory; --format gguf writes one file.")
    symlink = not is_url(out) and out.is_symlink()  # a bucket has no links
    if out.exists() or symlink:
        if not overwrite:
            raise FileExistsError(f"{out} exists; nothing was changed. Pass --overwrite to replace an "
                                  "earlier GGUF export.")
        if symlink or not written_by_us(out):
            raise FileExistsError(f"{out} is not a GGUF file written by this export (no {EXPORT_KEY}); "
                                  "nothing was changed. Choose another --out or remove it yourself.")


def export_gguf(out: str | Path, config: EmbedderConfig, params: Mapping, tokenizer_path: str | Path,
                gguf_type: str = "f32", overwrite: bool = False) -> Path:
    """Writes the embedding model to the GGUF file `out` (a temporary sibling, renamed at the end).

    Args:
      params: the embedder's parameter tree (`transformer`, `projection_{i}` [in, out]).
      gguf_type: one of GGUF_TYPES for the matrices; vectors are float32 whatever it is.

    Raises:
      ValueError for a bad type or a model llama.cpp cannot run (`check_exportable`); FileExistsError
      when `out` exists and is not (or may not replace) an earlier export of ours. Nothing is
      written then.
    """
    import gguf

    out = Path(out).expanduser()
    check_gguf_type(gguf_type)
    check_exportable(config)
    check_gguf_out(out, overwrite)
    t = config.transformer
    with atomic_file(out) as tmp:
        writer = gguf.GGUFWriter(tmp, ARCHITECTURE)
        writer.add_uint32(EXPORT_KEY, EXPORT_VERSION)
        writer.add_name("EmbeddingGemma")
        writer.add_file_type(getattr(gguf.LlamaFileType, {"f32": "ALL_F32", "f16": "MOSTLY_F16",
                                                          "q8_0": "MOSTLY_Q8_0",
                                                          "q4_0": "MOSTLY_Q4_0"}[gguf_type]))
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        writer.add_context_length(t.max_length)
        writer.add_embedding_length(t.embed_dim)
        writer.add_block_count(t.num_layers)
        writer.add_feed_forward_length(t.mlp_dim)
        writer.add_head_count(t.num_heads)
        writer.add_head_count_kv(t.num_kv_heads)
        writer.add_key_length(t.head_dim)
        writer.add_value_length(t.head_dim)
        writer.add_layer_norm_rms_eps(t.norm_eps)
        writer.add_rope_freq_base(t.global_rope_base)
        writer.add_sliding_window(t.sliding_window)
        writer.add_pooling_type(getattr(gguf.PoolingType, _POOLING_TYPES[config.pooling]))
        width = t.embed_dim
        for dense, dim in zip(DENSE_NAMES[:len(config.projection_dims)], config.projection_dims, strict=True):
            writer.add_dense_features_dims(dense, width, dim)
            width = dim
        pieces, scores, types, unk_id = _vocabulary(Path(tokenizer_path), t.vocab_size)
        writer.add_tokenizer_model("llama")
        writer.add_tokenizer_pre("default")
        writer.add_token_list(pieces)
        writer.add_token_scores(scores)
        writer.add_token_types(types)
        writer.add_bos_token_id(t.bos_id)
        writer.add_eos_token_id(t.eos_id)
        writer.add_pad_token_id(t.pad_id)
        writer.add_unk_token_id(unk_id)
        writer.add_add_bos_token(True)
        writer.add_add_eos_token(True)
        writer.add_add_space_prefix(False)
        for name, w in gguf_float_tensors(config, params):
            if w.ndim == 1 or gguf_type == "f32":
                writer.add_tensor(name, w)
            elif gguf_type == "f16":
                writer.add_tensor(name, w.astype(np.float16))
            else:
                if w.shape[1] % BLOCK:
                    raise ValueError(f"{name}: rows of {w.shape[1]} values are not a multiple of "
                                     f"{BLOCK}; {gguf_type} cannot hold it.")
                writer.add_tensor(name, gguf_blocks(w, gguf_type),
                                  raw_dtype=getattr(gguf.GGMLQuantizationType, gguf_type.upper()))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return out
