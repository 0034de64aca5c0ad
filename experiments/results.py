"""An experiment's scores as files: results.csv (one row per cell, task and dim), results.md (mean
and spread over seeds, per task and the mean over tasks) and <ablation>.png.

The spread is the sample standard deviation over seeds (n - 1 in the denominator; "-" for one
seed). The suite mean of a cell is the mean of its tasks' main scores at one dim, as MTEB tables
them; scores are in % as in the paper.
"""

from __future__ import annotations

import csv
import datetime
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from bench.system import cpu_model
from embeddinggemma.atomic import atomic_write
from experiments.grid import Ablation, Cell, Context

CSV_FIELDS = ("ablation", "scale", "variant", "seed", "dim", "task", "type", "main_score")
MEAN = "mean"


def score_rows(ablation: Ablation, context: Context, cells: Sequence[Cell],
               statuses: Mapping[str, dict]) -> list[dict]:
    """One row per scored cell, task and dim (main_score in %)."""
    rows = []
    for cell in cells:
        for r in statuses[cell.name].get("scores", []):
            rows.append({"ablation": ablation.name, "scale": context.scale, "variant": cell.variant,
                         "seed": cell.seed, "dim": r["dim"], "task": r["task"], "type": r["type"],
                         "main_score": 100.0 * r["main_score"]})
    return rows


def summarise(rows: Sequence[dict]) -> dict[tuple[str, int], dict[str, tuple[float, float, int]]]:
    """(variant, dim) -> {task or MEAN: (mean, std, seeds)} over seeds; MEAN is the suite mean."""
    per_seed: dict[tuple[str, int, str], dict[int, float]] = {}
    for r in rows:
        per_seed.setdefault((r["variant"], r["dim"], r["task"]), {})[r["seed"]] = r["main_score"]
    out: dict[tuple[str, int], dict[str, tuple[float, float, int]]] = {}
    for (variant, dim, task), by_seed in per_seed.items():
        out.setdefault((variant, dim), {})[task] = _stats(list(by_seed.values()))
    for (variant, dim), tasks in out.items():
        # The suite mean per seed (over the tasks that seed has), then its spread over seeds.
        seeds = sorted({r["seed"] for r in rows if r["variant"] == variant and r["dim"] == dim})
        means = [np.mean([r["main_score"] for r in rows
                          if r["variant"] == variant and r["dim"] == dim and r["seed"] == s]) for s in seeds]
        tasks[MEAN] = _stats(means)
    return out


def paired_deltas(rows: Sequence[dict], dim: int, variant: str, baseline: str
                  ) -> tuple[float, float, int] | None:
    """Mean and spread over the seeds both have of (suite mean of `variant` - that of `baseline`)."""
    def suite_means(name: str) -> dict[int, float]:
        by_seed: dict[int, list[float]] = {}
        for r in rows:
            if r["variant"] == name and r["dim"] == dim:
                by_seed.setdefault(r["seed"], []).append(r["main_score"])
        return {seed: float(np.mean(scores)) for seed, scores in by_seed.items()}

    own, base = suite_means(variant), suite_means(baseline)
    seeds = sorted(set(own) & set(base))
    return _stats([own[s] - base[s] for s in seeds]) if seeds else None


def _stats(values: Sequence[float]) -> tuple[float, float, int]:
    values = np.asarray(values, dtype=np.float64)
    spread = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
    return float(values.mean()), spread, len(values)


def _cell_text(stats: tuple[float, float, int] | None) -> str:
    if stats is None:
        return ""
    mean, spread, _ = stats
    return f"{mean:.2f}" + ("" if np.isnan(spread) else f" ± {spread:.2f}")


def _signed(stats: tuple[float, float, int]) -> str:
    mean, spread, _ = stats
    return f"{mean:+.2f}" + ("" if np.isnan(spread) else f" ± {spread:.2f}")


