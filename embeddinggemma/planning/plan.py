"""The plan of a training config on a named TPU slice: its programs compiled for the slice's
(compile-only) chips, on abstract arrays, with what one chip holds, communicates and computes.

    report = plan(load_config("configs/finetune.py:300m"), get_slice("v5e-64"))
    report["fits"], report["per_chip"]["total_bytes"], report["collectives"]

The programs are exactly the train command's (the adapt command's for a UL2 config, one with a
`ul2` section): the trainer of `training.trainer.assemble_trainer` (mesh, sharding rules,
optimiser, gradient caching or accumulation, remat, the quantisation-aware transform) over the
slice's devices, its `train_step` lowered on the state's and a batch's shapes with their
shardings, plus the periodic evaluation's program (the embedding stage's `embed` of a batch of
`eval.batch_size` documents, or the adaptation's held-out denoising statistics). Nothing is read:
no checkpoint, corpus or tokenizer (random parameters have the shapes a start would bring; the
pad id is the architecture's).

Batch shapes are the config's maxima (`train.max_query_length`, `train.max_document_length`,
`ul2.max_length`): what a multi-host run always pads to (one host buckets shorter batches, which
need less).

Model FLOPs per step, counted from the architecture (not XLA's cost analysis, which counts a loop
body once): per token through a transformer layer, 2 FLOPs per weight of its matrix products
(attention q, k, v, o and the feed-forward's gate, up, down) and 4 x heads x head_dim x keys for
the attention scores and their weighted sum, keys being the whole padded length whatever the
layer type; decoder tokens add the cross-attention's q and o and its scores over the encoder's
length, encoder tokens the cross-attention's k and v of every decoder layer, and target tokens the
tied-embedding logits (2 x vocab x width); each sequence adds the projection head. Training is 3
times the forward pass (backward = 2 forwards); recomputation (remat, gradient caching's second
forward) is not model FLOPs. The token embedding lookup and the losses are left out.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import jax
import ml_collections
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from embeddinggemma.atomic import atomic_write
from embeddinggemma.model.config import GLOBAL, TransformerConfig
from embeddinggemma.planning import hlo
from embeddinggemma.planning.slices import Slice
from embeddinggemma.schema import ROLES
from embeddinggemma.training.config import runtime_config, validate_config
from embeddinggemma.training.embedding_config import model_config
from embeddinggemma.training.mesh import batch_sharding, mesh_platform
from embeddinggemma.training.trainer import Trainer, assemble_trainer

MFU = 0.4  # the model FLOPs utilisation the report's step time assumes besides 100%
# What shrinks each kind of large value, for the report of a config that does not fit.
REMEDIES = (
    "train.grad_cache_chunk_size (smaller chunks, or > 0 to turn gradient caching on: "
    "activations of one chunk at a time)",
    "model.remat=full (recompute every layer's activations in the backward pass)",
    "train.batch_size or train.max_document_length / train.max_query_length (ul2.max_length, "
    "ul2.logits_chunk for an adaptation)",
    "mesh.shape: more devices on the fsdp axis shard parameters and optimiser state further",
    "optimizer.name=adafactor (factored second moments)",
)


@dataclasses.dataclass(frozen=True)
class Program:
    """One jitted program and the abstract arguments it is compiled for."""

    name: str
    jitted: Callable
    args: tuple


def is_adaptation(config: ml_collections.ConfigDict) -> bool:
    """Whether `config` is the adapt command's (UL2 denoising over an encoder-decoder)."""
    return "ul2" in config


def architecture(config: ml_collections.ConfigDict) -> TransformerConfig:
    """The transformer the config trains (both halves of an adaptation's encoder-decoder)."""
    if is_adaptation(config):
        from embeddinggemma.training.denoising_config import transformer_config

        return transformer_config(config)
    return model_config(config).transformer


def _abstract(shape: tuple[int, ...], dtype, sharding) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)


def batch_shapes(config: ml_collections.ConfigDict) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """{key: (global shape, dtype)} of one training batch at the config's maximum lengths: the
    embedding pipeline's (data/transforms.BatchCollator) or, for an adaptation, UL2's
    (data/ul2.BATCH_KEYS)."""
    t = config.train
    B = t.batch_size
    if is_adaptation(config):
        from embeddinggemma.data.ul2_config import sequence_lengths

        S, T = sequence_lengths(config.ul2)
        return {"encoder_tokens": ((B, S), np.int32), "decoder_tokens": ((B, T), np.int32),
                "targets": ((B, T), np.int32), "denoiser": ((B,), np.int32), "example_mask": ((B,), np.bool_)}
    roles = ROLES if t.hard_negatives else ROLES[:2]
    shapes = {role: ((B, t.max_query_length if role == "query" else t.max_document_length), np.int32)
              for role in roles}
    shapes.update({"query_id": ((B,), np.int32), "positive_id": ((B,), np.int32),
                   "example_mask": ((B,), np.bool_)})
    if config.data.teacher or config.loss.teacher_is_init:
        teacher_dim = config.loss.teacher_dim or model_config(config).output_dim
        shapes.update({f"teacher_{role}": ((B, teacher_dim), np.float32) for role in roles})
    return shapes


