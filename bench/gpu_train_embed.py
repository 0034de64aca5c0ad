"""The train step and embedding on a GPU (an NVIDIA H200 in issue 29): this codebase against PyTorch
eager + transformers' Gemma 3 and `torch.compile`, random weights on both sides, same shapes.

    python bench/gpu_train_embed.py [--smoke] [--parts jax torch_eager torch_compile] [--max-batch B]
                                    [--steps N] [--warmup N] [--compile-timeout S]

Train step: the 300m preset in bfloat16 (float32 master weights, AdamW), 256-token queries and
512-token positives and hard negatives, contrastive (t = 0.05) over Matryoshka 768/512/256/128 of
mean-pooled, projected, normalised embeddings; JAX runs `configs/finetune.py:300m`'s step
(spread-out term included) at batch 64 under each remat choice and at doubling batches (to
--max-batch) until one does not fit; PyTorch runs Gemma3TextModel (sdpa attention, bidirectional)
with the same pooling, projection and contrastive loss under bfloat16 autocast, eager and
`torch.compile`d.
Embedding: batches of 512 and 2048 random tokens through the encoder, pooling and projection,
bfloat16, no gradients.

MFU counts the model's FLOPs by its arithmetic (embeddinggemma/planning/plan.py: 2 per weight of
the layers' matrix products plus the attention scores over the full length, per token; training 3
times the forward) against the chip's dense bfloat16 peak (989 TFLOP/s for an H200; none on other
devices). Tokens are padded tokens (the batches have no padding). Each side and mode runs in a
fresh subprocess (JAX preallocates most of the GPU's memory); `torch.compile` runs the step at the
first batch and the embedding in two, each under `--compile-timeout`. Writes
bench/results/gpu_train_embed_<timestamp>.json (and _latest) with the device, the package versions
and the wall time of the whole run.

`--smoke` runs the same code at a tiny size (the tiny preset, batch 4, 32/64 tokens) on whatever
device there is, the CPU included, so that the script is known to work before a GPU is at hand.
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

from system import BENCH_DIR, package_versions, write_result  # noqa: E402

VERSIONED = ("jax", "jaxlib", "jax-cuda12-plugin", "flax", "optax", "torch", "transformers",
             "sentence-transformers", "numpy", "embeddinggemma")
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12}  # dense, by a word of the device's name
TEMPERATURE = 0.05
FIRST_TOKEN_ID = 3  # below are pad, EOS and BOS
SIZES = {  # per size: preset, query/document length, train batches, embed (batch, length) pairs
    "full": {"preset": "300m", "query": 256, "document": 512, "batch": 64, "max_batch": 256,
             "embed": [(64, 512), (256, 512), (32, 2048)]},
    "smoke": {"preset": "tiny", "query": 32, "document": 64, "batch": 4, "max_batch": 8,
              "embed": [(4, 64), (2, 128)]},
}


def log(message: str) -> None:
    print(f"[gpu-bench] {message}", file=sys.stderr, flush=True)


def _timed(run, warmup: int, steps: int) -> dict:
    """Median seconds of `steps` calls of `run` (which waits for its result) after `warmup` calls."""
    for _ in range(warmup):
        run()
    seconds = []
    for _ in range(steps):
        t0 = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - t0)
    return {"median_s": round(statistics.median(seconds), 5), "step_s": [round(s, 5) for s in seconds]}


def _rates(out: dict, tokens: int, flops: float, peak: float | None) -> dict:
    s = out["median_s"]
    return {**out, "tokens": tokens, "tokens_per_s": round(tokens / s),
            "model_tflops": round(flops / 1e12, 3), "mfu": round(flops / s / peak, 4) if peak else None}


def _config(size: dict, batch: int, remat: str):
    from embeddinggemma.training.config_files import load_config

    config = load_config(f"configs/finetune.py:{size['preset']}")
    with config.unlocked():
        config.model.dtype = "bfloat16"
        config.model.remat = remat
        config.train.batch_size = batch
        config.train.max_query_length = size["query"]
        config.train.max_document_length = size["document"]
        config.train.grad_cache_chunk_size = 0
        config.mesh.shape = (1, 1, 1)
        config.optimizer.warmup_steps = 0
    return config


def _tokens(rng, batch: int, length: int, vocab: int):
    import numpy as np

    return rng.integers(FIRST_TOKEN_ID, vocab, size=(batch, length), dtype=np.int32)


def _is_oom(error: Exception) -> bool:
    text = str(error)
    return "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()


# --- the JAX side ----------------------------------------------------------------------------------

def _jax_worker(spec: dict) -> dict:
    import jax
    import numpy as np

    from embeddinggemma.planning.plan import model_flops_per_step, transformer_flops
    from embeddinggemma.training.trainer import assemble_trainer

    size, peak = spec["size"], spec["peak"]
    rng = np.random.default_rng(0)
    out = {"devices": [str(d) for d in jax.devices()], "train": [], "embed": []}
    for batch, remat in spec["train"]:
        config = _config(size, batch, remat)
        trainer = assemble_trainer(config, devices=jax.devices()[:1])
        vocab = trainer.model_config.transformer.vocab_size
        local = {"query": _tokens(rng, batch, size["query"], vocab),
                 "positive": _tokens(rng, batch, size["document"], vocab),
                 "negative": _tokens(rng, batch, size["document"], vocab),
                 "query_id": np.arange(batch, dtype=np.int32),
                 "positive_id": np.arange(batch, dtype=np.int32)}
        row = {"batch": batch, "remat": remat, "attention": config.model.attention}
        try:
            state, data = trainer.init_state(), trainer.global_batch(local)
            t0 = time.perf_counter()
            step = trainer.train_step.lower(state, data).compile()
            row["compile_s"] = round(time.perf_counter() - t0, 1)
            row["temp_bytes"] = int(step.memory_analysis().temp_size_in_bytes)

            box = {"state": state}

            def run(step=step, data=data, box=box):
                box["state"], metrics = step(box["state"], data)
                jax.block_until_ready(metrics["loss"])

            timing = _timed(run, spec["warmup"], spec["steps"])
            tokens = batch * (size["query"] + 2 * size["document"])
            row.update(_rates(timing, tokens, model_flops_per_step(config), peak))
        except Exception as e:  # noqa: BLE001 - an allocation failure ends the row, recorded
            if not _is_oom(e):
                raise
            row["out_of_memory"] = str(e).splitlines()[0][:300]
        finally:
            state = data = box = None  # the next batch's state is made after this one's is freed
        out["train"].append(row)
        log(f"jax train {row}")
    config = _config(size, 1, "none")
    trainer = assemble_trainer(config, devices=jax.devices()[:1])
    params = trainer.init_state()["params"]
    c = trainer.model_config.transformer
    for batch, length in spec["embed"]:
        tokens = jax.device_put(_tokens(rng, batch, length, c.vocab_size))
        embed = trainer.embed.lower(params, tokens).compile()
        timing = _timed(lambda e=embed, t=tokens: jax.block_until_ready(e(params, t)),
                        spec["warmup"], spec["steps"])
        row = {"batch": batch, "length": length,
               **_rates(timing, batch * length, transformer_flops(c, batch * length, length), peak)}
        out["embed"].append(row)
        log(f"jax embed {row}")
    return out


# --- the PyTorch side ------------------------------------------------------------------------------

def _torch_model(size: dict, device: str):
    """Gemma3TextModel of the preset's architecture (random weights) and the projection head."""
    import torch
    from transformers import Gemma3TextConfig, Gemma3TextModel

    from embeddinggemma.checkpoint.hf_config import embedder_to_hf_config
    from embeddinggemma.training.embedding_config import model_config

    embedder = model_config(_config(size, 1, "none"))
    hf = {k: v for k, v in embedder_to_hf_config(embedder).items() if k not in ("architectures", "dtype")}
    encoder = Gemma3TextModel(Gemma3TextConfig(**hf, attn_implementation="sdpa"))
    widths = (embedder.transformer.embed_dim, *embedder.projection_dims)
    head = torch.nn.Sequential(*(torch.nn.Linear(a, b, bias=False)
                                 for a, b in zip(widths[:-1], widths[1:], strict=True)))
    return (encoder.to(device), head.to(device), list(embedder.matryoshka_dims),
            embedder.transformer.vocab_size)


