"""Run metrics: a JSON-lines log (one object per step) and TensorBoard event files.

Files under the work directory:
  metrics.jsonl   {"step", "loss", every loss term, "learning_rate", "grad_norm", "dataset",
                   "examples_per_second", "tokens_per_second"} for every step
  eval.jsonl      {"step", "eval/<dataset>/ndcg_at_10", ..., "eval/ndcg_at_10"} for every evaluation
  tensorboard/    the same scalars as TensorBoard events (`tensorboard --logdir DIR/tensorboard`)

A run resumed from step S first drops the lines of steps after S (written by the killed run after
its last checkpoint), so each step appears once, with the values of the run that kept going.

An object in a bucket cannot be appended to: there the logs are kept in memory and each one is
uploaded whole at every flush (before each checkpoint, and at the end).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

from embeddinggemma.atomic import atomic_write
from embeddinggemma.paths import AnyPath, as_path, is_url

METRICS_FILE = "metrics.jsonl"
EVAL_FILE = "eval.jsonl"
TENSORBOARD_DIR = "tensorboard"


def read_jsonl(path: str | Path) -> list[dict]:
    """The objects of a JSON-lines log; a last line cut short by a kill is left out."""
    path = as_path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a partial last line
    return rows


def truncate_jsonl(path: AnyPath, last_step: int) -> None:
    """Keeps the objects with step <= last_step (atomically)."""
    rows = [r for r in read_jsonl(path) if r["step"] <= last_step]
    atomic_write(path, "".join(json.dumps(r) + "\n" for r in rows))


def _plain(value):
    """JSON-safe scalars: numpy and JAX scalars to float, non-finite floats to strings."""
    if isinstance(value, str):
        return value
    value = float(value)
    return value if math.isfinite(value) else str(value)


class _UploadedLog:
    """A JSON-lines log in a bucket, opened for appending: its lines are kept, and the whole
    object is rewritten at each flush."""

    def __init__(self, path: AnyPath):
        self.path = path
        self._text = path.read_text() if path.is_file() else ""
        self._written = self._text

    def write(self, text: str) -> None:
        self._text += text

    def flush(self) -> None:
        if self._text != self._written:
            atomic_write(self.path, self._text)
            self._written = self._text

    def close(self) -> None:
        self.flush()


class MetricsWriter:
    """Writes metrics of the steps after `start_step`; only the writing process (process 0) writes."""

    def __init__(self, workdir: str | Path, start_step: int, enabled: bool = True):
        self.enabled = enabled
        self.workdir = as_path(workdir)
        if not enabled:
            return
        from tensorboardX import SummaryWriter

        self.workdir.mkdir(parents=True, exist_ok=True)
        self._files = {}
        for name in (METRICS_FILE, EVAL_FILE):
            path = self.workdir / name
            if path.exists():
                truncate_jsonl(path, start_step)
            self._files[name] = _UploadedLog(path) if is_url(path) else path.open("a")
        # purge_step: TensorBoard hides the killed run's events after the checkpoint.
        self._tensorboard = SummaryWriter(str(self.workdir / TENSORBOARD_DIR),
                                          purge_step=start_step + 1 if start_step else None)

    @property
    def tensorboard_dir(self) -> AnyPath:
        return self.workdir / TENSORBOARD_DIR

    def _write(self, name: str, step: int, metrics: Mapping) -> None:
        if not self.enabled:
            return
        row = {"step": int(step), **{k: _plain(v) for k, v in metrics.items()}}
        self._files[name].write(json.dumps(row) + "\n")
        for key, value in row.items():
            if key != "step" and not isinstance(value, str):
                self._tensorboard.add_scalar(key, value, int(step))

    def write_step(self, step: int, metrics: Mapping) -> None:
        self._write(METRICS_FILE, step, metrics)

    def write_eval(self, step: int, metrics: Mapping) -> None:
        self._write(EVAL_FILE, step, metrics)

    def flush(self) -> None:
        if self.enabled:
            for f in self._files.values():
                f.flush()
            self._tensorboard.flush()

    def close(self) -> None:
        if self.enabled:
            for f in self._files.values():
                f.close()
            self._tensorboard.close()
