"""Scale settings shared by the ablations that train the embedding model alone (pooling,
objective, souping, quantisation): which config, how long, and what evaluates a cell.

    smoke  the tiny model for a few steps, two suite tasks at 64 tokens: minutes for a whole grid
    cpu    the tiny model on the real corpus for 300 steps (the demo's run), all six suite tasks at
           128 tokens (the tiny model's texts are 32-64 tokens long in training)
    pod    the 300m configs (TPU pod slices) and the suite at 512 tokens, as the paper evaluates
"""

from __future__ import annotations

from experiments.grid import Context, Evaluation, Ref

SMOKE_TASKS = ("ManPageRetrieval", "DebianPackageClassification")

SETTINGS = {
    # Smoke pads every batch to the maximum length: one compiled step per run, not one per bucket.
    "smoke": dict(size="tiny",
                  train={"train.num_steps": 3, "train.batch_size": 8, "optimizer.warmup_steps": 1,
                         "eval.every_steps": 0, "checkpoint.every_steps": 3, "data.bucket_lengths": False},
                  evaluation=dict(tasks=SMOKE_TASKS, max_length=64), dims=(64, 32, 16)),
    "cpu": dict(size="tiny", train={"eval.every_steps": 0, "checkpoint.every_steps": 100},
                evaluation=dict(tasks=None, max_length=128), dims=(64, 32, 16)),
    "pod": dict(size="300m", train={}, evaluation=dict(tasks=None, max_length=512),
                dims=(768, 512, 256, 128)),
}


def config(name: str, context: Context) -> str:
    """`name:size` for the scale, e.g. "finetune:tiny"."""
    return f"{name}:{SETTINGS[context.scale]['size']}"


def train_overrides(context: Context, **overrides: object) -> dict[str, object]:
    """The scale's training overrides (length, evaluation cadence), the corpus, then `overrides`."""
    data = {"data.corpus": context.corpus} if context.corpus else {}
    return {**SETTINGS[context.scale]["train"], **data, **overrides}


def evaluation(context: Context, stage: str = "train", cell: str = "", all_dims: bool = False) -> Evaluation:
    """The scale's evaluation of `stage` of `cell` ("" = the cell itself), at the full width or at
    every Matryoshka dim."""
    s = SETTINGS[context.scale]
    dims = s["dims"] if all_dims else s["dims"][:1]
    return Evaluation(Ref(stage, cell), dims=dims, **s["evaluation"])


def steps(context: Context, cpu: int) -> dict[str, object]:
    """`train.num_steps` (and its warmup) at cpu scale; smoke keeps its few, pod the config's own."""
    if context.scale != "cpu":
        return {}
    return {"train.num_steps": cpu, "optimizer.warmup_steps": max(1, cpu // 10)}