def programs(config: ml_collections.ConfigDict, devices: Sequence[jax.Device]
             ) -> tuple[Trainer, list[Program]]:
    """The trainer over `devices` and the programs a run of `config` compiles: the train step and
    the periodic evaluation's."""
    transformer = architecture(config)
    if is_adaptation(config):
        from embeddinggemma.data.ul2_config import denoiser_names
        from embeddinggemma.training.denoising import denoising_trainer, heldout_sums

        trainer = denoising_trainer(config, transformer, transformer.pad_id, devices)
        evaluation = heldout_sums(config, transformer, transformer.pad_id, len(denoiser_names(config.ul2)),
                                  trainer)
        # Every host passes the whole held-out batch as its share of a global batch (training/denoising.py).
        hosts = len({d.process_index for d in devices})
        eval_config = config.copy_and_resolve_references()
        with eval_config.unlocked():
            eval_config.train.batch_size = config.eval.batch_size * hosts
        eval_batch = {k: _abstract(shape, dtype, batch_sharding(trainer.mesh, trainer.rules, len(shape)))
                      for k, (shape, dtype) in batch_shapes(eval_config).items()}
        eval_program = Program("heldout_denoising", evaluation, (None, eval_batch))
    else:
        trainer = assemble_trainer(config, devices=devices)
        replicated = NamedSharding(trainer.mesh, PartitionSpec())
        tokens = _abstract((config.eval.batch_size, config.train.max_document_length), np.int32, replicated)
        eval_program = Program("embed", trainer.embed, (None, tokens))
    state = trainer.abstract_state()
    train_batch = {k: _abstract(shape, dtype, batch_sharding(trainer.mesh, trainer.rules, len(shape)))
                   for k, (shape, dtype) in batch_shapes(config).items()}
    eval_program = dataclasses.replace(eval_program, args=(state["params"], eval_program.args[1]))
    return trainer, [Program("train_step", trainer.train_step, (state, train_batch)), eval_program]


def step_seconds(flops: float, tpu: Slice, mfu: float) -> dict[str, float]:
    """{"100%": s, f"{mfu:.0%}": s}: a step of `flops` on all of the slice's chips at their bf16 peak."""
    peak = tpu.chips * tpu.peak_bf16_flops
    return {"100%": flops / peak, f"{mfu:.0%}": flops / (mfu * peak)}


def _refused_report(config: ml_collections.ConfigDict, tpu: Slice, trainer: Trainer, state: dict,
                    refused: dict, reports: dict, mfu: float) -> dict:
    """The report of a config whose programs the compiler refused for want of HBM: what it says
    they need (temporaries, with the state a lower bound of the total) and the largest values."""
    name, worst = max(refused.items(), key=lambda item: item[1]["temp_bytes"])
    parameters, optimizer = _shard_bytes(state["params"]), _shard_bytes(state["opt_state"])
    total = worst["temp_bytes"] + parameters + optimizer
    return {
        "slice": tpu.name, "topology": tpu.topology, "chips": tpu.chips, "hbm_bytes": tpu.hbm_bytes,
        "stage": "adapt" if is_adaptation(config) else "train",
        "mesh": dict(zip(trainer.mesh.axis_names, map(int, trainer.mesh.devices.shape), strict=True)),
        "fits": False,
        "per_chip": {"parameter_bytes": parameters, "optimizer_bytes": optimizer,
                     "temp_bytes": worst["temp_bytes"], "total_bytes": total, "hbm_bytes": tpu.hbm_bytes,
                     "headroom_bytes": tpu.hbm_bytes - total},
        "collectives": reports.get("train_step", {}).get("collectives", {}),
        "model_flops_per_step": model_flops_per_step(config),
        "step_seconds": step_seconds(model_flops_per_step(config), tpu, mfu),
        "attention": {},
        "programs": {**reports, **{k: {"refused": v["message"]} for k, v in refused.items()}},
        "refused_by_compiler": name,
        "largest_values": worst["largest_values"],
        "remedies": list(REMEDIES),
    }


