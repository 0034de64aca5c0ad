"""Training-step throughput: the JAX train step against a sentence-transformers (PyTorch) step.

    .venv/bin/python bench/train_step.py [--quick] [--warmup N] [--steps N] [--init released|random]
                                         [--model-dir DIR]

Both sides train EmbeddingGemma-300M in float32 on the same 16 (query, document) pairs of real
text (bench/texts.py, with their prompts, at most 128 tokens each), AdamW, global-norm clipping 1.0:
  jax:    `embeddinggemma.training` step: contrastive (t = 0.05) + spread-out, Matryoshka 768..128.
  torch:  MatryoshkaLoss(MultipleNegativesRankingLoss(scale=1/0.05)), same dims, torch.optim.AdamW.
Each side runs in its own fresh subprocess (so peak RSS is its own): set-up, warm-up steps, then
timed steps; tokens/s is real (non-pad) query + positive tokens per step over the median step.
Writes bench/results/train_step_<timestamp>.json and train_step_latest.json. See bench/README.md.

The timing, memory and result-file helpers here are shared with bench/grad_cache_memory.py.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from system import (  # noqa: E402
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

from embeddinggemma.model.config import REMAT  # noqa: E402

N_PAIRS = 16
MAX_LENGTH = 128
TEMPERATURE = 0.05
MATRYOSHKA_DIMS = (768, 512, 256, 128)
LEARNING_RATE = 1e-4
WEIGHT_DECAY = 0.01
CLIP_NORM = 1.0
SIDES = ("jax", "torch")
VERSIONED = ("jax", "jaxlib", "flax", "optax", "numpy", "torch", "transformers",
             "sentence-transformers", "embeddinggemma")
WORKER_TIMEOUT_S = 1200


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- memory and timing, measured inside a worker process -------------------------------------

def current_rss_mib() -> float:
    """Resident set size of this process now, from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    """High-water mark of this process's RSS (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Resets the RSS high-water mark (Linux >= 4.0), so a later peak covers only what follows."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def time_steps(run_step: Callable[[], float], warmup: int, steps: int) -> dict:
    """Runs `warmup` then `steps` calls of `run_step` (each returns its loss); per-step seconds.

    Resets the RSS high-water mark first, so `peak_rss_steps_mib` is the peak of the steps alone.
    """
    before = current_rss_mib()
    setup_peak = peak_rss_mib()
    reset = reset_peak_rss()
    warmup_s, step_s, losses = [], [], []
    for i in range(warmup + steps):
        if i == warmup:
            cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        load = OtherLoad()
        t0 = time.perf_counter()
        losses.append(run_step())
        seconds = time.perf_counter() - t0
        if i < warmup:
            warmup_s.append(seconds)
        else:
            step_s.append((seconds, load.stop()))
        log(f"  step {i + 1}/{warmup + steps}: {seconds:.2f} s, loss {losses[-1]:.4f}")
    steps_peak = peak_rss_mib()
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "median_step_s": round(statistics.median(s for s, _ in step_s), 4),
        "step_s": [round(s, 4) for s, _ in step_s],
        "warmup_step_s": [round(s, 4) for s in warmup_s],
        "other_cpu_share_per_step": [round(share, 3) for _, share in step_s],
        # Kernel time is mostly page faults: fresh buffers being mapped and zeroed.
        "cpu_user_s_per_step": round((cpu_after.ru_utime - cpu_before.ru_utime) / steps, 3),
        "cpu_system_s_per_step": round((cpu_after.ru_stime - cpu_before.ru_stime) / steps, 3),
        "minor_page_faults_per_step": round((cpu_after.ru_minflt - cpu_before.ru_minflt) / steps),
        "losses": [round(x, 5) for x in losses],
        "memory": {
            "rss_before_first_step_mib": round(before, 1),
            "peak_rss_setup_mib": round(setup_peak, 1),
            "peak_rss_steps_mib": round(steps_peak, 1),
            "peak_rss_process_mib": round(max(setup_peak, steps_peak), 1),
            "peak_reset_worked": reset,
        },
    }


def xla_memory(compiled) -> dict | None:
    """XLA's own buffer sizes of a compiled function (None where the backend gives none)."""
    try:
        stats = compiled.memory_analysis()
    except (AttributeError, NotImplementedError, RuntimeError):
        return None
    if stats is None:
        return None
    fields = ("temp_size_in_bytes", "argument_size_in_bytes", "output_size_in_bytes",
              "alias_size_in_bytes", "generated_code_size_in_bytes")
    return {f: int(getattr(stats, f)) for f in fields if hasattr(stats, f)}


