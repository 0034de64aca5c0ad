"""The codebase's own checkpoint layout: Orbax parameters plus the files needed to use them.

    DIR/params/            Orbax PyTree checkpoint of the parameter tree
    DIR/embeddinggemma.json   {"format_version", "config", "prompts"}
    DIR/tokenizer.model    SentencePiece model
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from embeddinggemma.model.config import EmbedderConfig

METADATA_FILE = "embeddinggemma.json"
FORMAT_VERSION = 1


def is_orbax_dir(path: str | Path) -> bool:
    return (Path(path) / METADATA_FILE).is_file()


def save_orbax(directory: str | Path, config: EmbedderConfig, params: Mapping,
               tokenizer_model: str | Path, prompts: Mapping[str, str]) -> Path:
    """Writes parameters, config, prompts and tokenizer; refuses to overwrite a directory."""
    directory = Path(directory).absolute()
    if directory.exists() and any(directory.iterdir()):
        raise FileExistsError(f"Refusing to overwrite the non-empty directory {directory}.")
    directory.mkdir(parents=True, exist_ok=True)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(directory / "params", jax.tree.map(np.asarray, dict(params)))
    checkpointer.wait_until_finished()
    write_orbax_metadata(directory, config, tokenizer_model, prompts)
    return directory


def write_orbax_metadata(directory: str | Path, config: EmbedderConfig, tokenizer_model: str | Path,
                         prompts: Mapping[str, str]) -> None:
    """The files beside `params/`: the tokenizer and `embeddinggemma.json` (config, prompts)."""
    directory = Path(directory)
    shutil.copyfile(tokenizer_model, directory / "tokenizer.model")
    metadata = {"format_version": FORMAT_VERSION, "config": config.to_dict(), "prompts": dict(prompts)}
    (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=2))


def read_orbax_metadata(directory: str | Path) -> tuple[EmbedderConfig, dict[str, str]]:
    """(config, prompts) from an Orbax checkpoint directory."""
    path = Path(directory) / METADATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint file not found: {path}")
    metadata = json.loads(path.read_text())
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {metadata.get('format_version')} is not "
                         f"{FORMAT_VERSION}.")
    return EmbedderConfig.from_dict(metadata["config"]), metadata["prompts"]


def load_orbax_params(directory: str | Path) -> dict:
    """The parameter tree of an Orbax checkpoint directory, as stored."""
    path = Path(directory).absolute() / "params"
    if not path.is_dir():
        raise FileNotFoundError(f"Checkpoint parameters not found: {path}")
    return ocp.StandardCheckpointer().restore(path)
