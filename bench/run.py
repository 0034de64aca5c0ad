"""Benchmarks of the JAX implementation against sentence-transformers on CPU (run by `make bench`).

    .venv/bin/python bench/run.py [--only embed|long|train|memory|eval] [--quick] [--repeats N]
                                  [--model-dir DIR] [--skip-cold-start]

Runs all five benchmarks by default, or the one `--only` names:
  embed:   in one process on one machine, throughput (texts/s, real tokens/s) of both
           implementations on the same real queries and documents, after a full warm-up pass
           each; the agreement of their embeddings; and, in fresh subprocesses, the cold start
           (import, load, first batch). Writes bench/results/embed_<timestamp>.json and
           embed_latest.json (embed_quick_*.json with --quick).
  long:    bench/long_inputs.py, texts of 512, 1024 and 2048 tokens: the Embedder with dense and
           with banded local attention against sentence-transformers (tokens/s, peak memory).
  train:   bench/train_step.py, one training step of the 300m model, JAX against PyTorch.
  memory:  bench/grad_cache_memory.py, one step of the tiny model with and without grad caching.
  eval:    bench/eval_suite.py, the offline evaluation suite on the released model (about 10 min;
           --quick: two tasks).
Each prints a summary. See bench/README.md for the fields.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# Everything is local; never let the Hugging Face libraries try the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
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
from texts import gather_texts, texts_digest  # noqa: E402

MAX_LENGTH = 512
BATCH_SIZE = 32
PROMPTS = ("query", "document")
LABELS = (("embedder", "Embedder (JAX)"), ("sentence_transformers", "sentence-transformers"))
VERSIONED = ("jax", "jaxlib", "flax", "numpy", "torch", "transformers", "sentence-transformers",
             "embeddinggemma")
BENCHMARKS = ("embed", "long", "train", "memory", "eval")

Encoder = Callable[[list[str], str], np.ndarray]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=BENCHMARKS, default=None,
                        help="run one benchmark (default: all, in this order)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke check of each (embed: 64 texts, 1 timed repeat; *_quick_*.json)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed embed passes (default 3, quick 1)")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="sentence-transformers directory (default: fetch_release())")
    parser.add_argument("--skip-cold-start", action="store_true")
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def cold_start(impl: str, model_dir: Path, spec_path: Path) -> dict:
    """One fresh process: import, load, embed the first batch; plus the process's whole wall time."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, str(BENCH_DIR / "cold_start.py"), impl, str(model_dir),
                           str(spec_path)], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"cold start of {impl} failed (exit {done.returncode}):\n"
                           f"{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = wall
    return {k: round(v, 3) for k, v in result.items()}


def measure_cold_starts(model_dir: Path, documents: list[str], torch_threads: int) -> dict:
    """Cold starts of both implementations on the first batch of documents."""
    # Read the weights once so that neither process pays for the disk and the other not.
    for path in sorted(model_dir.rglob("*.safetensors")):
        with open(path, "rb") as f:
            while f.read(1 << 24):
                pass
    spec = {"texts": documents[:BATCH_SIZE], "prompt_name": "document", "max_length": MAX_LENGTH,
            "torch_threads": torch_threads}
    out: dict = {"texts": len(spec["texts"]), "prompt_name": "document", "page_cache": "warm",
                 "jax_compilation_cache_dir": os.environ.get("JAX_COMPILATION_CACHE_DIR")}
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = Path(tmp) / "first_batch.json"
        spec_path.write_text(json.dumps(spec))
        for impl in ("embedder", "sentence_transformers"):
            _log(f"cold start: {impl}")
            load = OtherLoad()
            out[impl] = cold_start(impl, model_dir, spec_path)
            out[impl]["other_cpu_share"] = round(load.stop(), 3)
    return out


def timed_pass(encode: Encoder, queries: list[str], documents: list[str]) -> dict:
    """One pass over all texts: seconds per prompt and in total, the embeddings, others' CPU share."""
    load = OtherLoad()
    seconds, parts = {}, []
    for prompt, texts in zip(PROMPTS, (queries, documents), strict=True):
        t0 = time.perf_counter()
        parts.append(encode(texts, prompt))
        seconds[prompt] = time.perf_counter() - t0
    return {"total_s": sum(seconds.values()), "seconds": seconds, "embeddings": np.concatenate(parts),
            "other_cpu_share": load.stop()}


