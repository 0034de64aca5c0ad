"""Soup ingredients: any checkpoint, opened to be read one parameter at a time.

An ingredient is named on the command line as
  RUN            a run directory (its config.json): the latest complete checkpoint's parameters
  RUN@STEP       the same at a saved step
  DIR            an Orbax checkpoint (a run's `export/`, a soup, an Orbax export) or a
                 sentence-transformers directory (the release, an export)
Run checkpoints hold the whole train state; only the encoder's parameters are read from them, one
array at a time (Orbax partial restore), never the optimiser state.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from embeddinggemma.checkpoint.loading import read_checkpoint_metadata
from embeddinggemma.checkpoint.orbax_io import (
    CHECKPOINTS_DIR,
    is_orbax_dir,
    orbax_leaf_shapes,
    read_orbax_leaf,
    read_orbax_quantization,
)
from embeddinggemma.checkpoint.sentence_transformers import (
    SentenceTransformersReader,
    is_sentence_transformers_dir,
)
from embeddinggemma.model import EmbedderConfig
from embeddinggemma.model.layout import embedder_layout
from embeddinggemma.paths import AnyPath, as_path, files_under
from embeddinggemma.training.checkpoints import saved_steps as run_saved_steps
from embeddinggemma.training.config import CONFIG_FILE, read_config
from embeddinggemma.training.embedding_config import model_config
from embeddinggemma.training.inputs import run_tokenizer_and_prompts
from embeddinggemma.training.state import ENCODER

ParamPath = tuple[str, ...]


@dataclasses.dataclass
class Ingredient:
    """One checkpoint of a soup: what it is, and a reader of its parameters.

    Attributes:
      name: as given (e.g. "runs/a@200").
      path: the directory its parameters are read from.
      step: the run's step, or None for a checkpoint directory.
      run_dir: the run directory when the ingredient is a run or a run's `export/`, else None.
      shapes: every parameter's path -> shape.
      read: a parameter's path -> its array (float32 or as stored).
      files: the files its parameters are read from (their content hash names the ingredient).
    """

    name: str
    path: Path
    step: int | None
    run_dir: Path | None
    config: EmbedderConfig
    tokenizer_path: Path
    prompts: dict[str, str]
    shapes: dict[ParamPath, tuple[int, ...]]
    read: Callable[[ParamPath], np.ndarray]
    files: list[Path]

    def content_sha256(self) -> str:
        """sha256 over the parameter files (sorted by name), read in 1 MiB blocks."""
        digest = hashlib.sha256()
        for f in sorted(self.files):
            digest.update(str(f.relative_to(self.path)).encode() + b"\0")
            with f.open("rb") as stream:
                while block := stream.read(1 << 20):
                    digest.update(block)
        return digest.hexdigest()

    def tokenizer_sha256(self) -> str:
        return hashlib.sha256(self.tokenizer_path.read_bytes()).hexdigest()


def is_run_dir(path: Path) -> bool:
    return (path / CONFIG_FILE).is_file() and (path / CHECKPOINTS_DIR).is_dir()


def saved_steps(run_dir: AnyPath) -> list[int]:
    """The run's complete checkpoints' steps, ascending (Orbax's temporary directories excluded)."""
    directory = run_dir / CHECKPOINTS_DIR
    return [s for s in run_saved_steps(run_dir) if (directory / str(s) / "state").is_dir()]


def open_ingredient(name: str) -> Ingredient:
    """Opens `name` (see the module docstring), reading metadata only.

    Raises:
      FileNotFoundError or ValueError naming the directory, the step or the file that is wrong.
    """
    spec, _, step_text = name.partition("@")
    path = as_path(spec).expanduser()
    if step_text and not is_run_dir(path):
        raise ValueError(f"{name}: @STEP names a run's checkpoint, and {path} is not a run directory "
                         f"({CONFIG_FILE} and {CHECKPOINTS_DIR}/).")
    if is_run_dir(path) and not is_orbax_dir(path):
        return _open_run(name, path, step_text)
    if is_orbax_dir(path):
        scheme = read_orbax_quantization(path)
        if scheme is not None:
            # Averaging integer codes is meaningless; soup the float checkpoints, then quantise.
            raise ValueError(f"{path}: a {scheme} quantised checkpoint; soup float checkpoints and "
                             f"quantise the soup (python -m embeddinggemma quantize).")
        config, tokenizer, prompts = read_checkpoint_metadata(path)
        shapes = orbax_leaf_shapes(path / "params")
        files = sorted(files_under(path / "params"))
        run_dir = path.parent if is_run_dir(path.parent) else None
        return Ingredient(name, path, None, run_dir, config, tokenizer, prompts, shapes,
                          lambda p: read_orbax_leaf(path / "params", p), files)
    if is_sentence_transformers_dir(path):
        _, tokenizer, prompts = read_checkpoint_metadata(path)
        reader = SentenceTransformersReader(path)
        # The reader checked every tensor's shape against the architecture.
        shapes = {p: _layout_shape(reader.config, p) for p in reader.paths()}
        return Ingredient(name, path, None, None, reader.config, tokenizer, prompts, shapes, reader.read,
                          reader.files)
    read_checkpoint_metadata(path)  # raises the loader's error naming what the directory lacks
    raise FileNotFoundError(f"{path}: not a checkpoint.")


def _layout_shape(config: EmbedderConfig, path: ParamPath) -> tuple[int, ...]:
    layout = embedder_layout(config)
    for key in path:
        layout = layout[key]
    return layout.shape


def _open_run(name: str, run_dir: Path, step_text: str) -> Ingredient:
    steps = saved_steps(run_dir)
    if not steps:
        raise FileNotFoundError(f"{name}: the run {run_dir} has no complete checkpoint in "
                                f"{run_dir / CHECKPOINTS_DIR}.")
    if step_text:
        if not step_text.isdigit() or int(step_text) not in steps:
            raise ValueError(f"{name}: no checkpoint at step {step_text!r}; the run has {steps}.")
        step = int(step_text)
    else:
        step = steps[-1]
    config = read_config(run_dir)
    tokenizer, prompts = run_tokenizer_and_prompts(config, run_dir)
    state_dir = run_dir / CHECKPOINTS_DIR / str(step) / "state"
    prefix = ("params", ENCODER)
    shapes = {p[len(prefix):]: shape for p, shape in orbax_leaf_shapes(state_dir).items()
              if p[:len(prefix)] == prefix}
    files = sorted(files_under(state_dir))
    return Ingredient(name, state_dir, step, run_dir, model_config(config), tokenizer, prompts, shapes,
                      lambda p: read_orbax_leaf(state_dir, prefix + p), files)
