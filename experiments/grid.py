"""The shape of an experiment: an ablation is a grid of cells, a cell a chain of stages and a score.

    Ablation   name, what it compares, the paper's numbers, and `cells(context) -> [Cell]`
    Cell       one variant at one seed: stages run in order, then one evaluation
    Stage      Train (the train command), Adapt (UL2), Soup, Quantize, Teacher (distillation targets)
    Ref        another stage's output, in this cell or another (a soup's ingredients, a QAT start)

Definitions say *what* runs; experiments/stages.py runs a stage (or prints its command line) and
experiments/runner.py walks the grid. A cell's directory is `WORKDIR/cells/<variant>/seed<N>/`, one
subdirectory per stage, so every stage is an ordinary run or checkpoint directory.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from embeddinggemma.paths import AnyPath, as_path

SCALES = ("smoke", "cpu", "pod")


@dataclasses.dataclass(frozen=True)
class Ref:
    """The output of `stage` in `cell` ("" = the cell that holds the reference)."""

    stage: str
    cell: str = ""


@dataclasses.dataclass(frozen=True)
class Train:
    """`python -m embeddinggemma train --config CONFIG --config.KEY=VALUE ...`; a Ref value becomes
    the referenced checkpoint's path. `mixture` sets the datasets' weights (the corpus's included;
    the others off), as the mixture search does. The cell's seed is the config's `seed`."""

    name: str
    config: str
    overrides: Mapping[str, object] = dataclasses.field(default_factory=dict)
    mixture: Mapping[str, float] | None = None

    program = ("python", "-m", "embeddinggemma", "train")


@dataclasses.dataclass(frozen=True)
class Adapt(Train):
    """UL2 adaptation (`python -m embeddinggemma adapt`); its export starts `model.init=encoder_decoder`."""

    program = ("python", "-m", "embeddinggemma", "adapt")


@dataclasses.dataclass(frozen=True)
class Soup:
    """A uniform soup of the ingredients' exports (`python -m embeddinggemma soup`)."""

    name: str
    ingredients: tuple[Ref, ...]

    program = ("python", "-m", "embeddinggemma", "soup")


@dataclasses.dataclass(frozen=True)
class Quantize:
    """An integer checkpoint of `source` under `scheme` (`python -m embeddinggemma quantize`)."""

    name: str
    source: Ref
    scheme: str

    program = ("python", "-m", "embeddinggemma", "quantize")


@dataclasses.dataclass(frozen=True)
class Teacher:
    """Teacher embeddings of `checkpoint` for every record of `corpus`, stored beside the records
    under `teacher_name` (`scripts/build_corpus.py --teacher`): computed once, found by every
    distilled cell through `data.teacher`. `checkpoint` is a path or a Ref."""

    name: str
    corpus: str
    checkpoint: str | Ref
    teacher_name: str
    max_length: int = 512

    program = ("python", "scripts/build_corpus.py")


Stage = Train | Adapt | Soup | Quantize | Teacher


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """What a cell is scored on: the offline suite's `tasks` (None = all) at `dims` (None = the
    model's own), `max_length` tokens, of the checkpoint `checkpoint` points at."""

    checkpoint: Ref
    tasks: tuple[str, ...] | None = None
    dims: tuple[int, ...] | None = None
    max_length: int = 512


@dataclasses.dataclass(frozen=True)
class Cell:
    variant: str
    seed: int
    stages: tuple[Stage, ...]
    evaluation: Evaluation

    @property
    def name(self) -> str:
        return f"{self.variant}/seed{self.seed}"


@dataclasses.dataclass(frozen=True)
class Context:
    """What a definition builds its cells from: the scale, the seeds and the inputs the runner
    resolved (paths; at pod scale they are placeholders printed in the launch lines)."""

    scale: str
    seeds: tuple[int, ...]
    corpus: str
    decoder: str = ""      # a Gemma 3 decoder (the init ablation's decoder start)
    tokenizer: str = ""    # that decoder's SentencePiece model (a random start with its vocabulary)
    teacher: str = ""      # the distillation teacher's checkpoint (the objective ablation)


