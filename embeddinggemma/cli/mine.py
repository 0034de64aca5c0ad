"""Command line: mine hard negatives for a JSON-lines file of (query, positive) pairs.

    python -m embeddinggemma mine --checkpoint DIR --input pairs.jsonl --out triples.jsonl \
        [--corpus docs.jsonl] [--method model|bm25] [--num-negatives N] [--range A:B] [--margin M] \
        [--max-length N] [--batch-size N] [--dtype float32|bfloat16] [--chunk-size N]

Candidates are every positive of the input (or the documents of --corpus: JSON lines with `text`,
or one per line), ranked by the checkpoint's embeddings of the prompted texts (--method model) or
by BM25. The pair's own positive and its near-duplicates are skipped, and so is a candidate
scoring above the positive's score minus --margin (a likely false negative; default 0.05 cosine
similarity for the model, 0 for BM25). The output holds one line per input pair in the input's
order, with `negative` (and `negatives` for --num-negatives above 1); the train command reads it
as a dataset. Embeddings are kept in chunks in OUT.mining/, so a killed run started again goes on
where it stopped, and a rerun with another --margin or --num-negatives embeds nothing. An --out
that this command did not write is refused. Exit status 2 for a bad input line (named by file and
line), argument, checkpoint or output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from embeddinggemma.errors import InputError, MalformedRecordError, NotOurDirectoryError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m embeddinggemma mine", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="Orbax or sentence-transformers directory (for --method model).")
    parser.add_argument("--input", required=True, type=Path, help="JSON lines of pairs.")
    parser.add_argument("--out", required=True, type=Path, help="The JSON-lines file to write.")
    parser.add_argument("--corpus", type=Path, default=None, help="Candidate documents.")
    parser.add_argument("--method", choices=("model", "bm25"), default="model")
    parser.add_argument("--num-negatives", type=int, default=1)
    parser.add_argument("--range", default=":", help="A:B mines records A..B-1 of the input (from 0).")
    parser.add_argument("--margin", type=float, default=None,
                        help="Keep a candidate only when its score <= the positive's - MARGIN "
                             "(default: 0.05 for model, 0 for bm25).")
    parser.add_argument("--max-length", type=int, default=256, help="Tokens per text (model).")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--chunk-size", type=int, default=1024, help="Texts per stored chunk of embeddings.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from embeddinggemma.data.mining import mine_file, parse_range  # after parsing: --help is instant

    try:
        start, stop = parse_range(args.range)
        embed, identity = None, ""
        if args.method == "model":
            if args.checkpoint is None:
                raise InputError("--method model needs --checkpoint.")
            from embeddinggemma.api import Embedder
            from embeddinggemma.evaluation.encoders import checkpoint_fingerprint

            embedder = Embedder.load(args.checkpoint, dtype=args.dtype)
            identity = f"{checkpoint_fingerprint(args.checkpoint)} {args.dtype} {args.max_length}"
            def embed(texts: list[str]):
                return embedder.encode(texts, max_length=args.max_length, batch_size=args.batch_size)
        summary = mine_file(args.input, args.out, method=args.method, embed=embed, identity=identity,
                            corpus=args.corpus, num_negatives=args.num_negatives, margin=args.margin,
                            start=start, stop=stop, chunk_size=args.chunk_size)
    except (MalformedRecordError, InputError, NotOurDirectoryError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"mine: wrote {summary.pairs} pairs to {args.out} ({summary.short} with fewer than "
          f"{args.num_negatives} negatives; embedding chunks: {summary.chunks_reused} reused, "
          f"{summary.chunks_embedded} embedded)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
