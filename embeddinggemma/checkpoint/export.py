"""Export any checkpoint this codebase reads into a format other tools load (one writer per format).

A checkpoint is an Orbax checkpoint (a run's `export/`, a soup, `Embedder.save`) or a
sentence-transformers directory (the release, an earlier export). Formats:
  sentence-transformers  safetensors, config.json, tokenizer.json, prompts, pooling, Dense,
                         Normalize and the Matryoshka dims: `SentenceTransformer(DIR)` loads it
  orbax                  this codebase's own layout (e.g. the release imported once, to load fast)
  gguf                   one file of llama.cpp's gemma-embedding architecture, its matrices in
                         `gguf_type` (q8_0 / q4_0 on this codebase's own quantisation grids)

Everything is checked before anything is written, and the output is built in a hidden sibling and
renamed into place, so a refused or failed export leaves nothing. An existing output is refused
unless it is empty; `overwrite` replaces only an earlier export of the same format (a directory
holding that format's marker file, a GGUF file carrying its marker key), never somebody else's.
The command is `python -m embeddinggemma export` (cli/export.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from embeddinggemma.checkpoint.gguf_export import EXPORT_KEY, export_gguf
from embeddinggemma.checkpoint.loading import LoadedCheckpoint, load_checkpoint
from embeddinggemma.checkpoint.orbax_io import METADATA_FILE, save_orbax
from embeddinggemma.checkpoint.sentence_transformers import EXPORT_METADATA_FILE, export_sentence_transformers


@dataclasses.dataclass(frozen=True)
class ExportFormat:
    """One export format: its writer and the marker that makes an output its own (a file in a
    directory, a metadata key in a GGUF file: what `overwrite` may replace).

    `write(out, checkpoint, overwrite=..., **options)` writes `out` atomically and returns it;
    `options` are the keyword options only this format takes.
    """

    write: Callable[..., Path]
    marker: str
    options: tuple[str, ...] = ()


def _write_sentence_transformers(out: Path, ckpt: LoadedCheckpoint, overwrite: bool) -> Path:
    return export_sentence_transformers(out, ckpt.config, ckpt.params, ckpt.tokenizer_path, ckpt.prompts,
                                        overwrite=overwrite)


def _write_orbax(out: Path, ckpt: LoadedCheckpoint, overwrite: bool) -> Path:
    return save_orbax(out, ckpt.config, ckpt.params, ckpt.tokenizer_path, ckpt.prompts, overwrite=overwrite)


def _write_gguf(out: Path, ckpt: LoadedCheckpoint, overwrite: bool, gguf_type: str = "f32") -> Path:
    return export_gguf(out, ckpt.config, ckpt.params, ckpt.tokenizer_path, gguf_type, overwrite=overwrite)


FORMATS: dict[str, ExportFormat] = {
    "sentence-transformers": ExportFormat(_write_sentence_transformers, EXPORT_METADATA_FILE),
    "orbax": ExportFormat(_write_orbax, METADATA_FILE),
    "gguf": ExportFormat(_write_gguf, EXPORT_KEY, ("gguf_type",)),
}


def export(checkpoint: str | Path, out: str | Path, format: str = "sentence-transformers",
           overwrite: bool = False, **options: Any) -> Path:
    """Loads `checkpoint` and writes it to `out` in `format` (a key of FORMATS).

    Raises:
      ValueError for an unknown format, an option the format does not take, or a checkpoint the
      format cannot hold (nothing written).
      FileExistsError / NotOurDirectoryError when `out` is taken (see the module docstring).
    """
    if format not in FORMATS:
        raise ValueError(f"Unknown export format {format!r}; choose one of {', '.join(FORMATS)}.")
    unknown = sorted(set(options) - set(FORMATS[format].options))
    if unknown:
        flags = ", ".join("--" + option.replace("_", "-") for option in unknown)
        raise ValueError(f"--format {format} does not take {flags}.")
    return FORMATS[format].write(Path(out).expanduser(), load_checkpoint(checkpoint), overwrite=overwrite,
                                 **options)
