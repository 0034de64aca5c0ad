"""Gemma 3 decoders from any supported format: one entry point, `load_decoder(path)`.

- a GGUF file (llama.cpp; see `gguf_gemma3`), with a `tokenizer.model` whose pieces equal the file's
  (by default the released EmbeddingGemma's, which Gemma 3 shares; see `vocabulary.py` for why the
  file's own vocabulary is not enough);
- a Hugging Face directory: `config.json` + `model.safetensors` (or shards listed in
  `model.safetensors.index.json`) + `tokenizer.model`;
- a decoder directory this codebase wrote (`save_decoder`), so a pruned or converted decoder can be
  stored and read back:

      DIR/params/               Orbax PyTree checkpoint of the `transformer` parameter tree
      DIR/gemma3_decoder.json   {"format_version", "config"} (the TransformerConfig's fields)
      DIR/tokenizer.model       SentencePiece model
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from embeddinggemma.atomic import atomic_directory, refuse_replacing
from embeddinggemma.checkpoint.gguf_gemma3 import is_gguf_file, read_gguf
from embeddinggemma.checkpoint.hf_config import transformer_from_hf_config
from embeddinggemma.checkpoint.hf_gemma3 import transformer_from_hf
from embeddinggemma.checkpoint.orbax_io import restore_params_tree
from embeddinggemma.checkpoint.sentence_transformers import (
    SafetensorsReader,
    is_hugging_face_dir,
    is_sentence_transformers_dir,
)
from embeddinggemma.checkpoint.vocabulary import check_same_pieces
from embeddinggemma.files import read_json, require_file
from embeddinggemma.model.config import TransformerConfig

DECODER_METADATA_FILE = "gemma3_decoder.json"
DECODER_FORMAT_VERSION = 1
WHAT = "a decoder checkpoint"
_TIED_OUTPUT = "lm_head.weight"


@dataclasses.dataclass
class LoadedDecoder:
    """A decoder's architecture, its `transformer` parameter tree (numpy, float32) and tokenizer."""

    config: TransformerConfig
    params: dict
    tokenizer_path: Path


def keep_first_layers(decoder: LoadedDecoder, n: int) -> LoadedDecoder:
    """The decoder cut to its first `n` layers: the stacked [L, ...] layer parameters become
    [n, ...]; embedding and final norm stay. A prefix keeps Gemma 3's local/global pattern and
    each kept layer in its trained place (the first global layer is the sixth)."""
    config = decoder.config.first_layers(n)
    params = {**decoder.params, "layers": jax.tree.map(lambda w: w[:n], decoder.params["layers"])}
    return LoadedDecoder(config, params, decoder.tokenizer_path)


def is_decoder_dir(path: str | Path) -> bool:
    return (Path(path) / DECODER_METADATA_FILE).is_file()


def load_decoder(path: str | Path, tokenizer: str | Path | None = None) -> LoadedDecoder:
    """Reads a Gemma 3 decoder from a GGUF file, a Hugging Face directory or `save_decoder`'s layout.

    `tokenizer` is the SentencePiece model of a GGUF file (default: the released EmbeddingGemma's
    `tokenizer.model`, fetched when missing); its pieces must equal the file's.

    Raises:
      FileNotFoundError when `path` is none of these; ValueError naming the file and the field or
      tensor that does not fit.
    """
    path = Path(path).expanduser()
    if is_gguf_file(path):
        config, params, pieces = read_gguf(path)
        if tokenizer is None:
            from embeddinggemma.artefacts import fetch_release

            tokenizer = fetch_release() / "tokenizer.model"
        tokenizer = require_file(Path(tokenizer).expanduser(), "Tokenizer model")
        check_same_pieces(pieces, tokenizer, f"{path} (tokenizer.ggml.tokens)")
        return LoadedDecoder(config, params, tokenizer)
    if path.is_dir() and is_decoder_dir(path):
        return LoadedDecoder(read_decoder_config(path), restore_params_tree(path),
                             require_file(path / "tokenizer.model", "Tokenizer model"))
    if path.is_dir() and is_hugging_face_dir(path):
        return _load_hugging_face(path)
    if path.is_dir() and is_sentence_transformers_dir(path):
        raise ValueError(f"{path} is a sentence-transformers embedding model, not a decoder; start "
                         "from it with model.init='embedder'.")
    raise FileNotFoundError(f"{path} is not a Gemma 3 decoder: expected a GGUF file, a Hugging Face "
                            f"directory (config.json, model.safetensors) or a directory holding "
                            f"{DECODER_METADATA_FILE}.")


