"""Command line: export any checkpoint this codebase reads into a format other tools load.

    python -m embeddinggemma export --checkpoint DIR --out DIR [--format sentence-transformers]
        [--overwrite]
    python -m embeddinggemma export --checkpoint DIR --out FILE.gguf --format gguf
        [--gguf-type f32|f16|q8_0|q4_0] [--overwrite]
    python -m embeddinggemma export --checkpoint DIR --out DIR --format onnx
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
somebody else's, nor the checkpoint itself (or a directory inside or around it); `--out` is
checked before the checkpoint is read. A quantised checkpoint exports to GGUF as f32, f16 or its
own grid's type (int8-block q8_0, int4-block q4_0), never requantised onto another grid.
"""

from __future__ import annotations

import argparse
import sys

from embeddinggemma.checkpoint.export import FORMATS, export
from embeddinggemma.checkpoint.gguf_export import GGUF_TYPES
from embeddinggemma.checkpoint.onnx_export import ONNX_TYPES
from embeddinggemma.paths import as_path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m embeddinggemma export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, type=as_path,
                        help="an Orbax checkpoint or a sentence-transformers directory")
    parser.add_argument("--out", required=True, type=as_path,
                        help="the directory to write (absent or empty); the file, for --format gguf")
    parser.add_argument("--format", choices=list(FORMATS), default="sentence-transformers")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier export of the same format at --out")
    gguf = parser.add_argument_group("--format gguf")
    gguf.add_argument("--gguf-type", choices=GGUF_TYPES, default=None,
                      help="the type of the matrices (vectors stay f32); default f32")
    onnx = parser.add_argument_group("--format onnx")
    onnx.add_argument("--onnx-type", choices=ONNX_TYPES, default=None,
                      help="f32 (default), f16 (weights; float32 compute), q8 / q4 (int8-block / int4-block)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Only the options given: a format refuses one it does not take (export() names it).
    options = {name: getattr(args, name) for name in ("gguf_type", "onnx_type")
               if getattr(args, name) is not None}
    try:
        out = export(args.checkpoint, args.out, args.format, args.overwrite, **options)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote a {args.format} export of {args.checkpoint} to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
