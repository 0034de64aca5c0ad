"""Evaluation results as JSON, a markdown table and a plot of score against dimension.

A result row is {"model", "checkpoint", "quant", "dim", "task", "type", "main_score", "scores"};
`model` is the label shown in tables and plots (the checkpoint's directory name, "@<scheme>"
when quantised).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from embeddinggemma.paths import as_path

RESULTS_JSON = "results.json"
RESULTS_MARKDOWN = "results.md"
PLOT = "score_vs_dim.png"


def summarise(rows: Sequence[dict]) -> dict[tuple[str, int], dict[str, float]]:
    """(model, dim) -> {task: main score, "mean(task)", "mean(type)"} in percent, as MTEB tables."""
    table: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    types: dict[tuple[str, int], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        key = (r["model"], r["dim"])
        table[key][r["task"]] = 100 * r["main_score"]
        types[key][r["type"]].append(100 * r["main_score"])
    for key, scores in table.items():
        task_scores = list(scores.values())
        scores["mean(task)"] = float(np.mean(task_scores))
        scores["mean(type)"] = float(np.mean([np.mean(v) for v in types[key].values()]))
    return dict(table)


def markdown_table(rows: Sequence[dict]) -> str:
    table = summarise(rows)
    tasks = sorted({r["task"] for r in rows})
    header = ["model", "dim", *tasks, "mean(task)", "mean(type)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (model, dim), scores in sorted(table.items(), key=lambda kv: (kv[0][0], -kv[0][1])):
        cells = [f"{scores[t]:.2f}" if t in scores else "" for t in [*tasks, "mean(task)", "mean(type)"]]
        lines.append("| " + " | ".join([model, str(dim), *cells]) + " |")
    return "\n".join(lines) + "\n"


def plot_scores(rows: Sequence[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    table = summarise(rows)
    tasks = sorted({r["task"] for r in rows})
    panels = ["mean(task)", *tasks]
    columns = min(4, len(panels))
    rows_n = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows_n, columns, figsize=(4 * columns, 3.2 * rows_n), squeeze=False)
    models = sorted({m for m, _ in table})
    for ax, panel in zip(axes.flat, panels, strict=False):
        for model in models:
            points = sorted((d, s[panel]) for (m, d), s in table.items() if m == model and panel in s)
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", label=model)
        ax.set_title(panel, fontsize=9)
        ax.set_xlabel("dimension")
        ax.set_ylabel("main score (%)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    with path.open("wb") as stream:  # a file object: matplotlib writes local paths only
        fig.savefig(stream, dpi=110, format="png")
    plt.close(fig)


def write_reports(rows: Sequence[dict], out_dir: str | Path, suite: dict) -> dict[str, Path]:
    out = as_path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / RESULTS_JSON, "markdown": out / RESULTS_MARKDOWN, "plot": out / PLOT}
    paths["json"].write_text(json.dumps({"suite": suite, "results": list(rows)}, indent=1) + "\n")
    paths["markdown"].write_text(markdown_table(rows))
    plot_scores(rows, paths["plot"])
    return paths
