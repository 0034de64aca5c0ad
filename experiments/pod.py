"""Checks a pod-scale grid without a pod: every training stage's config loads and validates, and
its model's parameters have shapes (`jax.eval_shape`, no memory, no devices), before the launch
lines are printed; with a slice named, every stage is also compiled for it (embeddinggemma/planning:
memory per chip, collectives, FLOPs). What needs the pod's files (checkpoints, corpora) is not opened."""

from __future__ import annotations

import json
from collections.abc import Iterator

import jax
import ml_collections

from experiments.grid import Ablation, Context, Train, check_cells
from experiments.stages import Paths, train_overrides

# Fields that change what a stage reads or where it writes, not the programs it compiles: stages that
# differ only in these (seeds, starting checkpoints, mixtures) are planned once.
NOT_COMPILED = ("seed", "model.init", "model.init_checkpoint", "model.tokenizer", "data", "checkpoint")


def _stage_configs(ablation: Ablation, context: Context
                   ) -> Iterator[tuple[str, Train, ml_collections.ConfigDict]]:
    """("cell/stage", stage, its validated config) of every training stage.

    Raises:
      ConfigError naming the cell, the stage and the field.
    """
    from embeddinggemma.errors import ConfigError
    from embeddinggemma.training.config import validate_config
    from embeddinggemma.training.config_files import load_config

    cells = ablation.cells(context)
    check_cells(ablation.name, cells)
    paths = Paths("POD_WORKDIR", {c.name: {s.name: s for s in c.stages} for c in cells})
    for cell in cells:
        for stage in cell.stages:
            if not isinstance(stage, Train):
                continue
            try:
                config = load_config(stage.config, train_overrides(
                    stage, cell.seed, lambda ref, cell=cell: paths.checkpoint(cell.name, ref)))
                validate_config(config)
            except ConfigError as e:
                raise ConfigError(f"{cell.name}, stage {stage.name}: {e}") from e
            yield f"{cell.name}/{stage.name}", stage, config


def check_pod_cells(ablation: Ablation, context: Context) -> dict[str, int]:
    """{cell/stage: parameter count} of every training stage, each config validated.

    Raises:
      ConfigError naming the cell, the stage and the field.
    """
    from embeddinggemma.training.config import stage_config_module

    counts = {}
    for where, _, config in _stage_configs(ablation, context):
        shapes = stage_config_module(config.stage).abstract_params(config)
        counts[where] = sum(x.size for x in jax.tree.leaves(shapes))
    return counts


def _compiled_programs_key(config: ml_collections.ConfigDict) -> str:
    """The config without the NOT_COMPILED fields (teacher embeddings do change the batch)."""
    values = config.to_dict()
    teacher = bool(config.data.teacher or config.get("loss", {}).get("teacher_is_init"))
    for field in NOT_COMPILED:
        *parents, name = field.split(".")
        node = values
        for parent in parents:
            node = node[parent]
        node.pop(name, None)
    return json.dumps({**values, "teacher": teacher}, sort_keys=True, default=str)


def plan_pod_cells(ablation: Ablation, context: Context, topology: str) -> dict[str, dict]:
    """{cell/stage: plan report (embeddinggemma.planning.plan.plan)} of every training stage compiled
    for the Cloud TPU slice `topology`; stages whose configs differ only in NOT_COMPILED fields share
    one report.

    Raises:
      UnknownSliceError listing the known slices; ConfigError naming the cell, stage and field.
    """
    from embeddinggemma.planning.plan import plan
    from embeddinggemma.planning.slices import get_slice

    tpu = get_slice(topology)
    devices = tpu.devices()
    reports, by_key = {}, {}
    for where, _, config in _stage_configs(ablation, context):
        key = _compiled_programs_key(config)
        if key not in by_key:
            by_key[key] = plan(config, tpu, devices=devices)
        reports[where] = by_key[key]
    return reports