def jax_machine() -> dict:
    import jax

    return {"jax_devices": [str(d) for d in jax.devices()], "xla_flags": os.environ.get("XLA_FLAGS")}


# --- the two workers -------------------------------------------------------------------------

def _jax_worker(spec: dict) -> dict:
    import jax
    import numpy as np

    from embeddinggemma.checkpoint.loading import load_checkpoint
    from embeddinggemma.prompts import load_prompts, resolve_prompt
    from embeddinggemma.tokenizer import Tokenizer, pad_batch
    from embeddinggemma.training.config import base_config, validate_config
    from embeddinggemma.training.state import ENCODER
    from embeddinggemma.training.trainer import assemble_trainer

    t_start = time.perf_counter()
    model_dir = Path(spec["model_dir"])
    config = base_config()
    config.model.preset = "embeddinggemma_300m"
    config.loss.temperature = TEMPERATURE
    config.loss.matryoshka_dims = MATRYOSHKA_DIMS
    config.loss.distillation_weight = 0.0
    config.train.batch_size = len(spec["queries"])
    config.train.hard_negatives = False
    config.optimizer.learning_rate = LEARNING_RATE
    # A constant rate, as the torch side uses: no warm-up steps with a zero rate.
    config.optimizer.warmup_steps = 0
    config.optimizer.decay = "constant"
    config.optimizer.weight_decay = WEIGHT_DECAY
    config.optimizer.clip_norm = CLIP_NORM
    config.mesh.shape = (1, 1, 1)
    if spec.get("remat"):
        config.model.remat = spec["remat"]
    validate_config(config)
    trainer = assemble_trainer(config, devices=jax.devices()[:1])

    t = trainer.model_config.transformer
    tokenizer = Tokenizer(model_dir / "tokenizer.model", bos_id=t.bos_id, eos_id=t.eos_id, pad_id=t.pad_id)
    prompts = load_prompts(model_dir)
    ids = {field: tokenizer.encode([resolve_prompt(prompts, prompt) + x for x in spec[texts]],
                                   spec["max_length"])
           for field, prompt, texts in (("query", "query", "queries"),
                                        ("positive", "document", "documents"))}
    n = config.train.batch_size
    # Padded to the batch's longest text, as sentence-transformers pads.
    batch = {k: pad_batch(v, max(map(len, v)), t.pad_id) for k, v in ids.items()}
    batch["query_id"] = batch["positive_id"] = np.arange(n, dtype=np.int32)

    state = trainer.init_state(seed=0)
    if spec["init"] == "released":
        released = load_checkpoint(model_dir).params
        expected = jax.tree.map(lambda x: (x.shape, str(x.dtype)), state["params"][ENCODER])
        if jax.tree.map(lambda x: (x.shape, str(x.dtype)), released) != expected:
            raise RuntimeError("the released checkpoint's parameters do not match the 300m preset")
        state["params"] = {**state["params"],
                           ENCODER: jax.device_put(released, trainer.state_shardings["params"][ENCODER])}
        del released
    batch = trainer.global_batch(batch)
    jax.block_until_ready((state, batch))
    setup_s = time.perf_counter() - t_start

    t0 = time.perf_counter()
    compiled = trainer.train_step.lower(state, batch).compile()
    compile_s = time.perf_counter() - t0

    terms = {"contrastive": [], "spread_out": []}

    def run_step() -> float:
        nonlocal state
        state, metrics = compiled(state, batch)
        jax.block_until_ready((state, metrics))
        for name, values in terms.items():
            values.append(round(float(metrics[f"{name}/loss"]), 5))
        return float(metrics["loss"])

    out = time_steps(run_step, spec["warmup"], spec["steps"])
    out.update({
        "tokens": {k: {"real": sum(map(len, ids[k])), "padded_shape": list(batch[k].shape)}
                   for k in ("query", "positive")},
        "setup_s": round(setup_s, 3),
        "compile_s": round(compile_s, 3),
        "xla_memory": xla_memory(compiled),
        # Per step; the first contrastive loss (same weights, same InfoNCE) should match the
        # torch side's first loss.
        "contrastive_losses": terms["contrastive"],
        "spread_out_losses": terms["spread_out"],
        "init": spec["init"],
        "loss": "contrastive + spread-out, Matryoshka " + "/".join(map(str, MATRYOSHKA_DIMS)),
        "remat": config.model.remat,
        "optimizer": f"optax adamw (weight decay {WEIGHT_DECAY}, not on norm scales), clip {CLIP_NORM}",
        "machine": jax_machine(),
    })
    return out


