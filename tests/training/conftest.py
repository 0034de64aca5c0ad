"""Training-run fixtures: a runner for `python -m embeddinggemma train` on the small real corpus
(tests/conftest.py)."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# A run small enough for a test: 8 examples a batch, short texts, checkpoints every 2 steps.
SMALL_RUN = ("--config.train.batch_size=8", "--config.train.max_query_length=24",
             "--config.train.max_document_length=32", "--config.optimizer.warmup_steps=2",
             "--config.checkpoint.every_steps=2", "--config.checkpoint.keep=10",
             "--config.eval.every_steps=4", "--config.eval.max_queries=16", "--config.eval.batch_size=16")


def process_env(devices: int = 1) -> dict[str, str]:
    """The environment of a training subprocess with `devices` simulated CPU devices."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    return env


def small_run_command(corpus: Path, workdir: Path, *overrides: str, steps: int = 8) -> list[str]:
    """The command line of a small tiny-model run in `workdir` on `corpus`."""
    return [sys.executable, "-m", "embeddinggemma", "train",
            "--config", str(REPO / "configs/finetune.py:tiny"), "--workdir", str(workdir),
            f"--config.data.corpus={corpus}", f"--config.train.num_steps={steps}", *SMALL_RUN, *overrides]


@pytest.fixture
def train_command(small_corpus) -> Callable[..., list[str]]:
    """`small_run_command` on the small corpus."""
    return functools.partial(small_run_command, small_corpus)


def run(cmd: Sequence[str], devices: int = 1, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=process_env(devices), cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)
