"""Checks a pod-scale grid without a pod: every training stage's config loads and validates, and
its model's parameters have shapes (`jax.eval_shape`, no memory, no devices), before the launch
lines are printed. What needs the pod's files (checkpoints, corpora) is not opened."""

from __future__ import annotations

import jax

from experiments.grid import Ablation, Context, Train, check_cells
from experiments.stages import Paths, train_overrides


def check_pod_cells(ablation: Ablation, context: Context) -> dict[str, int]:
    """{cell/stage: parameter count} of every training stage, each config validated.

    Raises:
      ConfigError naming the cell, the stage and the field.
    """
    from embeddinggemma.errors import ConfigError
    from embeddinggemma.training.config import stage_config_module, validate_config
    from embeddinggemma.training.config_files import load_config

    cells = ablation.cells(context)
    check_cells(ablation.name, cells)
    paths = Paths("POD_WORKDIR", {c.name: {s.name: s for s in c.stages} for c in cells})
    counts = {}
    for cell in cells:
        for stage in cell.stages:
            if not isinstance(stage, Train):
                continue
            where = f"{cell.name}, stage {stage.name}"
            try:
                config = load_config(stage.config, train_overrides(
                    stage, cell.seed, lambda ref, cell=cell: paths.checkpoint(cell.name, ref)))
                validate_config(config)
            except ConfigError as e:
                raise ConfigError(f"{where}: {e}") from e
            shapes = stage_config_module(config.stage).abstract_params(config)
            counts[f"{cell.name}/{stage.name}"] = sum(x.size for x in jax.tree.leaves(shapes))
    return counts
