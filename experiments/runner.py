"""Walks an ablation's grid cell by cell, resumably, with progress; collects the scores.

    WORKDIR/experiment.json                  what runs here (ablation, scale); marks the directory
    WORKDIR/cells/<variant>/seed<N>/<stage>/ each stage's run or checkpoint directory
    WORKDIR/cells/<variant>/seed<N>/status.json
                                             finished stages (seconds each), the evaluation's
                                             rows once scored, or the failure that stopped the cell
    WORKDIR/results.csv, results.md, <ablation>.png   (experiments/results.py), after every cell

A finished stage (in status.json) is never rerun; an unfinished one is run again, which resumes it
(experiments/stages.py). A cell whose stage fails (a NaN loss, a failing command) is recorded as
failed and the grid goes on; cells that read its output fail with it. The evaluation is the
offline suite (evaluation/evaluate_checkpoints.py), its embeddings cached by checkpoint content.
"""

from __future__ import annotations

import datetime
import json
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from embeddinggemma.atomic import atomic_write, check_target
from embeddinggemma.files import read_json
from embeddinggemma.paths import absolute
from experiments.grid import Ablation, Cell, Context, cell_dir, check_cells, describe, references
from experiments.stages import Paths, StageError, launch_line, run_stage

EXPERIMENT_FILE = "experiment.json"
STATUS_FILE = "status.json"
WHAT = "an experiment directory (experiments/run.py)"
EVAL_CACHE = Path("~/.cache/embeddinggemma/eval-cache")


class ExperimentInUseError(ValueError):
    """The work directory holds another ablation or scale, or a cell run with another definition."""


def claim_workdir(workdir: Path, ablation: Ablation, context: Context) -> None:
    """Marks `workdir` as this experiment's, or checks that it already is.

    Raises:
      NotOurDirectoryError when it is a file or a non-empty directory without experiment.json;
      ExperimentInUseError when it holds another ablation or scale.
    """
    check_target(workdir, EXPERIMENT_FILE, WHAT)
    marker = workdir / EXPERIMENT_FILE
    spec = {"ablation": ablation.name, "scale": context.scale, "corpus": context.corpus}
    if marker.exists():
        stored = read_json(marker, "Experiment file")
        for key, value in spec.items():
            if stored.get(key) != value:
                raise ExperimentInUseError(
                    f"{workdir} holds the experiment {stored.get('ablation')!r} at scale "
                    f"{stored.get('scale')!r} (corpus {stored.get('corpus')!r}); this run asks for "
                    f"{ablation.name!r} at {context.scale!r} (corpus {context.corpus!r}): use another "
                    "--workdir.")
        seeds = sorted(set(stored.get("seeds", [])) | set(context.seeds))
    else:
        seeds = sorted(context.seeds)
    workdir.mkdir(parents=True, exist_ok=True)
    atomic_write(marker, json.dumps({**spec, "seeds": seeds}, indent=2) + "\n")


def read_status(workdir: Path, cell: Cell) -> dict:
    path = cell_dir(workdir, cell.name) / STATUS_FILE
    return read_json(path, "Cell status") if path.exists() else {"stages": {}}


def _write_status(workdir: Path, cell: Cell, status: dict) -> None:
    path = cell_dir(workdir, cell.name) / STATUS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(status, indent=2) + "\n")


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


class Progress:
    """One line per stage on stderr: cells done, running, left, and the time the rest should take
    (the mean of this grid's finished cells, its own earlier runs included)."""

    def __init__(self, cells: Sequence[Cell], statuses: dict[str, dict]):
        self.cells, self.statuses = cells, statuses
        self.started = time.perf_counter()

    def _cell_seconds(self, name: str) -> float | None:
        status = self.statuses[name]
        if "scores" not in status and "failed" not in status:
            return None
        return sum(s["seconds"] for s in status["stages"].values()) + status.get("evaluation_seconds", 0.0)

    def line(self, cell: Cell, what: str) -> str:
        finished = [s for s in (self._cell_seconds(c.name) for c in self.cells) if s is not None]
        left = len(self.cells) - len(finished) - 1
        estimate = ""
        if finished:
            estimate = f", about {_minutes(sum(finished) / len(finished) * (left + 0.5))} left"
        return (f"[{len(finished)} done, 1 running, {left} left{estimate}; "
                f"{_minutes(time.perf_counter() - self.started)} so far] {cell.name}: {what}")

    def show(self, cell: Cell, what: str) -> None:
        print(self.line(cell, what), file=sys.stderr, flush=True)


class SuiteTasks:
    """The offline suite's tasks, read once per grid and task list (not once per cell)."""

    def __init__(self):
        self._loaded: dict[tuple[str, ...] | None, list] = {}

    def __call__(self, names: tuple[str, ...] | None) -> list:
        if names not in self._loaded:
            from embeddinggemma.evaluation.build import DEFAULT_SUITE_DIR
            from embeddinggemma.evaluation.tasks import ensure_suite, load_suite

            self._loaded[names] = load_suite(ensure_suite(DEFAULT_SUITE_DIR), list(names) if names else None)
        return self._loaded[names]