def summarize_passes(passes: list[dict], warmup: dict, n_texts: int, n_tokens: int) -> dict:
    """Throughput from the median pass (best pass alongside), rounded for the result file."""
    totals = [p["total_s"] for p in passes]
    median, best = statistics.median(totals), min(totals)
    return {
        "texts_per_s": round(n_texts / median, 2),
        "tokens_per_s": round(n_tokens / median, 1),
        "best_texts_per_s": round(n_texts / best, 2),
        "best_tokens_per_s": round(n_tokens / best, 1),
        "median_pass_s": round(median, 3),
        "pass_s": [round(t, 3) for t in totals],
        "pass_s_by_prompt": [{k: round(v, 3) for k, v in p["seconds"].items()} for p in passes],
        "warmup_pass_s": round(warmup["total_s"], 3),
        "other_cpu_share_per_pass": [round(p["other_cpu_share"], 3) for p in passes],
    }


def cosine_agreement(a: np.ndarray, b: np.ndarray) -> dict:
    """How far apart two implementations' embeddings of the same texts are."""
    a, b = a.astype(np.float64), b.astype(np.float64)  # so rounding does not push cosines past 1
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {"max_abs_one_minus_cosine": float(np.max(np.abs(1.0 - cos))),
            "mean_one_minus_cosine": float(np.mean(1.0 - cos)),
            "max_abs_element_diff": float(np.max(np.abs(a - b)))}


def padded_tokens(lengths: list[int], order: np.ndarray, pad_rows: Callable[[int], int],
                  pad_length: Callable[[int], int]) -> int:
    """Token positions computed when texts are batched in `order` and padded as given."""
    total = 0
    for start in range(0, len(order), BATCH_SIZE):
        batch = [lengths[i] for i in order[start:start + BATCH_SIZE]]
        total += pad_rows(len(batch)) * pad_length(max(batch))
    return total


def token_stats(embedder, st_model, texts_by_prompt: dict[str, list[str]]) -> dict:
    """Real tokens per prompt (BOS/EOS and prompt included), cross-checked between tokenizers,
    and the padded positions each implementation computes."""
    from embeddinggemma.batching import bucket_batch_size, bucket_length

    out: dict = {"real": {}, "embedder_padded": 0, "st_padded_approx": 0, "mismatched_texts": 0,
                 "truncated_texts": 0}
    for prompt, texts in texts_by_prompt.items():
        ids = embedder.tokenize(texts, prompt, max_length=MAX_LENGTH)
        lengths = [len(i) for i in ids]
        features = st_model.preprocess(texts, prompt=st_model.prompts[prompt])
        st_lengths = features["attention_mask"].sum(dim=1).tolist()
        out["real"][prompt] = sum(lengths)
        out["mismatched_texts"] += sum(a != b for a, b in zip(lengths, st_lengths, strict=True))
        out["truncated_texts"] += sum(n == MAX_LENGTH for n in lengths)
        by_tokens = np.argsort(-np.asarray(lengths), kind="stable")
        out["embedder_padded"] += padded_tokens(
            lengths, by_tokens, lambda n: bucket_batch_size(n, BATCH_SIZE),
            lambda n: bucket_length(n, MAX_LENGTH))
        # sentence-transformers sorts by characters and pads each batch to its longest text.
        by_chars = np.argsort([-len(t) for t in texts], kind="stable")
        out["st_padded_approx"] += padded_tokens(lengths, by_chars, lambda n: n, lambda n: n)
    out["total"] = sum(out["real"].values())
    return out


def load_implementations(model_dir: Path) -> tuple[object, object, dict]:
    """The Embedder and the SentenceTransformer with their load times."""
    from sentence_transformers import SentenceTransformer

    from embeddinggemma import Embedder

    t0 = time.perf_counter()
    embedder = Embedder.load(model_dir, dtype="float32")
    t1 = time.perf_counter()
    st_model = SentenceTransformer(str(model_dir), device="cpu")
    st_model.max_seq_length = MAX_LENGTH
    t2 = time.perf_counter()
    st_dtype = str(next(st_model.parameters()).dtype)
    if st_dtype != "torch.float32":
        raise RuntimeError(f"sentence-transformers loaded {st_dtype}, not float32")
    info = {"embedder_load_s": round(t1 - t0, 3), "st_load_s": round(t2 - t1, 3),
            "st_dtype": st_dtype, "st_attention": _attention_implementation(st_model),
            "torch_inference": "sentence-transformers encode (inference_mode)"}
    return embedder, st_model, info


