"""Compile-only memory of the 300m train step under each remat choice, against what the choice
requires (embeddinggemma/planning/remat.py). Nothing runs: XLA's memory analysis of the compiled
program, on this machine's CPU or, with `--tpu SLICE`, on one compile-only chip of a TPU slice
(libtpu, the `tpu` extra; it keeps bfloat16 values as such, as a GPU would).

    .venv/bin/python bench/step_memory.py [--batch 64] [--layers 24] [--remat none matmuls full]
                                          [--tpu v5p-8] [--label TEXT]

`configs/finetune.py:300m` (bfloat16 compute, float32 master weights, AdamW, one hard negative,
256-token queries, 512-token documents) with gradient caching off, on one device, `--layers`
keeping the first layers (fewer compile faster; what a layer adds is linear in them). Reports per
remat choice the temporaries (GiB and bytes per token) and the requirement: the saved values of
every layer plus one layer's `none` values (its working set), in bfloat16 and as the CPU holds
them (XLA's CPU compiler keeps bfloat16 values in float32, so twice the bytes).
Writes bench/results/step_memory_<timestamp>.json and step_memory_latest.json.
"""

from __future__ import annotations

import argparse
import datetime
import time

from system import cpu_model, package_versions, write_result

VERSIONED = ("jax", "jaxlib", "flax", "optax", "embeddinggemma")
GIB = 2 ** 30


def measure(remat: str, batch: int, layers: int, tpu: str | None = None) -> dict:
    """The compiled step's memory and the requirement of `remat` (module docstring), compiled for
    this machine's CPU or, with `tpu`, for one compile-only chip of that TPU slice."""
    import jax

    from embeddinggemma.planning.plan import memory, out_of_memory, programs
    from embeddinggemma.planning.remat import saved_bytes
    from embeddinggemma.planning.slices import get_slice
    from embeddinggemma.training.config_files import load_config
    from embeddinggemma.training.embedding_config import model_config

    config = load_config("configs/finetune.py:300m")
    with config.unlocked():
        config.model.keep_layers = layers
        config.model.remat = remat
        config.train.batch_size = batch
        config.train.grad_cache_chunk_size = 0
        config.mesh.shape = (1, 1, 1)
        config.model.attention = "einsum"  # the same XLA path on every backend (no splash kernel)
    t = config.train
    lengths = {t.max_query_length: batch, t.max_document_length: 2 * batch}
    tokens = sum(length * count for length, count in lengths.items())
    transformer = model_config(config).transformer
    started = time.perf_counter()
    devices = get_slice(tpu).devices()[:1] if tpu else jax.devices()[:1]
    _, (train_step, _) = programs(config, devices)
    try:
        mem = memory(train_step.jitted.lower(*train_step.args).compile())
    except jax.errors.JaxRuntimeError as e:  # a TPU compiler refuses what exceeds a chip's HBM
        if "RESOURCE_EXHAUSTED" not in str(e):
            raise
        mem = {"temp_bytes": out_of_memory(train_step, str(e))["temp_bytes"],
               "refused": str(e).splitlines()[0]}
    seconds = time.perf_counter() - started
    required = {}  # a TPU keeps bfloat16 values as such; the CPU holds them in float32
    for name, itemsize in (("bfloat16", 2), ("cpu_float32", 4)):
        layers_bytes = saved_bytes(transformer, remat, lengths, itemsize)
        working = saved_bytes(transformer.first_layers(1), "none", lengths, itemsize)
        total = layers_bytes + working
        required[name] = {"bytes": total, "bytes_per_token": round(total / tokens)}
    kept = "bfloat16" if tpu else "cpu_float32"
    return {"remat": remat, "batch": batch, "layers": layers, "tokens": tokens, "tpu": tpu,
            "compile_seconds": round(seconds, 1), "memory": mem,
            "temp_gib": round(mem["temp_bytes"] / GIB, 2),
            "temp_bytes_per_token": round(mem["temp_bytes"] / tokens),
            "required": required,
            "requirement": kept,
            "temp_over_requirement": round(mem["temp_bytes"] / required[kept]["bytes"], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--layers", type=int, default=24, help="keep the first N layers (1..24)")
    parser.add_argument("--remat", nargs="+", default=["none", "matmuls", "full"])
    parser.add_argument("--tpu", metavar="SLICE", help="compile for one chip of this TPU slice "
                        "(e.g. v5p-8; compile-only libtpu devices, bfloat16 kept as such) instead of the CPU")
    parser.add_argument("--label", default="", help="recorded with the result (e.g. before/after)")
    args = parser.parse_args()
    started = datetime.datetime.now()
    runs = []
    for remat in args.remat:
        runs.append(measure(remat, args.batch, args.layers, args.tpu))
        r = runs[-1]
        print(f"remat {remat:8s} temp {r['temp_gib']:7.2f} GiB  {r['temp_bytes_per_token']:8d} B/token  "
              f"requirement {r['required'][r['requirement']]['bytes'] / GIB:6.2f} GiB  "
              f"ratio {r['temp_over_requirement']:.2f}  ({r['compile_seconds']} s)", flush=True)
    write_result("step_memory", {"started": started.strftime("%Y%m%d-%H%M%S"), "label": args.label,
                                 "machine": {"cpu": cpu_model(), "versions": package_versions(VERSIONED)},
                                 "runs": runs})


if __name__ == "__main__":
    main()
