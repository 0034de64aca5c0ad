"""The README's first command: a small end-to-end training run on real text, on the CPU.

Builds the small real corpus (once, about a minute; see scripts/build_corpus.py), trains the tiny
model with `configs/finetune.py:tiny` (contrastive loss with hard negatives, spread-out,
Matryoshka), evaluates held-out retrieval nDCG@10 before and after, and prints a summary.

    python -m embeddinggemma demo [--workdir runs/demo-...] [--steps N] [--corpus DIR]

Exit status 1 when the held-out score did not improve.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import ml_collections

from embeddinggemma.training.config_files import load_config
from embeddinggemma.training.loop import RunSummary, train
from embeddinggemma.training.metrics import TENSORBOARD_DIR, read_jsonl

CONFIG = "finetune:tiny"  # configs/finetune.py, found from any working directory


def demo_config(steps: int | None, corpus: str | None) -> ml_collections.ConfigDict:
    """The demo's config: CONFIG, shortened to `steps` (evaluated and saved three times)."""
    config = load_config(CONFIG)
    if steps:
        config.train.num_steps = steps
        config.optimizer.warmup_steps = min(config.optimizer.warmup_steps, steps // 10)
        config.checkpoint.every_steps = config.eval.every_steps = max(1, steps // 3)
    if corpus:
        config.data.corpus = corpus
    return config


def summary_table(summary: RunSummary) -> str:
    before, after = summary.evaluations[0], summary.evaluations[summary.last_step]
    rows = read_jsonl(summary.workdir / "metrics.jsonl")
    lines = [f"{'held-out retrieval nDCG@10':<34}{'before':>10}{'after':>10}"]
    for key in sorted(k for k in before if k != "eval/ndcg_at_10") + ["eval/ndcg_at_10"]:
        name = key.split("/")[1] if key.count("/") == 2 else "mean"
        lines.append(f"  {name:<32}{before[key]:>10.4f}{after[key]:>10.4f}")
    lines += [
        "",
        f"steps {summary.last_step}, {summary.seconds:.0f} s "
        f"({summary.last_step / summary.seconds:.1f} steps/s with start-up and evaluation)",
        f"loss {rows[0]['loss']:.3f} at step 1 -> {rows[-1]['loss']:.3f} at step {rows[-1]['step']}",
        f"checkpoints  {summary.workdir / 'checkpoints'}",
        f"export       {summary.export_dir}  (Embedder.load reads it)",
        f"metrics      {summary.workdir / 'metrics.jsonl'}",
        f"TensorBoard  tensorboard --logdir {summary.workdir / TENSORBOARD_DIR}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=None, help="default: runs/demo-<date>-<time>")
    parser.add_argument("--steps", type=int, default=None, help="default: the config's (300)")
    parser.add_argument("--corpus", default=None,
                        help="default: the config's (~/.cache/embeddinggemma/corpus-v3)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    workdir = args.workdir or Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    summary = train(demo_config(args.steps, args.corpus), workdir)
    print(summary_table(summary))
    before, after = (summary.evaluations[s]["eval/ndcg_at_10"] for s in (0, summary.last_step))
    if after <= before:
        print(f"held-out nDCG@10 did not improve ({before:.4f} -> {after:.4f})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
