"""Command line: export any checkpoint this codebase reads into a format other tools load.

    python -m embeddinggemma.export --checkpoint DIR --out DIR [--format sentence-transformers]
        [--overwrite]

DIR is an Orbax checkpoint (a run's `export/`, a soup, `Embedder.save`) or a sentence-transformers
directory (the release, an earlier export). Formats:
  sentence-transformers  safetensors, config.json, tokenizer.json, prompts, pooling, Dense,
                         Normalize and the Matryoshka dims: `SentenceTransformer(DIR)` loads it
  orbax                  this codebase's own layout (e.g. the release imported once, to load fast)

Everything is checked before anything is written, and the directory is built in a hidden sibling
and renamed into place, so a refused or failed export leaves nothing. An existing `--out` is
refused unless it is empty; `--overwrite` replaces only an earlier export of the same format
(a directory holding that format's marker file), never a directory of somebody else's.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from embeddinggemma.checkpoint.loading import LoadedCheckpoint, load_checkpoint
from embeddinggemma.checkpoint.orbax_io import METADATA_FILE, save_orbax
from embeddinggemma.checkpoint.sentence_transformers import EXPORT_METADATA_FILE, export_sentence_transformers


@dataclasses.dataclass(frozen=True)
class ExportFormat:
    """One `--format`: its writer, the marker file that makes a directory its own (what
    `--overwrite` may replace) and the command-line options only it has.

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


FORMATS: dict[str, ExportFormat] = {
    "sentence-transformers": ExportFormat(_write_sentence_transformers, EXPORT_METADATA_FILE),
    "orbax": ExportFormat(_write_orbax, METADATA_FILE),
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
    parser.add_argument("--out", required=True, type=Path, help="the directory to write (absent or empty)")
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