def evaluate_cell(cell: Cell, paths: Paths, suite: SuiteTasks) -> list[dict]:
    """The cell's evaluation rows: {task, type, dim, main_score} per task and dim."""
    from embeddinggemma.evaluation.evaluate_checkpoints import evaluate_checkpoints
    from embeddinggemma.evaluation.runner import EmbeddingCache

    e = cell.evaluation
    tasks = suite(e.tasks)
    rows = evaluate_checkpoints([paths.checkpoint(cell.name, e.checkpoint)], tasks, dims=e.dims,
                                max_length=e.max_length, cache=EmbeddingCache(EVAL_CACHE), progress=False)
    return [{"task": r["task"], "type": r["type"], "dim": r["dim"], "main_score": float(r["main_score"])}
            for r in rows]


def run_grid(ablation: Ablation, context: Context, workdir: str | Path) -> list[Cell]:
    """Runs every unfinished cell of the grid in `workdir`, then writes the reports; returns the cells.

    Raises:
      NotOurDirectoryError, ExperimentInUseError: `workdir` is not this experiment's (nothing changed).
      ValueError: the definition is inconsistent (a Ref to no stage), before anything runs.
    """
    from embeddinggemma.errors import ConfigError
    from experiments.results import write_reports

    workdir = absolute(workdir)
    cells = ablation.cells(context)
    by_name = check_cells(ablation.name, cells)
    claim_workdir(workdir, ablation, context)
    paths = Paths(workdir, {c.name: {s.name: s for s in c.stages} for c in cells})
    statuses = {c.name: read_status(workdir, c) for c in cells}
    for cell in cells:  # before anything runs: a changed definition must not pass for a finished cell
        _check_definition(workdir, cell, statuses[cell.name])
    progress = Progress(cells, statuses)
    suite = SuiteTasks()
    for cell in cells:
        status = statuses[cell.name]
        if "scores" in status:
            continue
        status.pop("failed", None)
        upstream = _failed_upstream(cell, by_name, statuses)
        if upstream:
            status["failed"] = f"reads the output of {upstream}, which failed"
            _write_status(workdir, cell, status)
            progress.show(cell, f"skipped: {status['failed']}")
            continue
        try:
            for stage in cell.stages:
                if stage.name in status["stages"]:
                    continue
                kind = type(stage).__name__.lower()
                progress.show(cell, kind if kind == stage.name else f"{kind} {stage.name}")
                started = time.perf_counter()
                try:
                    run_stage(stage, cell.name, cell.seed, paths)
                except (ConfigError, FileNotFoundError) as e:  # the definition's or an input's: stop here
                    raise type(e)(f"cell {cell.name}, stage {stage.name}: {e}") from e
                status["stages"][stage.name] = {"seconds": round(time.perf_counter() - started, 1),
                                                "finished": _now()}
                _write_status(workdir, cell, status)
            progress.show(cell, "evaluate")
            started = time.perf_counter()
            status["scores"] = evaluate_cell(cell, paths, suite)
            status["evaluation_seconds"] = round(time.perf_counter() - started, 1)
        except StageError as e:
            status["failed"] = str(e)
            progress.show(cell, f"failed: {e}")
        _write_status(workdir, cell, status)
        write_reports(ablation, context, cells, statuses, workdir)
    write_reports(ablation, context, cells, statuses, workdir)
    return cells


def _check_definition(workdir: Path, cell: Cell, status: dict) -> None:
    """Records the cell's definition in a fresh status; raises ExperimentInUseError naming the cell
    when a started cell was defined otherwise (its stages would not be what the grid says)."""
    definition = describe(cell)
    stored = status.get("definition")
    if stored is None:
        status["definition"] = definition
    elif stored != definition:
        raise ExperimentInUseError(
            f"{cell_dir(workdir, cell.name)} was run with another definition of cell {cell.name} (the "
            "ablation or its scale settings changed since): use another --workdir, or remove that cell's "
            "directory to rerun it.")


def _failed_upstream(cell: Cell, by_name: dict[str, Cell], statuses: dict[str, dict]) -> str | None:
    for stage in cell.stages:
        for ref in references(stage):
            if ref.cell and "failed" in statuses[ref.cell]:
                return ref.cell
    ref = cell.evaluation.checkpoint
    return ref.cell if ref.cell and "failed" in statuses[ref.cell] else None


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def launch_lines(ablation: Ablation, context: Context, workdir: str | Path) -> list[str]:
    """Every cell's commands, in order, as shell lines (`--scale pod`); runs nothing."""
    cells = ablation.cells(context)
    check_cells(ablation.name, cells)
    paths = Paths(workdir, {c.name: {s.name: s for s in c.stages} for c in cells})
    lines = []
    for cell in cells:
        lines.append(f"# {cell.name}")
        lines += [launch_line(stage, cell.name, cell.seed, paths) for stage in cell.stages]
        e = cell.evaluation
        evaluate = ["python", "-m", "embeddinggemma", "evaluate", "--checkpoint",
                    str(paths.checkpoint(cell.name, e.checkpoint)), "--max-length", str(e.max_length),
                    "--out", str(cell_dir(paths.workdir, cell.name) / "eval")]
        if e.dims:
            evaluate += ["--dims", ",".join(map(str, e.dims))]
        if e.tasks:
            evaluate += ["--tasks", ",".join(e.tasks)]
        lines.append(shlex.join(evaluate))
    return lines
