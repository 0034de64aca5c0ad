"""Command line: embed a file of texts into a .npy matrix.

    python -m embeddinggemma embed --checkpoint DIR --input FILE --output OUT.npy \
        [--prompt-name NAME] [--dim N] [--max-length N] [--batch-size N] [--dtype float32|bfloat16]

FILE is JSON lines with a `text` field, or plain text with one text per line; lines end at LF or
CRLF only (a form feed or U+2028 stays inside its line), so row i is line i. Texts are embedded
as given unless a prompt name is given. The output is written atomically. Exit status 2 for a bad
input, checkpoint or output.
"""

from __future__ import annotations

import argparse
import sys

from embeddinggemma.atomic import save_npy
from embeddinggemma.files import read_texts
from embeddinggemma.paths import as_path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m embeddinggemma embed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, type=as_path,
                        help="Orbax checkpoint or sentence-transformers directory.")
    parser.add_argument("--input", required=True, type=as_path, help="JSON lines or plain text file.")
    parser.add_argument("--output", required=True, type=as_path, help="Where to write the .npy array.")
    parser.add_argument("--prompt-name", default=None, help="Task prompt, e.g. query, document, STS.")
    parser.add_argument("--dim", type=int, default=None, help="Matryoshka dimension.")
    parser.add_argument("--max-length", type=int, default=2048, help="Tokens per text.")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from embeddinggemma.api import Embedder  # after parsing, so --help is instant

    try:
        texts = read_texts(args.input)
        embedder = Embedder.load(args.checkpoint, dtype=args.dtype)
        embeddings = embedder.encode(texts, prompt_name=args.prompt_name, dim=args.dim,
                                     batch_size=args.batch_size, max_length=args.max_length)
        save_npy(args.output, embeddings)
    except (OSError, ValueError) as e:  # the input, the checkpoint, the output: exit 2, as README says
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {embeddings.shape[0]} x {embeddings.shape[1]} embeddings to {args.output}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
