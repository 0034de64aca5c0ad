"""ONNX Runtime on this CPU against sentence-transformers and the Embedder, side by side in one run.

    .venv/bin/python bench/onnx_runtime.py [--model-dir DIR] [--types f32,f16,q8,q4] [--queries 32]
                                           [--documents 32] [--repeats 2]

Exports the model (default: the release) to ONNX in each of --types (a temporary directory), then
embeds the same real queries and documents (bench/texts.py; prompted, at most 512 tokens, batches
of 32 sorted by length) with every implementation: a warm-up pass each, then --repeats timed passes
in alternating order. ONNX Runtime gets the ids this codebase's tokenizer gives (the same ids
transformers.js gives: tests/checkpoint/test_onnx_export.py) and uses every core (its default).
Records throughput; the agreement of each ONNX type with the Embedder computing with the same
weights (f32: the float model; f16: its matrices rounded to float16; q8/q4: fake-quantised on
int8-block/int4-block) and with the float Embedder; the f32 export on the golden records
(tests/golden, sentence-transformers' vectors, up to 2048 tokens); the export times and file
sizes, and the CPU model, in bench/results/onnx_runtime_<timestamp>.json (and _latest.json).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from run import (
    BATCH_SIZE,
    MAX_LENGTH,
    PROMPTS,
    cosine_agreement,
    load_implementations,
    summarize_passes,
    timed_pass,
)
from system import BENCH_DIR, cpu_model, idle_check, package_versions, start_as_the_commands_do, write_result
from texts import gather_texts, texts_digest

VERSIONED = ("jax", "jaxlib", "numpy", "torch", "transformers", "sentence-transformers", "onnx",
             "onnxruntime", "embeddinggemma")


def _log(message: str) -> None:
    print(f"[{datetime.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def onnx_encoder(session, embedder):
    """encode(texts, prompt) -> [N, P] through an ONNX Runtime session: the texts tokenised by the
    Embedder, sorted by length, right-padded per batch."""

    def encode(texts: list[str], prompt: str) -> np.ndarray:
        ids = embedder.tokenize(texts, prompt, max_length=MAX_LENGTH)
        order = np.argsort([-len(row) for row in ids], kind="stable")
        out = np.empty((len(ids), embedder.dim), np.float32)
        for start in range(0, len(order), BATCH_SIZE):
            rows = order[start:start + BATCH_SIZE]
            width = max(len(ids[i]) for i in rows)
            batch = np.zeros((len(rows), width), np.int64)
            for j, i in enumerate(rows):
                batch[j, :len(ids[i])] = ids[i]
            feeds = {"input_ids": batch, "attention_mask": (batch != 0).astype(np.int64)}
            _, embeddings = session.run(None, feeds)
            out[rows] = embeddings
        return out

    return encode


def type_weights(onnx_type: str, config, params) -> dict:
    """The float weights an ONNX type computes with: matrices rounded to float16 (f16; vectors stay
    float32), or fake-quantised on the type's grid (q8, q4)."""
    import jax

    from embeddinggemma.checkpoint.onnx_export import SCHEME_OF_TYPE
    from embeddinggemma.model.layout import embedder_layout
    from embeddinggemma.quantization import quantize_params

    layout = embedder_layout(config)
    if onnx_type in SCHEME_OF_TYPE:
        return quantize_params(params, SCHEME_OF_TYPE[onnx_type], layout)
    return jax.tree.map(lambda w, leaf: w if leaf.is_vector else np.asarray(w, np.float16).astype(np.float32),
                        dict(params), dict(layout))


