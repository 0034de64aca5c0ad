"""Memory of one training step with and without gradient caching (tiny model, large batch).

    .venv/bin/python bench/grad_cache_memory.py [--quick] [--pairs N] [--length T] [--chunk C]
                                                [--warmup N] [--steps N]

One step of the `tiny` preset on 1024 (query, positive) pairs of random token ids, 32 tokens
each, float32, AdamW, contrastive + spread-out over Matryoshka 64/32/16: once plain (the whole
batch's activations alive for the backward pass) and once with gradient caching in chunks of 64
(`train.grad_cache_chunk_size`), each in its own fresh subprocess. Reports XLA's temp buffer
size of the compiled step (the cleanest comparison), peak RSS and step times, and the first
step's loss and gradient norm of each (same parameters and batch, so they should agree).
Writes bench/results/grad_cache_memory_<timestamp>.json and grad_cache_memory_latest.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
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
from train_step import jax_machine, log, run_worker, time_steps, xla_memory

PAIRS = 1024
LENGTH = 32
CHUNK = 64
MIN_LENGTH = 8
FIRST_TOKEN_ID = 3  # below are pad (0), EOS (1) and BOS (2)
VERSIONED = ("jax", "jaxlib", "flax", "optax", "numpy", "embeddinggemma")


def random_batch(pairs: int, length: int, vocab_size: int, seed: int = 0) -> dict:
    """Right-padded random token ids, lengths uniform in [MIN_LENGTH, length], distinct ids."""
    import numpy as np

    rng = np.random.default_rng(seed)
    batch = {}
    for field in ("query", "positive"):  # pairs: no hard negatives
        tokens = rng.integers(FIRST_TOKEN_ID, vocab_size, size=(pairs, length), dtype=np.int32)
        lengths = rng.integers(min(MIN_LENGTH, length), length + 1, size=pairs)
        tokens[np.arange(length)[None, :] >= lengths[:, None]] = 0
        batch[field] = tokens
    batch["query_id"] = batch["positive_id"] = np.arange(pairs, dtype=np.int32)
    return batch


def _worker(spec: dict) -> dict:
    """One configuration (`chunk` 0 = plain) in this process: compile, then time the steps."""
    import jax

    from embeddinggemma.schema import ROLES
    from embeddinggemma.training.config import base_config, validate_config
    from embeddinggemma.training.trainer import assemble_trainer

    config = base_config()
    config.model.preset = "tiny"
    config.loss.matryoshka_dims = (64, 32, 16)
    config.loss.distillation_weight = 0.0
    config.train.batch_size = spec["pairs"]
    config.train.hard_negatives = False
    config.train.grad_cache_chunk_size = spec["chunk"]
    # Nonzero from the first step, so the first update is a real one.
    config.optimizer.warmup_steps = 0
    config.optimizer.decay = "constant"
    config.mesh.shape = (1, 1, 1)
    validate_config(config)
    trainer = assemble_trainer(config, devices=jax.devices()[:1])
    state = trainer.init_state(seed=0)
    batch = random_batch(spec["pairs"], spec["length"], trainer.model_config.transformer.vocab_size)
    real_tokens = int(sum((batch[k] != 0).sum() for k in ROLES if k in batch))
    batch = trainer.global_batch(batch)

    t0 = time.perf_counter()
    compiled = trainer.train_step.lower(state, batch).compile()
    compile_s = time.perf_counter() - t0
    first_metrics = {}

    def run_step() -> float:
        nonlocal state
        state, metrics = compiled(state, batch)
        jax.block_until_ready((state, metrics))
        if not first_metrics:
            first_metrics.update({k: float(v) for k, v in metrics.items()})
        return float(metrics["loss"])

    out = time_steps(run_step, spec["warmup"], spec["steps"])
    out.update({"chunk": spec["chunk"], "compile_s": round(compile_s, 3),
                "xla_memory": xla_memory(compiled), "real_tokens": real_tokens,
                "tokens_per_s": round(real_tokens / out["median_step_s"], 1),
                "first_step": {k: first_metrics[k] for k in ("loss", "grad_norm")},
                "machine": jax_machine()})
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke check: 1 warm-up, 1 timed step (writes grad_cache_memory_quick_*)")
    parser.add_argument("--pairs", type=int, default=PAIRS, help=f"batch of pairs (default {PAIRS})")
    parser.add_argument("--length", type=int, default=LENGTH, help=f"tokens per text (default {LENGTH})")
    parser.add_argument("--chunk", type=int, default=CHUNK, help=f"grad-cache chunk (default {CHUNK})")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 2, quick 1)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 5, quick 1)")
    parser.add_argument("--worker", nargs=2, metavar=("NAME", "SPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.warmup is None:
        args.warmup = 1 if args.quick else 2
    if args.steps is None:
        args.steps = 1 if args.quick else 5
    if args.chunk < 1 or args.pairs % args.chunk:
        parser.error(f"--pairs {args.pairs} must be a multiple of --chunk {args.chunk}")
    if args.warmup < 0 or args.steps < 1:
        parser.error("--warmup must be >= 0 and --steps >= 1")
    return args


def format_summary(result: dict) -> str:
    """A few lines for people; the JSON has everything."""
    s = result["settings"]
    lines = [f"CPU: {result['machine']['cpu_model']}, {result['machine']['cpu_count']} cores",
             f"tiny model, {s['pairs']} pairs x {s['length']} tokens, fp32, "
             f"median of {s['steps']} steps after {s['warmup']} warm-up",
             f"{'':14}{'XLA temp MiB':>13}{'peak RSS MiB':>14}{'step s':>9}{'loss':>10}{'grad norm':>11}"]
    for name in ("plain", "grad_cache"):
        r = result[name]
        temp = (r["xla_memory"] or {}).get("temp_size_in_bytes")
        temp_mib = f"{temp / 2**20:.1f}" if temp is not None else "-"
        label = name if name == "plain" else f"cache {r['chunk']}"
        lines.append(f"{label:14}{temp_mib:>13}{r['memory']['peak_rss_steps_mib']:>14.0f}"
                     f"{r['median_step_s']:>9.3f}{r['first_step']['loss']:>10.4f}"
                     f"{r['first_step']['grad_norm']:>11.4f}")
    lines.append(f"plain / grad cache: XLA temp {result['plain_over_grad_cache']['xla_temp']}, "
                 f"peak RSS {result['plain_over_grad_cache']['peak_rss_steps']}, "
                 f"step time {result['plain_over_grad_cache']['step_s']}")
    lines.append(f"other processes' CPU share: {result['other_cpu_share_overall']:.1%} overall, "
                 f"{result['idle_before']['other_cpu_share']:.1%} just before")
    return "\n".join(lines)


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(json.loads(Path(args.worker[1]).read_text()))))
        return 0

    started = datetime.datetime.now()
    overall = OtherLoad()
    idle_before = idle_check()
    if idle_before["other_cpu_share"] > 0.1:
        log(f"warning: other processes use {idle_before['other_cpu_share']:.0%} of the CPU")
    runs = {}
    for name, chunk in (("plain", 0), ("grad_cache", args.chunk)):
        log(f"grad-cache memory: {name} (fresh process)")
        spec = {"pairs": args.pairs, "length": args.length, "chunk": chunk,
                "warmup": args.warmup, "steps": args.steps}
        runs[name] = run_worker(Path(__file__), name, spec)
    plain, cached = runs["plain"], runs["grad_cache"]
    temp = {k: (r["xla_memory"] or {}).get("temp_size_in_bytes") for k, r in runs.items()}
    result = {
        "benchmark": "grad_cache_memory",
        "started": started.strftime("%Y%m%d-%H%M%S"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "quick": args.quick,
        "settings": {"preset": "tiny", "pairs": args.pairs, "length": args.length,
                     "chunk": args.chunk, "dtype": "float32", "tokens": "random ids",
                     "warmup": args.warmup, "steps": args.steps},
        "machine": {"cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "allocator": allocator(),
                    "cpu_kernels": cpu_kernels(),
                    "python": sys.version.split()[0], "versions": package_versions(VERSIONED)},
        "plain": plain,
        "grad_cache": cached,
        "plain_over_grad_cache": {
            "xla_temp": _ratio(temp["plain"], temp["grad_cache"]),
            "peak_rss_steps": _ratio(plain["memory"]["peak_rss_steps_mib"],
                                     cached["memory"]["peak_rss_steps_mib"]),
            "step_s": _ratio(plain["median_step_s"], cached["median_step_s"]),
        },
        "first_step_abs_diff": {k: abs(plain["first_step"][k] - cached["first_step"][k])
                                for k in ("loss", "grad_norm")},
        "idle_before": idle_before,
        "other_cpu_share_overall": round(overall.stop(), 3),
        "wall_s": round((datetime.datetime.now() - started).total_seconds(), 1),
    }
    path = write_result("grad_cache_memory_quick" if args.quick else "grad_cache_memory", result)
    print(format_summary(result))
    print(f"wrote {path.relative_to(BENCH_DIR.parent)}")
    return 0


if __name__ == "__main__":
    start_as_the_commands_do()
    sys.exit(main())