def _torch_worker(spec: dict) -> dict:
    import numpy as np
    import torch

    size, peak, compiled = spec["size"], spec["peak"], spec["compile"]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    encoder, head, dims, vocab = _torch_model(size, device)
    rng = np.random.default_rng(0)

    def embed(tokens):
        hidden = encoder(input_ids=tokens, attention_mask=torch.ones_like(tokens)).last_hidden_state
        return torch.nn.functional.normalize(head(hidden.mean(dim=1)), dim=-1)

    def loss_of(query, positive, negative):
        q, p, n = embed(query), embed(positive), embed(negative)
        labels = torch.arange(q.shape[0], device=q.device)
        total = 0.0
        for d in dims:  # contrastive over in-batch positives and the hard negatives, per Matryoshka width
            qd, docs = (torch.nn.functional.normalize(x[:, :d], dim=-1) for x in (q, torch.cat([p, n])))
            total = total + torch.nn.functional.cross_entropy(qd @ docs.T / TEMPERATURE, labels)
        return total

    forward = torch.compile(embed) if compiled else embed
    loss_fn = torch.compile(loss_of) if compiled else loss_of
    out = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "compiled": compiled,
           "train": [], "embed": []}
    from embeddinggemma.planning.plan import model_flops_per_step, transformer_flops
    from embeddinggemma.training.embedding_config import model_config
    c = model_config(_config(size, 1, "none")).transformer
    params = list(encoder.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.01)
    for batch in spec["train_batches"]:
        inputs = [torch.from_numpy(_tokens(rng, batch, n, vocab)).long().to(device)
                  for n in (size["query"], size["document"], size["document"])]
        row = {"batch": batch}
        try:
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()

            def run(inputs=inputs):
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(device, dtype=torch.bfloat16):
                    loss = loss_fn(*inputs)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                if device == "cuda":
                    torch.cuda.synchronize()

            t0 = time.perf_counter()
            run()  # the first call compiles
            row["first_step_s"] = round(time.perf_counter() - t0, 2)
            timing = _timed(run, spec["warmup"], spec["steps"])
            flops = model_flops_per_step(_config(size, batch, "none"))  # as the JAX side counts
            row.update(_rates(timing, batch * (size["query"] + 2 * size["document"]), flops, peak))
            if device == "cuda":
                row["peak_bytes"] = int(torch.cuda.max_memory_allocated())
        except torch.OutOfMemoryError as e:
            row["out_of_memory"] = str(e).splitlines()[0][:300]
        out["train"].append(row)
        log(f"torch train {row}")
        optimizer.zero_grad(set_to_none=True)
        if "out_of_memory" in row:
            break
    with torch.no_grad():
        for batch, length in spec["embed"]:
            tokens = torch.from_numpy(_tokens(rng, batch, length, vocab)).long().to(device)

            def run_embed(t=tokens):
                with torch.autocast(device, dtype=torch.bfloat16):
                    forward(t)
                if device == "cuda":
                    torch.cuda.synchronize()

            run_embed()
            timing = _timed(run_embed, spec["warmup"], spec["steps"])
            row = {"batch": batch, "length": length,
                   **_rates(timing, batch * length, transformer_flops(c, batch * length, length), peak)}
            out["embed"].append(row)
            log(f"torch embed {row}")
    return out