class _ShardedSafetensors(Mapping[str, np.ndarray]):
    """A lazy name -> array mapping over the shards an index file lists."""

    def __init__(self, index_path: Path):
        index = read_json(index_path, "Checkpoint file")
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict):
            raise ValueError(f"{index_path}: no 'weight_map' object.")
        self._files = {name: index_path.parent / shard for name, shard in weight_map.items()}
        self._readers: dict[Path, SafetensorsReader] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        shard = self._files[name]
        if shard not in self._readers:
            self._readers[shard] = SafetensorsReader(require_file(shard, "Checkpoint shard"))
        return self._readers[shard][name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)


def _load_hugging_face(path: Path) -> LoadedDecoder:
    hf = read_json(path / "config.json", "Checkpoint file")
    if not isinstance(hf, dict):
        raise ValueError(f"{path / 'config.json'}: expected a JSON object.")
    if hf.get("model_type") == "gemma3":  # the multimodal wrapper: the text model's config is inside
        hf = hf.get("text_config") or {}
    if hf.get("model_type") != "gemma3_text":
        raise ValueError(f"{path / 'config.json'}: model_type={hf.get('model_type')!r}, expected "
                         "'gemma3_text'.")
    if hf.get("use_bidirectional_attention"):
        raise ValueError(f"{path / 'config.json'}: use_bidirectional_attention is true; this is an "
                         "encoder, not a causal decoder.")
    try:
        config = transformer_from_hf_config(hf)
    except ValueError as e:
        raise ValueError(f"{path / 'config.json'}: {e}") from None
    index = path / "model.safetensors.index.json"
    weights = _ShardedSafetensors(index) if index.is_file() else \
        SafetensorsReader(path / "model.safetensors")
    names = [n for n in weights if n != _TIED_OUTPUT and not n.endswith("." + _TIED_OUTPUT)]
    prefix = next((p for p in ("model.language_model.", "language_model.model.", "model.")
                   if any(n.startswith(p) for n in names)), "")
    tensors = {n: weights[n] for n in names}
    params = transformer_from_hf(tensors, config, prefix=prefix, source=str(path))
    params = jax.tree.map(lambda w: np.asarray(w, np.float32), params)
    return LoadedDecoder(config, params, require_file(path / "tokenizer.model", "Tokenizer model"))


def read_decoder_config(directory: str | Path) -> TransformerConfig:
    """The TransformerConfig of a `save_decoder` directory; errors name the metadata file."""
    path = Path(directory) / DECODER_METADATA_FILE
    metadata = read_json(path, "Checkpoint file")
    if not isinstance(metadata, dict) or metadata.get("format_version") != DECODER_FORMAT_VERSION:
        raise ValueError(f"{path}: expected an object with format_version {DECODER_FORMAT_VERSION}.")
    try:
        return TransformerConfig.from_dict(metadata["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: field 'config' does not describe a decoder: {e!r}") from None


def save_decoder(directory: str | Path, config: TransformerConfig, params: Mapping,
                 tokenizer_model: str | Path, overwrite: bool = False) -> Path:
    """Writes a decoder (`transformer` parameter tree, config, tokenizer) into `directory`, atomically.

    `directory` must be absent, empty, or (with `overwrite=True`) a decoder checkpoint, which is
    replaced; a directory holding anything else is refused untouched (NotOurDirectoryError).
    """
    directory = Path(directory).expanduser().absolute()
    if not overwrite:
        refuse_replacing(directory, DECODER_METADATA_FILE, WHAT)
    tokenizer_model = require_file(tokenizer_model, "Tokenizer model")
    with atomic_directory(directory, DECODER_METADATA_FILE, WHAT) as partial:
        checkpointer = ocp.StandardCheckpointer()
        checkpointer.save(partial / "params", jax.tree.map(np.asarray, dict(params)))
        checkpointer.wait_until_finished()
        shutil.copyfile(tokenizer_model, partial / "tokenizer.model")
        metadata = {"format_version": DECODER_FORMAT_VERSION, "config": dataclasses.asdict(config)}
        (partial / DECODER_METADATA_FILE).write_text(json.dumps(metadata, indent=2))
    return directory
