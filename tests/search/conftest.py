"""Search fixtures: a config with three declared datasets, and a cheap trial that trains nothing."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.storages.journal import JournalFileBackend, JournalStorage

from embeddinggemma.data.config import dataset_config
from embeddinggemma.search.objectives import SearchObjective
from embeddinggemma.search.study import JOURNAL_FILE, STUDY_NAME, SearchSpec
from embeddinggemma.training.config_files import load_config

CONFIG_WEIGHTS = {"bitext": 2.0, "code": 1.0, "package_metadata": 1.0}
TARGET = np.array([0.1, 0.7, 0.2])  # the fake objective's best mixture


def declared_config(weights: Mapping[str, float] = CONFIG_WEIGHTS):
    """finetune:tiny without a corpus, with datasets declared (their files are never read here)."""
    config = load_config("finetune:tiny", {"data.corpus": ""})
    with config.unlocked():
        for name, weight in weights.items():
            config.data.datasets[name] = dataset_config(f"/nonexistent/{name}.jsonl", weight=weight)
    return config


def spec(random_mixtures: int = 3, seed: int = 0, objective: str = "heldout") -> SearchSpec:
    return SearchSpec(declared_config(), tuple(CONFIG_WEIGHTS), SearchObjective.parse(objective), seed=seed,
                      random_mixtures=random_mixtures)


def stored_trials(workdir: Path) -> list[optuna.trial.FrozenTrial]:
    """The study as a fresh process reads it from the journal."""
    storage = JournalStorage(JournalFileBackend(str(workdir / JOURNAL_FILE)))
    return optuna.load_study(study_name=STUDY_NAME, storage=storage).get_trials()


class FakeTrials:
    """A trial function that scores a mixture by its distance to TARGET and records its calls."""

    def __init__(self, fail_at: int | None = None, error: Exception | None = None):
        self.calls: list[tuple[str, dict[str, float]]] = []
        self.fail_at, self.error = fail_at, error

    def __call__(self, run_dir: Path, weights: Mapping[str, float]):
        self.calls.append((run_dir.name, dict(weights)))
        if self.fail_at is not None and int(run_dir.name) == self.fail_at:
            raise self.error
        w = np.array([weights[n] for n in CONFIG_WEIGHTS])
        return -float(np.abs(w - TARGET).sum()), {n: float(x) for n, x in zip(CONFIG_WEIGHTS, w, strict=True)}


@pytest.fixture
def fake_trials():
    return FakeTrials()