@dataclasses.dataclass(frozen=True)
class Ablation:
    """One finding of the paper as a grid. `plot` is "bars" (suite mean per variant at full width)
    or "dims" (suite mean against the Matryoshka dimension, a line per variant)."""

    name: str
    question: str
    paper: str                  # the paper's numbers and the direction they show
    cells: Callable[[Context], list[Cell]]
    default_seeds: Mapping[str, int] = dataclasses.field(
        default_factory=lambda: {"smoke": 1, "cpu": 3, "pod": 1})
    plot: str = "bars"
    # variant -> the variant it is compared with, seed by seed (default: the grid's first variant)
    baselines: Mapping[str, str] = dataclasses.field(default_factory=dict)
    inputs: tuple[str, ...] = ()  # what the runner must provide: "decoder", "tokenizer", "teacher"


def describe(cell: Cell) -> dict:
    """The cell's definition as JSON values (stages with their kind, evaluation): what status.json
    records, so that a changed definition is not mistaken for a finished cell."""
    stages = [{"kind": type(stage).__name__, **dataclasses.asdict(stage)} for stage in cell.stages]
    return json.loads(json.dumps({"stages": stages, "evaluation": dataclasses.asdict(cell.evaluation)}))


def cell_dir(workdir: str | Path, cell_name: str) -> AnyPath:
    return as_path(workdir) / "cells" / cell_name


def stage_outputs(stage: Stage) -> str:
    """Where in a stage's directory its checkpoint is: a run's `export/`, else the directory itself."""
    return "export" if isinstance(stage, Train) else ""


def check_cells(ablation: str, cells: Sequence[Cell]) -> dict[str, Cell]:
    """Cells by name, checked: names unique, stage names unique within a cell, every Ref naming a
    stage of an earlier cell (or an earlier stage of its own), the evaluation's included.

    Raises:
      ValueError naming the ablation, the cell and the reference.
    """
    by_name: dict[str, Cell] = {}
    for cell in cells:
        if cell.name in by_name:
            raise ValueError(f"ablation {ablation!r}: two cells are named {cell.name!r}.")
        own: dict[str, Stage] = {}
        for stage in cell.stages:
            if stage.name in own:
                raise ValueError(f"ablation {ablation!r}, cell {cell.name!r}: two stages named "
                                 f"{stage.name!r}.")
            for ref in references(stage):
                _check_ref(ablation, cell, ref, own, by_name)
            own[stage.name] = stage
        _check_ref(ablation, cell, cell.evaluation.checkpoint, own, by_name)
        by_name[cell.name] = cell
    return by_name


def _check_ref(ablation: str, cell: Cell, ref: Ref, own: Mapping[str, Stage],
               by_name: Mapping[str, Cell]) -> None:
    if not ref.cell:
        if ref.stage not in own:
            raise ValueError(f"ablation {ablation!r}, cell {cell.name!r}: {ref} names no earlier stage of "
                             f"the cell (it has {', '.join(own) or 'none'}).")
        return
    other = by_name.get(ref.cell)
    if other is None or ref.stage not in {s.name for s in other.stages}:
        raise ValueError(f"ablation {ablation!r}, cell {cell.name!r}: {ref} names no stage of an "
                         "earlier cell.")


def references(stage: Stage) -> list[Ref]:
    """The Refs a stage reads."""
    if isinstance(stage, Train):
        return [v for v in stage.overrides.values() if isinstance(v, Ref)]
    if isinstance(stage, Soup):
        return list(stage.ingredients)
    if isinstance(stage, Quantize):
        return [stage.source]
    if isinstance(stage, Teacher):
        return [stage.checkpoint] if isinstance(stage.checkpoint, Ref) else []
    raise TypeError(f"not a stage: {stage!r}")