def golden_agreement(session) -> dict:
    """The f32 export on the golden records (tests/golden: sentence-transformers' vectors of the
    release, each text alone), fed the records' own token ids."""
    golden = BENCH_DIR.parent / "tests" / "golden" / "embeddinggemma_300m"
    records = json.loads(golden.with_suffix(".json").read_text())["records"]
    reference = np.load(golden.with_suffix(".npz"))["embeddings"]
    ours = []
    for record in records:
        ids = np.array([record["token_ids"]], np.int64)
        ours.append(session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[1][0])
    # As the parity test checks: the dot product with the stored float32 vectors (unit length to
    # float32 rounding); cosine_agreement re-normalises both.
    dots = (np.array(ours, np.float64) * reference).sum(-1)
    return {"records": len(records), "max_tokens": max(len(r["token_ids"]) for r in records),
            "min_dot_product": float(dots.min()), "mean_dot_product": float(dots.mean()),
            **cosine_agreement(np.array(ours), reference)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=None, help="default: the release (fetched)")
    parser.add_argument("--types", default="f32,f16,q8,q4")
    parser.add_argument("--queries", type=int, default=32)
    parser.add_argument("--documents", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    start_as_the_commands_do()
    import onnxruntime as ort

    from embeddinggemma import Embedder
    from embeddinggemma.artefacts import fetch_release
    from embeddinggemma.checkpoint.loading import load_checkpoint
    from embeddinggemma.checkpoint.onnx_export import MODEL_FILES, export_onnx

    started = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    wall = time.perf_counter()
    idle_before = idle_check()
    model_dir = args.model_dir or fetch_release()
    queries, documents = gather_texts(args.queries, args.documents)
    embedder, st_model, load_info = load_implementations(model_dir)
    ckpt = load_checkpoint(model_dir)
    texts = {"query": queries, "document": documents}
    n_tokens = sum(len(row) for prompt in PROMPTS for row in embedder.tokenize(texts[prompt], prompt,
                                                                                max_length=MAX_LENGTH))

    def embedder_encode(texts_: list[str], prompt: str) -> np.ndarray:
        return embedder.encode(texts_, prompt_name=prompt, batch_size=BATCH_SIZE, max_length=MAX_LENGTH,
                               show_progress=False)

    def st_encode(texts_: list[str], prompt: str) -> np.ndarray:
        return st_model.encode(texts_, prompt_name=prompt, batch_size=BATCH_SIZE, convert_to_numpy=True,
                               show_progress_bar=False)

    encoders = {"embedder": embedder_encode, "sentence_transformers": st_encode}
    exports, sessions = {}, {}
    with tempfile.TemporaryDirectory(prefix="onnx-bench-") as tmp:
        for onnx_type in args.types.split(","):
            _log(f"export {onnx_type}")
            t0 = time.perf_counter()
            out = export_onnx(Path(tmp) / onnx_type, ckpt.config, ckpt.params, ckpt.tokenizer_path,
                              ckpt.prompts, onnx_type)
            path = out / "onnx" / MODEL_FILES[onnx_type]
            exports[onnx_type] = {"export_s": round(time.perf_counter() - t0, 1),
                                  "file_mib": round(path.stat().st_size / 2 ** 20, 1)}
            t0 = time.perf_counter()
            sessions[onnx_type] = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            exports[onnx_type]["session_load_s"] = round(time.perf_counter() - t0, 2)
            encoders[f"onnx_{onnx_type}"] = onnx_encoder(sessions[onnx_type], embedder)

        golden = golden_agreement(sessions["f32"]) if "f32" in sessions else None
        warmups, passes = {}, {name: [] for name in encoders}
        for name, encode in encoders.items():
            _log(f"warm-up pass: {name}")
            warmups[name] = timed_pass(encode, queries, documents)
        for r in range(args.repeats):
            for name in (list(encoders) if r % 2 == 0 else list(encoders)[::-1]):
                _log(f"timed pass {r + 1}/{args.repeats}: {name}")
                passes[name].append(timed_pass(encoders[name], queries, documents))

    n_texts = len(queries) + len(documents)
    throughput = {name: summarize_passes(passes[name], warmups[name], n_texts, n_tokens) for name in encoders}
    reference = passes["embedder"][-1]["embeddings"]
    agreement = {"sentence_transformers_vs_embedder": cosine_agreement(
        passes["sentence_transformers"][-1]["embeddings"], reference)}
    for onnx_type in sessions:
        expected = reference
        if onnx_type != "f32":  # the Embedder computing with the weights the type holds
            _log(f"the Embedder with {onnx_type} weights")
            weights = type_weights(onnx_type, ckpt.config, ckpt.params)
            same = Embedder(ckpt.config, weights, ckpt.tokenizer_path, ckpt.prompts)
            expected = np.concatenate([same.encode(texts[p], prompt_name=p, batch_size=BATCH_SIZE,
                                                   max_length=MAX_LENGTH, show_progress=False)
                                       for p in PROMPTS])
            del same
            agreement[f"onnx_{onnx_type}_vs_embedder_float"] = cosine_agreement(
                passes[f"onnx_{onnx_type}"][-1]["embeddings"], reference)
        agreement[f"onnx_{onnx_type}_vs_embedder_same_weights"] = cosine_agreement(
            passes[f"onnx_{onnx_type}"][-1]["embeddings"], expected)
    if golden is not None:
        agreement["onnx_f32_vs_golden"] = golden

    result = {
        "benchmark": "onnx_runtime", "started": started,
        "command": "python bench/onnx_runtime.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"cpu_model": cpu_model(), "cpus": os.cpu_count(),
                    "versions": package_versions(VERSIONED),
                    "onnxruntime_threads": "default (all cores)"},
        "texts": {"queries": len(queries), "documents": len(documents), "tokens": n_tokens,
                  "digest": texts_digest(queries, documents), "max_length": MAX_LENGTH,
                  "batch_size": BATCH_SIZE},
        "load": load_info, "exports": exports, "throughput": throughput, "agreement": agreement,
        "idle_before": idle_before, "wall_s": round(time.perf_counter() - wall, 1),
    }
    path = write_result("onnx_runtime", result)
    for name, t in throughput.items():
        print(f"{name:24s} {t['tokens_per_s']:8.1f} tokens/s  {t['texts_per_s']:6.2f} texts/s  "
              f"(others' CPU share {max(t['other_cpu_share_per_pass']):.2f})")
    for name, a in agreement.items():
        print(f"{name:40s} max 1-cos {a['max_abs_one_minus_cosine']:.2e}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