def _shard_bytes(tree) -> int:
    """Bytes one device holds of a tree of sharded ShapeDtypeStructs (the largest shard)."""
    return sum(math.prod(x.sharding.shard_shape(x.shape)) * np.dtype(x.dtype).itemsize
               for x in jax.tree.leaves(tree))


def transformer_flops(c: TransformerConfig, tokens: int, keys: int, *, cross_keys: int = 0,
                      memory_tokens: int = 0) -> float:
    """Forward FLOPs of `tokens` tokens through the stack attending over `keys` keys (and, with
    cross-attention, over `cross_keys` encoder outputs, whose k and v of `memory_tokens` tokens
    are computed in every layer)."""
    D, N, K, H, F = c.embed_dim, c.num_heads, c.num_kv_heads, c.head_dim, c.mlp_dim
    attention_weights = 2 * D * N * H + 2 * D * K * H
    per_token = 2 * (attention_weights + 3 * D * F) + 4 * N * H * keys
    if cross_keys:
        per_token += 2 * (2 * D * N * H) + 4 * N * H * cross_keys
    total = tokens * per_token + memory_tokens * 2 * (2 * D * K * H) * bool(cross_keys)
    return float(c.num_layers * total)


def model_flops_per_step(config: ml_collections.ConfigDict) -> float:
    """Training FLOPs of one step by the model's arithmetic (the module docstring says how)."""
    c = architecture(config)
    shapes = batch_shapes(config)
    if is_adaptation(config):
        (B, S), (_, T) = shapes["encoder_tokens"][0], shapes["decoder_tokens"][0]
        forward = (transformer_flops(c, B * S, S)
                   + transformer_flops(c, B * T, T, cross_keys=S, memory_tokens=B * S)
                   + B * T * 2 * c.vocab_size * c.embed_dim)
        return 3 * forward
    forward = 0.0
    widths = (c.embed_dim, *model_config(config).projection_dims)
    head = sum(2 * a * b for a, b in zip(widths[:-1], widths[1:], strict=False))
    for role in ROLES:
        if role in shapes:
            B, T = shapes[role][0]
            forward += transformer_flops(c, B * T, T) + B * head
    return 3 * forward


def attention_kinds(config: ml_collections.ConfigDict, platform: str, hlo_text: str) -> dict[str, str]:
    """{layer type: its attention implementation}: the model's choice for `platform`
    (`RuntimeConfig.attention_kernel`), checked against the program: a Pallas kernel shows as a
    Mosaic custom call (tpu_custom_call); XLA's own path is "dense" scores for global layers,
    "banded" blocks for local ones."""
    kernel = runtime_config(config).attention_kernel(platform)
    found = hlo.has_custom_call(hlo_text, "tpu_custom_call")
    kinds = {}
    for kind in sorted(set(architecture(config).layer_types)):
        if kernel == "einsum":
            kinds[kind] = "dense" if kind == GLOBAL else "banded"
        else:
            kinds[kind] = kernel + ("" if found or platform != "tpu" else " (no kernel call in the program)")
    return kinds


def compile_program(program: Program) -> tuple[jax.stages.Compiled, float]:
    """(the compiled program, seconds spent lowering and compiling it)."""
    started = time.perf_counter()
    compiled = program.jitted.lower(*program.args).compile()
    return compiled, time.perf_counter() - started


_TEMPORARIES = re.compile(r"HLO temporaries \(([\d.]+)([KMGT])\)")


def out_of_memory(program: Program, message: str) -> dict:
    """What is known of a program the TPU compiler refuses for want of HBM: `{"message",
    "temp_bytes"` (the temporaries it says the program needs), `"largest_values"}`: the compiler
    reports nothing more, so the values are the largest of the program before partitioning, at
    their global shapes (all chips' shares together), which name what to shrink."""
    needed = _TEMPORARIES.search(message)
    temp = int(float(needed.group(1)) * 1024 ** "KMGT".index(needed.group(2)) * 1024) if needed else 0
    unpartitioned = program.jitted.lower(*program.args).as_text(dialect="hlo")
    return {"message": message, "temp_bytes": temp, "largest_values": hlo.largest_values(unpartitioned)}


def memory(compiled: jax.stages.Compiled) -> dict[str, int]:
    """One chip's memory of a compiled program (XLA's memory analysis): arguments, output,
    aliases (outputs written into donated arguments, counted once), temporaries, code, total."""
    m = compiled.memory_analysis()
    out = {"argument_bytes": int(m.argument_size_in_bytes), "output_bytes": int(m.output_size_in_bytes),
           "alias_bytes": int(m.alias_size_in_bytes), "temp_bytes": int(m.temp_size_in_bytes),
           "code_bytes": int(m.generated_code_size_in_bytes)}
    out["total_bytes"] = (out["argument_bytes"] + out["output_bytes"] - out["alias_bytes"]
                          + out["temp_bytes"] + out["code_bytes"])
    return out


