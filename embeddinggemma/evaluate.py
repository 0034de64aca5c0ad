"""Command line: the offline evaluation suite for checkpoints, dimensions and quantisation schemes.

    python -m embeddinggemma.evaluate --checkpoint DIR [DIR ...] --dims 768,512,256,128 \\
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

from tqdm.auto import tqdm

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
    p.add_argument("--checkpoint", nargs="+", required=True, type=Path, help="checkpoint directories")
    p.add_argument(
        "--dims",
        type=_ints,
        default=None,
        help="e.g. 768,512,256,128 (default: the checkpoint's Matryoshka dimensions)",
    )
    p.add_argument("--quant", type=_names, default=[], help=f"schemes, comma-separated: {', '.join(SCHEMES)}")
    p.add_argument("--out", type=Path, required=True, help="directory for results.json, .md, .png")
    p.add_argument("--tasks", type=_names, default=None, help="task names (default: all)")
    p.add_argument("--suite", type=Path, default=DEFAULT_SUITE_DIR,
                   help="a built suite, or an absent or empty directory to build it in")
    p.add_argument("--max-length", type=int, default=DEFAULT_MAX_LENGTH)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    p.add_argument("--no-cache", action="store_true", help="embed everything again, store nothing")
    return p


def _labels(checkpoints: list[Path]) -> list[str]:
    """Directory names, with parents added until they are distinct (runs/a/export, runs/b/export)."""
    depth = 1
    while True:
        labels = ["/".join(c.expanduser().resolve().parts[-depth:]) for c in checkpoints]
        if len(set(labels)) == len(labels) or depth > 8:
            return labels
        depth += 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from embeddinggemma.evaluation.encoders import EmbedderEncoder
    from embeddinggemma.evaluation.report import write_reports
    from embeddinggemma.evaluation.runner import EmbeddingCache, evaluate_task
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
    cache = EmbeddingCache(None if args.no_cache else args.cache_dir)
    started, rows = time.perf_counter(), []
    runs = [
        (c, label, q)
        for c, label in zip(args.checkpoint, _labels(args.checkpoint), strict=True)
        for q in [None, *args.quant]
    ]
    progress = tqdm(total=len(runs) * len(tasks), desc="evaluate", unit="task")
    for checkpoint, label, quant in runs:
        try:
            encoder = EmbedderEncoder(
                checkpoint,
                dtype=args.dtype,
                quant=quant,
                max_length=args.max_length,
                batch_size=args.batch_size,
            )
            dims = args.dims or list(encoder.default_dims())
        except (FileNotFoundError, ValueError) as e:
            print(f"error: {checkpoint}: {e}", file=sys.stderr)
            return 2
        model = label + (f"@{quant}" if quant else "")
        for task in tasks:
            progress.set_postfix_str(f"{model} {task.name}")
            try:
                per_dim = evaluate_task(task, encoder, dims, cache)
            except ValueError as e:
                print(f"error: {model} {task.name}: {e}", file=sys.stderr)
                return 2
            for dim, scores in per_dim.items():
                rows.append(
                    {
                        "model": model,
                        "checkpoint": str(checkpoint.expanduser().resolve()),
                        "quant": quant,
                        "dim": dim,
                        "task": task.name,
                        "type": task.type,
                        "main_score": scores["main_score"],
                        "scores": scores,
                    }
                )
            progress.update(1)
    progress.close()
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
