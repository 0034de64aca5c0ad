"""The encoder-decoder's files (an adaptation run's export and its run directory):

    DIR/params/               Orbax tree {embedding, encoder, decoder} (model/encoder_decoder.py)
    DIR/encoder_decoder.json  {"format_version", "transformer": the TransformerConfig of both halves}
    DIR/tokenizer.model       SentencePiece model

A run directory holds the JSON file and the tokenizer beside its `checkpoints/`, written when the
run starts, so its latest checkpoint can be read as an encoder-decoder before the run ends.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path

from embeddinggemma.atomic import atomic_write
from embeddinggemma.files import read_json, require_file
from embeddinggemma.model.config import TransformerConfig

METADATA_FILE = "encoder_decoder.json"
TOKENIZER_FILE = "tokenizer.model"
FORMAT_VERSION = 1


def write_encoder_decoder_metadata(directory: str | Path, config: TransformerConfig,
                                   tokenizer_model: str | Path) -> None:
    """The tokenizer and `encoder_decoder.json` in `directory` (each written atomically)."""
    directory = Path(directory)
    tokenizer_model = require_file(tokenizer_model, "Tokenizer model")
    if tokenizer_model.resolve() != (directory / TOKENIZER_FILE).resolve():
        atomic_write(directory / TOKENIZER_FILE, tokenizer_model.read_bytes())
    metadata = {"format_version": FORMAT_VERSION, "transformer": dataclasses.asdict(config)}
    atomic_write(directory / METADATA_FILE, json.dumps(metadata, indent=2))


def read_encoder_decoder_metadata(directory: str | Path) -> tuple[TransformerConfig, Path]:
    """(the halves' TransformerConfig, tokenizer path); errors name the file."""
    path = Path(directory) / METADATA_FILE
    metadata = read_json(path, "Encoder-decoder file")
    if not isinstance(metadata, dict) or metadata.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: not an encoder-decoder description of format_version {FORMAT_VERSION}.")
    try:
        config = TransformerConfig.from_dict(metadata["transformer"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: field 'transformer' does not describe a transformer: {e!r}") from None
    return config, require_file(Path(directory) / TOKENIZER_FILE, "Tokenizer model")


def is_encoder_decoder_dir(path: str | Path) -> bool:
    return (Path(path) / METADATA_FILE).is_file()


def check_halves(params: Mapping, path: str | Path) -> None:
    """Raises ValueError naming `path` when `params` lacks the table or a half."""
    missing = [k for k in ("embedding", "encoder", "decoder") if k not in params]
    if missing:
        raise ValueError(f"{path}: the parameters lack {missing}; not an encoder-decoder.")
