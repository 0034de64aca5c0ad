"""Command line: export any checkpoint this codebase reads into a format other tools load.

    python -m embeddinggemma.export --checkpoint DIR --out DIR [--format sentence-transformers]
        [--overwrite]
    python -m embeddinggemma.export --checkpoint DIR --out FILE.gguf --format gguf
        [--gguf-type f32|f16|q8_0|q4_0] [--overwrite]
    python -m embeddinggemma.export --checkpoint DIR --out DIR --format onnx
        [--onnx-type f32|f16|q8|q4] [--overwrite]

DIR is an Orbax checkpoint (a run's `export/`, a soup, `Embedder.save`) or a sentence-transformers
directory (the release, an earlier export). Formats:
  sentence-transformers  safetensors, config.json, tokenizer.json, prompts, pooling, Dense,
                         Normalize and the Matryoshka dims: `SentenceTransformer(DIR)` loads it
  orbax                  this codebase's own layout (e.g. the release imported once, to load fast)
  gguf                   one file of llama.cpp's gemma-embedding architecture, its matrices in
                         --gguf-type (q8_0 / q4_0 on this codebase's own quantisation grids)
  onnx                   onnx/model*.onnx, tokenizer and configs as transformers.js and ONNX Runtime
                         load them, the matrices in --onnx-type (q8 / q4 on the same grids)

Everything is checked before anything is written, and the directory is built in a hidden sibling
and renamed into place, so a refused or failed export leaves nothing. An existing `--out` is
refused unless it is empty; `--overwrite` replaces only an earlier export of the same format
(a directory holding that format's marker file, a GGUF file carrying its marker key), never
somebody else's.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from embeddinggemma.checkpoint.gguf_export import EXPORT_KEY, GGUF_TYPES, export_gguf
from embeddinggemma.checkpoint.loading import LoadedCheckpoint, load_checkpoint
from embeddinggemma.checkpoint.onnx_export import EXPORT_MARKER as ONNX_MARKER
from embeddinggemma.checkpoint.onnx_export import ONNX_TYPES, export_onnx
from embeddinggemma.checkpoint.orbax_io import METADATA_FILE, save_orbax
from embeddinggemma.checkpoint.sentence_transformers import EXPORT_METADATA_FILE, export_sentence_transformers


@dataclasses.dataclass(frozen=True)
class ExportFormat:
    """One `--format`: its writer, the marker that makes an output its own (a file in a directory,
    a metadata key in a GGUF file: what `--overwrite` may replace) and the command-line options
    only it has.

    `write(out, checkpoint, overwrite=..., **options(args))` writes `out` atomically and returns it.
    """

    write: Callable[..., Path]
    marker: str
    add_options: Callable[[argparse._ArgumentGroup], None] = lambda group: None
    options: Callable[[argparse.Namespace], dict[str, Any]] = lambda args: {}


def _write_sentence_transformers(out: Path, ckpt: LoadedCheckpoint, overwrite: bool) -> Path:
    return export_sentence_transformers(out, ckpt.config, ckpt.params, ckpt.tokenizer_path, ckpt.prompts,
                                        overwrite=overwrite)


def _write_orbax(out: Path, ckpt: LoadedCheckpoint, overwrite: bool) -> Path:
    return save_orbax(out, ckpt.config, ckpt.params, ckpt.tokenizer_path, ckpt.prompts, overwrite=overwrite)


def _write_gguf(out: Path, ckpt: LoadedCheckpoint, overwrite: bool, gguf_type: str = "f32") -> Path:
    return export_gguf(out, ckpt.config, ckpt.params, ckpt.tokenizer_path, gguf_type, overwrite=overwrite)


def _gguf_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--gguf-type", choices=GGUF_TYPES, default="f32",
                       help="the type of the matrices (vectors stay f32); default f32")


def _write_onnx(out: Path, ckpt: LoadedCheckpoint, overwrite: bool, onnx_type: str = "f32") -> Path:
    return export_onnx(out, ckpt.config, ckpt.params, ckpt.tokenizer_path, ckpt.prompts, onnx_type,
                       overwrite=overwrite)


def _onnx_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--onnx-type", choices=ONNX_TYPES, default="f32",
                       help="f32, f16 (weights; float32 compute), q8 / q4 (int8-block / int4-block)")


FORMATS: dict[str, ExportFormat] = {
    "sentence-transformers": ExportFormat(_write_sentence_transformers, EXPORT_METADATA_FILE),
    "orbax": ExportFormat(_write_orbax, METADATA_FILE),
    "gguf": ExportFormat(_write_gguf, EXPORT_KEY, _gguf_options, lambda args: {"gguf_type": args.gguf_type}),
    "onnx": ExportFormat(_write_onnx, ONNX_MARKER, _onnx_options, lambda args: {"onnx_type": args.onnx_type}),
}


def export(checkpoint: str | Path, out: str | Path, format: str = "sentence-transformers",
           overwrite: bool = False, **options: Any) -> Path:
    """Loads `checkpoint` and writes it to `out` in `format` (a key of FORMATS).

    Raises:
      ValueError for an unknown format or a checkpoint the format cannot hold (nothing written).
      FileExistsError / NotOurDirectoryError when `out` is taken (see the module docstring).
    """
    if format not in FORMATS:
        raise ValueError(f"Unknown export format {format!r}; choose one of {', '.join(FORMATS)}.")
    return FORMATS[format].write(Path(out).expanduser(), load_checkpoint(checkpoint), overwrite=overwrite,
                                 **options)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m embeddinggemma.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, type=Path,
                        help="an Orbax checkpoint or a sentence-transformers directory")
    parser.add_argument("--out", required=True, type=Path,
                        help="the directory to write (absent or empty); the file, for --format gguf")
    parser.add_argument("--format", choices=list(FORMATS), default="sentence-transformers")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier export of the same format at --out")
    for name, fmt in FORMATS.items():
        fmt.add_options(parser.add_argument_group(f"--format {name}"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    fmt = FORMATS[args.format]
    try:
        out = export(args.checkpoint, args.out, args.format, args.overwrite, **fmt.options(args))
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote a {args.format} export of {args.checkpoint} to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
