"""Long inputs: dense against banded local attention, and sentence-transformers, at 512-2048 tokens.

    .venv/bin/python bench/long_inputs.py [--lengths 512,1024,2048] [--texts 2] [--repeats 2]
                                          [--quick] [--model-dir DIR]

For each length L, the same `--texts` real documents cut to exactly L tokens (BOS, prompt and EOS
included) are embedded in one batch by three implementations, each in its own fresh process (so
each process's peak resident memory is its own): the Embedder with every local layer dense
(`local_attention="dense"`, all T x T scores), the Embedder with banded local layers ("banded",
linear in T), and sentence-transformers. Each makes a warm-up pass (JAX compiles), then `--repeats`
timed passes; tokens/s is from the median pass. Writes bench/results/long_inputs_<timestamp>.json
and long_inputs_latest.json (long_inputs_quick_* with --quick). See bench/README.md.
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
from pathlib import Path

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
from texts import gather_texts  # noqa: E402
from train_step import current_rss_mib, peak_rss_mib, reset_peak_rss  # noqa: E402

IMPLEMENTATIONS = ("dense", "banded", "sentence_transformers")
PROMPT = "document"
CHARS_PER_TOKEN = 6  # generous: real text here has 3-4.5 characters per token, so every text is cut


def long_texts(n: int, length: int) -> list[str]:
    """`n` different stretches of real documents, each long enough to be cut at `length` tokens."""
    _, documents = gather_texts(8, 128)
    corpus = "\n\n".join(documents)
    size = length * CHARS_PER_TOKEN
    if n * size > len(corpus):
        raise SystemExit(f"only {len(corpus)} characters of documents for {n} texts of {length} tokens")
    return [corpus[i * size:(i + 1) * size] for i in range(n)]


def worker(impl: str, spec: dict, out: Path) -> dict:
    """In a fresh process: load, one warm-up pass, timed passes; embeddings to `out`."""
    texts, length = spec["texts"], spec["length"]
    if impl == "sentence_transformers":
        import torch
        from sentence_transformers import SentenceTransformer
        torch.set_num_threads(os.cpu_count() or 1)
        model = SentenceTransformer(spec["model_dir"], device="cpu")
        model.max_seq_length = length
        tokens = model.preprocess(texts, prompt=model.prompts[PROMPT])["attention_mask"].sum(1).tolist()

        def encode():
            return model.encode(texts, prompt_name=PROMPT, batch_size=len(texts), convert_to_numpy=True,
                                show_progress_bar=False)
    else:
        from embeddinggemma import Embedder
        embedder = Embedder.load(spec["model_dir"], dtype="float32", local_attention=impl)
        tokens = [len(t) for t in embedder.tokenize(texts, PROMPT, max_length=length)]

        def encode():
            return embedder.encode(texts, prompt_name=PROMPT, batch_size=len(texts), max_length=length,
                                   show_progress=False)
    loaded_rss, load_peak = current_rss_mib(), peak_rss_mib()
    reset = reset_peak_rss()  # from here on the high-water mark is the embedding passes' alone
    t0 = time.perf_counter()
    encode()
    warmup = time.perf_counter() - t0
    passes, load = [], OtherLoad()
    for _ in range(spec["repeats"]):
        t0 = time.perf_counter()
        embeddings = encode()
        passes.append(time.perf_counter() - t0)
    np.save(out, embeddings)
    median = statistics.median(passes)
    return {"tokens": tokens, "tokens_per_s": round(sum(tokens) / median, 1),
            "median_pass_s": round(median, 3), "pass_s": [round(p, 3) for p in passes],
            "warmup_pass_s": round(warmup, 3), "rss_after_load_mib": round(loaded_rss, 1),
            "peak_rss_load_mib": round(load_peak, 1), "peak_rss_passes_mib": round(peak_rss_mib(), 1),
            "peak_over_loaded_mib": round(peak_rss_mib() - loaded_rss, 1), "peak_reset_worked": reset,
            "other_cpu_share": round(load.stop(), 3)}


def _run_worker(impl: str, spec_path: Path, out: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--worker", impl, "--spec", str(spec_path),
                           "--out", str(out)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{impl} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _one_minus_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return float(np.max(np.abs(1 - cos)))


def measure_length(length: int, n_texts: int, repeats: int, model_dir: str, order: tuple[str, ...]) -> dict:
    texts = long_texts(n_texts, length)
    result: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps({"texts": texts, "length": length, "repeats": repeats,
                                         "model_dir": model_dir}))
        for impl in order:
            print(f"[bench] {length} tokens: {impl}", file=sys.stderr, flush=True)
            result[impl] = _run_worker(impl, spec_path, Path(tmp) / f"{impl}.npy")
        vectors = {impl: np.load(Path(tmp) / f"{impl}.npy") for impl in order}
    if any(t != length for impl in order for t in result[impl]["tokens"]):
        raise RuntimeError(f"not every text has {length} tokens: "
                           f"{ {impl: result[impl]['tokens'] for impl in order} }")
    st = result["sentence_transformers"]["tokens_per_s"]
    result["banded_over_dense"] = round(result["banded"]["tokens_per_s"] / result["dense"]["tokens_per_s"], 3)
    result["banded_over_st"] = round(result["banded"]["tokens_per_s"] / st, 3)
    result["dense_over_st"] = round(result["dense"]["tokens_per_s"] / st, 3)
    result["max_abs_one_minus_cosine"] = {
        "banded_vs_dense": _one_minus_cosine(vectors["banded"], vectors["dense"]),
        "banded_vs_st": _one_minus_cosine(vectors["banded"], vectors["sentence_transformers"]),
        "dense_vs_st": _one_minus_cosine(vectors["dense"], vectors["sentence_transformers"])}
    return result


def format_summary(result: dict) -> str:
    lines = [f"CPU: {result['machine']['cpu_model']}, {result['machine']['cpu_count']} cores; "
             f"{result['settings']['texts']} texts per batch, fp32, median of {result['repeats']}",
             f"{'tokens':>7}{'dense tok/s':>13}{'banded tok/s':>14}{'ST tok/s':>10}{'banded/dense':>14}"
             f"{'banded/ST':>11}{'+MiB d/b/ST':>22}{'1-cos b/ST':>12}",
             "(+MiB: the peak resident memory of the passes over that after loading the model)"]
    for length, r in result["lengths"].items():
        peaks = "/".join(f"{r[i]['peak_over_loaded_mib']:.0f}" for i in IMPLEMENTATIONS)
        lines.append(f"{length:>7}{r['dense']['tokens_per_s']:>13.0f}{r['banded']['tokens_per_s']:>14.0f}"
                     f"{r['sentence_transformers']['tokens_per_s']:>10.0f}{r['banded_over_dense']:>14.3f}"
                     f"{r['banded_over_st']:>11.3f}{peaks:>22}"
                     f"{r['max_abs_one_minus_cosine']['banded_vs_st']:>12.1e}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default="512,1024,2048")
    parser.add_argument("--texts", type=int, default=2, help="texts per length, embedded as one batch")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="256 and 512 tokens, one text, one repeat")
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--worker", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, json.loads(args.spec.read_text()), args.out)))
        return 0
    if args.quick:
        args.lengths, args.texts, args.repeats = "256,512", 1, 1
    lengths = [int(n) for n in args.lengths.split(",")]
    model_dir = args.model_dir
    if model_dir is None:
        from embeddinggemma.artefacts import fetch_release
        model_dir = fetch_release()
    started = datetime.datetime.now()
    overall, idle_before = OtherLoad(), idle_check()
    results = {}
    for k, length in enumerate(lengths):
        # Alternating the order spreads drift in background load over all three.
        order = IMPLEMENTATIONS if k % 2 == 0 else IMPLEMENTATIONS[::-1]
        results[str(length)] = measure_length(length, args.texts, args.repeats, str(model_dir), order)
    import jax
    result = {
        "benchmark": "long_inputs", "started": started.strftime("%Y%m%d-%H%M%S"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]), "quick": args.quick,
        "repeats": args.repeats,
        "settings": {"texts": args.texts, "prompt_name": PROMPT, "dtype": "float32",
                     "model_dir": str(model_dir), "chars_per_token_cut": CHARS_PER_TOKEN},
        "machine": {"cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "allocator": allocator(),
                    "cpu_kernels": cpu_kernels(),
                    "jax_devices": [str(d) for d in jax.devices()],
                    "versions": package_versions(("jax", "jaxlib", "torch", "sentence-transformers"))},
        "lengths": results, "idle_before": idle_before,
        "other_cpu_share_overall": round(overall.stop(), 3),
        "wall_s": round((datetime.datetime.now() - started).total_seconds(), 1),
    }
    path = write_result("long_inputs_quick" if args.quick else "long_inputs", result)
    print(format_summary(result))
    print(f"wrote {path.relative_to(BENCH_DIR.parent)}")
    return 0


if __name__ == "__main__":
    start_as_the_commands_do()
    sys.exit(main())
