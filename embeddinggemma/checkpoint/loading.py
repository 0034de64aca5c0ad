"""Loads any supported checkpoint directory into (config, params, tokenizer path, prompts)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from embeddinggemma.checkpoint.orbax_io import (
    METADATA_FILE,
    is_orbax_dir,
    load_orbax_params,
    read_orbax_metadata,
    read_orbax_quantization,
)
from embeddinggemma.checkpoint.sentence_transformers import (
    is_hugging_face_dir,
    is_sentence_transformers_dir,
    load_prompts_of,
    load_sentence_transformers,
    sentence_transformers_config,
)
from embeddinggemma.files import read_json
from embeddinggemma.model.config import EmbedderConfig
from embeddinggemma.paths import as_path


@dataclasses.dataclass
class LoadedCheckpoint:
    config: EmbedderConfig
    params: dict
    tokenizer_path: Path
    prompts: dict[str, str]
    # The scheme the checkpoint is stored in (its params are dequantised); None for float weights.
    quantization: str | None = None


def load_checkpoint(path: str | Path) -> LoadedCheckpoint:
    """Reads an Orbax checkpoint written by this codebase or a sentence-transformers directory."""
    path = _checkpoint_dir(path)
    if is_orbax_dir(path):
        config, prompts = read_orbax_metadata(path)
        params = load_orbax_params(path)
    else:
        config, params = load_sentence_transformers(path)
        prompts = load_prompts_of(path)
    return LoadedCheckpoint(config, params, _tokenizer_of(path), prompts, checkpoint_quantization(path))


def checkpoint_quantization(path: str | Path) -> str | None:
    """The quantisation scheme a checkpoint directory is stored in (embeddinggemma/quantization.py),
    read from its metadata alone; None for float weights (a sentence-transformers directory)."""
    path = _checkpoint_dir(path)
    return read_orbax_quantization(path) if is_orbax_dir(path) else None


def read_checkpoint_metadata(path: str | Path) -> tuple[EmbedderConfig, Path, dict[str, str]]:
    """(config, tokenizer path, prompts) of a checkpoint directory, without reading its parameters
    (a sentence-transformers directory's are checked by name and shape only)."""
    path = _checkpoint_dir(path)
    if is_orbax_dir(path):
        config, prompts = read_orbax_metadata(path)
    else:
        config = sentence_transformers_config(path)
        prompts = load_prompts_of(path)
    return config, _tokenizer_of(path), prompts


def _checkpoint_dir(path: str | Path) -> Path:
    """`path`, if it is an Orbax checkpoint or a sentence-transformers directory."""
    path = as_path(path).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"Checkpoint directory not found: {path}")
    if is_orbax_dir(path) or is_sentence_transformers_dir(path):
        return path
    if is_hugging_face_dir(path):
        raise ValueError(_not_an_embedder(path))
    raise FileNotFoundError(
        f"{path} is neither an Orbax checkpoint ({METADATA_FILE} missing) nor a "
        "sentence-transformers directory (modules.json missing).")


def _tokenizer_of(path: Path) -> Path:
    tokenizer_path = path / "tokenizer.model"
    if not tokenizer_path.is_file():
        raise FileNotFoundError(f"Checkpoint file not found: {tokenizer_path}")
    return tokenizer_path


def _not_an_embedder(path: Path) -> str:
    """What a plain Hugging Face directory is, for the error that refuses it."""
    config = read_json(path / "config.json", "Checkpoint file")
    model_type = config.get("model_type") if isinstance(config, dict) else None
    what = "a Hugging Face Gemma 3" if str(model_type).startswith("gemma3") else \
        f"a Hugging Face (model_type={model_type!r})"
    return (f"{path} is {what} checkpoint (config.json and model.safetensors, no modules.json): a "
            "decoder, not an embedding model. Start an embedding model from it with "
            "model.init='decoder' (checkpoint.decoders.load_decoder reads it); an embedding model "
            "needs the sentence-transformers layout or an Orbax checkpoint.")