def _torch_worker(spec: dict) -> dict:
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import (
        MatryoshkaLoss,
        MultipleNegativesRankingLoss,
    )

    t_start = time.perf_counter()
    torch.set_num_threads(spec["torch_threads"])
    model = SentenceTransformer(spec["model_dir"], device="cpu")
    model.max_seq_length = spec["max_length"]
    if spec["init"] == "random":
        # transformers skips modules it marks initialised, so `init_weights()` would change nothing.
        with torch.no_grad():
            for param in model.parameters():
                if param.dim() > 1:
                    param.normal_(0.0, 0.02)
    model.train()
    features = [model.preprocess(spec[texts], prompt=model.prompts[prompt])
                for texts, prompt in (("queries", "query"), ("documents", "document"))]
    loss_fn = MatryoshkaLoss(model, MultipleNegativesRankingLoss(model, scale=1.0 / TEMPERATURE),
                             list(MATRYOSHKA_DIMS))
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    setup_s = time.perf_counter() - t_start

    def run_step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(features, None)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
        optimizer.step()
        return float(loss.detach())

    out = time_steps(run_step, spec["warmup"], spec["steps"])
    out.update({
        "tokens": {k: {"real": int(f["attention_mask"].sum()), "padded_shape": list(f["input_ids"].shape)}
                   for k, f in zip(("query", "positive"), features, strict=True)},
        "setup_s": round(setup_s, 3),
        "init": spec["init"],
        "loss": "MatryoshkaLoss(MultipleNegativesRankingLoss) " + "/".join(map(str, MATRYOSHKA_DIMS)),
        "optimizer": f"torch.optim.AdamW (weight decay {WEIGHT_DECAY} on all), clip {CLIP_NORM}",
        "machine": {"torch_threads": torch.get_num_threads(),
                    "dtype": str(next(model.parameters()).dtype),
                    "attention": getattr(model[0].auto_model.config, "_attn_implementation", None)},
    })
    return out


WORKERS = {"jax": _jax_worker, "torch": _torch_worker}


def run_worker(script: Path, side: str, spec: dict, timeout_s: float = WORKER_TIMEOUT_S) -> dict:
    """Runs `script --worker SIDE SPEC.json` in a fresh process; its last stdout line is the result."""
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(spec))
        load = OtherLoad()
        t0 = time.perf_counter()
        # stderr passes through, so progress shows while the worker runs.
        done = subprocess.run([sys.executable, str(script), "--worker", side, str(spec_path)],
                              stdout=subprocess.PIPE, text=True, check=False, timeout=timeout_s)
        wall = time.perf_counter() - t0
        share = load.stop()
    if done.returncode != 0:
        raise RuntimeError(f"{script.name} worker {side} failed (exit {done.returncode})")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = round(wall, 2)
    result["other_cpu_share_process"] = round(share, 3)
    return result


