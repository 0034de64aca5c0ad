"""The encoder-decoder's files (an adaptation run's export and its run directory):

    DIR/params/               Orbax tree {embedding, encoder, decoder} (model/encoder_decoder.py)
    DIR/encoder_decoder.json  {"format_version", "transformer": the TransformerConfig of both halves}
    DIR/tokenizer.model       SentencePiece model

A run directory holds the JSON file and the tokenizer beside its `checkpoints/`, written when the
run starts, so its latest checkpoint can be read as an encoder-decoder before the run ends
(`load_adapted_encoder` reads either). `decoder_start` reads the decoder an adaptation starts from.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path

import orbax.checkpoint as ocp

from embeddinggemma.atomic import atomic_write
from embeddinggemma.checkpoint.decoders import LoadedDecoder, keep_first_layers, load_decoder
from embeddinggemma.checkpoint.loading import load_checkpoint
from embeddinggemma.checkpoint.orbax_io import CHECKPOINTS_DIR, is_orbax_dir, restore_params_tree
from embeddinggemma.checkpoint.sentence_transformers import is_sentence_transformers_dir
from embeddinggemma.errors import ConfigError
from embeddinggemma.files import read_json, require_file
from embeddinggemma.model import encoder_decoder
from embeddinggemma.model.config import TransformerConfig

SEQ2SEQ = "encoder_decoder"  # the trained parameters' key in an adaptation's train state
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


def decoder_start(path: str | Path, keep_layers: int = 0) -> LoadedDecoder:
    """Where the decoder weights of an adaptation come from (architecture, `Transformer`
    parameters, tokenizer): the one place to read them.

    A Gemma 3 decoder (GGUF, Hugging Face safetensors, our decoder layout: checkpoint/decoders), or
    one of this codebase's embedding checkpoints (Orbax or sentence-transformers: their
    `transformer` tree, used causally); cut to its first `keep_layers` layers when set
    (`model.keep_layers`, as the embedding model's start is).

    Raises:
      ConfigError naming model.keep_layers when the start has fewer layers.
    """
    path = Path(path).expanduser()
    if is_orbax_dir(path) or is_sentence_transformers_dir(path):
        loaded = load_checkpoint(path)
        decoder = LoadedDecoder(loaded.config.transformer, dict(loaded.params["transformer"]),
                                loaded.tokenizer_path)
    else:
        decoder = load_decoder(path)
    if keep_layers:
        try:
            decoder = keep_first_layers(decoder, keep_layers)
        except ValueError as e:
            raise ConfigError(f"model.{e} (model.init_checkpoint={path})") from e
    return decoder


@dataclasses.dataclass
class AdaptedEncoder:
    """The encoder half of an adapted encoder-decoder: a `Transformer`'s parameters (the tree an
    embedding model holds under `transformer`), their architecture and the tokenizer."""

    config: TransformerConfig
    params: dict
    tokenizer_path: Path


def load_adapted_encoder(path: str | Path) -> AdaptedEncoder:
    """The encoder of an adaptation run directory (its latest complete checkpoint) or of its export.

    Raises:
      FileNotFoundError or ValueError naming the directory when it is neither, or holds no
      complete checkpoint.
    """
    path = Path(path).expanduser().absolute()
    if not is_encoder_decoder_dir(path):
        raise FileNotFoundError(f"{path} is neither an adaptation run directory nor its export "
                                f"({METADATA_FILE} missing).")
    config, tokenizer_path = read_encoder_decoder_metadata(path)
    if (path / "params").is_dir():
        params = restore_params_tree(path)
    else:
        with ocp.CheckpointManager(path / CHECKPOINTS_DIR) as manager:
            step = manager.latest_step()
        if step is None:
            raise FileNotFoundError(f"{path / CHECKPOINTS_DIR} holds no complete checkpoint yet.")
        state = ocp.StandardCheckpointer().restore(path / CHECKPOINTS_DIR / str(step) / "state")
        params = state["params"][SEQ2SEQ]
    check_halves(params, path)
    return AdaptedEncoder(config, encoder_decoder.encoder_transformer_params(params), tokenizer_path)