WORKERS = {"jax": _jax_worker, "torch": _torch_worker}
PARTS = ("jax", "torch_eager", "torch_compile")


def run_worker(side: str, spec: dict, timeout_s: float) -> dict:
    """`side`'s worker in a fresh process; {"timed_out": seconds} when it runs past `timeout_s`."""
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(spec))
        t0 = time.perf_counter()
        try:
            done = subprocess.run([sys.executable, __file__, "--worker", side, str(spec_path)],
                                  stdout=subprocess.PIPE, text=True, check=False, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return {"timed_out_s": timeout_s}
    if done.returncode != 0:
        return {"failed": f"exit {done.returncode}"}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {**result, "process_wall_s": round(time.perf_counter() - t0, 1)}


def device_and_peak() -> tuple[str, float | None]:
    """The first JAX device's kind and its dense bfloat16 peak (None where not known)."""
    import jax

    kind = jax.devices()[0].device_kind
    return kind, next((peak for word, peak in PEAK_BF16_FLOPS.items() if word in kind), None)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, any device (the CPU included)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--compile-timeout", type=float, default=240.0,
                        help="seconds a torch.compile worker may run")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="what to run (a device command has at most 10 minutes: split the parts)")
    parser.add_argument("--max-batch", type=int, default=None,
                        help="the largest train batch to try (default: 256; 8 with --smoke)")
    parser.add_argument("--worker", nargs=2, metavar=("SIDE", "SPEC"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        side, spec_path = args.worker
        print(json.dumps(WORKERS[side](json.loads(Path(spec_path).read_text()))))
        return 0
    started = datetime.datetime.now()
    t0 = time.perf_counter()
    size = SIZES["smoke" if args.smoke else "full"]
    device, peak = device_and_peak()
    log(f"device {device}, bf16 peak {peak}")
    common = {"size": size, "peak": peak, "warmup": args.warmup, "steps": args.steps, "embed": size["embed"]}
    batches = [size["batch"]]
    while batches[-1] * 2 <= (args.max_batch or size["max_batch"]):
        batches.append(batches[-1] * 2)
    # Remat choices at the first batch, then doubling batches under `matmuls` until one does not fit.
    train = [(size["batch"], remat) for remat in ("none", "matmuls", "full")]
    result = {"benchmark": "gpu_train_embed", "started": started.strftime("%Y%m%d-%H%M%S"),
              "command": " ".join([Path(sys.executable).name, *sys.argv]), "smoke": args.smoke,
              "device": device, "peak_bf16_flops": peak, "size": size,
              "versions": package_versions(VERSIONED)}
    if "jax" in args.parts:
        result["jax"] = run_worker("jax", {**common, "train": train}, timeout_s=1800)
        for batch in batches[1:]:
            more = run_worker("jax", {**common, "train": [(batch, "matmuls")], "embed": []}, timeout_s=1800)
            result["jax"].setdefault("larger_batches", []).append(more)
            if "train" not in more or any("out_of_memory" in row for row in more["train"]):
                break
    if "torch_eager" in args.parts:
        result["torch_eager"] = run_worker("torch", {**common, "compile": False, "train_batches": batches},
                                           timeout_s=1800)
    if "torch_compile" in args.parts:
        # The step at the first batch and the embedding shapes in two workers, each under the
        # compile timeout (every new shape compiles again), so that one's timeout spares the other.
        result["torch_compile"] = {
            "train": run_worker("torch", {**common, "compile": True, "train_batches": batches[:1],
                                          "embed": []}, timeout_s=args.compile_timeout),
            "embed": run_worker("torch", {**common, "compile": True, "train_batches": []},
                                timeout_s=args.compile_timeout)}
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    path = write_result("gpu_train_embed_quick" if args.smoke else "gpu_train_embed", result)
    print(f"wrote {path.relative_to(BENCH_DIR.parent)} in {result['wall_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