def markdown(ablation: Ablation, context: Context, cells: Sequence[Cell], statuses: Mapping[str, dict],
             rows: Sequence[dict]) -> str:
    summary = summarise(rows)
    variants = list(dict.fromkeys(c.variant for c in cells))
    dims = sorted({r["dim"] for r in rows}, reverse=True)
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    seconds = sum(sum(s["seconds"] for s in st["stages"].values()) + st.get("evaluation_seconds", 0.0)
                  for st in statuses.values())
    done = sum("scores" in statuses[c.name] for c in cells)
    out = io.StringIO()
    out.write(f"# {ablation.name} ({context.scale} scale)\n\n{ablation.question}\n\n")
    out.write(f"Paper: {ablation.paper}\n\n")
    out.write(f"Command: `python -m experiments.run {ablation.name} --scale {context.scale} --seeds "
              f"{len(context.seeds)}`. Written {datetime.date.today().isoformat()} on {cpu_model()} "
              f"({os.cpu_count()} CPUs).\n\n")
    out.write(f"Cells scored: {done} of {len(cells)}; seeds {', '.join(map(str, context.seeds))}; "
              f"{seconds / 60:.1f} minutes of stages and evaluations (wall clock). Main scores in %, mean "
              "± standard deviation over seeds.\n\n")
    out.write("Δ: the variant's suite mean minus its baseline's, seed by seed (the same seed shares the "
              "start and the data order), mean ± standard deviation over seeds.\n\n")
    for dim in dims:
        out.write(f"## dim {dim}\n\n| variant | {' | '.join(tasks)} | {MEAN} | Δ | seeds |\n")
        out.write("|---" * (len(tasks) + 4) + "|\n")
        for variant in variants:
            stats = summary.get((variant, dim))
            if stats is None:
                continue
            baseline = ablation.baselines.get(variant, variants[0])
            delta = paired_deltas(rows, dim, variant, baseline) if baseline != variant else None
            delta_text = f"{_signed(delta)} vs {baseline}" if delta else ""
            cells_text = [_cell_text(stats.get(t)) for t in tasks]
            out.write(f"| {variant} | {' | '.join(cells_text)} | **{_cell_text(stats[MEAN])}** | "
                      f"{delta_text} | {stats[MEAN][2]} |\n")
        out.write("\n")
    failed = [(c.name, statuses[c.name]["failed"]) for c in cells if "failed" in statuses[c.name]]
    if failed:
        out.write("## Failed cells\n\n" + "".join(f"- {name}: {why}\n" for name, why in failed) + "\n")
    return out.getvalue()


def plot(ablation: Ablation, rows: Sequence[dict], path: Path) -> None:
    """Bars of the suite mean per variant at the largest dim, or the suite mean against the dim."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarise(rows)
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    dims = sorted({r["dim"] for r in rows})
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(variants) + 2), 3.6))
    if ablation.plot == "dims":
        for variant in variants:
            stats = [summary[(variant, d)][MEAN] for d in dims if (variant, d) in summary]
            ax.errorbar([d for d in dims if (variant, d) in summary], [s[0] for s in stats],
                        yerr=[0 if np.isnan(s[1]) else s[1] for s in stats], marker="o", capsize=3,
                        label=variant)
        ax.set_xlabel("Matryoshka dimension")
        ax.set_xscale("log", base=2)
        ax.legend(fontsize=8)
    else:
        full = dims[-1]
        stats = [summary.get((v, full), {}).get(MEAN, (np.nan, np.nan, 0)) for v in variants]
        ax.bar(range(len(variants)), [s[0] for s in stats],
               yerr=[0 if np.isnan(s[1]) else s[1] for s in stats], capsize=4, color="#4c72b0")
        ax.set_xticks(range(len(variants)), variants, rotation=20, ha="right", fontsize=8)
        ax.set_xlabel(f"variant (dim {full})")
        low = np.nanmin([s[0] - (0 if np.isnan(s[1]) else s[1]) for s in stats])
        if np.isfinite(low):
            ax.set_ylim(bottom=max(0.0, low - 2.0))
    ax.set_ylabel("suite mean main score (%)")
    ax.set_title(f"{ablation.name}: mean ± std over seeds")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, buffer.getvalue())


def write_reports(ablation: Ablation, context: Context, cells: Sequence[Cell], statuses: Mapping[str, dict],
                  workdir: Path) -> dict[str, Path]:
    rows = score_rows(ablation, context, cells, statuses)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    paths = {"csv": atomic_write(workdir / "results.csv", text.getvalue()),
             "md": atomic_write(workdir / "results.md", markdown(ablation, context, cells, statuses, rows))}
    if rows:
        paths["png"] = workdir / f"{ablation.name}.png"
        plot(ablation, rows, paths["png"])
    return paths
