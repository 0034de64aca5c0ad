"""Command line: convert a checkpoint between the Orbax and sentence-transformers layouts.

    python -m embeddinggemma.convert --checkpoint SRC --output DST [--to orbax|sentence-transformers]

SRC is either layout (detected). DST must be absent or empty: a directory holding anything else,
a checkpoint included, is refused and left as it is. Everything is written into a hidden sibling
and renamed into place at the end, so a failed conversion leaves nothing behind.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from embeddinggemma.checkpoint.loading import load_checkpoint
from embeddinggemma.checkpoint.orbax_io import save_orbax
from embeddinggemma.checkpoint.sentence_transformers import export_sentence_transformers

WRITERS = {"orbax": save_orbax, "sentence-transformers": export_sentence_transformers}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m embeddinggemma.convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, type=Path, help="Source directory.")
    parser.add_argument("--output", required=True, type=Path, help="Destination directory (absent or empty).")
    parser.add_argument("--to", choices=sorted(WRITERS), default="orbax")
    args = parser.parse_args(argv)
    try:
        ckpt = load_checkpoint(args.checkpoint)
        WRITERS[args.to](args.output, ckpt.config, ckpt.params, ckpt.tokenizer_path, ckpt.prompts)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.to} checkpoint to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