# --- the parent ------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke check: 1 warm-up and 1 timed step (writes train_step_quick_*.json)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 2, quick 1)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 3, quick 1)")
    parser.add_argument("--init", choices=("released", "random"), default="released",
                        help="start both sides from the released weights or from random ones")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="sentence-transformers directory (default: fetch_release())")
    parser.add_argument("--remat", choices=REMAT, default=None,
                        help="the JAX side's model.remat (default: the training config's)")
    parser.add_argument("--worker", nargs=2, metavar=("SIDE", "SPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.warmup is None:
        args.warmup = 1 if args.quick else 2
    if args.steps is None:
        args.steps = 1 if args.quick else 3
    if args.warmup < 0 or args.steps < 1:
        parser.error("--warmup must be >= 0 and --steps >= 1")
    return args


def summarize(side: dict) -> dict:
    """Tokens/s from the median step: real tokens and every padded position computed."""
    real = sum(v["real"] for v in side["tokens"].values())
    padded = sum(v["padded_shape"][0] * v["padded_shape"][1] for v in side["tokens"].values())
    median = side["median_step_s"]
    return {"tokens_per_s": round(real / median, 2), "padded_tokens_per_s": round(padded / median, 2),
            "pairs_per_s": round(side["tokens"]["query"]["padded_shape"][0] / median, 3),
            "real_tokens": real, "padded_tokens": padded}


def format_summary(result: dict) -> str:
    """A few lines for people; the JSON has everything."""
    s = result["settings"]
    lines = [f"CPU: {result['machine']['cpu_model']}, {result['machine']['cpu_count']} cores",
             f"{s['pairs']} pairs, <= {s['max_length']} tokens, fp32, init {s['init']}, "
             f"median of {s['steps']} steps after {s['warmup']} warm-up",
             f"{'':8}{'tokens/s':>10}{'step s':>9}{'compile s':>11}{'RSS before':>12}"
             f"{'peak steps':>12}{'peak all':>10}  (MiB)"]
    for side in SIDES:
        r, m = result[side], result[side]["memory"]
        compile_s = f"{r['compile_s']:.1f}" if "compile_s" in r else "-"
        lines.append(f"{side:8}{r['summary']['tokens_per_s']:>10.1f}{r['median_step_s']:>9.2f}"
                     f"{compile_s:>11}{m['rss_before_first_step_mib']:>12.0f}"
                     f"{m['peak_rss_steps_mib']:>12.0f}{m['peak_rss_process_mib']:>10.0f}")
    lines.append(f"jax / torch tokens/s: {result['jax_over_torch_tokens_per_s']:.3f}")
    lines.append(f"other processes' CPU share: {result['other_cpu_share_overall']:.1%} overall, "
                 f"{result['idle_before']['other_cpu_share']:.1%} just before")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        side, spec_path = args.worker
        print(json.dumps(WORKERS[side](json.loads(Path(spec_path).read_text()))))
        return 0

    from texts import gather_texts, texts_digest

    started = datetime.datetime.now()
    overall = OtherLoad()
    idle_before = idle_check()
    if idle_before["other_cpu_share"] > 0.1:
        log(f"warning: other processes use {idle_before['other_cpu_share']:.0%} of the CPU")
    model_dir = args.model_dir
    if model_dir is None:
        from embeddinggemma.artefacts import fetch_release
        model_dir = fetch_release()
    queries, documents = gather_texts(N_PAIRS, N_PAIRS)
    spec = {"queries": queries, "documents": documents, "max_length": MAX_LENGTH,
            "model_dir": str(model_dir), "init": args.init, "warmup": args.warmup,
            "steps": args.steps, "torch_threads": os.cpu_count() or 1, "remat": args.remat}

    sides = {}
    for side in SIDES:
        log(f"train step: {side} (fresh process)")
        sides[side] = run_worker(Path(__file__), side, spec)
        sides[side]["summary"] = summarize(sides[side])
    mismatch = {k: sides["jax"]["tokens"][k]["real"] - sides["torch"]["tokens"][k]["real"]
                for k in ("query", "positive")}
    result = {
        "benchmark": "train_step",
        "started": started.strftime("%Y%m%d-%H%M%S"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "quick": args.quick,
        "settings": {"pairs": N_PAIRS, "max_length": MAX_LENGTH, "dtype": "float32",
                     "temperature": TEMPERATURE, "matryoshka_dims": list(MATRYOSHKA_DIMS),
                     "learning_rate": LEARNING_RATE, "init": args.init, "remat": args.remat or "default",
                     "warmup": args.warmup,
                     "steps": args.steps, "model_dir": str(model_dir)},
        "machine": {"cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "allocator": allocator(),
                    "cpu_kernels": cpu_kernels(),
                    "python": sys.version.split()[0], "versions": package_versions(VERSIONED)},
        "texts": {"n_queries": len(queries), "n_documents": len(documents),
                  "digest": texts_digest(queries, documents)},
        "jax": sides["jax"],
        "torch": sides["torch"],
        "jax_over_torch_tokens_per_s": round(
            sides["jax"]["summary"]["tokens_per_s"] / sides["torch"]["summary"]["tokens_per_s"], 3),
        "real_token_mismatch_jax_minus_torch": mismatch,
        "idle_before": idle_before,
        "other_cpu_share_overall": round(overall.stop(), 3),
        "wall_s": round((datetime.datetime.now() - started).total_seconds(), 1),
    }
    path = write_result("train_step_quick" if args.quick else "train_step", result)
    print(format_summary(result))
    print(f"wrote {path.relative_to(BENCH_DIR.parent)}")
    return 0


if __name__ == "__main__":
    start_as_the_commands_do()
    sys.exit(main())