def _attention_implementation(st_model) -> str | None:
    try:
        return st_model[0].auto_model.config._attn_implementation
    except (AttributeError, IndexError, TypeError):
        return None


def measure_throughput(model_dir: Path, queries: list[str], documents: list[str],
                       repeats: int) -> dict:
    """Warm-up then `repeats` timed passes per implementation, alternating which goes first."""
    embedder, st_model, load_info = load_implementations(model_dir)
    tokens = token_stats(embedder, st_model, {"query": queries, "document": documents})

    def embedder_encode(texts: list[str], prompt: str) -> np.ndarray:
        return embedder.encode(texts, prompt_name=prompt, batch_size=BATCH_SIZE,
                               max_length=MAX_LENGTH, show_progress=False)

    def st_encode(texts: list[str], prompt: str) -> np.ndarray:
        return st_model.encode(texts, prompt_name=prompt, batch_size=BATCH_SIZE,
                               convert_to_numpy=True, show_progress_bar=False)

    encoders = {"embedder": embedder_encode, "sentence_transformers": st_encode}
    warmups, passes = {}, {name: [] for name in encoders}
    for name, encode in encoders.items():
        _log(f"warm-up pass: {name}")
        warmups[name] = timed_pass(encode, queries, documents)
    for r in range(repeats):
        # Alternating the order spreads any drift in background load over both.
        for name in (list(encoders) if r % 2 == 0 else list(encoders)[::-1]):
            _log(f"timed pass {r + 1}/{repeats}: {name}")
            passes[name].append(timed_pass(encoders[name], queries, documents))

    n_texts = len(queries) + len(documents)
    result = {name: summarize_passes(passes[name], warmups[name], n_texts, tokens["total"])
              for name in encoders}
    result["embedder_over_st_tokens_per_s"] = round(
        result["embedder"]["tokens_per_s"] / result["sentence_transformers"]["tokens_per_s"], 3)
    result["agreement"] = cosine_agreement(passes["embedder"][-1]["embeddings"],
                                           passes["sentence_transformers"][-1]["embeddings"])
    result["tokens"] = tokens
    result["load"] = load_info
    return result


def machine_info(torch_threads_default: int, torch_threads: int) -> dict:
    import jax

    return {"cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "allocator": allocator(),
            "cpu_kernels": cpu_kernels(),
            "torch_threads": torch_threads, "torch_threads_default": torch_threads_default,
            "jax_devices": [str(d) for d in jax.devices()], "xla_flags": os.environ.get("XLA_FLAGS"),
            "python": sys.version.split()[0], "versions": package_versions(VERSIONED)}


def format_summary(result: dict) -> str:
    """A few lines for people; the JSON has everything."""
    m, t = result["machine"], result["throughput"]
    tok = t["tokens"]
    lines = [
        f"CPU: {m['cpu_model']}, {m['cpu_count']} cores, torch threads {m['torch_threads']}",
        f"{result['texts']['n_queries']} queries + {result['texts']['n_documents']} documents, "
        f"{tok['total']} real tokens ({tok['truncated_texts']} texts cut at {MAX_LENGTH}), "
        f"batch {BATCH_SIZE}, fp32, median of {result['repeats']}",
        f"{'':24}{'texts/s':>9}{'tokens/s':>10}{'pass s':>9}{'warm-up s':>11}",
    ]
    for name, label in LABELS:
        r = t[name]
        lines.append(f"{label:24}{r['texts_per_s']:>9.1f}{r['tokens_per_s']:>10.0f}"
                     f"{r['median_pass_s']:>9.2f}{r['warmup_pass_s']:>11.2f}")
    lines.append(f"Embedder / sentence-transformers tokens/s: {t['embedder_over_st_tokens_per_s']:.3f}")
    lines.append(f"padded positions computed: Embedder {tok['embedder_padded']}, "
                 f"sentence-transformers ~{tok['st_padded_approx']}")
    lines.append(f"max |1 - cosine| between the two: {t['agreement']['max_abs_one_minus_cosine']:.2e}")
    cold = result.get("cold_start")
    if cold:
        lines.append(f"cold start (s){'':10}{'import':>9}{'load':>8}{'1st batch':>11}{'process':>9}")
        for name, label in LABELS:
            c = cold[name]
            lines.append(f"{label:24}{c['import_s']:>9.2f}{c['load_s']:>8.2f}"
                         f"{c['first_batch_s']:>11.2f}{c['process_wall_s']:>9.2f}")
    lines.append(f"other processes' CPU share: {result['other_cpu_share_overall']:.1%} overall, "
                 f"{result['idle_before']['other_cpu_share']:.1%} just before")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    selected = BENCHMARKS if args.only is None else (args.only,)
    if "embed" in selected:
        run_embed(args)
    quick = ["--quick"] if args.quick else []
    if "long" in selected:
        import long_inputs
        long_inputs.main(quick + (["--model-dir", str(args.model_dir)] if args.model_dir else []))
    if "train" in selected:
        import train_step
        train_step.main(quick + (["--model-dir", str(args.model_dir)] if args.model_dir else []))
    if "memory" in selected:
        import grad_cache_memory
        grad_cache_memory.main(quick)
    if "eval" in selected:
        import eval_suite
        quick_tasks = ["--tasks", "Glib20PairClassification,ManPageSectionClustering"] if args.quick else []
        eval_suite.main(quick_tasks + (["--model-dir", str(args.model_dir)] if args.model_dir else []))
    headline = [line for name in selected if name in HEADLINES
                for line in [headline_ratio(name, args.quick)] if line]
    if headline:
        print(f"\nOn {cpu_model()} ({os.cpu_count()} cores), measured side by side in this run:")
        print("\n".join(headline))
    return 0