def plan(config: ml_collections.ConfigDict, tpu: Slice, *, mfu: float = MFU,
         devices: Sequence[jax.Device] | None = None) -> dict:
    """The plan of `config` on the slice `tpu` (see the module docstring), a JSON-ready dict:

      slice, chips, hbm_bytes (per chip), stage ("train" or "adapt"), mesh {axis: size}
      fits, per_chip {parameter_bytes, optimizer_bytes, argument_bytes, output_bytes,
          alias_bytes, temp_bytes, code_bytes, total_bytes, hbm_bytes, headroom_bytes}
          (the largest of the programs, which do not run at the same time)
      collectives {kind: {ops, per_step, bytes_per_step, largest_bytes}} (the train step's)
      model_flops_per_step, step_seconds {"100%": s, "40%": s}
      attention {layer type: implementation}
      programs {name: {compile_seconds, memory, collectives, heaviest_collectives}}
      largest_values (when it does not fit: the largest values of the program that needs the most
          memory), remedies; when the compiler refuses a program for want of HBM, the totals are
          what it says the program needs and `refused_by_compiler` names it

    `devices` defaults to the slice's compile-only devices (libtpu).

    Raises:
      ConfigError naming the field, as the train command would.
    """
    validate_config(config)
    devices = tpu.devices() if devices is None else devices
    trainer, to_compile = programs(config, devices)
    state = to_compile[0].args[0]
    compiled, reports, refused = {}, {}, {}
    for program in to_compile:
        try:
            executable, seconds = compile_program(program)
        except jax.errors.JaxRuntimeError as e:
            if "RESOURCE_EXHAUSTED" not in str(e):
                raise
            refused[program.name] = out_of_memory(program, str(e))
            continue
        compiled[program.name] = executable
        text = executable.as_text()
        reports[program.name] = {"compile_seconds": round(seconds, 1), "memory": memory(executable),
                                 "collectives": hlo.collectives(text),
                                 "heaviest_collectives": hlo.heaviest_collectives(text)}
    if refused:  # the compiler's own verdict: not one of them fits
        return _refused_report(config, tpu, trainer, state, refused, reports, mfu)
    train_text = compiled["train_step"].as_text()
    largest = max(reports.values(), key=lambda r: r["memory"]["total_bytes"])["memory"]
    per_chip = {"parameter_bytes": _shard_bytes(state["params"]),
                "optimizer_bytes": _shard_bytes(state["opt_state"]), **largest,
                "hbm_bytes": tpu.hbm_bytes, "headroom_bytes": tpu.hbm_bytes - largest["total_bytes"]}
    flops = model_flops_per_step(config)
    report = {
        "slice": tpu.name, "topology": tpu.topology, "chips": tpu.chips, "hbm_bytes": tpu.hbm_bytes,
        "stage": "adapt" if is_adaptation(config) else "train",
        "mesh": dict(zip(trainer.mesh.axis_names, map(int, trainer.mesh.devices.shape), strict=True)),
        "fits": per_chip["headroom_bytes"] >= 0,
        "per_chip": per_chip,
        "collectives": reports["train_step"]["collectives"],
        "model_flops_per_step": flops,
        "step_seconds": step_seconds(flops, tpu, mfu),
        "attention": attention_kinds(config, mesh_platform(trainer.mesh), train_text),
        "programs": reports,
    }
    if not report["fits"]:
        biggest = max(reports, key=lambda name: reports[name]["memory"]["total_bytes"])
        report["largest_values"] = hlo.largest_values(compiled[biggest].as_text())
        report["remedies"] = list(REMEDIES)
    return report


def _is_report(path: Path) -> bool:
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(content, dict) and {"slice", "per_chip", "fits"} <= content.keys()


def check_report_target(path: str | Path) -> Path:
    """`path` as a Path if a plan report may be written there: nothing there, or a plan report.

    Raises:
      FileExistsError naming the path when it holds anything else (left as it is).
    """
    path = Path(path).expanduser()
    if path.exists() and not (path.is_file() and _is_report(path)):
        raise FileExistsError(f"{path} exists and is not a plan report; nothing was written.")
    return path


def write_report(report: Mapping, path: str | Path) -> Path:
    """Writes `report` as JSON to `path` (checked by `check_report_target`), atomically."""
    return atomic_write(check_report_target(path), json.dumps(report, indent=2) + "\n")


__all__ = ["MFU", "attention_kinds", "batch_shapes", "check_report_target", "model_flops_per_step", "plan",
           "programs", "transformer_flops", "write_report"]
