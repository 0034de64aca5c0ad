"""Runs one stage of a cell in this process, or writes the command line that runs it elsewhere.

A stage runs exactly what its command does (the library functions behind the train, adapt, soup
and quantize commands), with its directory under the cell's; running it again after a kill resumes
it: a training run from its latest checkpoint, a soup or a quantised checkpoint rebuilt over its own
partial output (those functions only ever replace what they wrote).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from pathlib import Path

import ml_collections

from embeddinggemma.paths import as_path
from experiments.grid import Quantize, Ref, Soup, Stage, Teacher, Train, cell_dir, stage_outputs


class StageError(RuntimeError):
    """A stage that did not finish: the message names the cell, the stage and why."""


class Paths:
    """Resolves a cell's stage names and Refs to directories under the experiment's work directory."""

    def __init__(self, workdir: str | Path, stages_by_cell: Mapping[str, Mapping[str, Stage]]):
        self.workdir = as_path(workdir)  # a bucket's URL keeps its `//`
        self.stages_by_cell = stages_by_cell

    def stage_dir(self, cell: str, stage: str) -> Path:
        return cell_dir(self.workdir, cell) / stage

    def checkpoint(self, cell: str, ref: Ref) -> Path:
        """The checkpoint a Ref reads: a run's export, or a soup's or quantised checkpoint."""
        owner = ref.cell or cell
        stage = self.stages_by_cell[owner][ref.stage]
        directory = self.stage_dir(owner, ref.stage)
        sub = stage_outputs(stage)
        return directory / sub if sub else directory


def train_overrides(stage: Train, seed: int, resolve: Callable[[Ref], Path]) -> dict[str, object]:
    """The stage's config overrides with Refs resolved, the cell's seed (`seed`) and its mixture
    (`data.mixture`)."""
    from embeddinggemma.data.config import mixture_text

    values = {k: str(resolve(v)) if isinstance(v, Ref) else v for k, v in stage.overrides.items()}
    mixture = {"data.mixture": mixture_text(stage.mixture)} if stage.mixture is not None else {}
    return {"seed": seed, **values, **mixture}


def train_config(stage: Train, seed: int, resolve: Callable[[Ref], Path]) -> ml_collections.ConfigDict:
    """The resolved config a Train or Adapt stage runs with.

    Raises:
      ConfigError naming the field.
    """
    from embeddinggemma.training.config_files import load_config

    return load_config(stage.config, train_overrides(stage, seed, resolve))


def run_stage(stage: Stage, cell: str, seed: int, paths: Paths) -> None:
    """Runs `stage` of `cell` to its end (resuming what a killed runner left).

    Raises:
      StageError naming the cell and stage when the command fails or the loss turns NaN.
    """
    out = paths.stage_dir(cell, stage.name)
    resolve = lambda ref: paths.checkpoint(cell, ref)
    where = f"cell {cell}, stage {stage.name}"
    if isinstance(stage, Train):
        from embeddinggemma.errors import NonFiniteLossError
        from embeddinggemma.training.loop import train

        config = train_config(stage, seed, resolve)
        try:
            train(config, out)  # the stage its config names (embedding or denoising)
        except NonFiniteLossError as e:
            raise StageError(f"{where}: {e}") from e
        return
    if isinstance(stage, Teacher):
        _run_teacher(stage, resolve)
        return
    try:
        if isinstance(stage, Soup):
            from embeddinggemma.souping.soup import make_soup

            make_soup([str(resolve(r)) for r in stage.ingredients], out, overwrite=True)
        elif isinstance(stage, Quantize):
            from embeddinggemma.checkpoint.quantized import quantize_checkpoint

            quantize_checkpoint(resolve(stage.source), out, stage.scheme, overwrite=True)
        else:
            raise TypeError(f"not a stage: {stage!r}")
    except (OSError, ValueError) as e:
        raise StageError(f"{where}: {e}") from e


def _run_teacher(stage: Teacher, resolve: Callable[[Ref], Path]) -> None:
    """Embeds the corpus with the teacher unless the corpus already holds these embeddings."""
    from embeddinggemma.data.corpus.manifest import read_manifest
    from embeddinggemma.data.corpus.teacher_embeddings import add_teacher_embeddings
    from embeddinggemma.training.inputs import ensure_corpus

    corpus = ensure_corpus(stage.corpus)
    checkpoint = resolve(stage.checkpoint) if isinstance(stage.checkpoint, Ref) else as_path(stage.checkpoint)
    checkpoint = checkpoint.expanduser()
    known = read_manifest(corpus)["teachers"].get(stage.teacher_name)
    if known is not None:
        if known["checkpoint"] != str(checkpoint) or known["max_length"] != stage.max_length:
            raise StageError(f"{corpus} already holds teacher embeddings named {stage.teacher_name!r}, of "
                             f"{known['checkpoint']} at {known['max_length']} tokens, not of {checkpoint} at "
                             f"{stage.max_length}: name this teacher differently.")
        return
    add_teacher_embeddings(corpus, checkpoint, name=stage.teacher_name, max_length=stage.max_length)


def command_arguments(stage: Stage, cell: str, seed: int, paths: Paths) -> list[str]:
    """The arguments of the stage's command (after `python -m MODULE` or the script)."""
    out = str(paths.stage_dir(cell, stage.name))
    resolve = lambda ref: paths.checkpoint(cell, ref)
    if isinstance(stage, Train):
        name, _, arg = stage.config.partition(":")
        argv = ["--config", f"configs/{Path(name).stem}.py" + (f":{arg}" if arg else ""), "--workdir", out]
        overrides = train_overrides(stage, seed, resolve)
        argv += [f"--config.{k}={_command_value(v)}" for k, v in overrides.items()]
        return argv
    if isinstance(stage, Soup):
        return ["--checkpoints", *(str(resolve(r)) for r in stage.ingredients), "--out", out, "--overwrite"]
    if isinstance(stage, Quantize):
        return ["--checkpoint", str(resolve(stage.source)), "--scheme", stage.scheme, "--out", out, "--force"]
    if isinstance(stage, Teacher):
        checkpoint = resolve(stage.checkpoint) if isinstance(stage.checkpoint, Ref) else stage.checkpoint
        return ["--out", stage.corpus, "--teacher", str(checkpoint), "--teacher-name", stage.teacher_name,
                "--teacher-max-length", str(stage.max_length)]
    raise TypeError(f"not a stage: {stage!r}")


def _command_value(value: object) -> str:
    if isinstance(value, tuple | list):
        return "(" + ",".join(str(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return str(value)


def launch_line(stage: Stage, cell: str, seed: int, paths: Paths) -> str:
    """The shell command that runs the stage by itself (what `--scale pod` prints)."""
    argv = command_arguments(stage, cell, seed, paths)
    return shlex.join([*stage.program, *argv])
