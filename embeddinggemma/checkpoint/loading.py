"""Loads any supported checkpoint directory into (config, params, tokenizer path, prompts)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from embeddinggemma.checkpoint.orbax_io import (
    METADATA_FILE,
    is_orbax_dir,
    load_orbax_params,
    read_orbax_metadata,
)
from embeddinggemma.checkpoint.sentence_transformers import (
    is_sentence_transformers_dir,
    load_sentence_transformers,
)
from embeddinggemma.model.config import EmbedderConfig
from embeddinggemma.prompts import load_prompts


@dataclasses.dataclass
class LoadedCheckpoint:
    config: EmbedderConfig
    params: dict
    tokenizer_path: Path
    prompts: dict[str, str]


def load_checkpoint(path: str | Path) -> LoadedCheckpoint:
    """Reads an Orbax checkpoint written by this codebase or a sentence-transformers directory."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"Checkpoint directory not found: {path}")
    if is_orbax_dir(path):
        config, prompts = read_orbax_metadata(path)
        params = load_orbax_params(path)
    elif is_sentence_transformers_dir(path):
        config, params = load_sentence_transformers(path)
        prompts = load_prompts(path)
    else:
        raise FileNotFoundError(
            f"{path} is neither an Orbax checkpoint ({METADATA_FILE} missing) nor a "
            "sentence-transformers directory (modules.json and model.safetensors missing).")
    tokenizer_path = path / "tokenizer.model"
    if not tokenizer_path.is_file():
        raise FileNotFoundError(f"Checkpoint file not found: {tokenizer_path}")
    return LoadedCheckpoint(config, params, tokenizer_path, prompts)
