"""Command line: embed a file of texts into a .npy matrix.

    python -m embeddinggemma.embed --checkpoint DIR --input FILE --output OUT.npy \
        [--prompt-name NAME] [--dim N] [--max-length N] [--batch-size N] [--dtype float32|bfloat16]

FILE is JSON lines with a `text` field, or plain text with one text per line. Texts are embedded
as given unless a prompt name is given. The output is written atomically.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np

from embeddinggemma.atomic import atomic_write


def read_texts(path: Path) -> list[str]:
    """Texts from a JSON-lines file (objects with a string `text`) or a plain one-per-line file."""
    if not path.is_file():
        raise FileNotFoundError(f"Input file not found: {path}")
    raw = path.read_bytes()
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: invalid UTF-8 ({e.reason}).") from None
    lines = content.splitlines()
    first = next((line for line in lines if line.strip()), "")
    if not first.lstrip().startswith("{"):
        return lines
    texts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{number}: invalid JSON ({e.msg}).") from None
        if not isinstance(record, dict) or "text" not in record:
            raise ValueError(f"{path}:{number}: expected an object with a 'text' field.")
        if not isinstance(record["text"], str):
            raise ValueError(f"{path}:{number}: field 'text' is {type(record['text']).__name__}, "
                             "not a string.")
        texts.append(record["text"])
    return texts


def save_npy(path: Path, array: np.ndarray) -> None:
    """Writes `array` as a .npy file, atomically: `path` keeps its old content if this fails."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    atomic_write(path, buffer.getvalue())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m embeddinggemma.embed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, type=Path,
                        help="Orbax checkpoint or sentence-transformers directory.")
    parser.add_argument("--input", required=True, type=Path, help="JSON lines or plain text file.")
    parser.add_argument("--output", required=True, type=Path, help="Where to write the .npy array.")
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
    except (OSError, ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {embeddings.shape[0]} x {embeddings.shape[1]} embeddings to {args.output}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