# benchmark -> (its result file's stem, what its headline ratio compares, where the ratio is)
HEADLINES = {
    "embed": ("embed", "Embedder / sentence-transformers, texts cut at 512 tokens",
              lambda r: r["throughput"]["embedder_over_st_tokens_per_s"]),
    "long": ("long_inputs", "banded / dense local attention, the longest input",
             lambda r: r["lengths"][max(r["lengths"], key=int)]["banded_over_dense"]),
    "train": ("train_step", "JAX / PyTorch training step, 300m, 16 pairs",
              lambda r: r["jax_over_torch_tokens_per_s"]),
}


def headline_ratio(name: str, quick: bool) -> str | None:
    """One line with the ratio the benchmark `name` just wrote to its latest result file."""
    stem, what, ratio = HEADLINES[name]
    path = BENCH_DIR / "results" / f"{stem}{'_quick' if quick else ''}_latest.json"
    if not path.is_file():
        return None
    return f"  {ratio(json.loads(path.read_text())):.3f}x  {what}"


def run_embed(args: argparse.Namespace) -> None:
    """The embedding benchmark: throughput, agreement and cold start; writes embed_*.json."""
    started = datetime.datetime.now()
    overall = OtherLoad()
    idle_before = idle_check()
    if idle_before["other_cpu_share"] > 0.1:
        _log(f"warning: other processes use {idle_before['other_cpu_share']:.0%} of the CPU")

    model_dir = args.model_dir
    if model_dir is None:
        from embeddinggemma.artefacts import fetch_release
        model_dir = fetch_release()
    n_each = 32 if args.quick else 128
    queries, documents = gather_texts(n_each, n_each)

    import torch
    torch_threads_default = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)

    cold = None
    if not args.skip_cold_start:
        # Before the models load here, so the subprocesses have the machine to themselves.
        cold = measure_cold_starts(Path(model_dir), documents, torch.get_num_threads())
    throughput = measure_throughput(Path(model_dir), queries, documents, args.repeats)

    result = {
        "benchmark": "embed",
        "started": started.strftime("%Y%m%d-%H%M%S"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "quick": args.quick,
        "repeats": args.repeats,
        "settings": {"max_length": MAX_LENGTH, "batch_size": BATCH_SIZE, "dtype": "float32",
                     "model_dir": str(model_dir)},
        "machine": machine_info(torch_threads_default, torch.get_num_threads()),
        "texts": {"n_queries": len(queries), "n_documents": len(documents),
                  "digest": texts_digest(queries, documents)},
        "throughput": throughput,
        "cold_start": cold,
        "idle_before": idle_before,
        "other_cpu_share_overall": round(overall.stop(), 3),
        "wall_s": round((datetime.datetime.now() - started).total_seconds(), 1),
    }
    path = write_result("embed_quick" if args.quick else "embed", result)
    print(format_summary(result))
    print(f"wrote {path.relative_to(BENCH_DIR.parent)}")


if __name__ == "__main__":
    start_as_the_commands_do()
    sys.exit(main())
