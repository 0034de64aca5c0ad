"""The mixture search's results: trials.csv, trials.md and trials.png in its directory.

Each is rewritten (atomically) after every trial, so they show the search so far. trials.md ends
with the best mixtures and the command line that soups their runs' final checkpoints.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from optuna.trial import FrozenTrial, TrialState

from embeddinggemma.atomic import atomic_write
from embeddinggemma.data.config import mixture_text
from embeddinggemma.search.study import SearchSpec, param_name, trial_dir, trial_weights

CSV_FILE, MARKDOWN_FILE, PLOT_FILE = "trials.csv", "trials.md", "trials.png"
SOUP_DIR = "soup"  # the soup command's suggested --out, inside the search directory


def trial_source(spec: SearchSpec, trial: FrozenTrial) -> str:
    """"config" (the config's own mixture), "random" (a flat-Dirichlet seed) or "tpe"."""
    if trial.number == 0:
        return "config"
    return "random" if trial.number < spec.num_seeds else "tpe"


def best_so_far(trials: Sequence[FrozenTrial]) -> list[float | None]:
    """For each trial in number order, the best score of the complete trials up to it."""
    best, out = None, []
    for t in sorted(trials, key=lambda t: t.number):
        if t.state == TrialState.COMPLETE and (best is None or t.value > best):
            best = t.value
        out.append(best)
    return out


def top_trials(trials: Sequence[FrozenTrial], k: int) -> list[FrozenTrial]:
    """The `k` complete trials with the highest scores, best first (ties: lower number first)."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    return sorted(complete, key=lambda t: (-t.value, t.number))[:k]


def soup_command(workdir: str | Path, trials: Sequence[FrozenTrial]) -> str:
    """The command line that soups the final checkpoints of `trials`' runs."""
    runs = " ".join(str(trial_dir(workdir, t.number)) for t in trials)
    return f"python -m embeddinggemma soup --checkpoints {runs} --out {Path(workdir) / SOUP_DIR}"


def _weights(spec: SearchSpec, trial: FrozenTrial) -> dict[str, float] | None:
    if all(param_name(n) in trial.params for n in spec.datasets):
        return trial_weights(spec, trial.params)
    return None  # a trial asked for but killed before its parameters were all stored


def trials_csv(spec: SearchSpec, workdir: Path, trials: Sequence[FrozenTrial]) -> str:
    """One row per trial: number, source, state, score, best so far, weights, uniforms, the
    objective's parts (score/<dataset or task>), attempts, seconds, run directory."""
    detail_keys = sorted({k for t in trials for k in t.user_attrs.get("details", {})})
    header = ["trial", "source", "state", "score", "best_so_far",
              *(f"weight/{n}" for n in spec.datasets), *(param_name(n) for n in spec.datasets),
              *(f"score/{k}" for k in detail_keys), "attempts", "seconds", "run_dir"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for t, best in zip(sorted(trials, key=lambda t: t.number), best_so_far(trials), strict=True):
        weights = _weights(spec, t) or {}
        details = t.user_attrs.get("details", {})
        writer.writerow([t.number, trial_source(spec, t), t.state.name, _cell(t.value), _cell(best),
                         *(_cell(weights.get(n)) for n in spec.datasets),
                         *(_cell(t.params.get(param_name(n))) for n in spec.datasets),
                         *(_cell(details.get(k)) for k in detail_keys),
                         t.user_attrs.get("attempts", ""), _cell(t.user_attrs.get("seconds"), 1),
                         trial_dir(workdir, t.number)])
    return out.getvalue()


def _cell(value: float | None, digits: int | None = None) -> str:
    if value is None:
        return ""
    return repr(float(value)) if digits is None else f"{value:.{digits}f}"


def trials_markdown(spec: SearchSpec, workdir: Path, trials: Sequence[FrozenTrial], asked: int,
                    top_k: int) -> str:
    """The table of trials, the best mixtures and the soup command line."""
    ordered = sorted(trials, key=lambda t: t.number)
    done = sum(t.state.is_finished() for t in ordered)
    seeds = (f"trials 1-{spec.num_seeds - 1} flat-Dirichlet draws (seed {spec.seed})" if spec.random_mixtures
             else "no random mixtures")
    lines = [f"# Mixture search: {done} of {asked} trials done", "",
             f"Objective: `{spec.objective}` (higher is better). Datasets mixed: "
             f"{', '.join(spec.datasets)}. Trial 0 is the config's own mixture, {seeds}, later ones "
             "TPE's proposals.",
             "", "| trial | source | state | score | best so far | "
             + " | ".join(spec.datasets) + " | seconds |",
             "|" + "---|" * (6 + len(spec.datasets))]
    for t, best in zip(ordered, best_so_far(ordered), strict=True):
        weights = _weights(spec, t) or {}
        lines.append(f"| {t.number} | {trial_source(spec, t)} | {t.state.name.lower()} | "
                     f"{_fixed(t.value)} | {_fixed(best)} | "
                     + " | ".join(_fixed(weights.get(n), 3) for n in spec.datasets)
                     + f" | {_fixed(t.user_attrs.get('seconds'), 0)} |")
    failed = [t for t in ordered if t.state == TrialState.FAIL]
    for t in failed:
        lines += ["", f"Trial {t.number} failed: {t.user_attrs.get('error', 'no message')}"]
    best = top_trials(ordered, top_k)
    if best:
        detail_keys = sorted({k for t in best for k in t.user_attrs.get("details", {})})
        lines += ["", f"## The {len(best)} best mixtures", "",
                  "| rank | trial | score | " + " | ".join(spec.datasets)
                  + "".join(f" | score/{k}" for k in detail_keys) + " |",
                  "|" + "---|" * (3 + len(spec.datasets) + len(detail_keys))]
        for rank, t in enumerate(best, 1):
            weights = _weights(spec, t)
            details = t.user_attrs.get("details", {})
            lines.append(f"| {rank} | {t.number} | {_fixed(t.value)} | "
                         + " | ".join(_fixed(weights[n], 3) for n in spec.datasets)
                         + "".join(f" | {_fixed(details.get(k))}" for k in detail_keys) + " |")
        lines += ["", "Soup their final checkpoints:", "", "```sh", soup_command(workdir, best), "```",
                  "", "Or train the config with the best mixture (e.g. for longer):", "", "```sh",
                  f"--config.data.mixture={mixture_text(_weights(spec, best[0]))}", "```"]
    lines += ["", f"![score against trial]({PLOT_FILE})", ""]
    return "\n".join(lines)


def _fixed(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def plot_trials(spec: SearchSpec, trials: Sequence[FrozenTrial]) -> bytes:
    """PNG: each complete trial's score against its number (by source) and the best so far."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    ordered = sorted(trials, key=lambda t: t.number)
    fig, ax = plt.subplots(figsize=(7, 4))
    for source, marker in (("config", "s"), ("random", "o"), ("tpe", "^")):
        points = [(t.number, t.value) for t in ordered
                  if t.state == TrialState.COMPLETE and trial_source(spec, t) == source]
        if points:
            ax.scatter(*zip(*points, strict=True), marker=marker, label=source, zorder=3)
    steps = [(t.number, b) for t, b in zip(ordered, best_so_far(ordered), strict=True) if b is not None]
    if steps:
        ax.step(*zip(*steps, strict=True), where="post", color="black", alpha=0.6, label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"score ({spec.objective})")
    ax.set_title("Mixture search")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def write_reports(spec: SearchSpec, workdir: str | Path, trials: Sequence[FrozenTrial], asked: int,
                  top_k: int = 3) -> dict[str, Path]:
    """Writes trials.csv, trials.md and trials.png into `workdir`; returns their paths by kind.

    Trials still waiting (enqueued seeds not started) are left out.
    """
    workdir = Path(workdir)
    trials = [t for t in trials if t.state != TrialState.WAITING]
    return {"csv": atomic_write(workdir / CSV_FILE, trials_csv(spec, workdir, trials)),
            "markdown": atomic_write(workdir / MARKDOWN_FILE, trials_markdown(spec, workdir, trials, asked,
                                                                              top_k)),
            "plot": atomic_write(workdir / PLOT_FILE, plot_trials(spec, trials))}
