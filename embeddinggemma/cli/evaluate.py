"""Command line: the offline evaluation suite for checkpoints, dimensions and quantisation schemes.

    python -m embeddinggemma evaluate --checkpoint DIR [DIR ...] --dims 768,512,256,128 \\
        [--quant int8-block,int4-block,mixed] --out DIR [--tasks A,B] [--max-length 512]

Every checkpoint (Orbax, sentence-transformers, or a run's `export/`) is scored on every task at
every dimension, and again under each quantisation scheme. Writes DIR/results.json,
DIR/results.md and DIR/score_vs_dim.png. Embeddings are cached (by checkpoint files, dtype,
quantisation, context length and task data) in ~/.cache/embeddinggemma/eval-cache, so a second run
of the same checkpoint is fast. The suite is built on first use (scripts/build_eval_suite.py).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from embeddinggemma.paths import as_path

DEFAULT_CACHE = Path("~/.cache/embeddinggemma/eval-cache")


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _parser() -> argparse.ArgumentParser:
    from embeddinggemma.evaluation.build import DEFAULT_SUITE_DIR
    from embeddinggemma.evaluation.encoders import DEFAULT_MAX_LENGTH
    from embeddinggemma.quantization import SCHEMES

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", nargs="+", required=True, type=as_path, help="checkpoint directories")
    p.add_argument(
        "--dims",
        type=_ints,
        default=None,
        help="e.g. 768,512,256,128 (default: the checkpoint's Matryoshka dimensions)",
    )
    p.add_argument("--quant", type=_names, default=[], help=f"schemes, comma-separated: {', '.join(SCHEMES)}")
    p.add_argument("--out", type=as_path, required=True, help="directory for results.json, .md, .png")
    p.add_argument("--tasks", type=_names, default=None, help="task names (default: all)")
    p.add_argument("--suite", type=as_path, default=DEFAULT_SUITE_DIR,
                   help="a built suite, or an absent or empty directory to build it in")
    p.add_argument("--max-length", type=int, default=DEFAULT_MAX_LENGTH)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    p.add_argument("--cache-dir", type=as_path, default=DEFAULT_CACHE)
    p.add_argument("--no-cache", action="store_true", help="embed everything again, store nothing")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from embeddinggemma.evaluation.evaluate_checkpoints import EvaluationInputError, evaluate_checkpoints
    from embeddinggemma.evaluation.report import write_reports
    from embeddinggemma.evaluation.runner import EmbeddingCache
    from embeddinggemma.evaluation.tasks import ensure_suite, load_suite
    from embeddinggemma.quantization import SCHEMES

    bad = [q for q in args.quant if q not in SCHEMES]
    missing = [str(c) for c in args.checkpoint if not c.expanduser().is_dir()]
    if bad:
        print(f"error: unknown --quant {bad}; valid: {', '.join(SCHEMES)}", file=sys.stderr)
        return 2
    if missing:
        print(f"error: checkpoint directory not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        tasks = load_suite(ensure_suite(args.suite), args.tasks)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    try:
        rows = evaluate_checkpoints(args.checkpoint, tasks, dims=args.dims, quant=args.quant,
                                    dtype=args.dtype, max_length=args.max_length, batch_size=args.batch_size,
                                    cache=EmbeddingCache(None if args.no_cache else args.cache_dir))
    except EvaluationInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    suite = {
        "dir": str(args.suite.expanduser()),
        "tasks": {t.name: {"type": t.type, "sha256": t.sha256} for t in tasks},
        "max_length": args.max_length,
        "dtype": args.dtype,
    }
    paths = write_reports(rows, args.out, suite)
    print(paths["markdown"].read_text())
    print(
        f"{len(rows)} results in {time.perf_counter() - started:.0f} s: "
        + ", ".join(str(p) for p in paths.values()),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
