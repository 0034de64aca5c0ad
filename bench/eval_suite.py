"""How long the offline evaluation suite takes for the released model on this machine.

    .venv/bin/python bench/eval_suite.py [--model-dir DIR] [--tasks A,B] [--max-length 512]

Runs every task of the suite (built on first use) with the released checkpoint through
the evaluate command's encoder, float32, nothing cached, at the four Matryoshka dimensions, and
records per task: seconds embedding, seconds scoring, texts and tokens embedded (prompt, BOS and
EOS included, after truncation). Throughput is tokens / embedding seconds. Also records how long
sentence-transformers took under mteb for the golden scores (tests/golden/eval_scores_*.json),
measured by scripts/make_golden_scores.py in its own run. Writes bench/results/eval_suite_<ts>.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

from system import (
    BENCH_DIR,
    OtherLoad,
    allocator,
    cpu_kernels,
    cpu_model,
    idle_check,
    package_versions,
    start_as_the_commands_do,
    write_result,
)

DIMS = (768, 512, 256, 128)
GOLDEN = BENCH_DIR.parent / "tests" / "golden" / "eval_scores_embeddinggemma_300m.json"


class CountingEncoder:
    """Wraps the suite's encoder to count texts, tokens and seconds spent embedding."""

    def __init__(self, encoder):
        self.inner = encoder
        self.identity, self.prompts = encoder.identity, encoder.prompts
        self.texts = self.tokens = 0
        self.seconds = 0.0

    def encode(self, texts, prompt_name):
        started = time.perf_counter()
        vectors = self.inner.encode(texts, prompt_name)
        self.seconds += time.perf_counter() - started
        self.texts += len(texts)
        tokens = self.inner.embedder.tokenize(
            list(texts), prompt_name=prompt_name, max_length=self.inner.max_length
        )
        self.tokens += sum(len(t) for t in tokens)
        return vectors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--tasks", default=None)
    parser.add_argument("--max-length", type=int, default=512)
    args = parser.parse_args(argv)
    from embeddinggemma.artefacts import fetch_release
    from embeddinggemma.evaluation.build import DEFAULT_SUITE_DIR
    from embeddinggemma.evaluation.encoders import EmbedderEncoder
    from embeddinggemma.evaluation.runner import evaluate_task
    from embeddinggemma.evaluation.tasks import ensure_suite, load_suite

    model_dir = args.model_dir or fetch_release()
    tasks = load_suite(ensure_suite(DEFAULT_SUITE_DIR), args.tasks.split(",") if args.tasks else None)
    started = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    idle = idle_check()
    load = OtherLoad()
    total_start = time.perf_counter()
    t0 = time.perf_counter()
    encoder = EmbedderEncoder(model_dir, max_length=args.max_length)
    _ = encoder.embedder  # load now, timed apart from the tasks
    load_seconds = time.perf_counter() - t0
    rows = {}
    for task in tasks:
        counting = CountingEncoder(encoder)
        t0 = time.perf_counter()
        scores = evaluate_task(task, counting, DIMS)
        seconds = time.perf_counter() - t0
        rows[task.name] = {
            "type": task.type,
            "seconds": round(seconds, 1),
            "embed_seconds": round(counting.seconds, 1),
            "score_seconds": round(seconds - counting.seconds, 1),
            "texts": counting.texts,
            "tokens": counting.tokens,
            "tokens_per_second": round(counting.tokens / counting.seconds, 1),
            "main_score_768": round(scores[768]["main_score"], 5),
        }
        print(f"[bench] {task.name}: {json.dumps(rows[task.name])}", file=sys.stderr, flush=True)
    total = time.perf_counter() - total_start
    embed_seconds = sum(r["embed_seconds"] for r in rows.values())
    tokens = sum(r["tokens"] for r in rows.values())
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.is_file() else {}
    result = {
        "benchmark": "eval_suite",
        "started": started,
        "machine": {"cpu": cpu_model(), "allocator": allocator(),
                    "cpu_kernels": cpu_kernels(), "idle_before": idle,
                    "other_cpu_share": round(load.stop(), 3)},
        "versions": package_versions(("jax", "jaxlib", "flax", "numpy", "scikit-learn", "embeddinggemma")),
        "model_dir": str(model_dir),
        "max_length": args.max_length,
        "dims": list(DIMS),
        "load_seconds": round(load_seconds, 1),
        "total_seconds": round(total, 1),
        "embed_seconds": round(embed_seconds, 1),
        "texts": sum(r["texts"] for r in rows.values()),
        "tokens": tokens,
        "tokens_per_second": round(tokens / embed_seconds, 1),
        "tasks": rows,
        "sentence_transformers_under_mteb_seconds": golden.get("seconds"),
    }
    path = write_result("eval_suite", result)
    print(
        f"suite: {total:.0f} s total ({load_seconds:.0f} s loading, {embed_seconds:.0f} s embedding "
        f"{result['texts']} texts / {tokens} tokens = {result['tokens_per_second']:.0f} tokens/s); {path}"
    )
    return 0


if __name__ == "__main__":
    start_as_the_commands_do()
    sys.exit(main())
