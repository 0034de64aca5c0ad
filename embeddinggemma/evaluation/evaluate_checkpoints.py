"""Checkpoints x quantisation schemes x tasks x dimensions: the evaluate command's work as a library
function, for the command, souping and the experiments runner.

Each result row: {"model": label[@scheme], "checkpoint": absolute path, "quant": scheme or None,
"dim", "task", "type", "main_score", "scores": {metric: value}} (what evaluation/report.py writes).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from embeddinggemma.evaluation.encoders import DEFAULT_MAX_LENGTH, EmbedderEncoder
from embeddinggemma.evaluation.runner import EmbeddingCache, evaluate_task
from embeddinggemma.evaluation.tasks import Task
from embeddinggemma.paths import as_path, resolved


class EvaluationInputError(ValueError):
    """A checkpoint, scheme, dimension or task that cannot be evaluated; the message names it."""


def checkpoint_labels(checkpoints: Sequence[Path]) -> list[str]:
    """Directory names, with parents added until they are distinct (runs/a/export, runs/b/export)."""
    depth = 1
    while True:
        labels = ["/".join(resolved(c).parts[-depth:]) for c in checkpoints]
        if len(set(labels)) == len(labels) or depth > 8:
            return labels
        depth += 1


def evaluate_checkpoints(checkpoints: Sequence[str | Path], tasks: Sequence[Task], *,
                         dims: Sequence[int] | None = None, quant: Sequence[str] = (),
                         dtype: str = "float32", max_length: int = DEFAULT_MAX_LENGTH, batch_size: int = 32,
                         cache: EmbeddingCache | None = None, progress: bool = True) -> list[dict]:
    """Scores every checkpoint, as it is and under each scheme of `quant`, on every task at every dim.

    Args:
      checkpoints: Orbax, sentence-transformers or run `export/` directories.
      tasks: loaded suite tasks (evaluation/tasks.py `load_suite`).
      dims: Matryoshka dimensions; None = each checkpoint's own.
      quant: quantisation schemes (embeddinggemma.quantization.SCHEMES).
      cache: embeddings and scores cache; None = compute everything, store nothing.

    Returns:
      Result rows (see the module docstring), checkpoint by checkpoint, scheme by scheme, task by task.

    Raises:
      EvaluationInputError naming the checkpoint (and the task) that cannot be evaluated.
    """
    checkpoints = [as_path(c).expanduser() for c in checkpoints]
    runs = [(c, label, q) for c, label in zip(checkpoints, checkpoint_labels(checkpoints), strict=True)
            for q in [None, *quant]]
    rows = []
    bar = tqdm(total=len(runs) * len(tasks), desc="evaluate", unit="task", disable=not progress)
    try:
        for checkpoint, label, scheme in runs:
            try:
                encoder = EmbedderEncoder(checkpoint, dtype=dtype, quant=scheme, max_length=max_length,
                                          batch_size=batch_size)
                run_dims = list(dims or encoder.default_dims())
            except (FileNotFoundError, ValueError) as e:
                raise EvaluationInputError(f"{checkpoint}: {e}") from e
            model = label + (f"@{scheme}" if scheme else "")
            for task in tasks:
                bar.set_postfix_str(f"{model} {task.name}")
                try:
                    per_dim = evaluate_task(task, encoder, run_dims, cache)
                except ValueError as e:
                    raise EvaluationInputError(f"{model} {task.name}: {e}") from e
                rows += [{"model": model, "checkpoint": str(resolved(checkpoint)), "quant": scheme,
                          "dim": dim, "task": task.name, "type": task.type,
                          "main_score": scores["main_score"], "scores": scores}
                         for dim, scores in per_dim.items()]
                bar.update(1)
    finally:
        bar.close()
    return rows
